"""RTSP cameras (H.264, H.265) from the simulator's real RTSP server, recorded by stream copy.

What is checked is read from the recorded files by independent readers: the frames' identities
from their SEI messages (PyAV's demuxer), the pictures by OpenCV's decoder, and the camera's
own NAL units compared byte for byte with what the camera sent."""

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from protocol import live
from recording.models import Segment, StreamHealth
from recording.streamcopy import iter_packets
from redundancy.models import Event
from simulation.identity import stamps_in
from simulation.loops import loop_file, read_loop
from simulation.sei import read_identity, sei_nal
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def nal_units(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit, without their start codes (3 or 4 bytes alike)."""
    units, index = [], access_unit.find(b"\x00\x00\x01")
    while index != -1:
        following = access_unit.find(b"\x00\x00\x01", index + 3)
        end = len(access_unit) if following == -1 else following
        units.append(access_unit[index + 3 : end].rstrip(b"\x00") if following != -1 else access_unit[index + 3 :])
        index = following
    return units


def camera_units(codec: str, access_unit: bytes) -> list[bytes]:
    """The NAL units that came from the camera: without the access unit delimiter the MPEG-TS muxer adds."""
    delimiter = 9 if codec == "h264" else 35
    kind = (lambda unit: unit[0] & 0x1F) if codec == "h264" else (lambda unit: (unit[0] >> 1) & 0x3F)
    return [unit for unit in nal_units(access_unit) if kind(unit) != delimiter]


def decoded_by_opencv(path: Path) -> int:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        assert image.shape[:2] == (180, 320)
        count += 1
    capture.release()
    return count


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_rtsp_camera_is_recorded_as_it_comes(recorded_site, simulator, agents, make_camera, redis_client, codec):
    sim = simulator(1, codecs=(codec,), gop_seconds=1.0)
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec=codec)
    agent = agents("srv-a", segment_seconds=2.0)
    report = wait_for(lambda: live.read_stream_reports(redis_client, "srv-a").get(camera.pk, {}).get(
        "keyframe_interval") and live.read_stream_reports(redis_client, "srv-a")[camera.pk], 20,
        message="a stream report with the keyframe interval")  # fmt: skip
    wait_for(lambda: Segment.objects.filter(camera=camera).count() >= 3, 30, message="three segments")
    agent.stop()

    # The stream's figures come from its packets.
    assert report["codec"] == codec and (report["width"], report["height"]) == (320, 180)
    assert report["keyframe_interval"] == pytest.approx(1.0, abs=0.15)
    assert report["fps"] == pytest.approx(5.0, abs=0.6)

    segments = list(Segment.objects.filter(camera=camera).order_by("started_at"))
    counters = []
    for segment in segments:
        path = Path(segment.path)
        assert path.suffix == ".ts"
        stamps = list(stamps_in(path))
        assert None not in stamps, "every recorded frame carries its identity"
        # Each segment plays alone, from its first frame: an independent decoder shows every frame of it.
        assert decoded_by_opencv(path) == len(stamps) == segment.frame_count
        counters.extend(stamp.counter for stamp in stamps)
    assert counters == list(range(counters[0], counters[0] + len(counters))), "frames missing or repeated"
    assert counters[0] % 5 == 0, "the recording starts on a keyframe (one each 5 frames)"

    # Stream copy: the camera's NAL units, byte for byte, so the recorded bitrate is the stream's.
    rtsp_camera = sim.simulator.cameras[1]
    _, units = read_loop(loop_file(rtsp_camera.loop_spec(), sim.simulator.rtsp.loops_dir))
    sent_bytes = recorded_bytes = 0
    for segment in segments:
        for data in iter_packets(Path(segment.path)):
            counter, _ = read_identity(data)
            _, head, picture = units[counter % len(units)]
            captured_ms = int((rtsp_camera.started + counter / rtsp_camera.fps) * 1000)
            sent = nal_units(head + sei_nal(codec, counter, captured_ms) + picture)
            recorded = camera_units(codec, data)
            assert recorded == sent, f"frame {counter} differs from what the camera sent"
            sent_bytes += sum(len(unit) for unit in sent)
            recorded_bytes += sum(len(unit) for unit in recorded)
    assert recorded_bytes == sent_bytes
    assert sum(s.size_bytes for s in segments) == pytest.approx(recorded_bytes, rel=0.03)


def test_rtsp_snapshots_come_from_keyframes(recorded_site, simulator, agents, make_camera, redis_client):
    sim = simulator(1, codecs=("h265",), gop_seconds=1.0)
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="h265")
    agents("srv-a")
    snapshot = wait_for(lambda: live.read_snapshot(redis_client, camera.pk), 15, message="a snapshot")
    assert snapshot["server"] == "srv-a" and snapshot["jpeg"].startswith(b"\xff\xd8")
    image = cv2.imdecode(np.frombuffer(snapshot["jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (180, 320)


def test_a_watched_rtsp_camera_gets_a_fresh_picture_at_every_keyframe_an_unwatched_one_seldom(
    recorded_site, simulator, agents, make_camera, redis_client
):
    sim = simulator(1, codecs=("h264",), gop_seconds=1.0)
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="h264")
    agents("srv-a")
    first = wait_for(lambda: live.read_snapshot(redis_client, camera.pk), 15, message="a first snapshot")["at"]
    threading.Event().wait(4)  # four keyframes: nobody watches, so no new picture is decoded
    assert live.read_snapshot(redis_client, camera.pk)["at"] == first
    seen = set()
    for _ in range(20):  # the live wall asking for the picture every 0.25 s, for 5 s
        live.mark_watched(redis_client, camera.pk)
        seen.add(live.read_snapshot(redis_client, camera.pk)["at"])
        threading.Event().wait(0.25)
    assert len(seen - {first}) >= 3, "a new picture at (nearly) every keyframe while watched"


def test_a_camera_that_refuses_the_second_connection_of_constant_mode_is_an_event_and_a_warning(
    recorded_site, simulator, agents, make_camera, redis_client, engine, admin_client
):
    backup = recorded_site["b"]
    backup.redundancy.constant_redundancy = True
    backup.redundancy.save()
    sim = simulator(1, codecs=("h264",), gop_seconds=1.0, max_viewers=1)  # the camera allows one session
    camera = make_camera(recorded_site["a"], backup, stream_url=sim.url(1), codec="h264")
    agents("srv-a")
    wait_for(lambda: live.read_stream_reports(redis_client, "srv-a").get(camera.pk, {}).get("state") == "streaming",
             20, message="the primary streaming")  # fmt: skip
    agents("srv-b")
    event = wait_for(lambda: Event.objects.filter(kind="connection_refused", camera=camera).first(), 30,
                     message="the refusal as an event")  # fmt: skip
    assert event.server == backup
    assert "refuses the connection of its backup srv-b" in event.message
    assert "constant redundancy needs a second session" in event.message
    wait_for(lambda: StreamHealth.objects.refused().filter(camera=camera, server=backup).exists(), 15,
             message="the refusal in the stored stream health")  # fmt: skip
    warning = f"{camera.name} refuses the connection of srv-b"
    assert warning in admin_client.get(f"/cameras/{camera.pk}/").content.decode()
    assert warning in admin_client.get(f"/servers/{backup.pk}/").content.decode()
    threading.Event().wait(3)  # the backup keeps retrying: still one event
    assert Event.objects.filter(kind="connection_refused", camera=camera).count() == 1
    assert sim.call(sim.simulator.describe())[0]["refused"] >= 2
