"""What the video servers recorded and saw: segments, stream health, analytics events."""

from dataclasses import dataclass
from datetime import timedelta

from django.db import models
from django.dispatch import Signal
from django.utils import timezone

from cameras.models import AnalyticsModule, Camera
from servers.models import Server


class Segment(models.Model):
    """A short recorded file of one camera by one server; a camera's timeline is its segments in order."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="segments")
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="segments")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    frame_count = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField(default=0)
    path = models.CharField(max_length=500, unique=True)
    # A copy merged back from the server that recorded it (``recording.mergeback``); empty: this server recorded it.
    recorded_by = models.ForeignKey(
        Server, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The server that recorded this segment, when it was copied here after a failback.",
    )  # fmt: skip

    class Meta:
        ordering = ["camera", "started_at"]
        indexes = [
            # A camera's segments in time order, their ends in the index too (PostgreSQL's INCLUDE; a plain index
            # elsewhere): the Reports' window over a month of segments reads the index alone.
            models.Index(fields=["camera", "started_at"], include=["ended_at"], name="segment_camera_start_end"),
            models.Index(fields=["server", "ended_at"]),
        ]

    def __str__(self):
        return f"{self.camera} on {self.server} from {self.started_at:%Y-%m-%d %H:%M:%S}"


class StreamState(models.TextChoices):
    CONNECTING = "connecting", "Connecting"
    STREAMING = "streaming", "Streaming"
    LOST = "lost", "Lost"


REFUSED = "refused: "  # how a stream report's reason starts when the camera turned the connection away

# Agents store their reports every 5 s; a row older than this is of a server that no longer reads the camera.
HEALTH_CURRENT_FOR = timedelta(seconds=30)

# A camera's frame rate has dropped below 80 % of what it is set to (Camera.fps, what it sends one viewer): the
# agents measure it from packet arrivals over 5 s, which jitter and a keyframe's burst move by a few percent,
# while a camera that slows down for an extra viewer loses far more (a half, a third); 24 of 25 fps is no news.
FRAME_RATE_DROPPED_BELOW = 0.8
# ... and is back from 90 %: a camera hovering about 80 % makes one episode, not one per crossing.
FRAME_RATE_BACK_FROM = 0.9


@dataclass(frozen=True)
class FrameRateDrop:
    """A camera read by two servers at once whose frame rate, as either measures it, is below what it is set to."""

    camera: str
    expected_fps: int
    measured: tuple[tuple[str, float], ...]  # (server, fps it measures), the primary first

    def warning(self) -> str:
        servers = " and ".join(server for server, _ in self.measured)
        readings = ", ".join(f"{server} {fps:.1f} fps" for server, fps in self.measured)
        return (f"{self.camera} lowers its frame rate while {servers} both read it: measured {readings}, "
                f"expected {self.expected_fps} fps (the camera slows down for each extra viewer).")  # fmt: skip


def frame_rate_drop(camera, measured, below: float = FRAME_RATE_DROPPED_BELOW) -> FrameRateDrop | None:
    """The drop, when two servers or more read ``camera`` at once (``measured``: (server name, fps) pairs) and
    one of them measures less than ``below`` of its configured fps; None otherwise."""
    readings = tuple((server, fps) for server, fps in measured if fps > 0)  # 0: too new a connection to tell
    if len(readings) < 2 or not any(fps < below * camera.fps for _, fps in readings):
        return None
    return FrameRateDrop(camera.name, camera.fps, readings)


class StreamHealthQuerySet(models.QuerySet):
    def current(self, now=None):
        """Reports an agent still keeps up: a server that stopped reading a camera leaves its last row behind."""
        return self.filter(reported_at__gte=(now or timezone.now()) - HEALTH_CURRENT_FOR)

    def refused(self, now=None):
        """Connections the camera turns away (too many RTSP sessions, credentials refused), newest report each."""
        return (
            self.current(now)
            .filter(state=StreamState.LOST, reason__startswith=REFUSED)
            .select_related("camera", "server")
        )

    def frame_rate_drops(self, now=None) -> list[FrameRateDrop]:
        """The cameras of these rows whose primary and backup both stream them now, one measuring a dropped rate."""
        rows = self.current(now).filter(state=StreamState.STREAMING).select_related("camera", "server")
        by_camera: dict[int, list[StreamHealth]] = {}
        for row in rows.order_by("camera__name"):
            by_camera.setdefault(row.camera_id, []).append(row)
        drops = []
        for health in by_camera.values():
            camera = health[0].camera
            ours = {row.server_id: row for row in health}
            servers = (camera.primary_server_id, camera.backup_server_id)
            measured = [(ours[pk].server.name, ours[pk].fps) for pk in servers if pk in ours]
            if drop := frame_rate_drop(camera, measured):
                drops.append(drop)
        return drops


class StreamHealth(models.Model):
    """The last stream report of one server's connection to one camera (also live in Redis)."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="stream_health")
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="stream_health")
    state = models.CharField(max_length=12, choices=StreamState.choices)
    last_frame_at = models.DateTimeField(null=True, blank=True)
    fps = models.FloatField(default=0)
    bitrate_kbps = models.FloatField(default=0)
    reported_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True, help_text="Why the stream is lost, as the agent saw it.")

    objects = StreamHealthQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["camera", "server"], name="one_health_row_per_stream")]
        verbose_name_plural = "stream health"

    def __str__(self):
        return f"{self.camera} on {self.server}: {self.state}"

    def refusal_warning(self) -> str:
        return (f"{self.camera.name} refuses the connection of {self.server.name} "
                f"({self.reason.removeprefix(REFUSED)}): {self.server.name} does not record it.")  # fmt: skip


class AnalyticsEvent(models.Model):
    """Something an analytics module saw, on the camera's primary server."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="analytics_events")
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="analytics_events")
    module = models.CharField(max_length=32, choices=AnalyticsModule.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    peak_score = models.FloatField(default=0, help_text="Largest share of the picture that changed (0-1).")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["camera", "started_at"])]
        constraints = [
            models.UniqueConstraint(fields=["camera", "server", "module", "started_at"], name="one_event_per_start")
        ]

    def __str__(self):
        return f"{self.get_module_display()} on {self.camera} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class BackupCheckQuerySet(models.QuerySet):
    def current(self):
        """The checks of each camera by its backup as it is now: a former backup's last check is no news."""
        return self.filter(server_id=models.F("camera__backup_server_id"))

    def failed(self):
        return self.current().filter(ok=False).select_related("camera", "server")

    def request(self, camera) -> "BackupCheck":
        """Ask the camera's backup to check it at once (its agent reads the request at its next poll)."""
        if camera.backup_server_id is None:
            raise ValueError(f"{camera.name} has no backup server to check it")
        check, _ = self.get_or_create(camera=camera, server_id=camera.backup_server_id)
        if check.requested_at is None:
            check.requested_at = timezone.now()
            check.save(update_fields=["requested_at"])
        return check


class BackupCheck(models.Model):
    """The last readiness check of one camera by the server that backs it up: could it open the stream and
    read a keyframe (``recording.readiness``)? Nothing is recorded by a check."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="backup_checks")
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="backup_checks")
    checked_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True, help_text="Empty: never checked.")
    detail = models.CharField(max_length=200, blank=True, help_text="Why the check failed (never a credential).")
    keyframe_seconds = models.FloatField(null=True, blank=True, help_text="Seconds from connecting to a keyframe.")
    requested_at = models.DateTimeField(null=True, blank=True, help_text="A check asked for now, not yet done.")

    objects = BackupCheckQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["camera", "server"], name="one_backup_check_per_camera")]

    def __str__(self):
        return f"{self.camera} from {self.server}: {self.result}"

    @property
    def result(self) -> str:
        if self.ok is None:
            return "never checked"
        if self.ok:
            return "ready" + (f" (keyframe after {self.keyframe_seconds:.1f} s)" if self.keyframe_seconds else "")
        return f"failed: {self.detail}"

    def warning(self) -> str:
        checked = timezone.localtime(self.checked_at)
        return (f"{self.server.name} cannot open {self.camera.name}, which it backs up: {self.detail} "
                f"(checked {checked:%Y-%m-%d %H:%M}). A failover would not record it.")  # fmt: skip


# Sent by an agent with each check result it stores (``recording.readiness``): the redundancy app words the
# episodes as events (recording imports nothing above it). Arguments: check, was_ok (None: never checked).
backup_check_recorded = Signal()
