"""Merge-back: once a camera is back on its primary, the primary copies in what other servers recorded of it
while it could not, so that the primary alone holds the camera's whole archive (as Milestone does).

The primary's agent sweeps now and then, on a thread of its own (a server that does not answer must never
hold up the supervisor, which also takes over cameras). A sweep takes the segments other servers hold of the
cameras this server is primary for and records again (placement on primary), when the server's setting
``merge_back`` is on, and copies those that

- hold a moment this server's own segments (or its copies) lack: a part longer than two frame intervals,
  so that constant mode's second recording is not copied where the primary has its own;
- ended a settle time ago: by then this server's segment of the same moments is closed and indexed, and so
  is the other server's last one;
- are within this server's retention (it would delete them at once otherwise).

Each is fetched from the server that holds it, over signed HTTP (``recording.remote``, never that server's
disk), checked against the SHA-256 that server computed, written under the same name into this server's
storage (fsynced, then renamed into place) and indexed as this server's, with ``recorded_by`` the server
that recorded it. A copy is only ever judged against the index: its own row covers its moments, so it is
not copied again. Nothing is written while the database is away (the sweep waits for the next one), and a
server that does not answer is asked again at the next sweep. The other server keeps its copy until its
own retention.
"""

import hashlib
import logging
import os
import threading
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Q

from cameras.models import Camera
from recording import remote
from recording.models import Segment
from recording.outbox import Outbox
from recording.segments import segment_path, started_at_of
from servers.models import Server

log = logging.getLogger(__name__)

SWEEP_EVERY = 10.0  # seconds between two sweeps
MOST_SEGMENTS_PER_SWEEP = 50
MOST_SECONDS_PER_SWEEP = 20.0  # a sweep stops starting copies after this; the next one goes on
RESCAN_EVERY = 3600.0  # seconds: look at every segment within retention again (one indexed late, say)
GAP_FRAMES = 2  # a part longer than this many frame intervals that the primary lacks is worth a copy
# redundancy.models.Placement.ON_PRIMARY, read through the camera's relation: recording imports nothing above it.
ON_PRIMARY = "on_primary"


@dataclass(frozen=True)
class Span:
    started_at: float
    ended_at: float


def frame_interval(segment: Span, frame_count: int, fps: int) -> float:
    """The longer of the configured interval and the one the segment measured: a camera slower than configured
    leaves gaps between its frames that are no lost moments."""
    measured = (segment.ended_at - segment.started_at) / (frame_count - 1) if frame_count > 1 else 0.0
    return max(1.0 / max(fps, 1), measured)


def lacks(segment: Span, covered: list[Span], tolerance: float) -> bool:
    """Whether some part of ``segment`` longer than ``tolerance`` lies outside every span of ``covered``
    (sorted by start)."""
    reached = segment.started_at  # everything before this is covered, or a hole no longer than the tolerance
    for span in covered:
        if span.ended_at <= reached:
            continue
        if span.started_at >= segment.ended_at:
            break
        if span.started_at - reached > tolerance:
            return True
        reached = max(reached, span.ended_at)
        if reached >= segment.ended_at:
            return False
    return segment.ended_at - reached > tolerance


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _span(row: Segment) -> Span:
    return Span(row.started_at.timestamp(), row.ended_at.timestamp())


class PathTaken(Exception):
    """This server has another file under the copy's name."""


class MergeBack:
    def __init__(
        self,
        server: Server,
        storage: Path,
        outbox: Outbox,
        clock: Callable[[], float],
        *,
        segment_seconds: float,
        sweep_interval: float,
        every: float = SWEEP_EVERY,
        most_segments: int = MOST_SEGMENTS_PER_SWEEP,
        most_seconds: float = MOST_SECONDS_PER_SWEEP,
    ):
        self.server = server
        self.storage = storage
        self.outbox = outbox
        self.clock = clock
        # A segment lasts its length and at most as long again to the next keyframe, then waits for a supervisor
        # pass to be indexed: after this, every segment of this server that covers a moment is in the index.
        self.settle = 2 * segment_seconds + sweep_interval + 1.0
        self.every = every
        self.most_segments = most_segments
        self.most_seconds = most_seconds
        self.swept_at: float | None = None
        self.rescanned_at: float | None = None
        # Per camera, the last index row of the other servers up to which every row is done with (a shortcut
        # only: a row looked at again is judged the same).
        self.done_through: dict[int, int] = {}
        self._failures: dict[str, str] = {}  # server -> the kind of its last failure, logged once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def due(self) -> bool:
        running = self._thread is not None and self._thread.is_alive()
        return not running and (self.swept_at is None or self.clock() - self.swept_at >= self.every)

    def sweep_in_background(self) -> None:
        """One sweep on a thread of its own, unless one still runs."""
        if not self.due:
            return
        self.swept_at = self.clock()
        self._thread = threading.Thread(target=self._sweep_and_close, name=f"merge-back-{self.server.name}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """No copy starts after this; one under way is waited for a while (the thread dies with the agent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _sweep_and_close(self) -> None:
        try:
            self.sweep()
        except Exception:
            log.exception("server=%s event=merge_back_error", self.server.name)
        finally:
            connection.close()  # this thread's own connection

    # -- the sweep ----------------------------------------------------------------------------

    def sweep(self) -> int:
        """Copy in what is due; returns how many segments were copied (0 when the database is away)."""
        now = self.clock()
        self.swept_at = now
        if self.rescanned_at is None or now - self.rescanned_at >= RESCAN_EVERY:
            self.rescanned_at = now
            self.done_through.clear()
        if self._index_behind(now):
            return 0  # this server's own segments are not all indexed: they could cover what looks lacking
        try:
            close_old_connections()
            setting = Server.objects.filter(pk=self.server.pk).values_list("merge_back", "retention_hours").first()
            if setting is None or not setting[0]:
                self.done_through.clear()
                return 0
            cameras = self._cameras_back_on_primary()
            for camera_id in set(self.done_through) - set(cameras):
                del self.done_through[camera_id]  # back on primary later: everything is looked at again
            budget = _Budget(self.clock, self.most_segments, self.most_seconds, self._stop)
            copied = 0
            for camera_id, fps in cameras.items():
                if budget.spent:
                    break
                copied += self._camera(camera_id, fps, now - setting[1] * 3600, now - self.settle, budget)
        except DatabaseError:
            connection.close()
            log.info("server=%s event=merge_back_deferred reason=database", self.server.name)
            return 0
        return copied

    def _index_behind(self, now: float) -> bool:
        for path in self.outbox.pending_paths():
            try:
                if started_at_of(Path(path)) < now - self.settle:
                    return True
            except ValueError:
                continue
        return False

    def _cameras_back_on_primary(self) -> dict[int, int]:
        """This server's cameras that it records again (no placement: nothing moved them, this server runs)."""
        rows = Camera.objects.filter(primary_server=self.server).filter(
            Q(placement__isnull=True) | Q(placement__state=ON_PRIMARY)
        )
        return dict(rows.order_by("pk").values_list("pk", "fps"))

    def _camera(self, camera_id: int, fps: int, since: float, settled_before: float, budget: "_Budget") -> int:
        theirs = list(
            Segment.objects.filter(camera_id=camera_id, ended_at__gte=_when(since),
                                   pk__gt=self.done_through.get(camera_id, 0))
            .exclude(server=self.server)
            .exclude(recorded_by=self.server)
            .select_related("server")
            .order_by("pk")
        )  # fmt: skip
        settled = [row for row in theirs if row.ended_at.timestamp() <= settled_before]
        done = {row.pk for row in settled}  # less those to try again below
        copied_from: dict[str, int] = {}
        if settled:
            covered = self._covered(camera_id, settled)
            tolerance = {row.pk: GAP_FRAMES * frame_interval(_span(row), row.frame_count, fps) for row in settled}
            wanted = [row for row in settled if lacks(_span(row), covered, tolerance[row.pk])]
            for row, outcome in self._copy_all(camera_id, wanted, covered, tolerance, budget):
                if outcome is None:
                    done.discard(row.pk)
                elif outcome:
                    copied_from[row.server.name] = copied_from.get(row.server.name, 0) + 1
        for name, count in copied_from.items():
            log.info("server=%s event=merge_back_copied camera=%s segments=%s from=%s", self.server.name, camera_id,
                     count, name)  # fmt: skip
        for row in theirs:  # the rows done with, up to the first one that is not
            if row.pk not in done:
                break
            self.done_through[camera_id] = row.pk
        return sum(copied_from.values())

    def _covered(self, camera_id: int, rows: list[Segment]) -> list[Span]:
        """This server's segments of the camera over the rows' time, its own and its copies, by start."""
        first = min(row.started_at for row in rows)
        last = max(row.ended_at for row in rows)
        ours = Segment.objects.filter(server=self.server, camera_id=camera_id, ended_at__gte=first,
                                      started_at__lte=last).order_by("started_at")  # fmt: skip
        return [Span(start.timestamp(), end.timestamp()) for start, end in ours.values_list("started_at", "ended_at")]

    def _copy_all(self, camera_id: int, wanted: list[Segment], covered: list[Span], tolerance: dict[int, float],
                  budget: "_Budget"):  # fmt: skip
        """Yields (row, True when copied, False when there is nothing to copy, None to try again later)."""
        listed: dict[str, set[str] | None] = {}
        for row in wanted:
            source = row.server
            if budget.spent or source.name in listed and listed[source.name] is None:
                yield row, None
                continue
            if source.name not in listed:
                listed[source.name] = self._listed(source, camera_id, wanted)
                if listed[source.name] is None:
                    yield row, None
                    continue
            name = "/".join(Path(row.path).parts[-2:])
            if name not in listed[source.name]:
                yield row, False  # that server no longer has it (its retention, a lost disk)
                continue
            if not lacks(_span(row), covered, tolerance[row.pk]):
                yield row, False  # another server's copy of these moments came in meanwhile
                continue
            budget.use()
            try:
                self._copy(row)
            except remote.Unreachable as exc:
                self._failed(
                    source.name, camera_id, "checksum" if isinstance(exc, remote.ChecksumMismatch) else "unreachable"
                )
                listed[source.name] = None
                yield row, None
                continue
            except PathTaken:
                self._failed(source.name, camera_id, "name_taken")
                yield row, False
                continue
            except OSError as exc:
                self._failed(source.name, camera_id, f"storage_{(exc.strerror or type(exc).__name__)}")
                yield row, None
                continue
            self._failures.pop(source.name, None)
            insort(covered, _span(row), key=lambda span: span.started_at)
            yield row, True

    def _listed(self, source: Server, camera_id: int, rows: list[Segment]) -> set[str] | None:
        """The names of the camera's segments ``source`` serves over the rows' time; None when it does not answer."""
        first = min(row.started_at for row in rows if row.server_id == source.pk).timestamp()
        last = max(row.ended_at for row in rows if row.server_id == source.pk).timestamp()
        try:
            return {item["name"] for item in remote.list_segments(source, camera_id, first - 1, last + 1)}
        except (remote.Unreachable, TypeError, KeyError):
            self._failed(source.name, camera_id, "unreachable")
            return None

    def _failed(self, source: str, camera_id: int, kind: str) -> None:
        kind = kind.replace(" ", "_").lower()
        if self._failures.get(source) != kind:  # once per kind, not every ten seconds while it lasts
            log.warning("server=%s event=merge_back_failed camera=%s from=%s reason=%s", self.server.name, camera_id,
                        source, kind)  # fmt: skip
        self._failures[source] = kind

    def _copy(self, row: Segment) -> None:
        """Fetch, check, write and index one segment; raises Unreachable, PathTaken, OSError or DatabaseError."""
        data, _ = remote.fetch(row)  # checked against the SHA-256 its server computed
        original = Path(row.path)
        path = segment_path(self.storage, row.camera_id, started_at_of(original), original.suffix)
        wrote = False
        if path.exists():
            with path.open("rb") as existing:
                if hashlib.file_digest(existing, "sha256").digest() != hashlib.sha256(data).digest():
                    raise PathTaken(str(path))
        else:
            _write_durably(path, data)
            wrote = True
        try:
            Segment.objects.bulk_create(
                [Segment(camera_id=row.camera_id, server=self.server, started_at=row.started_at,
                         ended_at=row.ended_at, frame_count=row.frame_count, size_bytes=len(data), path=str(path),
                         recorded_by_id=row.recorded_by_id or row.server_id)],
                ignore_conflicts=True,
            )  # fmt: skip
        except DatabaseError:
            if wrote:
                path.unlink(missing_ok=True)  # no file without its row: the next sweep copies it again
            raise


def _write_durably(path: Path, data: bytes) -> None:
    """The whole file under its name or none: written aside, flushed to the disk, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(path.name + ".part")  # no segment's suffix: recovery at start never indexes it
    try:
        with aside.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(aside, path)
    except OSError:
        aside.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class _Budget:
    """How much one sweep may still do: a number of copies and a time, and nothing once the agent stops."""

    def __init__(self, clock: Callable[[], float], segments: int, seconds: float, stop: threading.Event):
        self.clock = clock
        self.left = segments
        self.until = clock() + seconds
        self.stop = stop

    @property
    def spent(self) -> bool:
        return self.left <= 0 or self.clock() >= self.until or self.stop.is_set()

    def use(self) -> None:
        self.left -= 1
