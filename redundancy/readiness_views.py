"""Backup readiness pages: the report of every camera's last check by its backup, and the camera page's
"Check the backup now" (a request the backup's agent reads within seconds)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render

from accounts.permissions import view_required
from cameras.models import Camera
from recording.models import BackupCheck
from redundancy.api.readiness import REPORT
from redundancy.readiness import readiness_report
from servers.models import Server
from utilities.ids import query_id


@login_required
@view_required(*REPORT)
def backup_checks(request):
    cameras = Camera.objects.restrict(request.user)
    server_id = query_id(request.GET.get("server", ""))
    if server_id is not None:
        cameras = cameras.filter(backup_server_id=server_id)
    rows = readiness_report(cameras)
    return render(request, "redundancy/backup_checks.html", {
        "rows": rows,
        "failed": sum(1 for row in rows if row.ok is False),
        "servers": Server.objects.restrict(request.user),
        "server_id": server_id,
        "can_request": request.user.has_perm("cameras.change_camera"),
    })  # fmt: skip


@login_required
@view_required("cameras.view_camera", "recording.view_backupcheck")
def backup_check(request, pk):
    """The camera page's readiness part (htmx polls it while a check is asked for); POST asks for a check now."""
    camera = get_object_or_404(Camera.objects.with_servers().restrict(request.user), pk=pk)
    can_configure = request.user.has_perm("cameras.change_camera")
    if request.method == "POST":
        if not can_configure:
            raise PermissionDenied
        check = BackupCheck.objects.request(camera) if camera.backup_server_id else None
        if not request.htmx:
            if check is None:
                messages.error(request, f"{camera.name} has no backup server to check it.")
            else:
                messages.success(request, f"{camera.backup_server.name} checks {camera.name} within seconds.")
            return redirect("cameras:connection", camera.pk)
    elif request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    check = BackupCheck.objects.current().filter(camera=camera).first()
    return render(request, "cameras/_backup_check.html", {"camera": camera, "backup_check": check,
                                                          "can_configure": can_configure})  # fmt: skip
