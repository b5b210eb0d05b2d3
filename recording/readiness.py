"""Backup readiness: before any incident, a backup server checks that it can open each camera it backs
up and read a keyframe, without recording it.

A backup that cannot reach its camera (a firewall between them, credentials that work only from the
primary, a camera out of RTSP sessions) would otherwise be found only when the primary fails. The
agent's checker thread (``BackupReadiness.run``) checks every enabled camera whose backup is this
server, one at a time, each at its own offset within ``BACKUP_CHECK_HOURS`` (a hash of its id spreads
them over the period), and at once when someone asks (``BackupCheck.requested_at``, set by the camera
page and the API; requests go first). A check opens the stream as ingest does (``recording.ingest``:
OpenCV for HTTP, PyAV for RTSP) with a bound of ``BACKUP_CHECK_TIMEOUT_SECONDS`` on the open and the
first keyframe, hands its frames to nobody and writes no segment. A camera this server ingests already
(constant mode, or after a failover) is judged from its own stream: streaming is ready, lost is not.

The result goes to the database (``BackupCheck``, one row per camera and backup) with the
``backup_check_recorded`` signal in the same transaction (the redundancy app makes the events of it).
A database that is away loses that result only: the next check stores its own, and nothing here
touches what the agent records.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction

from cameras.models import Camera
from recording.ingest import CameraFeed, StreamStats, ingest_worker
from recording.models import BackupCheck, StreamState, backup_check_recorded
from servers.models import Server

log = logging.getLogger(__name__)

SLOW_OPEN = 0.2  # an open that failed in the last fifth of the timeout timed out: nobody answered


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str = ""  # why it failed, in the operator's words; never the URL or a credential
    keyframe_seconds: float | None = None


# -- the schedule (pure) ------------------------------------------------------------------------------


def offset(camera_id: int, period: float) -> float:
    """The camera's own moment within each period, in seconds: the same on every agent and every start."""
    digest = hashlib.sha256(f"backup-check:{camera_id}".encode()).digest()
    return int.from_bytes(digest[:8]) / 2**64 * period


def last_slot(camera_id: int, period: float, now: float) -> float:
    """The latest of the camera's check times at or before ``now``."""
    return now - (now - offset(camera_id, period)) % period


def is_due(camera_id: int, period: float, now: float, last_checked: float) -> bool:
    """A check is due once a slot of the camera has come since it was last checked (or first seen)."""
    return last_checked < last_slot(camera_id, period, now)


def due_order(requested: dict[int, float], scheduled: set[int]) -> list[int]:
    """What to check now: the cameras asked for first (oldest request first), then those due by the schedule."""
    first = sorted(requested, key=lambda camera_id: (requested[camera_id], camera_id))
    return first + sorted(scheduled - set(requested))


# -- one check ------------------------------------------------------------------------------------------


def feed_of(camera: Camera) -> CameraFeed:
    """The camera as a check opens it: no analytics, no sub stream, and no ONVIF keyframe request (that would
    force a keyframe on the primary's recording; the wait for the camera's own is what a takeover waits)."""
    return CameraFeed(camera.pk, camera.name, camera.stream_url, camera.username, camera.password, str(camera.codec),
                      (), str(camera.rtsp_transport))  # fmt: skip


@dataclass
class Opening:
    """How one open of a camera's stream went (``open_once``)."""

    stats: StreamStats
    over_rtsp: bool
    ended: bool  # the open or the read failed
    seconds: float  # from the start to the end of the wait
    first_at: float | None = None  # when the first frame (a keyframe) came, by the clock
    started: float = 0.0  # by the clock

    @property
    def opened(self) -> bool:
        return "open_seconds" in self.stats.connect


def open_once(feed: CameraFeed, timeout: float, take: Callable[[object], bool], clock: Callable[[], float] = time.time,
              stop: threading.Event | None = None, *, more_seconds: float = 0.0) -> Opening | None:  # fmt: skip
    """Open the camera as ingest does and hand its frames, from its first keyframe (an MJPEG picture is one), to
    ``take`` until it says it has enough (True); then let go. The first frame must come within ``timeout``
    seconds, the rest within ``more_seconds`` of it; nothing is recorded. None when ``stop`` is set meanwhile
    (the agent is stopping: no result)."""
    first: list[float] = []  # the clock's time of the first frame, and the monotonic one
    enough, ended, taking = threading.Event(), threading.Event(), threading.Lock()

    def on_frame(_feed, frame) -> None:
        with taking:
            if enough.is_set():
                return  # one more frame after the stop: nobody wants it
            if not first:
                first.extend((frame.at, time.monotonic()))
            if take(frame):
                enough.set()
                worker.stop()

    worker = ingest_worker(feed, on_frame, timeout, timeout, clock, decode=False, stream="check")
    # Called under the stats' lock: only flag it. LOST: the open or the read failed (the worker would retry).
    worker.stats.on_change = lambda: worker.stats.state == StreamState.LOST and ended.set()
    started, begun = clock(), time.monotonic()
    worker.start()
    try:
        while not (enough.is_set() or ended.is_set()):
            limit = first[1] + more_seconds if first else begun + timeout
            if time.monotonic() >= limit:
                break
            if stop is not None and stop.is_set():
                return None
            enough.wait(0.05)
    finally:
        worker.stop()  # its thread ends within FFmpeg's own timeout, which is ``timeout``
    with taking:
        enough.set()  # what comes after this is not taken
        return Opening(worker.stats, feed.over_rtsp, ended.is_set() and not first, time.monotonic() - begun,
                       first[0] if first else None, started)  # fmt: skip


def failure_words(opening: Opening, timeout: float) -> str:
    """Why no frame came, in the operator's words; never the URL or a credential."""
    stats = opening.stats
    if opening.ended:
        if stats.problem:  # RTSP: FFmpeg's error, worded (recording.streamcopy.open_problem)
            return stats.problem
        if opening.opened and opening.over_rtsp and not stats.stream:  # ingest describes only what it records
            return "the camera sends video in a codec not recorded here (over RTSP: H.264 and H.265)"
        if opening.opened:
            return "the stream ended before a keyframe"
        if opening.over_rtsp:
            return "the camera's RTSP stream carries no video"
        if opening.seconds >= timeout * (1 - SLOW_OPEN):  # OpenCV says no more than that it failed
            return f"the camera does not answer within {timeout:g} s"
        return "the stream could not be opened (the port refuses connections, or an HTTP error)"
    if opening.opened:
        return f"no keyframe within {timeout:g} s"
    return f"the camera does not answer within {timeout:g} s"


def check_stream(feed: CameraFeed, timeout: float, clock: Callable[[], float] = time.time,
                 stop: threading.Event | None = None) -> CheckResult | None:  # fmt: skip
    """Open the camera, wait for its first keyframe (an MJPEG picture is one), and let go: at most ``timeout``
    seconds. None when ``stop`` is set meanwhile (the agent is stopping: no result)."""
    opening = open_once(feed, timeout, lambda _frame: True, clock, stop)
    if opening is None:
        return None
    if opening.first_at is not None:
        return CheckResult(True, keyframe_seconds=round(max(0.0, opening.first_at - opening.started), 3))
    return CheckResult(False, failure_words(opening, timeout))


def from_own_stream(report: dict) -> CheckResult | None:
    """A camera this server ingests: its own stream answers. None while it connects (no answer yet)."""
    if report.get("state") == StreamState.STREAMING:
        return CheckResult(True, keyframe_seconds=report.get("first_frame_seconds"))
    if report.get("state") == StreamState.LOST:
        return CheckResult(False, report.get("reason") or "this server has lost the camera's stream")
    return None


# -- the agent's checker --------------------------------------------------------------------------------


class BackupReadiness:
    """The agent's part that checks the cameras it backs up; ``run`` is its thread."""

    def __init__(
        self,
        server: Server,
        *,
        ingesting: Callable[[], dict[int, dict]],
        clock: Callable[[], float] = time.time,
        period_hours: float | None = None,
        timeout: float | None = None,
        poll_interval: float | None = None,
    ):
        self.server = server
        self.ingesting = ingesting  # camera id → stream report of the cameras this server ingests now
        self.clock = clock
        self.period = 3600 * (settings.BACKUP_CHECK_HOURS if period_hours is None else period_hours)
        self.timeout = settings.BACKUP_CHECK_TIMEOUT_SECONDS if timeout is None else timeout
        self.poll_interval = settings.BACKUP_CHECK_POLL_SECONDS if poll_interval is None else poll_interval
        self._checked: dict[int, float] = {}  # when this checker last checked each camera (a store may have failed)
        self._first_seen: dict[int, float] = {}  # a camera never checked waits for its slot, not for a burst at start

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check_due(stop)
            except Exception:  # never the agent's recording: this thread only logs and tries again
                log.exception("server=%s event=backup_check_error", self.server.name)
                connection.close()
            stop.wait(self.poll_interval)
        connection.close()  # this thread's own connection

    def check_due(self, stop: threading.Event | None = None) -> int:
        """Check every camera due now (asked for first); returns how many were checked."""
        try:
            close_old_connections()
            mine = Camera.objects.filter(backup_server=self.server, enabled=True)
            backed_up = list(mine.values_list("pk", flat=True))  # ids only: no credentials decrypted every poll
            checks = BackupCheck.objects.filter(server=self.server, camera_id__in=backed_up)
            rows = {row.camera_id: row for row in checks}
        except DatabaseError:
            connection.close()
            return 0  # nothing to read the cameras or the requests from, nor to store a result in
        now = self.clock()
        requested = {pk: row.requested_at.timestamp() for pk, row in rows.items() if row.requested_at is not None}
        scheduled = set()
        for pk in backed_up:
            row = rows.get(pk)
            last = max(row.checked_at.timestamp() if row and row.checked_at else 0.0, self._checked.get(pk, 0.0))
            if not last:
                last = self._first_seen.setdefault(pk, now)
            if is_due(pk, self.period, now, last):
                scheduled.add(pk)
        due = due_order(requested, scheduled)
        if not due:
            return 0
        try:
            cameras = Camera.objects.in_bulk(due)  # whole cameras (their credentials) only when one is due
        except DatabaseError:
            connection.close()
            return 0
        done = 0
        ingesting = self.ingesting()
        for pk in due:
            if stop is not None and stop.is_set():
                break
            camera = cameras.get(pk)
            if camera is None:
                continue  # removed meanwhile
            if pk in ingesting:
                result = from_own_stream(ingesting[pk])
            else:
                result = check_stream(feed_of(camera), self.timeout, self.clock, stop)
            if result is None:
                continue  # asked again at the next pass
            self._checked[pk] = self.clock()
            self.store(camera, result, rows.get(pk))
            done += 1
        return done

    def store(self, camera: Camera, result: CheckResult, seen: BackupCheck | None) -> None:
        """The result and its episode's event in one transaction; a request made during the check stays."""
        at = datetime.fromtimestamp(self.clock(), UTC)
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "camera=%s server=%s event=backup_checked ok=%s detail=%r keyframe_seconds=%s", camera.pk,
                self.server.name, result.ok, result.detail, result.keyframe_seconds)  # fmt: skip
        try:
            with transaction.atomic():
                check, _ = BackupCheck.objects.select_for_update().get_or_create(camera=camera, server=self.server)
                was_ok = check.ok
                check.checked_at, check.ok, check.detail = at, result.ok, result.detail[:200]
                check.keyframe_seconds = result.keyframe_seconds
                if check.requested_at is not None and seen is not None and check.requested_at == seen.requested_at:
                    check.requested_at = None
                check.save()
                backup_check_recorded.send(sender=BackupCheck, check=check, was_ok=was_ok)
        except DatabaseError:
            connection.close()
            log.warning("camera=%s server=%s event=backup_check_not_stored", camera.pk, self.server.name)
