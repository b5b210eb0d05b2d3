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
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from accounts.permissions import view_required
from cameras.models import Camera
from cameras.modes import server_warnings
from cameras.rules import backup_problems, valid_backups
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups
from recording.models import BackupCheck, StreamHealth
from redundancy import actions
from redundancy.models import Event, EventKind, ServerState
from redundancy.readiness import last_checks
from servers.forms import RedundancySettingsForm
from servers.models import MultiserverSystem, Server
from utilities.ids import query_id


def _servers(user):
    return Server.objects.select_related("system", "redundancy").prefetch_related("licenses").restrict(user)


def _server_page(request, server, form=None, applied=(), open_mail_setup="", status=200):
    """The Information tab; HTMX posts swap its whole content, so the camera tables follow the settings."""
    backed_up = list(Camera.objects.with_servers().filter(backup_server=server))
    primary_of = list(Camera.objects.with_servers().filter(primary_server=server))
    licensing = server.licensing()
    can_configure = request.user.has_perm("servers.change_redundancysettings")
    form = form or RedundancySettingsForm(instance=server.redundancy, read_only=not can_configure)
    checks = last_checks([camera.pk for camera in backed_up])
    for camera in backed_up:
        camera.backup_check = checks.get(camera.pk)
    context = {
        "server": server,
        "licensing": licensing,
        "form": form,
        "preview": _backup_preview(server, form, before_apply=False),
        "backed_up": backed_up,
        "primary_of": primary_of,
        "can_configure": can_configure,
        "applied": applied,
        "open_mail_setup": open_mail_setup,
        "state": ServerState.objects.filter(server=server).first(),
        "can_operate": request.user.has_perm("redundancy.change_serverstate"),
        "recent_events": Event.objects.filter(Q(server=server) | Q(to_server=server)).select_related("camera")[:10],
    }
    return render(request, "redundancy/server_information.html", context, status=status)


def _backup_preview(server, form, before_apply=True) -> dict:
    """The warnings of the Backup (redundancy) settings as ticked in ``form`` (stored ones if unbound), and,
    ``before_apply``, what Apply would do or refuse; nothing is stored. A copy of the server and its cameras
    carries the ticked flags, so the rules (cameras.modes) judge the state the operator is about to apply."""
    ticked = _servers_copy(server)
    for name, value in form.ticked.items():
        setattr(ticked.redundancy, name, value)
    backed_up = list(Camera.objects.with_servers().filter(backup_server=server))
    primary_of = list(Camera.objects.with_servers().filter(primary_server=server))
    for camera in backed_up:
        camera.backup_server = ticked
    for camera in primary_of:
        camera.primary_server = ticked
    warnings = server_warnings(ticked, backed_up, primary_of, ticked.licensing())
    # What the agents measured: a camera that turns this server's connection away is not protected by it; one
    # it backs up that lowers its frame rate while both servers read it is recorded with fewer frames.
    warnings += [health.refusal_warning() for health in StreamHealth.objects.refused().filter(server=server)]
    warnings += [
        drop.warning() for drop in StreamHealth.objects.filter(camera__backup_server=server).frame_rate_drops()
    ]
    # Its readiness checks: a camera it backs up that it cannot open would not be recorded by a failover.
    warnings += [check.warning() for check in BackupCheck.objects.failed().filter(server=server)]
    flags = ticked.redundancy
    if flags.fast_redundancy and not flags.constant_redundancy and not backed_up:
        # Rule 5; with cameras backed up, server_warnings names the primaries that still lack it.
        warnings.append("Fast mode works only where the primary server of a camera has fast redundancy on too.")
    return {
        "before_apply": before_apply,
        "change": form.change_summary() if before_apply else "",
        "refusals": [
            f"{form.label(name)} — {error}" if name in form.fields else error
            for name, errors in form.errors.items()
            for error in errors
        ],
        "needs_mail_setup": form.needs_mail_setup,
        # Already on, yet mail no longer works: nothing is refused, but nothing is sent either.
        "mail_missing": flags.email_notifications and not form.needs_mail_setup and not form.mail_works(),
        "warnings": warnings,
    }


def _servers_copy(server):
    return Server.objects.select_related("system", "redundancy").prefetch_related("licenses").get(pk=server.pk)


@login_required
@view_required("servers.view_server", "cameras.view_camera")
def server_information(request, pk):
    server = get_object_or_404(_servers(request.user), pk=pk)
    if request.GET.get("preview"):
        # The boxes as ticked, before Apply: only the warnings and what Apply would do, nothing stored.
        form = RedundancySettingsForm(request.GET, instance=_servers_copy(server).redundancy)
        form.is_valid()
        context = {"server": server, "preview": _backup_preview(server, form)}
        return render(request, "redundancy/_backup_preview.html", context)
    return _server_page(request, server)


@require_POST
@login_required
@permission_required("servers.change_redundancysettings", raise_exception=True)
def backup_settings(request, pk):
    """Apply the Backup (redundancy) section whole, or store nothing and say why for each part."""
    server = get_object_or_404(_servers(request.user), pk=pk)
    # A copy is changed, so the page shows the stored settings beside a refused form.
    form = RedundancySettingsForm(request.POST, instance=_servers_copy(server).redundancy)
    if not form.is_valid():
        if not form.needs_mail_setup:
            return _server_page(request, server, form, status=400)
        mail_url = reverse("servers:mail-settings", args=[server.system_id]) + "?" + urlencode(
            {"enable_for": server.pk, **form.pending()})  # fmt: skip
        if not request.htmx:
            return redirect(mail_url)
        return _server_page(request, server, form, open_mail_setup=mail_url, status=400)
    applied = form.applied() or ["Nothing changed: the settings were already so."]
    form.save()
    if not request.htmx:
        messages.success(request, f"Backup (redundancy) settings of {server.name} applied: {' '.join(applied)}")
        return redirect("redundancy:server", server.pk)
    return _server_page(request, _servers_copy(server), applied=applied)


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
    number = query_id(value)
    return value if number is None else number


def _fill_checked(choice: str, checked: list, servers: dict, proposed: dict, today) -> tuple[str, dict, int]:
    """Set for checked: put the chosen backup into each checked row that may take it (cameras.rules), and
    leave the others as they were with the rule they would break. Nothing is stored; Apply does that.
    Returns the banner, the refused rows' problems and the status."""
    if not checked:
        return "Check the rows to change first.", {}, 400
    if choice == "":
        return "Choose a backup server for the checked rows first (or — none — to remove their backups).", {}, 400
    target = None if choice == "none" else servers.get(query_id(choice))
    if choice != "none" and target is None:
        return "Choose a backup server from the list.", {}, 400
    refused = {}
    for camera in checked:
        problems = backup_problems(camera.name, servers[camera.primary_server_id], target, today)
        if problems:
            refused[camera.pk] = problems
        else:
            proposed[camera.pk] = target.pk if target else None
    notice = f"{len(checked) - len(refused)} row(s) set"
    if refused:
        names = ", ".join(camera.name for camera in checked if camera.pk in refused)
        notice += f"; {len(refused)} refused: {names} (each row says which rule it would break)"
    return notice + ". Nothing is stored until you press Apply.", refused, 200


@login_required
@view_required("cameras.view_camera", "servers.view_server")
def general_settings_cameras(request):
    """Every camera with a backup select per row; bulk fill; Apply stores all rows or none."""
    systems = MultiserverSystem.objects.restrict(request.user)
    system_id = request.GET.get("system") or request.POST.get("system") or ""
    servers = {server.pk: server for server in _servers(request.user)}
    cameras = Camera.objects.with_servers().restrict(request.user).order_by(
        "primary_server__system__name", "primary_server__name", "name"
    )
    if query_id(system_id) is not None:
        cameras = cameras.filter(primary_server__system_id=query_id(system_id))
    cameras = {camera.pk: camera for camera in cameras}
    proposed: dict[int, object] = {}
    errors: dict[int, list[str]] = {}
    notice = bulk_choice = ""
    status = 200
    if request.method == "POST":
        if not request.user.has_perm("cameras.change_camera"):
            raise PermissionDenied
        for key, value in request.POST.items():
            if key.startswith("backup-") and query_id(key[7:]) in cameras:
                proposed[query_id(key[7:])] = _parse_server_id(value)
        if request.POST.get("action") == "fill":
            bulk_choice = request.POST.get("bulk_backup", "")
            checked = [cameras[query_id(c)] for c in request.POST.getlist("selected") if query_id(c) in cameras]
            notice, errors, status = _fill_checked(bulk_choice, checked, servers, proposed, timezone.localdate())
        elif request.POST.get("action") == "apply":
            errors = {cid: ["Choose a server from the list."] for cid, sid in proposed.items() if isinstance(sid, str)}
            changes = [
                BackupAssignment(cid, sid) for cid, sid in proposed.items() if sid != cameras[cid].backup_server_id
            ]
            if not errors:
                try:
                    changed = assign_backups(changes, cameras=Camera.objects.restrict(request.user),
                                             servers=Server.objects.restrict(request.user))  # fmt: skip
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
        "bulk_choice": bulk_choice,
        "notice": notice,
        "has_errors": bool(errors) or status == 400,
        "can_configure": request.user.has_perm("cameras.change_camera"),
    }
    return render(request, "redundancy/general_cameras.html", context, status=status)


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
    return redirect("redundancy:server", server.pk)
