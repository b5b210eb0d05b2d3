"""General settings → Cameras: every camera with a backup select per row, a bulk fill of the
checked rows, and Apply, which stores all rows or none (cameras.services.assign_backups)."""

from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils import timezone

from accounts.permissions import view_required
from cameras.models import Camera
from cameras.rules import backup_problems, valid_backups
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups
from servers.models import MultiserverSystem, Server
from utilities.ids import query_id


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
    servers = {server.pk: server for server in Server.objects.with_settings().restrict(request.user)}
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
    return render(request, "cameras/general_settings.html", context, status=status)
