"""The agent as operators run it: ``manage.py run_video_server``, a Celery worker process."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from protocol import live
from recording.models import Segment
from recording.tasks import wake_agent
from simulation.identity import stamps_in
from testbed.processes import ROOT
from testbed.waiting import wait_for

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def camera_on(site, tmp_path, make_camera, simulator):
    site["a"].recordings_path = str(tmp_path / "srv-a")
    site["a"].save()
    sim = simulator(2)
    return sim, [make_camera(site["a"], stream_url=sim.url(n), codec="mjpeg") for n in (1, 2)]


def test_agent_process_heartbeats_records_and_leaves_gracefully(camera_on, agent_process, redis_client):
    sim, cameras = camera_on
    process = agent_process("srv-a")
    wait_for(lambda: live.read_heartbeats(redis_client, ["srv-a"])["srv-a"], 30, message="the first heartbeat")
    wait_for(lambda: Segment.objects.filter(camera=cameras[0]).count() >= 2, 30, message="indexed segments")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert live.leaving_servers(redis_client, ["srv-a"]) == {"srv-a"}
    assert live.read_heartbeats(redis_client, ["srv-a"])["srv-a"] is None
    # The segment open at the stop was closed and indexed: every file on disk is in the index.
    on_disk = {str(p) for p in Path(Segment.objects.first().path).parents[2].glob("*/*/*.mjpeg")}
    assert on_disk == set(Segment.objects.values_list("path", flat=True))


def test_reconcile_notice_reaches_the_agent_queue(camera_on, agent_process, redis_client, site, make_camera):
    sim, cameras = camera_on
    live.write_desired(redis_client, "srv-a", [cameras[0].pk])
    agent_process("srv-a", AGENT_SWEEP_SECONDS=600)  # only the notice can bring the second camera in time
    wait_for(lambda: cameras[0].pk in live.read_stream_reports(redis_client, "srv-a"), 30, message="first camera")
    live.write_desired(redis_client, "srv-a", [cameras[0].pk, cameras[1].pk])
    wake_agent("srv-a")
    wait_for(lambda: cameras[1].pk in live.read_stream_reports(redis_client, "srv-a"), 15, message="second camera")


def test_segments_of_a_killed_agent_are_indexed_on_restart(camera_on, agent_process, redis_client):
    sim, cameras = camera_on
    process = agent_process("srv-a", AGENT_SEGMENT_SECONDS=60)  # nothing closes a segment before the kill
    wait_for(lambda: live.read_stream_reports(redis_client, "srv-a").get(cameras[0].pk, {}).get("fps"), 30,
             message="streaming")  # fmt: skip
    process.kill()
    process.wait(timeout=10)
    assert not Segment.objects.exists()
    agent_process("srv-a")
    recovered = wait_for(lambda: Segment.objects.filter(camera=cameras[0]).order_by("started_at").first(), 30,
                         message="the killed agent's segment indexed")  # fmt: skip
    assert recovered.frame_count >= 2


def test_a_killed_agent_s_last_rtsp_segment_plays_to_its_last_frame_and_is_indexed(
    site, tmp_path, make_camera, simulator, agent_process, redis_client
):
    site["a"].recordings_path = str(tmp_path / "srv-a")
    site["a"].save()
    sim = simulator(1, codecs=("h264",), gop_seconds=1.0)
    camera = make_camera(site["a"], stream_url=sim.url(1), codec="h264")
    process = agent_process("srv-a", AGENT_SEGMENT_SECONDS=60)  # nothing closes a segment before the kill

    def streamed_for() -> float:
        report = live.read_stream_reports(redis_client, "srv-a").get(camera.pk) or {}
        return (report.get("last_frame_at") or 0) - report.get("since", float("inf"))

    wait_for(lambda: streamed_for() > 3, 30, message="three seconds recorded")
    process.kill()
    process.wait(timeout=10)
    (path,) = Path(site["a"].storage_dir).glob(f"{camera.pk}/*/*.ts")
    stamps = list(stamps_in(path))
    assert len(stamps) >= 10 and None not in stamps
    counters = [stamp.counter for stamp in stamps]
    assert counters == list(range(counters[0], counters[0] + len(counters)))
    capture, decoded = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG), 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == len(stamps), "the cut-off segment plays up to its last written frame"
    agent_process("srv-a")
    recovered = wait_for(lambda: Segment.objects.filter(camera=camera, path=str(path)).first(), 30,
                         message="the killed agent's segment indexed")  # fmt: skip
    assert recovered.frame_count == len(stamps)


def test_a_killed_agent_is_restarted_and_the_others_keep_running(site, process_env, redis_client, tmp_path):
    for name in ("a", "b"):
        site[name].recordings_path = str(tmp_path / site[name].name)
        site[name].save()
    env = {**process_env, "AGENT_HEARTBEAT_SECONDS": "0.25"}
    supervisor = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_video_servers", "--server", "srv-a", "--server", "srv-b",
         "--restart-after", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        beats = wait_for(lambda: all(live.read_heartbeats(redis_client, ["srv-a", "srv-b"]).values()) and
                         live.read_heartbeats(redis_client, ["srv-a", "srv-b"]), 40, message="both agents")  # fmt: skip
        first_pid = beats["srv-a"]["pid"]
        os.kill(first_pid, signal.SIGKILL)
        wait_for(lambda: (live.read_heartbeats(redis_client, ["srv-a"])["srv-a"] or {}).get("pid") not in
                 (None, first_pid), 40, message="srv-a restarted")  # fmt: skip
        assert live.read_heartbeats(redis_client, ["srv-b"])["srv-b"]["pid"] == beats["srv-b"]["pid"]
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
    assert live.read_heartbeats(redis_client, ["srv-a", "srv-b"]) == {"srv-a": None, "srv-b": None}


def test_a_second_agent_for_a_running_server_refuses_to_start_and_says_who(camera_on, agent_process, redis_client,
                                                                           tmp_path, site):  # fmt: skip
    from redundancy.engine import Engine
    from redundancy.models import Event

    first = agent_process("srv-a")
    wait_for(lambda: live.read_heartbeats(redis_client, ["srv-a"])["srv-a"], 30, message="the first heartbeat")
    second = agent_process("srv-a")
    assert second.wait(timeout=60) != 0, "a second agent for srv-a must not run"
    output = (tmp_path / "srv-a.log").read_text()
    assert f"video server srv-a is already run by another agent: process {first.pid} on host" in output
    assert first.poll() is None and live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["pid"] == first.pid
    Engine(redis_client, wake_agent=lambda name: None, wake_mailer=lambda: None).tick()
    (event,) = Event.objects.filter(kind="agent_conflict", server=site["a"])
    assert f"process {second.pid}" in event.message and f"process {first.pid}" in event.message
    # A killed agent's name is free at once for the agent started in its place on the same host.
    first.kill()
    first.wait(timeout=10)
    third = agent_process("srv-a")
    wait_for(lambda: (live.read_heartbeats(redis_client, ["srv-a"])["srv-a"] or {}).get("pid") == third.pid, 30,
             message="the restarted agent's heartbeat")  # fmt: skip
