"""A camera with an ONVIF address is asked for a keyframe as soon as its stream is open, so that
its recording starts at once rather than up to a GOP later; one that cannot or will not give one
is recorded as before. Real simulated cameras (RTSP and ONVIF), the agent's real ingest; what was
recorded is read back from the files by the frames' SEI identities."""

import logging
import socket
from pathlib import Path

import pytest

from protocol import live
from recording.models import Segment
from simulation.identity import stamps_in
from testbed.waiting import wait_for
from utilities.ports import free_ports

pytestmark = pytest.mark.django_db(transaction=True)
GOP = 4.0  # seconds: without a request, a connection waits up to this long for its first keyframe


def reports_with_first_frame(redis_client, cameras) -> dict | None:
    reports = live.read_stream_reports(redis_client, "srv-a")
    if all("first_frame_seconds" in reports.get(c.pk, {}) for c in cameras):
        return {c.pk: reports[c.pk] for c in cameras}
    return None


def recorded_counters(camera) -> list[int]:
    counters = []
    for segment in Segment.objects.filter(camera=camera).order_by("started_at"):
        stamps = list(stamps_in(Path(segment.path)))
        assert None not in stamps, "every recorded frame carries its identity"
        counters.extend(stamp.counter for stamp in stamps)
    return counters


def test_the_first_keyframe_comes_at_once_when_asked_for(recorded_site, simulator, agents, make_camera,
                                                         redis_client):  # fmt: skip
    sim = simulator(1, codecs=("h264",), fps=25.0, gop_seconds=GOP)
    rtsp = sim.simulator.cameras[1]
    camera = make_camera(recorded_site["a"], stream_url=rtsp.url, codec="h264", onvif_url=rtsp.onvif_url)
    agent = agents("srv-a", segment_seconds=1.0)
    report = wait_for(lambda: reports_with_first_frame(redis_client, [camera]), 20, message="the first frame")
    report = report[camera.pk]
    wait_for(lambda: Segment.objects.filter(camera=camera).count() >= 2, 20, message="two segments")
    agent.stop()

    assert report["keyframe_request"] == "accepted" and report["keyframe_request_seconds"] < 0.5
    assert report["keyframe_wait_seconds"] < 1.0, f"{report['keyframe_wait_seconds']} s, a keyframe every {GOP} s"
    assert report["first_frame_seconds"] == pytest.approx(report["open_seconds"] + report["keyframe_wait_seconds"],
                                                          abs=0.002)  # fmt: skip
    counters = recorded_counters(camera)
    assert len(counters) >= 25
    assert counters == list(range(counters[0], counters[0] + len(counters))), "frames missing or repeated"


def test_a_camera_that_cannot_or_will_not_changes_nothing_but_the_log(recorded_site, simulator, agents, make_camera,
                                                                      redis_client, caplog):  # fmt: skip
    sim = simulator(4, codecs=("h264",), fps=10.0, gop_seconds=1.0, onvif_credentials=("admin", "right"))
    rtsp = sim.simulator.cameras
    rtsp[2].keyframe_on_request = False  # a camera without the operation
    silent = socket.socket()  # accepts connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    wrong_port = free_ports(1)[0]
    addresses = {
        1: f"http://127.0.0.1:{wrong_port}/onvif/media_service",  # nothing listens there
        2: rtsp[2].onvif_url,
        3: rtsp[3].onvif_url,  # a wrong password
        4: f"http://127.0.0.1:{silent.getsockname()[1]}/onvif/media_service",
    }
    cameras = [
        make_camera(recorded_site["a"], stream_url=rtsp[n].url, codec="h264", onvif_url=addresses[n],
                    username="admin", password="not-the-password" if n == 3 else "right")
        for n in range(1, 5)
    ]  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING, logger="recording.onvif"):
            agent = agents("srv-a", segment_seconds=1.0)
            reports = wait_for(lambda: reports_with_first_frame(redis_client, cameras), 20, message="first frames")
            wait_for(lambda: all(Segment.objects.filter(camera=c).count() >= 2 for c in cameras), 20,
                     message="two segments each")  # fmt: skip
            wait_for(lambda: all(reports_with_first_frame(redis_client, cameras)[c.pk].get("keyframe_request") !=
                                 "asked" for c in cameras), 5, message="every camera's answer")  # fmt: skip
            reports = reports_with_first_frame(redis_client, cameras)
            agent.stop()
    finally:
        silent.close()

    outcomes = [reports[c.pk]["keyframe_request"] for c in cameras]
    assert outcomes == ["failed", "refused", "refused", "failed"]
    assert reports[cameras[3].pk]["keyframe_request_seconds"] == pytest.approx(0.5, abs=0.25), "bounded"
    for camera in cameras:
        assert reports[camera.pk]["state"] == "streaming"
        counters = recorded_counters(camera)
        assert counters == list(range(counters[0], counters[0] + len(counters)))
    assert sim.call(sim.simulator.describe())[1]["keyframes_forced"] == 0
    lines = [r.getMessage() for r in caplog.records if "keyframe_request_failed" in r.getMessage()]
    assert sorted(int(line.split()[0].split("=")[1]) for line in lines) == sorted(c.pk for c in cameras)
    assert any("NotAuthorized" in line for line in lines) and any("ActionNotSupported" in line for line in lines)
    for line in lines:
        assert "right" not in line and "not-the-password" not in line and "127.0.0.1" not in line
