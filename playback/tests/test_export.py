"""A camera's recordings over a range as one MP4, stitched by stream copy from the servers that hold them.

The segments are real files (H.264/H.265 in MPEG-TS, MJPEG), their frames stamped with their identity in
the pixels (``simulation.stamp``), served by each server's own recording server on loopback (signed HTTP).
What the export holds is read back by OpenCV's decoder, an independent reader of the file.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from playback import export
from recording.models import Segment
from recording.segments import segment_path
from recording.serving import RecordingServer
from redundancy.models import Event, EventKind
from simulation.stamp import draw_stamp, read_stamp

# The recording servers answer on threads of their own, with connections of their own.
pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FPS = 10
SIZE = (320, 180)
GOP = "keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
ENCODERS = {"h264": ("libx264", "x264-params", GOP), "h265": ("libx265", "x265-params", GOP + ":log-level=error")}


def picture(counter: int) -> np.ndarray:
    image = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
    image[60:, (counter * 7) % SIZE[0] :] = 160  # something moves
    draw_stamp(image, counter, int((T0.timestamp() + counter / FPS) * 1000))
    return image


def write_ts(path: Path, counters: range, codec: str, gop: int = 10, base_pts: int = 0) -> None:
    """One segment as an agent writes it: the camera's packets in MPEG-TS, from a keyframe."""
    encoder, name, params = ENCODERS[codec]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream(encoder, rate=FPS, options={"preset": "ultrafast", name: params.format(gop=gop)})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for counter in counters:
            frame = av.VideoFrame.from_ndarray(picture(counter), format="bgr24")
            frame.pts, frame.time_base = base_pts + counter, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def write_mjpeg(path: Path, counters: range) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(cv2.imencode(".jpg", picture(counter))[1].tobytes() for counter in counters))


def at(counter: int) -> datetime:
    return T0 + timedelta(seconds=counter / FPS)


def record(camera, server, counters: range, codec: str = "h264", base_pts: int = 0) -> Segment:
    """A segment of ``counters`` on ``server``'s disk and in its index."""
    suffix = ".mjpeg" if codec == "mjpeg" else ".ts"
    path = segment_path(server.storage_dir, camera.pk, at(counters[0]).timestamp(), suffix)
    if codec == "mjpeg":
        write_mjpeg(path, counters)
    else:
        write_ts(path, counters, codec, base_pts=base_pts)
    return Segment.objects.create(camera=camera, server=server, started_at=at(counters[0]),
                                  ended_at=at(counters[-1]), frame_count=len(counters),
                                  size_bytes=path.stat().st_size, path=str(path))  # fmt: skip


def switch(camera, kind, moment: float, server, to_server) -> None:
    Event.objects.create(at=T0 + timedelta(seconds=moment), kind=kind, camera=camera, server=server,
                         to_server=to_server, message=f"{camera.name} records on {to_server.name}")  # fmt: skip


@pytest.fixture
def serving(site, tmp_path):
    """srv-a's and srv-b's agents' recording servers on loopback, each over its own storage."""
    started = []
    for name in ("a", "b"):
        server = site[name]
        server.recordings_path = str(tmp_path / server.name)
        server.save()
        recordings = RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
        recordings.start()
        started.append(recordings)
    yield site
    for recordings in started:
        recordings.stop()


def failed_over_and_back(camera, site, codec="h264"):
    """srv-a records frames 0-59 and is killed; srv-b takes over at frame 75 and records to 154; srv-a is back
    from frame 140 (make before break), the failback completing at 15.25 s, between its keyframes 150 and 160."""
    a, b = site["a"], site["b"]
    for first in (0, 20, 40):
        record(camera, a, range(first, first + 20), codec, base_pts=5000)
    for first in (75, 95, 115, 135):
        record(camera, b, range(first, min(first + 20, 155)), codec, base_pts=90)
    for first in (140, 160):
        record(camera, a, range(first, first + 20), codec, base_pts=7)
    switch(camera, EventKind.FAILOVER_COMPLETED, 7.45, a, b)
    switch(camera, EventKind.FAILBACK_COMPLETED, 15.25, b, a)


def decoded_counters(path: Path) -> list[int | None]:
    """The identity of every frame of ``path``, decoded by OpenCV."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    counters = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        stamp = read_stamp(image)
        counters.append(stamp.counter if stamp else None)
    capture.release()
    return counters


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.size)


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_an_export_across_a_failover_has_every_recorded_frame_once_and_names_both_servers(
    serving, make_camera, tmp_path, codec
):
    camera = make_camera(serving["a"], serving["b"], fps=FPS, codec=codec)
    failed_over_and_back(camera, serving, codec)
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()
    done = []
    manifest = export.export(camera, T0, at(180), out, progress=done.append)

    # An independent decoder sees every frame recorded, in order, once: only the outage is missing.
    assert decoded_counters(out) == [*range(0, 60), *range(75, 180)]
    # The file's time is wall time: the outage stays a gap of its length (frames 59 to 75: 1.6 s).
    times = frame_times(out)
    steps = np.diff(times)
    assert times[0] == pytest.approx(0, abs=0.001)
    assert steps[59] == pytest.approx(1.6, abs=0.01)
    assert np.delete(steps, 59) == pytest.approx(0.1, abs=0.01)

    assert manifest["camera"] == {"id": camera.pk, "name": camera.name}
    assert manifest["range"] == {"since": "2026-12-01T10:00:00.000Z", "until": "2026-12-01T10:00:18.000Z"}
    assert [(s["server"], s["recorded_by"], s["from"], s["to"], s["frames"]) for s in manifest["spans"]] == [
        ("srv-a", "srv-a", "2026-12-01T10:00:00.000Z", "2026-12-01T10:00:06.000Z", 60),
        ("srv-b", "srv-b", "2026-12-01T10:00:07.500Z", "2026-12-01T10:00:15.000Z", 75),
        ("srv-a", "srv-a", "2026-12-01T10:00:15.000Z", "2026-12-01T10:00:18.000Z", 30),
    ]  # fmt: skip
    assert manifest["gaps"] == [{"from": "2026-12-01T10:00:06.000Z", "to": "2026-12-01T10:00:07.500Z",
                                 "seconds": 1.5}]  # fmt: skip
    assert manifest["frames"] == 165 and manifest["codec"] == codec
    # The chain of custody: the file's checksum, and each segment read with the checksum its server sent.
    data = out.read_bytes()
    assert manifest["file"] == {"name": "clip.mp4", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                "starts_at": "2026-12-01T10:00:00.000Z"}  # fmt: skip
    for read in manifest["segments"]:
        stored = Segment.objects.get(server__name=read["server"], path__endswith=read["name"].split("/", 1)[1])
        assert read["sha256"] == hashlib.sha256(Path(stored.path).read_bytes()).hexdigest()
    assert json.loads(export.manifest_path(out).read_text()) == manifest
    assert done == sorted(done) and done[-1] == 1.0
    assert sorted(out.parent.iterdir()) == [export.manifest_path(out), out], "no partial file left"


def test_an_mjpeg_camera_exports_as_mjpeg_in_mp4_and_decodes(serving, make_camera, tmp_path):
    camera = make_camera(serving["a"], serving["b"], fps=FPS, codec="mjpeg")
    for first in (0, 20):
        record(camera, serving["a"], range(first, first + 20), "mjpeg")
    record(camera, serving["b"], range(50, 70), "mjpeg")
    switch(camera, EventKind.FAILOVER_COMPLETED, 4.9, serving["a"], serving["b"])
    out = tmp_path / "mjpeg.mp4"
    manifest = export.export(camera, T0, at(70), out)
    assert decoded_counters(out) == [*range(0, 40), *range(50, 70)]
    assert manifest["codec"] == "mjpeg" and manifest["frames"] == 60
    assert [s["server"] for s in manifest["spans"]] == ["srv-a", "srv-b"]
    assert [g["seconds"] for g in manifest["gaps"]] == [1.0]


def test_a_range_inside_a_segment_starts_at_the_keyframe_before_it(serving, make_camera, tmp_path):
    camera = make_camera(serving["a"], fps=FPS)
    record(camera, serving["a"], range(0, 40))
    out = tmp_path / "part.mp4"
    manifest = export.export(camera, at(15), at(25), out)
    counters = decoded_counters(out)
    assert counters[0] == 10, "video starts at a keyframe (one each 10 frames)"
    assert counters == list(range(10, len(counters) + 10)) and counters[-1] >= 24
    assert manifest["file"]["starts_at"] == "2026-12-01T10:00:01.000Z"


def test_a_range_with_nothing_recorded_is_refused_and_leaves_no_file(serving, make_camera, tmp_path):
    camera = make_camera(serving["a"], fps=FPS)
    record(camera, serving["a"], range(0, 20))
    out = tmp_path / "none.mp4"
    with pytest.raises(export.NothingRecorded, match=f"Nothing was recorded of {camera.name} between "
                       "2026-12-01T11:00:00.000Z and 2026-12-01T11:10:00.000Z"):  # fmt: skip
        export.export(camera, T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=10), out)
    assert list(tmp_path.glob("none*")) == []


def test_a_server_that_does_not_answer_fails_the_export_and_leaves_no_file(serving, make_camera, tmp_path):
    camera = make_camera(serving["a"], serving["b"], fps=FPS)
    failed_over_and_back(camera, serving)
    serving["b"].api_port = 1  # nobody listens there
    serving["b"].save()
    out = tmp_path / "broken.mp4"
    with pytest.raises(export.remote.Unreachable):
        export.export(camera, T0, at(100), out)
    assert list(tmp_path.glob("broken*")) == []


def test_the_command_writes_the_file_and_its_manifest(serving, make_camera, tmp_path, capsys):
    camera = make_camera(serving["a"], serving["b"], fps=FPS, name="gate")
    failed_over_and_back(camera, serving)
    out = tmp_path / "gate.mp4"
    call_command("export_recording", "--camera", "gate", "--since", "2026-12-01T10:00:00Z",
                 "--until", "2026-12-01T10:00:18Z", "--out", str(out))  # fmt: skip
    printed = capsys.readouterr().out
    manifest = json.loads((tmp_path / "gate.json").read_text())
    assert manifest["file"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert manifest["file"]["sha256"] in printed and "165 frames" in printed
    assert "srv-a" in printed and "srv-b" in printed and "gap" in printed


@pytest.mark.parametrize("arguments, message", [
    (["--camera", "nope"], "No camera named or numbered 'nope'."),
    (["--since", "yesterday"], "--since: 'yesterday' is not a time (ISO 8601, e.g. 2026-12-01T10:00:00Z)."),
    (["--until", "2026-12-01T09:00:00Z"], "--until must come after --since."),
    (["--until", "2026-12-03T10:00:00Z"], "A range is at most 24 hours long."),
    (["--since", "2026-12-01T12:00:00Z", "--until", "2026-12-01T13:00:00Z"], "Nothing was recorded of gate"),
])  # fmt: skip
def test_the_command_refuses_bad_input_with_a_reason(serving, make_camera, tmp_path, arguments, message):
    camera = make_camera(serving["a"], fps=FPS, name="gate")
    record(camera, serving["a"], range(0, 20))
    given = {"--camera": "gate", "--since": "2026-12-01T10:00:00Z", "--until": "2026-12-01T10:00:18Z",
             "--out": str(tmp_path / "x.mp4")}  # fmt: skip
    given.update(zip(arguments[::2], arguments[1::2], strict=True))
    with pytest.raises(CommandError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        call_command("export_recording", *[word for pair in given.items() for word in pair])
    assert list(tmp_path.glob("x*")) == []


def test_a_copy_merged_back_is_exported_from_the_primary_naming_who_recorded_it(serving, make_camera, tmp_path):
    camera = make_camera(serving["a"], serving["b"], fps=FPS)
    a, b = serving["a"], serving["b"]
    record(camera, a, range(0, 20))
    copy = record(camera, a, range(20, 40), base_pts=300)  # srv-b's recording of the failover, copied back
    copy.recorded_by = b
    copy.save()
    record(camera, a, range(40, 60))
    manifest = export.export(camera, T0, at(60), tmp_path / "merged.mp4")
    assert decoded_counters(tmp_path / "merged.mp4") == list(range(0, 60))
    assert [(s["server"], s["recorded_by"], s["frames"]) for s in manifest["spans"]] == [
        ("srv-a", "srv-a", 20), ("srv-a", "srv-b", 20), ("srv-a", "srv-a", 20)]  # fmt: skip
    assert manifest["gaps"] == []


def test_an_export_the_disk_cannot_hold_is_refused_before_anything_is_read(serving, make_camera, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    camera = make_camera(serving["a"], fps=FPS)
    record(camera, serving["a"], range(0, 20))
    full = export.shutil.disk_usage(tmp_path)._replace(free=100 << 20)
    monkeypatch.setattr(export.shutil, "disk_usage", lambda path: full)
    with pytest.raises(export.NoRoom, match=f"The export needs about 0 MB and {tmp_path} has 105 MB free."):
        export.export(camera, T0, at(20), tmp_path / "full.mp4")
    assert list(tmp_path.glob("full*")) == []


def copy_from(source: Path, target: Path, first: int, last: int) -> None:
    """Packets ``first`` to ``last`` (excluded) of ``source`` by stream copy: what a session of the camera records."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for index, packet in enumerate(p for p in inp.demux(inp.streams.video[0]) if p.size):
            if first <= index < last:
                packet.stream = stream
                out.mux(packet)


def index_copy(camera, server, source: Path, counters: range, skew: float = 0.0) -> None:
    """``server`` recorded ``counters`` of the camera stream in ``source`` (frames from 100), its clock ``skew``
    seconds off."""
    path = segment_path(server.storage_dir, camera.pk, at(counters[0]).timestamp() + skew, ".ts")
    copy_from(source, path, counters[0] - 100, counters[-1] + 1 - 100)
    Segment.objects.create(camera=camera, server=server, started_at=at(counters[0]) + timedelta(seconds=skew),
                           ended_at=at(counters[-1]) + timedelta(seconds=skew), frame_count=len(counters),
                           size_bytes=path.stat().st_size, path=str(path))  # fmt: skip


@pytest.mark.parametrize("skew", [-0.15, 0.15])
def test_where_both_servers_recorded_the_same_frames_the_cut_is_exact_whatever_their_clocks(
    serving, make_camera, tmp_path, skew
):
    """The backup records frames 100-159 of the camera's stream and the primary, back, the same frames from 140 on
    (its clock ``skew`` off the backup's): the failback at 14.25 s cuts at the primary's keyframe 140, where by the
    clocks alone a frame would be lost or two shown twice; each is in the file once."""
    camera = make_camera(serving["a"], serving["b"], fps=FPS)
    a, b = serving["a"], serving["b"]
    record(camera, a, range(0, 100))
    stream = tmp_path / "camera.ts"
    write_ts(stream, range(100, 170), "h264")
    index_copy(camera, b, stream, range(100, 160))
    index_copy(camera, a, stream, range(140, 170), skew)
    switch(camera, EventKind.FAILOVER_COMPLETED, 9.95, a, b)
    switch(camera, EventKind.FAILBACK_COMPLETED, 14.25, b, a)
    manifest = export.export(camera, T0, at(175), tmp_path / "exact.mp4")
    assert decoded_counters(tmp_path / "exact.mp4") == list(range(0, 170))
    assert [(s["server"], s["frames"]) for s in manifest["spans"]] == [("srv-a", 100), ("srv-b", 40), ("srv-a", 30)]


def test_a_segment_cut_off_mid_packet_by_a_killed_agent_loses_nothing_of_the_next(serving, make_camera, tmp_path):
    camera = make_camera(serving["a"], serving["b"], fps=FPS)
    killed = record(camera, serving["a"], range(0, 20))
    path = Path(killed.path)
    path.write_bytes(path.read_bytes()[: -(3 * 188 + 77)])  # the last frames' tail, not on a packet boundary
    killed.size_bytes = path.stat().st_size
    killed.save()
    record(camera, serving["b"], range(25, 45), base_pts=4)
    switch(camera, EventKind.FAILOVER_COMPLETED, 2.45, serving["a"], serving["b"])
    counters = decoded_counters(export.export(camera, T0, at(45), tmp_path / "cut.mp4") and tmp_path / "cut.mp4")
    first_part = counters[: counters.index(25)]
    assert first_part == list(range(0, len(first_part))) and len(first_part) >= 15
    assert counters[len(first_part) :] == list(range(25, 45)), "the next segment is whole"
