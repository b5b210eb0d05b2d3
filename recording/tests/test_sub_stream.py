"""A camera's sub stream: analytics and the live wall's picture read it, the recording keeps the main stream.

Real simulator cameras and the real agent: the main stream an RTSP H.264 camera at 640x360, the sub
stream another camera at 320x180 (MJPEG over HTTP, or RTSP H.264). What is recorded is read back from
the files by the frames' own identities (``simulation.identity``), the pictures by OpenCV.
"""

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from protocol import live
from recording.models import AnalyticsEvent, Segment
from simulation.identity import stamps_in
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MAIN = (360, 640)  # rows, columns
SUB = (180, 320)


@pytest.fixture
def cameras(simulator):
    """The main stream's simulator and the sub stream's, started on demand (``sub_codec``)."""

    def start(sub_codec="mjpeg", sub_size=SUB):
        main = simulator(1, codecs=("h264",), width=MAIN[1], height=MAIN[0], gop_seconds=1.0)
        rtsp = {"codecs": ("h264",), "gop_seconds": 1.0} if sub_codec == "h264" else {}
        sub = simulator(1, width=sub_size[1], height=sub_size[0], **rtsp)
        return main, sub

    return start


def picture_shape(redis_client, camera) -> tuple[int, int] | None:
    snapshot = live.read_snapshot(redis_client, camera.pk)
    if not snapshot:
        return None
    return cv2.imdecode(np.frombuffer(snapshot["jpeg"], np.uint8), cv2.IMREAD_COLOR).shape[:2]


def report_of(redis_client, camera, server="srv-a") -> dict:
    return live.read_stream_reports(redis_client, server).get(camera.pk, {})


def recorded_counters(camera) -> list[int]:
    counters = []
    for segment in Segment.objects.filter(camera=camera).order_by("started_at"):
        path = Path(segment.path)
        assert path.suffix == ".ts", "the main stream is recorded by stream copy"
        stamps = list(stamps_in(path))
        assert None not in stamps, "every recorded frame is one of the main stream's"
        counters.extend(stamp.counter for stamp in stamps)
    return counters


def assert_contiguous(counters: list[int]) -> None:
    assert len(counters) >= 10
    assert counters == list(range(counters[0], counters[0] + len(counters))), "frames missing or repeated"


@pytest.mark.parametrize("sub_codec", ["mjpeg", "h264"])
def test_analytics_and_the_snapshot_read_the_sub_stream_while_the_main_stream_is_recorded(
    recorded_site, cameras, agents, make_camera, redis_client, sub_codec
):
    main, sub = cameras(sub_codec)
    camera = make_camera(recorded_site["a"], stream_url=main.url(1), sub_stream_url=sub.url(1), codec="h264",
                         analytics=["motion_detection"])  # fmt: skip
    agent = agents("srv-a", segment_seconds=2.0)
    report = wait_for(lambda: (r := report_of(redis_client, camera)).get("sub_stream", {}).get("fps", 0) > 3 and
                      r.get("fps", 0) > 3 and r, 20, message="both streams reported")  # fmt: skip
    # The camera's state and figures are the main stream's; the sub stream's stand beside them.
    assert report["state"] == "streaming" and (report["codec"], report["width"], report["height"]) == ("h264", 640, 360)
    assert report["sub_stream"]["state"] == "streaming"
    assert (report["sub_stream"]["width"], report["sub_stream"]["height"]) == (320, 180)
    assert report["sub_stream"]["codec"] == sub_codec

    wait_for(lambda: AnalyticsEvent.objects.filter(camera=camera, server=recorded_site["a"]).exists(), 20,
             message="a motion event")  # fmt: skip
    wait_for(lambda: picture_shape(redis_client, camera) == SUB, 10, message="a snapshot from the sub stream")
    for _ in range(12):  # watched on the live wall for 3 s: fresh pictures, all from the sub stream
        live.mark_watched(redis_client, camera.pk)
        assert picture_shape(redis_client, camera) == SUB
        threading.Event().wait(0.25)

    wait_for(lambda: Segment.objects.filter(camera=camera).count() >= 3, 30, message="three segments")
    agent.stop()
    assert_contiguous(recorded_counters(camera))
    for segment in Segment.objects.filter(camera=camera):
        capture = cv2.VideoCapture(segment.path, cv2.CAP_FFMPEG)
        ok, image = capture.read()
        capture.release()
        assert ok and image.shape[:2] == MAIN, "the recording is the main stream's pictures"


def test_motion_events_come_from_the_sub_stream_while_the_main_stream_is_down(
    recorded_site, cameras, agents, make_camera, redis_client
):
    main, sub = cameras()
    main.set_state(1, "stopped")
    camera = make_camera(recorded_site["a"], stream_url=main.url(1), sub_stream_url=sub.url(1), codec="h264",
                         analytics=["motion_detection"])  # fmt: skip
    agents("srv-a")
    wait_for(lambda: AnalyticsEvent.objects.filter(camera=camera, server=recorded_site["a"]).exists(), 20,
             message="a motion event with no main stream at all")  # fmt: skip
    report = report_of(redis_client, camera)
    assert report["state"] in ("lost", "connecting") and report["sub_stream"]["state"] == "streaming"
    assert not Segment.objects.filter(camera=camera).exists()


def test_a_lost_sub_stream_leaves_the_recording_alone_and_the_main_stream_makes_the_picture(
    recorded_site, cameras, agents, make_camera, redis_client
):
    main, sub = cameras()
    camera = make_camera(recorded_site["a"], stream_url=main.url(1), sub_stream_url=sub.url(1), codec="h264",
                         analytics=["motion_detection"])  # fmt: skip
    agent = agents("srv-a", segment_seconds=2.0)
    wait_for(lambda: report_of(redis_client, camera).get("sub_stream", {}).get("state") == "streaming", 20,
             message="the sub stream streaming")  # fmt: skip
    wait_for(lambda: picture_shape(redis_client, camera) == SUB, 10, message="a snapshot from the sub stream")

    sub.set_state(1, "stopped")
    states = []
    deadline = threading.Event()
    while not deadline.wait(0.2):
        live.mark_watched(redis_client, camera.pk)
        report = report_of(redis_client, camera)
        states.append(report.get("state"))
        if report.get("sub_stream", {}).get("state") != "streaming" and picture_shape(redis_client, camera) == MAIN:
            break
        assert len(states) < 75, f"no picture from the main stream 15 s after the sub stream went: {report}"
    assert set(states) == {"streaming"}, "the camera's state is the main stream's"
    threading.Event().wait(2)

    sub.set_state(1, "streaming")
    wait_for(lambda: report_of(redis_client, camera).get("sub_stream", {}).get("state") == "streaming", 20,
             message="the sub stream back")  # fmt: skip

    def sub_picture():
        live.mark_watched(redis_client, camera.pk)
        return picture_shape(redis_client, camera) == SUB

    wait_for(sub_picture, 10, message="the picture from the sub stream again")
    agent.stop()
    assert_contiguous(recorded_counters(camera))


def test_a_changed_sub_stream_restarts_its_own_reader_and_not_the_recording(
    recorded_site, cameras, simulator, agents, make_camera, redis_client
):
    main, sub = cameras()
    smaller = simulator(1, width=256, height=144)  # the stamp takes 256 pixels
    camera = make_camera(recorded_site["a"], stream_url=main.url(1), sub_stream_url=sub.url(1), codec="h264")
    agent = agents("srv-a", segment_seconds=2.0)
    first = wait_for(lambda: (r := report_of(redis_client, camera)).get("sub_stream", {}).get("state") == "streaming"
                     and r["state"] == "streaming" and r, 20, message="both streams streaming")  # fmt: skip
    camera.sub_stream_url = smaller.url(1)
    camera.save()

    def smaller_picture():
        live.mark_watched(redis_client, camera.pk)
        return picture_shape(redis_client, camera) == (144, 256)

    wait_for(smaller_picture, 15, message="the picture from the new sub stream")
    report = report_of(redis_client, camera)
    assert report["since"] == first["since"], "the main stream was not reconnected"
    assert (report["sub_stream"]["width"], report["sub_stream"]["height"]) == (256, 144)
    wait_for(lambda: Segment.objects.filter(camera=camera).count() >= 3, 30, message="three segments")
    agent.stop()
    assert_contiguous(recorded_counters(camera))


def test_a_backup_takes_no_sub_stream_session_and_makes_its_picture_from_the_main_stream(
    recorded_site, cameras, agents, make_camera, redis_client
):
    main, sub = cameras()
    camera = make_camera(recorded_site["a"], recorded_site["b"], stream_url=main.url(1), sub_stream_url=sub.url(1),
                         codec="h264", analytics=["motion_detection"])  # fmt: skip
    live.write_desired(redis_client, "srv-b", [camera.pk])  # the backup records it, as after a failover
    agents("srv-b")
    report = wait_for(lambda: (r := report_of(redis_client, camera, "srv-b")).get("state") == "streaming" and r, 20,
                      message="the backup streaming")  # fmt: skip
    assert "sub_stream" not in report
    wait_for(lambda: picture_shape(redis_client, camera) == MAIN, 10, message="the backup's picture")
    assert sub.call(sub.simulator.describe())[0]["viewers"] == 0
    assert not AnalyticsEvent.objects.filter(camera=camera).exists()
