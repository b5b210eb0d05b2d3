"""Configurator pages that join servers and cameras: a server's Information tab with its
Backup (redundancy) section, and General settings → Cameras, the bulk backup table."""

from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.scope import limit
from cameras.models import Camera
from cameras.modes import server_warnings
from cameras.rules import valid_backups
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups
from redundancy import actions
from redundancy.models import EVENT_SYSTEM, Event, EventKind, ServerState
from servers.forms import RedundancySettingsForm
from servers.models import MailSettings, MultiserverSystem, Server


def _servers(user):
    return limit(Server.objects.select_related("system", "redundancy").prefetch_related("licenses"), user, "system")


def _server_page(request, server, form=None, notice="", open_mail_setup="", status=200):
    """The Information tab; HTMX posts swap its whole content, so the camera tables follow the settings."""
    mail = MailSettings.objects.filter(system=server.system).first()
    backed_up = list(Camera.objects.with_servers().filter(backup_server=server))
    primary_of = list(Camera.objects.with_servers().filter(primary_server=server))
    licensing = server.licensing()
    can_configure = request.user.has_perm("servers.change_redundancysettings")
    context = {
        "server": server,
        "licensing": licensing,
        "form": form or RedundancySettingsForm(instance=server.redundancy, read_only=not can_configure),
        "warnings": server_warnings(server, backed_up, primary_of, licensing),
        "mail_missing": server.redundancy.email_notifications and not (mail and mail.is_configured),
        "backed_up": backed_up,
        "primary_of": primary_of,
        "can_configure": can_configure,
        "notice": notice,
        "open_mail_setup": open_mail_setup,
        "state": ServerState.objects.filter(server=server).first(),
        "can_operate": request.user.has_perm("redundancy.change_serverstate"),
        "recent_events": Event.objects.filter(Q(server=server) | Q(to_server=server)).select_related("camera")[:10],
    }
    return render(request, "redundancy/server_information.html", context, status=status)


@login_required
def server_information(request, pk):
    return _server_page(request, get_object_or_404(_servers(request.user), pk=pk))


@require_POST
@login_required
@permission_required("servers.change_redundancysettings", raise_exception=True)
def backup_settings(request, pk):
    server = get_object_or_404(_servers(request.user), pk=pk)
    email_was_on = server.redundancy.email_notifications
    form = RedundancySettingsForm(request.POST, instance=server.redundancy)
    if not form.is_valid():
        return _server_page(request, server, form, status=400)
    settings = form.save(commit=False)
    mail = MailSettings.objects.filter(system=server.system).first()
    needs_mail_setup = settings.email_notifications and not email_was_on and not (mail and mail.is_configured)
    if needs_mail_setup:
        # Rule 5: notifications without working mail would be silent; ask for mail settings first.
        settings.email_notifications = False
    settings.save()
    mail_url = reverse("servers:mail-settings", args=[server.system_id]) + f"?enable_for={server.pk}"
    if needs_mail_setup and not request.htmx:
        return redirect(mail_url)
    notice = "" if needs_mail_setup else f"Backup (redundancy) settings of {server.name} applied."
    if not request.htmx:
        messages.success(request, notice)
        return redirect("redundancy:server", server.pk)
    return _server_page(request, server, notice=notice, open_mail_setup=mail_url if needs_mail_setup else "")


@dataclass
class CameraRow:
    camera: Camera
    options: list
    chosen: int | None
    invalid_choice: Server | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.chosen != self.camera.backup_server_id


def _applied_notice(changed: int) -> str:
    if not changed:
        return "Nothing to apply: no row was changed."
    return f"Applied: the backup server of {changed} camera(s) changed."


def _parse_server_id(value: str):
    if value in ("", None):
        return None
    return int(value) if value.isdigit() else value


@login_required
def general_settings_cameras(request):
    """Every camera with a backup select per row; bulk fill; Apply stores all rows or none."""
    systems = limit(MultiserverSystem.objects.all(), request.user, "pk")
    system_id = request.GET.get("system") or request.POST.get("system") or ""
    servers = {server.pk: server for server in _servers(request.user)}
    cameras = limit(Camera.objects.with_servers(), request.user, "primary_server__system").order_by(
        "primary_server__system__name", "primary_server__name", "name"
    )
    if system_id.isdigit():
        cameras = cameras.filter(primary_server__system_id=system_id)
    cameras = {camera.pk: camera for camera in cameras}
    proposed: dict[int, object] = {}
    errors: dict[int, list[str]] = {}
    notice = ""
    status = 200
    if request.method == "POST":
        if not request.user.has_perm("cameras.change_camera"):
            raise PermissionDenied
        for key, value in request.POST.items():
            if key.startswith("backup-") and key[7:].isdigit() and int(key[7:]) in cameras:
                proposed[int(key[7:])] = _parse_server_id(value)
        if request.POST.get("action") == "fill":
            target = _parse_server_id(request.POST.get("bulk_backup", ""))
            checked = [int(c) for c in request.POST.getlist("selected") if c.isdigit() and int(c) in cameras]
            for camera_id in checked:
                proposed[camera_id] = target
            notice = (
                f"{len(checked)} row(s) updated below. Nothing is stored until you press Apply."
                if checked
                else "Check the rows to change first."
            )
        elif request.POST.get("action") == "apply":
            errors = {cid: ["Choose a server from the list."] for cid, sid in proposed.items() if isinstance(sid, str)}
            changes = [
                BackupAssignment(cid, sid) for cid, sid in proposed.items() if sid != cameras[cid].backup_server_id
            ]
            if not errors:
                try:
                    changed = assign_backups(changes, cameras=limit(Camera.objects.all(), request.user,
                                                                    "primary_server__system"),
                                             servers=limit(Server.objects.all(), request.user, "system"))  # fmt: skip
                except BackupAssignmentError as exc:
                    errors = {changes[i].camera_id: problems for i, problems in exc.errors.items()}
            if errors:
                notice = f"Nothing was applied: {len(errors)} row(s) break a rule. Fix them and apply again."
                status = 400
            elif request.htmx:
                return redirect(f"{request.path}?system={system_id}&applied={len(changed)}")
            else:
                messages.success(request, _applied_notice(len(changed)))
                return redirect(request.get_full_path())
    if request.GET.get("applied", "").isdigit():
        notice = _applied_notice(int(request.GET["applied"]))
    today = timezone.localdate()
    by_system: dict[int, list[Server]] = {}
    for server in servers.values():
        by_system.setdefault(server.system_id, []).append(server)
    rows = []
    for camera in cameras.values():
        primary = servers[camera.primary_server_id]
        options = valid_backups(camera.name, primary, by_system[primary.system_id], today)
        chosen = proposed.get(camera.pk, camera.backup_server_id)
        invalid = None
        if isinstance(chosen, int) and chosen not in {s.pk for s in options}:
            invalid = servers.get(chosen)
        rows.append(CameraRow(camera, options, chosen, invalid, errors.get(camera.pk, [])))
    context = {
        "rows": rows,
        "systems": systems,
        "system_id": system_id,
        "all_servers": list(servers.values()),
        "notice": notice,
        "has_errors": bool(errors),
        "can_configure": request.user.has_perm("cameras.change_camera"),
    }
    return render(request, "redundancy/general_cameras.html", context, status=status)


@login_required
def event_list(request):
    events = limit(Event.objects.select_related("camera", "server", "to_server"), request.user, *EVENT_SYSTEM)
    kind = request.GET.get("kind", "")
    server_id = request.GET.get("server", "")
    camera_id = request.GET.get("camera", "")
    if kind in EventKind.values:
        events = events.filter(kind=kind)
    if server_id.isdigit():
        events = events.filter(Q(server_id=server_id) | Q(to_server_id=server_id))
    if camera_id.isdigit():
        events = events.filter(camera_id=camera_id)
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    return render(request, "redundancy/event_list.html", {
        "page": page, "kinds": EventKind.choices, "servers": limit(Server.objects.all(), request.user, "system"),
        "kind": kind, "server_id": server_id, "camera_id": camera_id,
    })  # fmt: skip


@require_POST
@login_required
@permission_required("redundancy.change_serverstate", raise_exception=True)
def server_action(request, pk, action):
    server = get_object_or_404(limit(Server.objects.all(), request.user, "system"), pk=pk)
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
    return redirect("redundancy:server", server.pk)
