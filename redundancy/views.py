"""The event log, and a server's drain and fail-back as the operator asks for them."""


from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.permissions import view_required
from redundancy import actions
from redundancy.models import Event, EventKind
from servers.models import Server
from utilities.ids import query_id


@login_required
@view_required("redundancy.view_event")
def event_list(request):
    events = Event.objects.select_related("camera", "server", "to_server").restrict(request.user)
    kind = request.GET.get("kind", "")
    server_id = request.GET.get("server", "")
    camera_id = request.GET.get("camera", "")
    if kind in EventKind.values:
        events = events.filter(kind=kind)
    if query_id(server_id) is not None:
        events = events.filter(Q(server_id=query_id(server_id)) | Q(to_server_id=query_id(server_id)))
    if query_id(camera_id) is not None:
        events = events.filter(camera_id=query_id(camera_id))
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    return render(request, "redundancy/event_list.html", {
        "page": page, "kinds": EventKind.choices, "servers": Server.objects.restrict(request.user),
        "kind": kind, "server_id": server_id, "camera_id": camera_id,
    })  # fmt: skip


@require_POST
@login_required
@permission_required("redundancy.change_serverstate", raise_exception=True)
def server_action(request, pk, action):
    server = get_object_or_404(Server.objects.restrict(request.user), pk=pk)
    if action == "drain":
        started = actions.drain(server, request.user)
        messages.success(
            request,
            f"{server.name} is being drained: its cameras move to their backups as each backup records them."
            if started
            else f"{server.name} was already being drained.",
        )
    else:
        count = actions.fail_back(server, request.user)
        messages.success(request, f"{count} camera(s) return to {server.name} as soon as it records them.")
    back = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(back)
    return redirect("servers:server", server.pk)
