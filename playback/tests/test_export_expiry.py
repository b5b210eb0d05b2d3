"""Finished exports are kept EXPORT_KEEP_HOURS on the web application's host, then deleted with their files."""

from datetime import timedelta

from django.utils import timezone

from playback.models import Export, ExportState, expire_exports


def test_exports_past_their_keeping_time_go_with_their_files(settings, tmp_path, site, make_camera):
    settings.VAR_DIR = tmp_path
    settings.EXPORT_KEEP_HOURS = 24
    camera = make_camera(site["a"])
    now = timezone.now()

    def job(state, finished_hours_ago):
        export = Export.objects.create(camera=camera, since=now - timedelta(hours=1), until=now, state=state,
                                       finished_at=now - timedelta(hours=finished_hours_ago)
                                       if finished_hours_ago is not None else None)  # fmt: skip
        export.path().parent.mkdir(parents=True)
        export.path().write_bytes(b"mp4")
        return export

    old, old_failed = job(ExportState.DONE, 25), job(ExportState.FAILED, 30)
    fresh, running = job(ExportState.DONE, 23), job(ExportState.RUNNING, None)
    assert expire_exports(now) == 2
    assert set(Export.objects.values_list("pk", flat=True)) == {fresh.pk, running.pk}
    assert not old.path().exists() and not old_failed.path().exists()
    assert fresh.path().read_bytes() == b"mp4" and running.path().exists()
