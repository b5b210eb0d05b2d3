import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.permissions import view_required
from cameras.forms import CONNECTION_FIELDS, GENERAL_FIELDS, CameraForm, ConnectionTestForm
from cameras.models import Camera, Codec
from cameras.modes import RedundancyMode
from recording import remote
from recording.models import BackupCheck, StreamHealth
from recording.probe import ProbeSettings
from servers.models import MultiserverSystem, Server
from utilities.ids import query_id

log = logging.getLogger(__name__)

TABS = {"connection": CONNECTION_FIELDS, "general": GENERAL_FIELDS}


def _cameras(user):
    return Camera.objects.with_servers().restrict(user)


CAMERAS_PER_PAGE = 100
BACKUP_CHOICES = [("with", "With a backup"), ("without", "Without a backup")]
ENABLED_CHOICES = [("yes", "Enabled"), ("no", "Disabled")]


@login_required
@view_required("cameras.view_camera")
def camera_list(request):
    """Every camera of the user's systems: search by name, stream address or server; filters by system,
    server, mode, codec, backup and enabled; a hundred to a page."""
    query = {name: request.GET.get(name, "").strip() for name in
             ("q", "system", "server", "mode", "codec", "backup", "enabled")}  # fmt: skip
    everything = _cameras(request.user)
    cameras = everything.prefetch_related("primary_server__licenses", "backup_server__licenses")
    if query["q"]:
        words = Q()
        for field in ("name", "stream_url", "primary_server__name", "backup_server__name"):
            words |= Q(**{f"{field}__icontains": query["q"]})
        cameras = cameras.filter(words)
    if query_id(query["system"]) is not None:
        cameras = cameras.filter(primary_server__system_id=query_id(query["system"]))
    if query_id(query["server"]) is not None:
        server = query_id(query["server"])
        cameras = cameras.filter(Q(primary_server_id=server) | Q(backup_server_id=server))
    if query["codec"] in Codec.values:
        cameras = cameras.filter(codec=query["codec"])
    if query["backup"] in ("with", "without"):
        cameras = cameras.filter(backup_server__isnull=query["backup"] == "without")
    if query["enabled"] in ("yes", "no"):
        cameras = cameras.filter(enabled=query["enabled"] == "yes")
    # The effective mode is worked out per camera (both servers' settings), not stored: filtered here.
    cameras = [c for c in cameras if not query["mode"] or c.redundancy_mode == query["mode"]]
    page = Paginator(cameras, CAMERAS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "cameras/camera_list.html",
        {
            "page": page,
            "cameras": page.object_list,
            "total": everything.count(),
            "filtered": any(query.values()),
            "query": query,
            "query_string": urlencode({name: value for name, value in query.items() if value}),
            "systems": MultiserverSystem.objects.restrict(request.user),
            "servers": Server.objects.restrict(request.user),
            "modes": RedundancyMode.choices,
            "codecs": Codec.choices,
            "backup_choices": BACKUP_CHOICES,
            "enabled_choices": ENABLED_CHOICES,
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
    return render(request, "cameras/camera_tab.html", _tab_context(request, camera, form, tab),
                  status=400 if form.errors else 200)  # fmt: skip


def _tab_context(request, camera, form, tab, **more) -> dict:
    return {
        "camera": Camera.objects.with_servers().get(pk=camera.pk),
        "form": form,
        "tab": tab,
        "can_configure": request.user.has_perm("cameras.change_camera"),
        "measured_warnings": _measured_warnings(camera),
        "backup_check": BackupCheck.objects.current().filter(camera=camera).first(),
        "test_servers": _test_servers(request.user, camera) if tab == "connection" else [],
        **more,
    }


def _test_servers(user, camera) -> list[Server]:
    """The servers a connection can be tested from: every server of the camera's system the user may see, the
    primary first, then the backup."""
    servers = Server.objects.restrict(user).filter(system_id=camera.primary_server.system_id)
    first = {camera.primary_server_id: 0, camera.backup_server_id: 1}
    return sorted(servers, key=lambda server: (first.get(server.pk, 2), server.name))


@require_POST
@login_required
@permission_required("cameras.change_camera", raise_exception=True)
def camera_test_connection(request, pk):
    """Test connection: the chosen server's agent opens the stream as the form has it (saved or not) once and
    says what came; nothing is stored. An htmx partial, or the Connection tab again without script."""
    camera = get_object_or_404(_cameras(request.user), pk=pk)
    chosen = request.POST.get("test_server") or camera.primary_server_id
    server = next((s for s in _test_servers(request.user, camera) if s.pk == query_id(chosen)), None)
    if server is None:
        raise Http404("No such server for this camera")
    form = ConnectionTestForm(request.POST, instance=Camera.objects.get(pk=pk), user=request.user)
    result = unreachable = None
    if form.is_valid():
        typed = form.cleaned_data
        settings = ProbeSettings(typed["stream_url"], typed["username"], typed["password"], typed["codec"],
                                 typed["rtsp_transport"])  # fmt: skip
        try:
            result = remote.probe_camera(server, camera.pk, settings)
        except remote.Unreachable as exc:
            unreachable = str(exc)
        log.info("camera=%s server=%s user=%s event=connection_tested ok=%s", camera.pk, server.name,
                 request.user.get_username(), bool(result and result.ok))  # fmt: skip
    test = {"server": server, "chosen_server": server, "result": result, "unreachable": unreachable, "test_form": form,
            "differences": _differences(result, form.cleaned_data) if result and result.ok else [],
            "shown": _shown_size(result) if result and result.ok else None}  # fmt: skip
    status = 400 if form.errors else 200
    if request.htmx:
        return render(request, "cameras/_connection_test.html", {"camera": camera, **test}, status=status)
    tab_form = CameraForm(instance=camera, tab_fields=CONNECTION_FIELDS, user=request.user,
                          backup_options_url=reverse("cameras:backup-options", args=[camera.pk]))  # fmt: skip
    return render(request, "cameras/camera_tab.html", _tab_context(request, camera, tab_form, "connection", **test),
                  status=status)  # fmt: skip


SHOWN_WIDTH = 640  # the first picture on the page; the JPEG itself has the camera's resolution


def _shown_size(result) -> tuple[int, int]:
    width = min(result.width, SHOWN_WIDTH)
    return width, round(result.height * width / result.width) if result.width else 0


def _differences(result, settings: dict) -> list[str]:
    """Where what the camera sends is not what the camera's settings say (as typed)."""
    found = []
    codec = settings.get("codec")
    if codec and result.codec and codec != result.codec:
        found.append(f"The camera sends {result.codec_name}; its codec is set to {Codec(codec).label}.")
    width, height = settings.get("width"), settings.get("height")
    if width and height and (width, height) != (result.width, result.height):
        found.append(f"The camera sends {result.width}×{result.height}; its resolution is set to {width}×{height}.")
    fps = settings.get("fps")
    if fps and result.fps and abs(result.fps - fps) > 0.1 * fps:
        found.append(f"The camera sends {result.fps:g} frames per second; {fps:g} is set (capacity planning and "
                     "the frame-rate warnings count with the setting).")  # fmt: skip
    return found


@require_POST
@login_required
@permission_required("cameras.delete_camera", raise_exception=True)
def camera_delete(request, pk):
    """A camera deleted, and with it the index of its recordings: they can no longer be played or exported."""
    camera = get_object_or_404(_cameras(request.user), pk=pk)
    camera.delete()
    messages.success(request, f"Camera {camera.name} deleted.")
    return redirect("cameras:list")


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
