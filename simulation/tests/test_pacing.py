"""A simulated camera's frame pacing: the full rate for one viewer, slower for each extra one, the count unbroken."""

import socket
import threading
import time

import av
import cv2
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from recording.streamcopy import open_options
from simulation.pacing import Pace, viewer_rate
from simulation.sei import read_identity
from simulation.stamp import read_stamp
from testbed.waiting import wait_for


def test_each_viewer_beyond_the_first_costs_its_share_of_the_frame_rate():
    assert viewer_rate(10, 0.5, 1) == 10
    assert viewer_rate(10, 0.5, 2) == 5
    assert viewer_rate(10, 0.25, 3) == 5
    assert viewer_rate(10, 0.5, 0) == 10  # nobody watching: the camera streams at its rate anyway
    assert viewer_rate(10, 0.5, 5) == 1  # never below a tenth
    assert viewer_rate(10, 0.0, 8) == 10


def test_at_the_full_rate_frame_n_is_due_at_start_plus_n_over_fps():
    pace = Pace(started=1000.0, fps=5)
    assert [pace.due(n) for n in (0, 1, 10)] == [1000.0, 1000.2, 1002.0]
    assert pace.counter_at(1002.1) == 10


def test_a_lower_rate_sends_the_next_frames_later_without_skipping_one():
    pace = Pace(started=1000.0, fps=10)
    pace.change_rate(5, now=1001.0)  # frame 10 is due now
    assert pace.counter_at(1001.0) == 10
    assert [round(pace.due(n), 6) for n in (10, 11, 12)] == [1001.0, 1001.2, 1001.4]
    pace.change_rate(10, now=1002.0)  # back to the full rate from frame 15
    assert pace.counter_at(1002.0) == 15 and round(pace.due(16), 6) == 1002.1


# -- the simulator's cameras: a second viewer gets, and makes the first get, half the rate ---------------------


def mjpeg_counters(url: str, seconds: float, out: list) -> None:
    """The stamped counters of the frames an MJPEG viewer receives in ``seconds``."""
    host, port = url.split("/")[2].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(b"GET /video.mjpg HTTP/1.0\r\n\r\n")
        stream = connection.makefile("rb")
        while stream.readline() not in (b"\r\n", b""):
            pass
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            line = stream.readline()
            if line.lower().startswith(b"content-length:"):
                stream.readline()
                jpeg = stream.read(int(line.split(b":")[1]))
                out.append(read_stamp(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)).counter)


def rtsp_counters(url: str, seconds: float, out: list) -> None:
    """The frame identities (SEI) of the packets an RTSP viewer receives in ``seconds`` after its first keyframe."""
    with av.open(url, options=open_options("tcp", 4000, 4000)) as container:
        deadline = None
        for packet in container.demux(container.streams.video[0]):
            if not packet.size:
                continue
            deadline = deadline or time.monotonic() + seconds
            identity = read_identity(bytes(packet))
            if identity:  # only pictures carry one; a picture missing would break the run below
                out.append(identity[0])
            if time.monotonic() >= deadline:
                return


def watched(read, url: str, viewers: int, seconds: float) -> list[list[int]]:
    """What each of ``viewers`` viewers watching at once receives."""
    seen = [[] for _ in range(viewers)]
    threads = [threading.Thread(target=read, args=(url, seconds, out)) for out in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 20)
    return seen


@pytest.mark.parametrize("codec, read", [("mjpeg", mjpeg_counters), ("h264", rtsp_counters)])
def test_a_camera_that_loses_half_its_rate_per_extra_viewer_sends_two_viewers_every_frame_more_slowly(
    simulator, codec, read
):
    sim = simulator(1, codecs=(codec,), fps=10.0, gop_seconds=0.5, fps_drop_per_viewer=50)
    (alone,) = watched(read, sim.url(1), 1, 3.0)
    assert len(alone) >= 26, f"one viewer: the full 10 fps ({len(alone)} frames in 3 s)"
    first, second = watched(read, sim.url(1), 2, 4.0)
    for frames in (first, second):
        assert frames == list(range(frames[0], frames[0] + len(frames))), "every frame, in order: none dropped"
        assert 14 <= len(frames) <= 26, f"two viewers: 5 fps each ({len(frames)} frames in 4 s)"
    assert set(first) & set(second), "one numbering for both viewers"
    wait_for(lambda: sim.call(sim.simulator.describe())[0]["fps_now"] == 10.0, 10, message="the full rate again")


def test_a_drop_per_viewer_outside_0_to_100_percent_is_refused():
    with pytest.raises(CommandError, match="--fps-drop-per-viewer must be between 0 and 100"):
        call_command("simulate_cameras", "--fps-drop-per-viewer", "150")
