"""Celery wiring of exports: a worker of their own (queue ``export``), so that an hour of video being stitched
holds up neither the engine nor the mail."""

from celery import shared_task

from playback.models import Export, ExportState, expire_exports


@shared_task(name="playback.export", ignore_result=True)
def run_export(export_id: int) -> None:
    """Make one queued export; a message delivered twice finds it claimed and does nothing."""
    if Export.objects.filter(pk=export_id, state=ExportState.QUEUED).update(state=ExportState.RUNNING):
        Export.objects.select_related("camera").get(pk=export_id).run()


@shared_task(name="playback.expire_exports", ignore_result=True)
def expire() -> int:
    """Delete finished exports past EXPORT_KEEP_HOURS (sent hourly by the engine's schedule)."""
    return expire_exports()
