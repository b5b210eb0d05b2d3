"""Multiserver systems and video servers added, changed and deleted from the pages, with the same
rules as the API (the models' clean(), scope by system) and the audit log (model signals)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.querysets import allowed_systems
from servers.forms import ServerForm, SystemForm
from servers.models import MultiserverSystem, Server
from utilities.ids import query_id
from utilities.serializers import still_in_use


def _form_page(request, form, title: str, submit: str, deleting=None):
    context = {"form": form, "title": title, "submit": submit, "deleting": deleting}
    return render(request, "servers/edit_form.html", context, status=400 if form.errors else 200)


@login_required
def system_new(request):
    # Only users of the whole site add systems: a user limited to some could not see a new one.
    if not request.user.has_perm("servers.add_multiserversystem") or allowed_systems(request.user) is not None:
        raise PermissionDenied
    form = SystemForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        system = form.save()
        messages.success(request, f"Multiserver system {system.name} added; add its servers next.")
        return redirect("servers:list")
    return _form_page(request, form, "Add multiserver system", "Add system")


@login_required
@permission_required("servers.change_multiserversystem", raise_exception=True)
def system_edit(request, pk):
    system = get_object_or_404(MultiserverSystem.objects.restrict(request.user), pk=pk)
    form = SystemForm(request.POST or None, instance=system, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Multiserver system {system.name} saved.")
        return redirect("servers:list")
    deleting = "servers:system-delete" if request.user.has_perm("servers.delete_multiserversystem") else None
    return _form_page(request, form, f"Multiserver system {system.name}", "Save", (deleting, system))


@require_POST
@login_required
@permission_required("servers.delete_multiserversystem", raise_exception=True)
def system_delete(request, pk):
    system = get_object_or_404(MultiserverSystem.objects.restrict(request.user), pk=pk)
    return _delete(request, system, f"Multiserver system {system.name}", "servers:system-edit")


@login_required
@permission_required("servers.add_server", raise_exception=True)
def server_new(request):
    initial = {}
    chosen = MultiserverSystem.objects.restrict(request.user).filter(pk=query_id(request.GET.get("system"))).first()
    if chosen is not None:
        initial["system"] = chosen
    form = ServerForm(request.POST or None, initial=initial, user=request.user)
    if request.method == "POST" and form.is_valid():
        server = form.save()
        messages.success(request, f"Server {server.name} added. Give it a license so that it may record cameras.")
        return redirect("servers:server", server.pk)
    return _form_page(request, form, "Add video server", "Add server")


@login_required
@permission_required("servers.change_server", raise_exception=True)
def server_edit(request, pk):
    server = get_object_or_404(Server.objects.restrict(request.user), pk=pk)
    form = ServerForm(request.POST or None, instance=server, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Server {server.name} saved.")
        return redirect("servers:server", server.pk)
    deleting = "servers:server-delete" if request.user.has_perm("servers.delete_server") else None
    return _form_page(request, form, f"Server {server.name}", "Save", (deleting, server))


@require_POST
@login_required
@permission_required("servers.delete_server", raise_exception=True)
def server_delete(request, pk):
    server = get_object_or_404(Server.objects.restrict(request.user), pk=pk)
    return _delete(request, server, f"Server {server.name}", "servers:server-edit")


def _delete(request, thing, called: str, back: str):
    """Delete, or say what still uses it and go back to its page."""
    try:
        thing.delete()
    except ProtectedError as exc:
        messages.error(request, f"{thing.name} was not deleted. {still_in_use(exc)}")
        return redirect(back, thing.pk)
    messages.success(request, f"{called} deleted.")
    return redirect("servers:list")
