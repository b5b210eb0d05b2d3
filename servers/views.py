from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.permissions import view_required
from accounts.querysets import allowed_systems
from redundancy.models import ServerStatus
from redundancy.status import servers_health
from servers.forms import LicenseForm, MailSettingsForm, pending_settings
from servers.mailtest import send_test_mail
from servers.models import License, MailSettings, MultiserverSystem, Server
from utilities.ids import query_id


@login_required
@view_required("servers.view_server")
def server_list(request):
    systems = MultiserverSystem.objects.restrict(request.user).prefetch_related(
        Prefetch(
            "servers",
            queryset=Server.objects.select_related("redundancy")
            .prefetch_related("licenses")
            .annotate(primary_total=Count("primary_cameras", distinct=True))
            .annotate(backup_total=Count("backup_cameras", distinct=True)),
        )
    )
    today = timezone.localdate()
    health, readable = servers_health(allowed_systems(request.user))
    rows = [
        (system, [(server, server.licensing(today), _health(health.get(server.pk), readable))
                  for server in system.servers.all()])
        for system in systems
    ]  # fmt: skip
    context = {"systems": rows, "live_readable": readable, "whole_site": allowed_systems(request.user) is None}
    return render(request, "servers/server_list.html", context)


def _health(row: dict | None, readable: bool) -> dict:
    """What the Health column says of a server: its status, how long ago it was heard, its storage."""
    row = row or {"status": ServerStatus.UNKNOWN, "heartbeat_age": None, "storage_error": ""}
    age = row["heartbeat_age"]
    if not readable:
        heard = "heartbeat not known now"
    else:
        heard = "never heard" if age is None else f"heard {_ago(age)} ago"
    return {
        "status": row["status"],
        "label": ServerStatus(row["status"]).label,
        "heard": heard,
        "storage_error": row["storage_error"],
        "storage_ok": readable and age is not None and not row["storage_error"],
    }


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 0):.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


@login_required
@view_required("servers.view_license")
def license_list(request):
    today = timezone.localdate()
    servers = (
        Server.objects.restrict(request.user)
        .select_related("system")
        .prefetch_related("licenses")
        .annotate(primary_total=Count("primary_cameras"))
    )
    usage = [(server, server.licensing(today)) for server in servers]
    form = LicenseForm(user=request.user)
    if request.method == "POST":
        if not request.user.has_perm("servers.add_license"):
            messages.error(request, "You may view licenses but not add them.")
            return redirect("servers:licenses")
        form = LicenseForm(request.POST, user=request.user)
        if form.is_valid():
            license = form.save()
            messages.success(request, f"License {license.key} added to {license.server}.")
            return redirect("servers:licenses")
    return render(
        request,
        "servers/license_list.html",
        {
            "usage": usage,
            "licenses": License.objects.select_related("server").restrict(request.user).annotate(
                backed_up=Count("server__backup_cameras", distinct=True)
            ),
            "today": today,
            "form": form,
        },
        status=400 if form.errors else 200,
    )


@login_required
@permission_required("servers.change_mailsettings", raise_exception=True)
def mail_settings(request, system_id):
    """The mail setup form; ``enable_for`` turns a server's notifications on once mail works."""
    system = get_object_or_404(MultiserverSystem.objects.restrict(request.user), pk=system_id)
    instance = MailSettings.objects.filter(system=system).first() or MailSettings(system=system)
    enable_for = _server_of_system(system, request.GET.get("enable_for") or request.POST.get("enable_for"))
    if enable_for and not request.user.has_perm("servers.change_redundancysettings"):
        enable_for = None  # turning notifications on is a redundancy setting
    # The Backup (redundancy) change that waited for mail: email notifications on, and any other parts.
    params = request.POST if request.method == "POST" else request.GET
    form = MailSettingsForm(request.POST or None, instance=instance)
    tested = None
    if request.method == "POST" and request.POST.get("action") == "test":
        # The settings as typed, sent with and stored nowhere: Save stores them.
        if form.is_valid():
            tested = send_test_mail(form.save(commit=False), sent_by=request.user.get_username())
    elif request.method == "POST" and form.is_valid():
        with transaction.atomic():  # the mail settings and the change they let through, together
            form.save()
            text = f"Mail settings of {system} saved."
            if enable_for:
                change = pending_settings(params, enable_for)
                change.is_valid()  # mail now works, so nothing refuses it; save() raises (and rolls back) if so
                lines = change.applied()
                change.save()  # saved, not updated: the audit log sees it
                text += f" Backup (redundancy) of {enable_for}: {' '.join(lines) or 'unchanged.'}"
        messages.success(request, text)
        if request.htmx:
            response = render(request, "servers/_mail_saved.html", {"text": text})
            response["HX-Refresh"] = "true"
            return response
        return redirect("servers:server", enable_for.pk) if enable_for else redirect("servers:list")
    template = "servers/_mail_form.html" if request.htmx else "servers/mail_settings.html"
    context = {"form": form, "system": system, "enable_for": enable_for, "tested": tested,
               "password_typed": bool(request.POST.get("password"))}  # fmt: skip
    if enable_for:
        change = pending_settings(params, enable_for)
        change.is_valid()  # refused until mail works; cleaning tells which parts it carries
        context["pending"], context["pending_words"] = change.pending(), change.pending_words()
    return render(request, template, context, status=400 if form.errors else 200)


def _server_of_system(system, server_id):
    if query_id(server_id) is None:
        return None
    return Server.objects.filter(system=system, pk=query_id(server_id)).first()


@require_POST
@login_required
@permission_required("servers.delete_license", raise_exception=True)
def license_delete(request, pk):
    license = get_object_or_404(License.objects.restrict(request.user), pk=pk)
    license.delete()
    messages.success(request, f"License {license.key} removed from {license.server}.")
    return redirect("servers:licenses")
