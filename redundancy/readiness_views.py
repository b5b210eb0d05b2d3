"""Backup readiness pages: the report of every camera's last check by its backup, and the camera page's
"Check now" (a request the backup's agent reads within seconds)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import view_required
from accounts.scope import limit
from cameras.models import Camera
from eocortex_web.ids import query_id
from recording.models import BackupCheck
from redundancy.api.readiness import REPORT
from redundancy.readiness import readiness_report
from servers.models import Server


@login_required
@view_required(*REPORT)
def backup_checks(request):
    cameras = limit(Camera.objects.all(), request.user, "primary_server__system")
    server_id = query_id(request.GET.get("server", ""))
    if server_id is not None:
        cameras = cameras.filter(backup_server_id=server_id)
    rows = readiness_report(cameras)
    return render(request, "redundancy/backup_checks.html", {
        "rows": rows,
        "failed": sum(1 for row in rows if row.ok is False),
        "servers": limit(Server.objects.all(), request.user, "system"),
        "server_id": server_id,
        "can_request": request.user.has_perm("cameras.change_camera"),
    })  # fmt: skip


@require_POST
@login_required
@permission_required("cameras.change_camera", raise_exception=True)
def request_backup_check(request, pk):
    camera = get_object_or_404(limit(Camera.objects.with_servers(), request.user, "primary_server__system"), pk=pk)
    check = BackupCheck.objects.request(camera) if camera.backup_server_id else None
    if request.htmx:
        return render(request, "cameras/_backup_check.html", {"camera": camera, "backup_check": check,
                                                              "can_configure": True, "asked": True})  # fmt: skip
    if check is None:
        messages.error(request, f"{camera.name} has no backup server to check it.")
    else:
        messages.success(request, f"{camera.backup_server.name} checks {camera.name} within seconds.")
    return redirect("cameras:connection", camera.pk)
