from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.permissions import view_required
from cameras.forms import CONNECTION_FIELDS, GENERAL_FIELDS, CameraForm
from cameras.models import Camera
from cameras.modes import RedundancyMode
from recording.models import BackupCheck, StreamHealth
from servers.models import Server
from utilities.ids import query_id

TABS = {"connection": CONNECTION_FIELDS, "general": GENERAL_FIELDS}


def _cameras(user):
    return Camera.objects.with_servers().restrict(user)


@login_required
@view_required("cameras.view_camera")
def camera_list(request):
    cameras = _cameras(request.user).prefetch_related("primary_server__licenses", "backup_server__licenses")
    server_id = request.GET.get("server", "")
    if query_id(server_id) is not None:
        cameras = cameras.filter(Q(primary_server_id=query_id(server_id)) | Q(backup_server_id=query_id(server_id)))
    mode = request.GET.get("mode", "")
    cameras = [c for c in cameras if not mode or c.redundancy_mode == mode]
    return render(
        request,
        "cameras/camera_list.html",
        {
            "cameras": cameras,
            "servers": Server.objects.restrict(request.user),
            "modes": RedundancyMode.choices,
            "server_id": server_id,
            "mode": mode,
        },
    )


def _measured_warnings(camera) -> list[str]:
    """What the servers' agents measure of the camera: a connection it refuses, a frame rate that drops for two,
    a backup that cannot open it (its readiness check)."""
    health = StreamHealth.objects.filter(camera=camera)
    return ([row.refusal_warning() for row in health.refused()] + [drop.warning() for drop in health.frame_rate_drops()]
            + [check.warning() for check in BackupCheck.objects.failed().filter(camera=camera)])  # fmt: skip


@login_required
@view_required("cameras.view_camera")
def camera_tab(request, pk, tab):
    camera = get_object_or_404(_cameras(request.user), pk=pk)
    can_configure = request.user.has_perm("cameras.change_camera")
    options = {
        "tab_fields": TABS[tab],
        "backup_options_url": reverse("cameras:backup-options", args=[camera.pk]),
        "read_only": not can_configure,
        "user": request.user,
    }
    form = CameraForm(instance=camera, **options)
    if request.method == "POST":
        if not can_configure:
            raise PermissionDenied
        form = CameraForm(request.POST, instance=camera, **options)
        if form.is_valid():
            form.save()
            messages.success(request, f"Camera {camera.name} applied.")
            return redirect(f"cameras:{tab}", camera.pk)
    return render(
        request,
        "cameras/camera_tab.html",
        {
            "camera": Camera.objects.with_servers().get(pk=pk),
            "form": form,
            "tab": tab,
            "can_configure": can_configure,
            "measured_warnings": _measured_warnings(camera),
            "backup_check": BackupCheck.objects.current().filter(camera=camera).first(),
        },
        status=400 if form.errors else 200,
    )


@login_required
@view_required("cameras.view_camera")
def backup_options(request, pk=None):
    """The Backup server drop-down for the primary chosen in the form (HTMX partial)."""
    camera = get_object_or_404(_cameras(request.user), pk=pk) if pk else Camera()
    form = CameraForm(request.GET, instance=camera, tab_fields=["primary_server", "backup_server"], user=request.user)
    return render(request, "cameras/_backup_select.html", {"form": form})


@login_required
def camera_new(request):
    if not request.user.has_perm("cameras.add_camera"):
        raise PermissionDenied
    form = CameraForm(request.POST or None, backup_options_url=reverse("cameras:backup-options-new"), user=request.user)
    if request.method == "POST" and form.is_valid():
        camera = form.save()
        messages.success(request, f"Camera {camera.name} added.")
        return redirect("cameras:connection", camera.pk)
    return render(request, "cameras/camera_new.html", {"form": form}, status=400 if form.errors else 200)
