import cv2
import numpy as np

from recording.analytics import MotionDetector, TamperDetector
from simulation.simulator import SimulatedCamera


def frames(count, fps=5.0):
    camera = SimulatedCamera(number=1, port=0, fps=fps)

    for n in range(count):
        yield cv2.imdecode(np.frombuffer(camera.frame(n), np.uint8), cv2.IMREAD_COLOR), n / fps


def test_motion_starts_with_moving_content_and_ends_when_the_picture_is_still():
    detector = MotionDetector()
    moving = list(frames(30))
    events = [e for image, at in moving if (e := detector.feed(image, at))]
    assert events and events[0]["ended_at"] is None and events[0]["module"] == "motion_detection"
    still = moving[-1][0]
    ends = [e for n in range(30) if (e := detector.feed(still, 6 + n / 5))]
    assert ends and ends[0]["ended_at"] is not None and ends[0]["started_at"] == events[0]["started_at"]


def test_covered_lens_is_reported_as_tampering():
    detector = TamperDetector()
    for image, at in frames(20):
        assert detector.feed(image, at) is None
    black = np.zeros_like(image)
    events = [e for n in range(10) if (e := detector.feed(black, 4 + n / 5))]
    assert events and events[0]["module"] == "tamper_detection"
