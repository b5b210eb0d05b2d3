"""The planner's view of the configuration: servers and cameras, read in a few queries.

Cameras are read as plain values (10 000 of them in tens of milliseconds); credentials are
never read here.
"""

from dataclasses import dataclass, field
from datetime import date

import redis
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone
from django.utils.text import capfirst

from cameras.models import Camera
from cameras.modes import RedundancyMode, mode_for
from capacity import coefficients
from capacity.estimates import Estimate, SubStream, estimate
from protocol import live
from recording.models import StreamHealth, StreamState
from servers.models import MAX_RETENTION_HOURS, Licensing, Server

# The four things a server runs out of; storage is carried per hour and turned into GB with
# the retention of the server that records.
DIMENSIONS = ("mbps", "cores", "storage_gb", "cameras")
DIMENSION_LABELS = {"mbps": "inbound Mbit/s", "cores": "CPU cores", "storage_gb": "storage GB", "cameras": "cameras"}


@dataclass(frozen=True)
class Bound:
    """The smallest and largest value of a calculator input, with the words of its refusal."""

    label: str
    smallest: int
    largest: int
    default: int | None = None

    def messages(self) -> dict[str, str]:
        return {
            "min_value": f"{self.label} must be at least {self.smallest:,}.",
            "max_value": f"{self.label} cannot be more than {self.largest:,}.",
        }


def _bound(model, name: str, label: str | None = None) -> Bound:
    """A calculator input is bounded where the configuration that stores it is: by its model field's validators."""
    model_field = model._meta.get_field(name)
    validators = model_field.validators
    smallest = max(v.limit_value for v in validators if isinstance(v, MinValueValidator))
    largest = min(v.limit_value for v in validators if isinstance(v, MaxValueValidator))
    default = model_field.default if isinstance(model_field.default, int) else None
    return Bound(capfirst(label or model_field.verbose_name), smallest, largest, default)


# The calculator's numeric inputs, for the Capacity page's form and the estimate API alike.
CALCULATOR_BOUNDS = {
    "width": _bound(Camera, "width"),
    "height": _bound(Camera, "height"),
    "fps": _bound(Camera, "fps"),
    "expected_bitrate_kbps": _bound(Camera, "expected_bitrate_kbps", "known bitrate (kbit/s)"),
    # Storage is planned in whole hours, whatever shorter retention a test site may have.
    "retention_hours": Bound("Retention (hours)", 1, MAX_RETENTION_HOURS, 72),
}


@dataclass(frozen=True)
class CameraInput:
    id: int
    name: str
    primary_id: int
    backup_id: int | None
    enabled: bool
    priority: str
    codec: str
    width: int
    height: int
    fps: int
    quality: str
    expected_kbps: int | None
    analytics: tuple[str, ...]
    measured_kbps: float | None = None
    measured_fps: float | None = None
    transport: str = "rtsp"  # the stream URL's scheme: RTSP streams of H.264/H.265 are stream-copied
    sub_stream: SubStream | None = None  # read by the primary for analytics and the snapshot

    def estimate(self) -> Estimate:
        return estimate(self.codec, self.width, self.height, self.fps, self.quality, self.analytics,
                        self.expected_kbps, self.measured_kbps, self.measured_fps, self.transport,
                        self.sub_stream)  # fmt: skip


@dataclass
class Site:
    """Servers by id, cameras, and what each server's licenses allow today."""

    servers: dict[int, Server]
    cameras: list[CameraInput]
    licensing: dict[int, Licensing]
    today: date
    estimates: dict[int, Estimate] = field(default_factory=dict)

    def __post_init__(self):
        self.estimates = {camera.id: camera.estimate() for camera in self.cameras}

    def mode_of(self, camera: CameraInput, backup_id: int | None = None) -> str:
        """The camera's effective mode with its backup, or with ``backup_id`` instead."""
        backup_id = camera.backup_id if backup_id is None else backup_id
        if backup_id is None:
            return RedundancyMode.NONE
        backup, primary = self.servers[backup_id].redundancy, self.servers[camera.primary_id].redundancy
        return mode_for(backup.constant_redundancy, backup.fast_redundancy, primary.fast_redundancy)


def load_site(system_id: int | None = None, today: date | None = None, systems: set[int] | None = None) -> Site:
    """One system, or the whole site; ``systems`` limits it to those a user may see."""
    today = today or timezone.localdate()
    servers = Server.objects.select_related("system", "redundancy").prefetch_related("licenses")
    cameras = Camera.objects.all()
    if system_id is not None:
        servers = servers.filter(system_id=system_id)
        cameras = cameras.filter(primary_server__system_id=system_id)
    if systems is not None:
        servers = servers.filter(system_id__in=systems)
        cameras = cameras.filter(primary_server__system_id__in=systems)
    servers = {server.pk: server for server in servers}
    measured = _measured_streams(system_id)
    rows = cameras.order_by("pk").values_list(
        "pk", "name", "primary_server_id", "backup_server_id", "enabled", "failover_priority", "codec", "width",
        "height", "fps", "quality", "expected_bitrate_kbps", "analytics", "stream_url", "sub_stream_url",
    )  # fmt: skip
    sub_measured = _measured_sub_streams(servers, [row[0] for row in rows if row[14] and row[2] in servers])
    inputs = [
        CameraInput(
            *row[:12],
            tuple(row[12] or ()),
            *(camera_measured := measured.get(row[0], (None, None))),
            transport=row[13].split(":", 1)[0].lower(),
            sub_stream=sub_stream_input(row[6], camera_measured[1] or row[9], row[14], sub_measured.get(row[0]))
            if row[14] else None,
        )  # fmt: skip
        for row in rows
        if row[2] in servers
    ]
    return Site(servers, inputs, {pk: server.licensing(today) for pk, server in servers.items()}, today)


def sub_stream_input(codec: str, fps: float, url: str, measured: dict | None = None) -> SubStream:
    """A camera's sub stream as the agent measured it, else at ``coefficients.SUB_STREAM_SIZE`` and the camera's
    frame rate; its codec the camera's H.264 or H.265 over RTSP, MJPEG over HTTP."""
    transport = url.split(":", 1)[0].lower()
    codec = (codec if codec in ("h264", "h265") else "h264") if transport == "rtsp" else "mjpeg"
    width, height = coefficients.SUB_STREAM_SIZE
    if not measured:
        return SubStream(codec, width, height, fps, None, transport)
    return SubStream(measured.get("codec") if measured.get("codec") in ("h264", "h265", "mjpeg") else codec,
                     measured.get("width") or width, measured.get("height") or height, measured["fps"],
                     measured["bitrate_kbps"], transport)  # fmt: skip


def _measured_sub_streams(servers: dict[int, Server], camera_ids: list[int]) -> dict[int, dict]:
    """The agents' live reports of the sub streams they read, streaming; none when Redis cannot be read."""
    if not camera_ids:
        return {}
    try:
        reports = live.read_all_stream_reports(live.client(), [server.name for server in servers.values()])
    except redis.RedisError:
        return {}  # the planner still plans, on the default sub stream
    wanted, found = set(camera_ids), {}
    for server_reports in reports.values():
        for camera_id, report in server_reports.items():
            sub = report.get("sub_stream") or {}
            if camera_id in wanted and sub.get("state") == StreamState.STREAMING and sub.get("fps", 0) > 0:
                found[camera_id] = sub
    return found


def _measured_streams(system_id: int | None) -> dict[int, tuple[float, float]]:
    """The newest report of a streaming connection per camera: (kbit/s, fps) as the agent measured."""
    health = StreamHealth.objects.filter(state=StreamState.STREAMING, bitrate_kbps__gt=0, fps__gt=0)
    if system_id is not None:
        health = health.filter(camera__primary_server__system_id=system_id)
    newest: dict[int, tuple] = {}
    for camera_id, kbps, fps, at in health.values_list("camera_id", "bitrate_kbps", "fps", "reported_at"):
        if camera_id not in newest or at > newest[camera_id][2]:
            newest[camera_id] = (kbps, fps, at)
    return {camera_id: (kbps, fps) for camera_id, (kbps, fps, _) in newest.items()}
