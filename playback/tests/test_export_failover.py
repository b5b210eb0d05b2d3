"""The whole product: an RTSP camera recorded by agent processes through a failover and a failback, exported.

The simulator's cameras carry each frame's identity (H.264: an SEI message, ``simulation.sei``; MJPEG: a stamp in
its pixels, ``simulation.stamp``); the agents
record it by stream copy, the engine moves the camera, each agent serves its own recordings. The export is
read back by PyAV's demuxer (identities) and OpenCV's decoder (pictures), and checked against what the
servers' own files hold.
"""

import hashlib
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import cv2
import pytest

from playback import export
from playback.tests.test_export import decoded_counters
from protocol import live
from recording.models import Segment
from redundancy.models import CameraPlacement, Placement
from simulation.identity import recorded_stamps
from simulation.sei import read_identity
from testbed.waiting import wait_for

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]

FPS = 10


def identities(path: Path, codec: str) -> list[int]:
    """The identity of every frame of the file: its SEI message (H.264), or its pixels' stamp (MJPEG)."""
    if codec == "mjpeg":
        return decoded_counters(path)
    with av.open(str(path)) as container:
        return [read_identity(bytes(p))[0] for p in container.demux(container.streams.video[0]) if p.size]


def decoded_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.mark.parametrize("codec", ["h264", "mjpeg"])
def test_an_export_across_a_failover_and_a_failback_holds_every_recorded_frame_once(
    codec, site, tmp_path, simulator, make_camera, agent_process, engine, redis_client
):
    primary, backup = site["a"], site["b"]
    for server in (primary, backup):
        server.recordings_path = str(tmp_path / server.name)
        server.merge_back = False  # each server's own recordings: the export takes each moment from one of them
        server.save()
        server.redundancy.fast_redundancy = True
        server.redundancy.save()
    sim = simulator(1, fps=float(FPS), **({} if codec == "mjpeg" else {"codecs": (codec,), "gop_seconds": 1.0}))
    camera = make_camera(primary, backup, name="gate", stream_url=sim.url(1), codec=codec, fps=FPS)

    def streaming(name):
        return live.read_stream_reports(redis_client, name).get(camera.pk, {}).get("state") == "streaming"

    def placement():
        return CameraPlacement.objects.filter(camera=camera).values_list("state", flat=True).first()

    since = datetime.now(UTC)
    killed = agent_process("srv-a")
    backup_agent = agent_process("srv-b")
    wait_for(lambda: Segment.objects.filter(camera=camera, server=primary).count() >= 2, 40, message="srv-a records")
    killed.kill()
    wait_for(lambda: placement() == Placement.ON_BACKUP, 20, message="failed over")
    wait_for(lambda: Segment.objects.filter(camera=camera, server=backup).count() >= 2, 20, message="backup records")
    returned = agent_process("srv-a")
    wait_for(lambda: placement() == Placement.ON_PRIMARY, 30, message="failed back")
    wait_for(lambda: not streaming("srv-b"), 10, message="the backup let go")
    after_failback = Segment.objects.filter(camera=camera, server=primary).count() + 2
    wait_for(lambda: Segment.objects.filter(camera=camera, server=primary).count() >= after_failback, 20,
             message="srv-a records again")  # fmt: skip
    until = datetime.now(UTC) + timedelta(seconds=1)

    out = tmp_path / "gate.mp4"
    manifest = export.export(camera, since, until, out)
    for process in (returned, backup_agent):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0

    counters = identities(out, codec)
    assert decoded_frames(out) == len(counters) == manifest["frames"], "an independent decoder shows every frame"
    steps = [b - a for a, b in zip(counters, counters[1:], strict=False)]
    assert min(steps) == 1, "no frame twice, none out of order"
    jumps = [(a, b) for a, b in zip(counters, counters[1:], strict=False) if b - a > 1]
    # Only the outage is missing: the frames no server recorded, and nothing any server has of the range.
    recorded = {stamp.counter for server in (primary, backup) for stamp in recorded_stamps(server.storage_dir,
                                                                                           camera.pk)}  # fmt: skip
    for before, after in jumps:
        assert not recorded & set(range(before + 1, after)), f"frames {before + 1}-{after - 1} were recorded"
    # At most the failover's (the engine sees a killed agent at once: at 10 fps it may lose no frame at all); the
    # failback is made before it breaks.
    assert len(jumps) <= 1, jumps
    # The manifest says each gap the file has. Its times are two servers' arrival clocks on either side of a
    # failover, which differ by the two receivers' latencies: a hole shorter than one frame interval may be that
    # difference (no frame missing) or one frame missing, but a gap of two frames or more is always said.
    interior = [gap for gap in manifest["gaps"] if gap["from"] > manifest["first_frame"]
                and gap["to"] < manifest["last_frame"]]  # fmt: skip
    said = [gap for gap in interior if gap["seconds"] >= 1 / FPS]
    assert len(said) <= len(jumps), (interior, jumps)
    for before, after in jumps:
        missing = after - before - 1
        if missing >= 2:
            assert [gap for gap in said if gap["seconds"] == pytest.approx(missing / FPS, abs=0.5)], (interior, jumps)
    assert [span["server"] for span in manifest["spans"]] == ["srv-a", "srv-b", "srv-a"]
    assert manifest["file"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
