from datetime import UTC, datetime

import pytest

from recording.models import AnalyticsEvent, Segment
from recording.outbox import Outbox

# The outbox manages its own connection, as it does in an agent thread.
pytestmark = pytest.mark.django_db(transaction=True)


def segment(camera, path, start=1_790_000_000.0):
    return {"camera_id": camera.pk, "server": "srv-a", "started_at": start, "ended_at": start + 10,
            "frame_count": 20, "size_bytes": 4096, "path": path}  # fmt: skip


def test_spooled_records_survive_a_restart_and_replays_are_harmless(site, make_camera, tmp_path):
    camera = make_camera(site["a"])
    spool = tmp_path / "spool.jsonl"
    first = Outbox(spool)
    first.put("segment", segment(camera, "/rec/1.mjpeg"))
    first.put("segment", segment(camera, "/rec/2.mjpeg", 1_790_000_010.0))
    # The agent dies before the database took them: a new agent finds them in the spool.
    second = Outbox(spool)
    assert len(second) == 2 and second.pending_paths() == {"/rec/1.mjpeg", "/rec/2.mjpeg"}
    assert second.flush(site["a"].pk) == 2
    assert len(second) == 0 and spool.read_text() == ""
    # Written twice (a flush that succeeded just before a crash): still one row per segment.
    third = Outbox(tmp_path / "other.jsonl")
    third.put("segment", segment(camera, "/rec/1.mjpeg"))
    third.flush(site["a"].pk)
    assert Segment.objects.count() == 2
    assert Segment.objects.get(path="/rec/2.mjpeg").started_at == datetime.fromtimestamp(1_790_000_010, UTC)


def test_analytics_episode_is_completed_by_its_end_report(site, make_camera, tmp_path):
    camera = make_camera(site["a"])
    outbox = Outbox(tmp_path / "spool.jsonl")
    start = {"camera_id": camera.pk, "module": "motion_detection", "started_at": 1_790_000_000.0, "peak_score": 0.02}
    outbox.put("analytics", {**start, "ended_at": None})
    outbox.flush(site["a"].pk)
    assert AnalyticsEvent.objects.get().ended_at is None
    outbox.put("analytics", {**start, "ended_at": 1_790_000_042.0, "peak_score": 0.07})
    outbox.flush(site["a"].pk)
    event = AnalyticsEvent.objects.get()
    assert event.ended_at == datetime.fromtimestamp(1_790_000_042, UTC) and event.peak_score == pytest.approx(0.07)


def test_records_of_deleted_cameras_do_not_block_the_rest(site, make_camera, tmp_path):
    kept, deleted = make_camera(site["a"]), make_camera(site["a"])
    outbox = Outbox(tmp_path / "spool.jsonl")
    outbox.put("segment", segment(deleted, "/rec/gone.mjpeg"))
    outbox.put("segment", segment(kept, "/rec/kept.mjpeg"))
    deleted.delete()
    assert outbox.flush(site["a"].pk) == 2
    assert list(Segment.objects.values_list("path", flat=True)) == ["/rec/kept.mjpeg"]
