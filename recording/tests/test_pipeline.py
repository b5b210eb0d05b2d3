"""A camera's pipeline and a server's storage health, alone: no agent, no stream, no database."""

import cv2
import numpy as np

from recording.ingest import CameraFeed, Frame
from recording.pipeline import STORAGE_RETRY_EVERY, CameraPipeline, Recording
from recording.storage_health import StorageHealth


def frame(at: float) -> Frame:
    image = np.full((36, 64, 3), 128, np.uint8)
    return Frame(cv2.imencode(".jpg", image)[1].tobytes(), image, at)


def test_frames_go_into_segments_and_a_failing_storage_is_reported_then_recovers(tmp_path):
    closed, health = [], StorageHealth("srv-a")
    blocked = tmp_path / "storage"
    blocked.write_text("a file where the recordings directory should be")
    feed = CameraFeed(7, "gate", "http://127.0.0.1:1/video.mjpg", "", "", "mjpeg", ())
    pipeline = CameraPipeline(feed, Recording(blocked, "srv-a", 2.0, closed.append), health, lambda event: None)
    pipeline(feed, frame(1000.0))
    assert health.troubled and health.snapshot() == {7: "Not a directory"}
    pipeline(feed, frame(1000.0 + STORAGE_RETRY_EVERY / 2))  # not retried yet: the error stands
    assert health.error == "Not a directory"
    blocked.unlink()
    for n in range(5):  # retried after STORAGE_RETRY_EVERY: written, and the error is gone
        pipeline(feed, frame(1000.0 + STORAGE_RETRY_EVERY + n))
    assert not health.troubled
    pipeline.close()
    assert [record.frame_count for record in closed] == [2, 2, 1]  # segments of 2 s
    assert pipeline.latest_jpeg is not None


def test_storage_health_tells_the_storage_from_a_camera_and_forgets_a_camera_no_longer_recorded():
    health = StorageHealth("srv-a")
    health.failed(None, OSError(28, "No space left on device"))
    health.failed(3, OSError(13, "Permission denied"))
    assert health.snapshot() == {None: "No space left on device", 3: "Permission denied"}
    health.recovered(4)  # another camera wrote a frame: the storage itself works
    assert health.snapshot() == {3: "Permission denied"}
    health.forget(3)
    assert not health.troubled and health.error is None
