"""Exports: a camera's recordings over a range, as one MP4 and its manifest, made by a worker."""

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from accounts.querysets import RestrictedQuerySet
from cameras.models import Camera

log = logging.getLogger(__name__)

LONGEST_EXPORT = timedelta(hours=24)


class ExportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


def range_problems(since: datetime, until: datetime) -> dict[str, str]:
    """What is wrong with a range to export, by field (empty: nothing)."""
    if until <= since:
        return {"until": "The end of the range must come after its start."}
    if until - since > LONGEST_EXPORT:
        return {"until": "A range is at most 24 hours long."}
    return {}


def exports_dir() -> Path:
    return Path(settings.VAR_DIR) / "exports"


class ExportQuerySet(RestrictedQuerySet):
    def expired(self, now: datetime | None = None):
        """Finished exports older than ``EXPORT_KEEP_HOURS``: their files are deleted with them."""
        cutoff = (now or timezone.now()) - timedelta(hours=settings.EXPORT_KEEP_HOURS)
        return self.filter(state__in=(ExportState.DONE, ExportState.FAILED), finished_at__lt=cutoff)


class Export(models.Model):
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="exports")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")  # fmt: skip
    since = models.DateTimeField()
    until = models.DateTimeField()
    state = models.CharField(max_length=8, choices=ExportState.choices, default=ExportState.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0 to 1: the share of the range's recordings read.")
    error = models.TextField(blank=True)
    file = models.CharField(max_length=500, blank=True, help_text="The MP4 file on the web application's host.")
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    system_paths = ("camera__primary_server__system",)
    objects = ExportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["camera", "-created_at"])]

    def __str__(self):
        return f"{self.camera} from {self.since:%Y-%m-%d %H:%M:%S} to {self.until:%Y-%m-%d %H:%M:%S}"

    def clean(self):
        problems = range_problems(self.since, self.until)
        if problems:
            raise ValidationError(problems)

    @property
    def file_name(self) -> str:
        """What the download is called: the camera and the range, in UTC."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.camera.name)
        since, until = self.since.astimezone(UTC), self.until.astimezone(UTC)
        return f"{safe}_{since:%Y%m%dT%H%M%SZ}_{until:%Y%m%dT%H%M%SZ}.mp4"

    def path(self) -> Path:
        return exports_dir() / f"export-{self.pk}" / self.file_name

    @classmethod
    def request(cls, camera: Camera, user, since: datetime, until: datetime) -> "Export":
        """A job to export the range, queued for the export worker once saved; ValidationError for a range that
        is not one, too long, or with nothing recorded (nothing is created then)."""
        from recording.models import Segment

        problems = range_problems(since, until)
        if problems:
            raise ValidationError(problems)
        if not Segment.objects.filter(camera=camera, ended_at__gte=since, started_at__lte=until).exists():
            raise ValidationError({"since": f"Nothing was recorded of {camera.name} in this range."})
        job = cls.objects.create(camera=camera, requested_by=user if user and user.is_authenticated else None,
                                 since=since, until=until)  # fmt: skip
        transaction.on_commit(lambda: _enqueue(job.pk))
        return job

    def run(self) -> None:
        """Make the file (the export worker's job): running, then done with the file and its manifest, or failed
        with the reason."""
        from playback import export
        from recording import remote

        Export.objects.filter(pk=self.pk).update(state=ExportState.RUNNING, progress=0.0)
        target = self.path()
        target.parent.mkdir(parents=True, exist_ok=True)
        last = [0.0]

        def progress(share: float) -> None:
            if share - last[0] >= 0.01 or share == 1.0:  # a write per percent, not per segment
                last[0] = share
                Export.objects.filter(pk=self.pk).update(progress=round(share, 4))

        try:
            manifest = export.export(self.camera, self.since, self.until, target, progress=progress)
        except (export.NothingRecorded, export.NoRoom, remote.Unreachable) as exc:
            self._finish(ExportState.FAILED, error=str(exc))
            shutil.rmtree(target.parent, ignore_errors=True)
            return
        except Exception:
            log.exception("export=%s event=export_failed", self.pk)
            self._finish(ExportState.FAILED, error="The export failed unexpectedly; the worker's log has the cause.")
            shutil.rmtree(target.parent, ignore_errors=True)
            return
        self._finish(ExportState.DONE, file=str(target), size_bytes=manifest["file"]["size"],
                     sha256=manifest["file"]["sha256"], manifest=manifest, progress=1.0)  # fmt: skip

    def _finish(self, state: str, **fields) -> None:
        fields |= {"state": state, "finished_at": timezone.now()}
        Export.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)
        log.info("export=%s camera=%s event=export_%s", self.pk, self.camera_id, state)


def expire_exports(now: datetime | None = None) -> int:
    """Delete the exports past their keeping time, files and rows; returns how many went."""
    expired = list(Export.objects.expired(now))
    for job in expired:
        shutil.rmtree(exports_dir() / f"export-{job.pk}", ignore_errors=True)
    Export.objects.filter(pk__in=[job.pk for job in expired]).delete()
    if expired:
        log.info("event=exports_expired count=%s", len(expired))
    return len(expired)


def _enqueue(export_id: int) -> None:
    from playback.tasks import run_export

    try:
        run_export.apply_async((export_id,), queue=settings.EXPORT_QUEUE)
    except Exception:  # the broker is away: say so on the job rather than leave it queued for ever
        log.warning("export=%s event=export_not_queued", export_id, exc_info=True)
        Export.objects.filter(pk=export_id, state=ExportState.QUEUED).update(
            state=ExportState.FAILED, finished_at=timezone.now(),
            error="The export could not be handed to the export worker (is the broker running?).")  # fmt: skip
