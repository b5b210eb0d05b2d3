"""Merge-back: after a failback the primary copies in what its backup recorded meanwhile, checked, under the
same names, and holds the camera's whole archive alone.

Segments are real files of stamped JPEG frames (``simulation.stamp``) served by a real agent's recordings server
(``recording.serving``); what the primary holds afterwards is read from its own files by frame identity
(``simulation.identity``: the stamp in an MJPEG frame's pixels, the SEI counter of an H.264 frame). End to end,
agent processes, the engine and the simulator make the failover and the failback.
"""

import hashlib
import json
import logging
import signal
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from protocol import live
from recording.mergeback import ON_PRIMARY, MergeBack, Span, lacks
from recording.models import Segment
from recording.outbox import Outbox
from recording.segments import segment_path
from recording.serving import RecordingServer
from redundancy.models import CameraPlacement, Placement
from simulation.identity import recorded_stamps, segment_files
from simulation.stamp import draw_stamp
from testbed.waiting import wait_for

# The backup's recordings server answers on threads of its own: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

FPS = 5
INTERVAL = 1 / FPS


def jpegs(counters, started_ms: int) -> bytes:
    """Frames as a camera sends them: each stamped with its counter and capture time."""
    data = b""
    for i, counter in enumerate(counters):
        image = np.full((180, 320, 3), 90, np.uint8)
        draw_stamp(image, counter, started_ms + int(i * INTERVAL * 1000))
        data += cv2.imencode(".jpg", image)[1].tobytes()
    return data


def record(server, camera, counters, t0: float) -> Segment:
    """A segment of ``server`` holding the camera's frames ``counters`` (frame n taken at t0 + n/FPS), on disk
    and in the index, as its agent leaves one."""
    counters = list(counters)
    started = t0 + counters[0] * INTERVAL
    path = segment_path(server.storage_dir, camera.pk, started)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = jpegs(counters, int(started * 1000))
    path.write_bytes(data)
    return Segment.objects.create(camera=camera, server=server, started_at=datetime.fromtimestamp(started, UTC),
                                  ended_at=datetime.fromtimestamp(t0 + counters[-1] * INTERVAL, UTC),
                                  frame_count=len(counters), size_bytes=len(data), path=str(path))  # fmt: skip


def counters_on(server, camera) -> list[int]:
    return [stamp.counter for stamp in recorded_stamps(server.storage_dir, camera.pk)]


def missing(counters: list[int], first: int, last: int) -> list[int]:
    return sorted(set(range(first, last + 1)) - set(counters))


def merge_back(server, clock=time.time) -> MergeBack:
    return MergeBack(server, server.storage_dir, Outbox(server.storage_dir / "index-spool.jsonl"), clock,
                     segment_seconds=2.0, sweep_interval=0.5)  # fmt: skip


@pytest.fixture
def failed_over(recorded_site, make_camera):
    """srv-a recorded 'gate' (frames 0-19), was killed; srv-b recorded frames 22-51; srv-a is back since frame 50
    (make before break), two minutes ago. srv-b's agent serves its recordings."""
    primary, backup = recorded_site["a"], recorded_site["b"]
    camera = make_camera(primary, backup, name="gate", codec="mjpeg", fps=FPS)
    t0 = time.time() - 120
    for counters in (range(0, 10), range(10, 20), range(50, 60), range(60, 70)):
        record(primary, camera, counters, t0)
    backup_rows = [record(backup, camera, counters, t0) for counters in (range(22, 32), range(32, 42), range(42, 52))]
    recordings = RecordingServer(backup, backup.storage_dir, backup.address, backup.api_port)
    recordings.start()
    yield {"primary": primary, "backup": backup, "camera": camera, "t0": t0, "backup_rows": backup_rows,
           "recordings": recordings}  # fmt: skip
    recordings.stop()


def test_the_primary_copies_in_what_its_backup_recorded_and_keeps_it_when_the_backup_s_copy_is_gone(failed_over):
    primary, backup, camera = failed_over["primary"], failed_over["backup"], failed_over["camera"]
    assert merge_back(primary).sweep() == 3

    copies = Segment.objects.filter(server=primary, recorded_by=backup).order_by("started_at")
    originals = failed_over["backup_rows"]
    assert [(c.started_at, c.ended_at, c.frame_count, c.size_bytes) for c in copies] == [
        (o.started_at, o.ended_at, o.frame_count, o.size_bytes) for o in originals
    ]
    for copy, original in zip(copies, originals, strict=True):
        assert Path(copy.path).parts[-3:] == Path(original.path).parts[-3:], "the same name as the original"
        assert Path(copy.path).is_relative_to(primary.storage_dir)
        assert Path(copy.path).read_bytes() == Path(original.path).read_bytes()
    assert not list(primary.storage_dir.glob("*/*/*.part"))

    for path in segment_files(backup.storage_dir, camera.pk):  # the backup's copies go (its retention, say)
        path.unlink()
    on_primary = counters_on(primary, camera)
    assert missing(on_primary, 22, 51) == [], "every frame the backup recorded is on the primary"
    assert missing(on_primary, 0, 69) == [20, 21], "only the failover gap is missing"
    assert merge_back(primary).sweep() == 0, "what was copied is not copied again"


def test_a_second_sweep_copies_nothing_again_and_the_backup_keeps_its_copies(failed_over):
    primary, backup, camera = failed_over["primary"], failed_over["backup"], failed_over["camera"]
    sweeper = merge_back(primary)
    assert sweeper.sweep() == 3
    sweeper.done_through.clear()  # look at every row again, as after a restart
    assert sweeper.sweep() == 0
    assert merge_back(primary).sweep() == 0
    assert Segment.objects.filter(server=primary, recorded_by=backup).count() == 3
    assert counters_on(backup, camera) == list(range(22, 52))
    assert Segment.objects.filter(server=backup).count() == 3


def test_constant_mode_copies_only_the_segments_that_hold_what_the_primary_lacks(recorded_site, make_camera):
    primary, backup = recorded_site["a"], recorded_site["b"]
    camera = make_camera(primary, backup, name="gate", codec="mjpeg", fps=FPS)
    t0 = time.time() - 120
    for counters in (range(0, 10), range(10, 20), range(30, 40), range(40, 50), range(50, 60)):
        record(primary, camera, counters, t0)  # frames 20-29: the primary's connection was down
    # The backup's own connection records all the time, its segments cut elsewhere than the primary's.
    rows = {first: record(backup, camera, range(first, first + 10), t0) for first in (5, 15, 25, 35, 45)}
    recordings = RecordingServer(backup, backup.storage_dir, backup.address, backup.api_port)
    recordings.start()
    try:
        assert merge_back(primary).sweep() == 2
    finally:
        recordings.stop()
    copies = Segment.objects.filter(server=primary, recorded_by=backup)
    assert sorted(copies.values_list("started_at", flat=True)) == [rows[15].started_at, rows[25].started_at]
    assert missing(counters_on(primary, camera), 0, 59) == []


@pytest.mark.parametrize("why", ["merge-back turned off", "camera still on its backup", "camera moving back"])
def test_nothing_is_copied(why, failed_over):
    primary, camera = failed_over["primary"], failed_over["camera"]
    if why == "merge-back turned off":
        primary.merge_back = False
        primary.save()
    else:
        state = Placement.ON_BACKUP if why == "camera still on its backup" else Placement.TO_PRIMARY
        CameraPlacement.objects.create(camera=camera, state=state, since=timezone.now())
    assert merge_back(primary).sweep() == 0
    assert not Segment.objects.filter(server=primary, recorded_by__isnull=False).exists()
    assert missing(counters_on(primary, camera), 0, 69) == list(range(20, 50))


def test_a_camera_placed_back_on_its_primary_is_merged(failed_over):
    primary, camera = failed_over["primary"], failed_over["camera"]
    assert ON_PRIMARY == Placement.ON_PRIMARY
    placement = CameraPlacement.objects.create(camera=camera, state=Placement.ON_BACKUP, since=timezone.now())
    sweeper = merge_back(primary)
    assert sweeper.sweep() == 0
    placement.state = Placement.ON_PRIMARY
    placement.save()
    assert sweeper.sweep() == 3


def test_recent_segments_wait_and_segments_past_retention_stay_behind(recorded_site, make_camera):
    primary, backup = recorded_site["a"], recorded_site["b"]
    primary.retention_hours = 0.1  # six minutes
    primary.save()
    camera = make_camera(primary, backup, name="gate", codec="mjpeg", fps=FPS)
    now = time.time()
    old = record(backup, camera, range(0, 10), now - 600)  # ended nine minutes ago: past the primary's retention
    recent = record(backup, camera, range(0, 10), now - 3)  # ended a second ago: the primary's may not be indexed
    recordings = RecordingServer(backup, backup.storage_dir, backup.address, backup.api_port)
    recordings.start()
    try:
        assert merge_back(primary).sweep() == 0
        later = merge_back(primary, clock=lambda: time.time() + 10)
        assert later.sweep() == 1
    finally:
        recordings.stop()
    assert list(Segment.objects.filter(server=primary).values_list("started_at", flat=True)) == [recent.started_at]
    assert old.started_at not in Segment.objects.filter(server=primary).values_list("started_at", flat=True)


def test_a_server_that_does_not_answer_is_asked_again_at_a_later_sweep(failed_over, caplog):
    primary, backup, camera = failed_over["primary"], failed_over["backup"], failed_over["camera"]
    failed_over["recordings"].stop()
    sweeper = merge_back(primary)
    with caplog.at_level(logging.INFO, logger="recording.mergeback"):
        assert sweeper.sweep() == 0
        assert sweeper.sweep() == 0
        failures = [r.getMessage() for r in caplog.records if "merge_back_failed" in r.getMessage()]
        assert failures == [f"server=srv-a event=merge_back_failed camera={camera.pk} from=srv-b reason=unreachable"]
        assert not Segment.objects.filter(server=primary, recorded_by=backup).exists()
        recordings = RecordingServer(backup, backup.storage_dir, backup.address, backup.api_port)
        recordings.start()
        try:
            assert sweeper.sweep() == 3
        finally:
            recordings.stop()
    copied = [r.getMessage() for r in caplog.records if "merge_back_copied" in r.getMessage()]
    assert copied == [f"server=srv-a event=merge_back_copied camera={camera.pk} segments=3 from=srv-b"]
    assert not any("token" in r.getMessage() or "http" in r.getMessage() for r in caplog.records)


class _WrongChecksum(BaseHTTPRequestHandler):
    """A server that lists the backup's segments as its agent does, then sends their bytes with a checksum
    that is not theirs (a corrupted copy on the way, a disk that returns other bytes)."""

    listing: dict
    files: dict[str, bytes]
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        address = self.path.split("?")[0]
        if address.endswith("/"):
            body, headers = json.dumps(self.listing).encode(), {"Content-Type": "application/json"}
        else:
            body = self.files[address.split("/", 3)[3]]
            headers = {"X-Content-SHA256": hashlib.sha256(body + b"x").hexdigest()}
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def test_bytes_that_do_not_match_their_checksum_are_neither_written_nor_indexed(failed_over, caplog):
    primary, backup, camera = failed_over["primary"], failed_over["backup"], failed_over["camera"]
    rows = failed_over["backup_rows"]
    names = {"/".join(Path(row.path).parts[-2:]): Path(row.path).read_bytes() for row in rows}
    listing = {"server": backup.name, "camera": camera.pk, "segments": [{"name": name} for name in names]}
    failed_over["recordings"].stop()
    handler = type("Handler", (_WrongChecksum,), {"listing": listing, "files": names})
    httpd = ThreadingHTTPServer((backup.address, backup.api_port), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    before = sorted(primary.storage_dir.rglob("*"))
    try:
        with caplog.at_level(logging.WARNING, logger="recording.mergeback"):
            assert merge_back(primary).sweep() == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert sorted(primary.storage_dir.rglob("*")) == before, "nothing written, not even aside"
    assert not Segment.objects.filter(server=primary, recorded_by__isnull=False).exists()
    assert [r.getMessage() for r in caplog.records if r.name == "recording.mergeback"] == [
        f"server=srv-a event=merge_back_failed camera={camera.pk} from=srv-b reason=checksum"
    ]


def test_a_copy_already_on_disk_but_not_indexed_is_indexed_not_written_again(failed_over):
    """An agent killed between writing a copy and indexing it finds the copy at the next sweep."""
    primary, backup = failed_over["primary"], failed_over["backup"]
    original = failed_over["backup_rows"][0]
    copy = primary.storage_dir / Path(original.path).relative_to(backup.storage_dir)
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(Path(original.path).read_bytes())
    written_at = copy.stat().st_mtime_ns
    assert merge_back(primary).sweep() == 3
    assert copy.stat().st_mtime_ns == written_at
    assert Segment.objects.get(path=str(copy)).recorded_by == backup


def test_another_file_under_the_copy_s_name_is_left_alone(failed_over):
    primary, backup = failed_over["primary"], failed_over["backup"]
    original = failed_over["backup_rows"][0]
    taken = primary.storage_dir / Path(original.path).relative_to(backup.storage_dir)
    taken.parent.mkdir(parents=True, exist_ok=True)
    taken.write_bytes(b"another recording")
    assert merge_back(primary).sweep() == 2
    assert taken.read_bytes() == b"another recording"
    assert not Segment.objects.filter(path=str(taken)).exists()


REFUSE_COPIES = {
    "sqlite": ["CREATE TRIGGER refuse_copies BEFORE INSERT ON recording_segment WHEN NEW.recorded_by_id IS NOT NULL "
               "BEGIN SELECT RAISE(ABORT, 'the database is away'); END"],
    "postgresql": ["CREATE FUNCTION refuse_copies() RETURNS trigger AS $$ "
                   "BEGIN RAISE EXCEPTION 'the database is away'; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER refuse_copies BEFORE INSERT ON recording_segment FOR EACH ROW "
                   "WHEN (NEW.recorded_by_id IS NOT NULL) EXECUTE FUNCTION refuse_copies()"],
}  # fmt: skip
ALLOW_COPIES = {
    "sqlite": ["DROP TRIGGER refuse_copies"],
    "postgresql": ["DROP TRIGGER refuse_copies ON recording_segment", "DROP FUNCTION refuse_copies()"],
}


def test_a_copy_the_database_does_not_take_leaves_no_file_and_is_made_at_a_later_sweep(failed_over, caplog):
    primary = failed_over["primary"]
    before = sorted(primary.storage_dir.rglob("*"))
    sweeper = merge_back(primary)
    with connection.cursor() as cursor:
        for statement in REFUSE_COPIES[connection.vendor]:
            cursor.execute(statement)
    try:
        with caplog.at_level(logging.INFO, logger="recording.mergeback"):
            assert sweeper.sweep() == 0
    finally:
        with connection.cursor() as cursor:
            for statement in ALLOW_COPIES[connection.vendor]:
                cursor.execute(statement)
    assert sorted(primary.storage_dir.rglob("*")) == before, "no file without its index row"
    assert "server=srv-a event=merge_back_deferred reason=database" in caplog.messages
    assert sweeper.sweep() == 3


def test_while_the_primary_s_own_segments_wait_for_the_database_nothing_is_judged(failed_over):
    """They may hold the very moments the backup's segments seem to add."""
    primary, camera, t0 = failed_over["primary"], failed_over["camera"], failed_over["t0"]
    outbox = Outbox(primary.storage_dir / "index-spool.jsonl")
    waiting = segment_path(primary.storage_dir, camera.pk, t0 + 22 * INTERVAL)
    record = {"camera_id": camera.pk, "server": primary.name, "started_at": t0 + 22 * INTERVAL,
              "ended_at": t0 + 49 * INTERVAL, "frame_count": 28, "size_bytes": 1, "path": str(waiting)}  # fmt: skip
    outbox.put("segment", record)
    sweeper = MergeBack(primary, primary.storage_dir, outbox, time.time, segment_seconds=2.0, sweep_interval=0.5)
    assert sweeper.sweep() == 0
    assert outbox.flush(primary.pk) == 1
    assert sweeper.sweep() == 0, "the primary had those moments itself"
    assert not Segment.objects.filter(server=primary, recorded_by__isnull=False).exists()


@pytest.mark.parametrize("covered,expected", [
    ([], True),
    ([(0, 10)], False),
    ([(0, 4.9), (5.1, 10)], False),  # a hole of one frame interval (0.2 s) between two segments
    ([(0, 4), (6, 10)], True),  # two seconds lack
    ([(0, 9.5)], True),
    ([(0.3, 10)], False),  # within the tolerance at the start
    ([(-5, 2), (1, 6), (5.5, 12)], False),
    ([(20, 30)], True),
])  # fmt: skip
def test_a_segment_is_worth_copying_when_the_primary_lacks_part_of_it(covered, expected):
    assert lacks(Span(0, 10), [Span(*span) for span in covered], 2 * INTERVAL) is expected


# -- the whole product: a failover, a failback, then the backup's copy deleted --------------------


@pytest.mark.process
@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_after_failback_the_primary_alone_holds_every_frame_the_backup_recorded(codec, site, tmp_path, simulator,
                                                                                make_camera, agent_process, engine,
                                                                                redis_client):  # fmt: skip
    primary, backup = site["a"], site["b"]
    for server in (primary, backup):
        server.recordings_path = str(tmp_path / server.name)
        server.save()
        server.redundancy.fast_redundancy = True
        server.redundancy.save()
    sim = simulator(1, fps=float(FPS), **({} if codec == "mjpeg" else {"codecs": (codec,), "gop_seconds": 1.0}))
    camera = make_camera(primary, backup, name="gate", stream_url=sim.url(1), codec=codec, fps=FPS)

    def streaming(name):
        return live.read_stream_reports(redis_client, name).get(camera.pk, {}).get("state") == "streaming"

    def placement():
        return CameraPlacement.objects.filter(camera=camera).values_list("state", flat=True).first()

    started = time.monotonic()
    killed = agent_process("srv-a")
    backup_agent = agent_process("srv-b")
    wait_for(lambda: streaming("srv-a"), 30, message="the primary streaming")
    killed.kill()
    wait_for(lambda: placement() == Placement.ON_BACKUP, 20, message="failed over")
    wait_for(lambda: Segment.objects.filter(camera=camera, server=backup).count() >= 2, 20, message="backup records")
    returned = agent_process("srv-a")
    wait_for(lambda: placement() == Placement.ON_PRIMARY, 30, message="failed back")
    wait_for(lambda: not streaming("srv-b"), 10, message="the backup let go")
    on_backup = counters_on(backup, camera)
    assert on_backup, "the backup recorded the failover period"
    wait_for(lambda: not missing(counters_on(primary, camera), min(on_backup), max(on_backup)), 35,
             interval=1.0, message="the backup's recordings merged back")  # fmt: skip
    copies = Segment.objects.filter(camera=camera, server=primary, recorded_by=backup)
    assert copies.exists()
    for process in (returned, backup_agent):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0

    for path in segment_files(backup.storage_dir, camera.pk):  # the backup's copies go
        path.unlink()
    on_primary = counters_on(primary, camera)  # the primary's files only
    assert missing(on_primary, min(on_backup), max(on_backup)) == [], "a frame of the failover period is missing"
    assert all(Path(copy.path).is_file() and Path(copy.path).is_relative_to(primary.storage_dir) for copy in copies)
    log = (tmp_path / "srv-a.log").read_text()
    assert f"event=merge_back_copied camera={camera.pk}" in log and "token=" not in log
    assert time.monotonic() - started < 60
