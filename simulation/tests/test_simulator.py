"""The camera simulator's RTSP cameras as a viewer meets them: sessions, faults, refusals."""

import asyncio
import socket
import subprocess

import av
import pytest
from django.core.management import CommandError, call_command

from recording.streamcopy import open_options
from simulation import simulator as camera_simulator
from simulation.sei import read_identity
from utilities.ports import free_port_block


def first_frames(url: str, count: int = 3) -> list[tuple[int, bool]]:
    """The first frames a viewer gets: (identity, keyframe)."""
    with av.open(url, options=open_options("tcp", 4000, 4000)) as container:
        frames = []
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                frames.append((read_identity(bytes(packet))[0], bool(packet.is_keyframe)))
            if len(frames) == count:
                return frames
    return frames


def test_an_rtsp_camera_shares_its_stream_limits_its_sessions_and_stops_and_starts(simulator):
    sim = simulator(1, codecs=("h264",), gop_seconds=0.4, max_viewers=1)
    url = sim.url(1)
    frames = first_frames(url, 4)
    counters = [counter for counter, _ in frames]
    assert counters == list(range(counters[0], counters[0] + 4))  # at once, mid-GOP maybe, as a camera does
    assert [counter % 2 == 0 for counter, _ in frames] == [keyframe for _, keyframe in frames]  # a keyframe each 2
    with av.open(url, options=open_options("tcp", 4000, 4000)):  # the one session it allows
        with pytest.raises(av.error.HTTPOtherClientError):  # 453 for the second
            av.open(url, options=open_options("tcp", 4000, 4000))
    assert sim.call(sim.simulator.describe())[0]["refused"] == 1
    sim.set_state(1, "stopped")
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", sim.simulator.cameras[1].port)):
        pass
    sim.set_state(1, "streaming")
    assert len(first_frames(url)) == 3


def test_udp_transport_is_served_too(simulator):
    sim = simulator(1, codecs=("h265",), gop_seconds=0.4)
    with av.open(sim.url(1), options=open_options("udp", 4000, 4000)) as container:
        packet = next(p for p in container.demux(container.streams.video[0]) if p.size)
        assert container.streams.video[0].codec_context.name == "hevc" and read_identity(bytes(packet))


STAMPS = """
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
from simulation.rtsp_server import _running_time_stamp

source = Gst.ElementFactory.make("appsrc")
clock = Gst.SystemClock.obtain()
source.set_clock(clock)

class Info:
    def __init__(self, buffer):
        self.buffer = buffer

    def get_buffer(self):
        return self.buffer

def stamped(base, at):
    source.set_base_time(base)
    buffer = Gst.Buffer.new()
    buffer.pts = buffer.dts = at
    _running_time_stamp(source.get_static_pad("src"), Info(buffer))
    return buffer.pts, buffer.dts

now = clock.get_time()
print(stamped(0, now) == (Gst.CLOCK_TIME_NONE, Gst.CLOCK_TIME_NONE))
print(all(t < 2 * Gst.SECOND for t in stamped(clock.get_time() - Gst.SECOND, now)))
print(stamped(now - 10 * Gst.SECOND, 10 * Gst.SECOND) == (10 * Gst.SECOND, 10 * Gst.SECOND))
"""


def test_a_frame_stamped_before_its_media_had_a_base_time_goes_at_once():
    """Such a frame carried the clock's absolute time: the TCP sink held it, and a new viewer's video, for hours."""
    done = subprocess.run([camera_simulator.RTSP_PYTHON, "-c", STAMPS], cwd=camera_simulator.ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.stdout.split() == ["True", "True", "True"], done.stderr  # none yet, now, and a right one as it was


def test_without_gstreamer_rtsp_cameras_are_reported_and_the_others_still_stream(monkeypatch, tmp_path):
    monkeypatch.setattr(camera_simulator, "RTSP_PYTHON", str(tmp_path / "no-python"))
    base = free_port_block(2)

    async def scenario():
        strict = camera_simulator.CameraSimulator(2, base, codecs=("h264", "mjpeg"), loops_dir=tmp_path)
        with pytest.raises(RuntimeError, match="apt-get install python3-gi"):
            await strict.start()
        await strict.stop()
        lenient = camera_simulator.CameraSimulator(2, base, codecs=("h264", "mjpeg"), loops_dir=tmp_path)
        await lenient.start(strict=False)
        try:
            described = await lenient.describe()
            reader, writer = await asyncio.open_connection("127.0.0.1", base + 1)  # the MJPEG camera
            writer.write(b"GET /snapshot.jpg HTTP/1.0\r\n\r\n")
            answer = await reader.read(12)
            writer.close()
        finally:
            await lenient.stop()
        return described, answer

    described, answer = asyncio.run(scenario())
    assert described[0]["state"] == "stopped" and described[1]["state"] == "streaming"
    assert answer.startswith(b"HTTP/1.0 200")


def test_bad_simulator_options_are_refused_with_a_clear_error():
    with pytest.raises(CommandError, match="unknown codec vp9"):
        call_command("simulate_cameras", "--codecs", "h264,vp9", "--count", "1")
    with pytest.raises(CommandError, match="1920x1080"):
        call_command("simulate_cameras", "--width", "3840", "--height", "2160")
    with pytest.raises(CommandError, match="--gop"):
        call_command("simulate_cameras", "--gop", "0")
