"""What the video servers recorded and saw: segments, stream health, analytics events."""

from django.db import models

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

    class Meta:
        ordering = ["camera", "started_at"]
        indexes = [
            models.Index(fields=["camera", "started_at"]),
            models.Index(fields=["server", "ended_at"]),
        ]

    def __str__(self):
        return f"{self.camera} on {self.server} from {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


class StreamState(models.TextChoices):
    CONNECTING = "connecting", "Connecting"
    STREAMING = "streaming", "Streaming"
    LOST = "lost", "Lost"


REFUSED = "refused: "  # how a stream report's reason starts when the camera turned the connection away


class StreamHealthQuerySet(models.QuerySet):
    def refused(self):
        """Connections the camera turns away (too many RTSP sessions, credentials refused), newest report each."""
        return self.filter(state=StreamState.LOST, reason__startswith=REFUSED).select_related("camera", "server")


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
