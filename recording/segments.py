"""Recorded segments: short files of one camera's frames, as the camera sent them.

A segment is ``<storage>/<camera id>/<YYYY-MM-DD>/<HHMMSS.mmm><suffix>`` (UTC start time):
``.mjpeg`` for an MJPEG camera (its JPEGs one after the other, written here), ``.ts`` for an
H.264 or H.265 camera (its packets in MPEG-TS, ``recording.streamcopy``). Every frame is
flushed as it is written, so a killed agent loses no frame it had received; a segment it
never closed is found and indexed when the agent starts again.
"""

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".mjpeg"
SUFFIXES = (".mjpeg", ".ts")
JPEG_START = b"\xff\xd8\xff"


@dataclass(frozen=True)
class SegmentRecord:
    camera_id: int
    server: str
    started_at: float
    ended_at: float
    frame_count: int
    size_bytes: int
    path: str

    def as_dict(self) -> dict:
        return asdict(self)


def segment_path(storage: Path, camera_id: int, started_at: float, suffix: str = SUFFIX) -> Path:
    start = datetime.fromtimestamp(started_at, UTC)
    return storage / str(camera_id) / f"{start:%Y-%m-%d}" / f"{start:%H%M%S}.{start.microsecond // 1000:03d}{suffix}"


def started_at_of(path: Path) -> float:
    """The start time a segment's name encodes."""
    day = path.parent.name
    clock, millis = path.stem.split(".")
    start = datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H%M%S").replace(tzinfo=UTC)
    return start.timestamp() + int(millis) / 1000


def count_frames(path: Path) -> int:
    if path.suffix == ".ts":
        from recording.streamcopy import count_packets

        return count_packets(path)
    return path.read_bytes().count(JPEG_START)


def iter_jpegs(path: Path) -> Iterator[bytes]:
    """The frames of a segment as JPEG bytes, in order."""
    data = path.read_bytes()
    starts = []
    index = data.find(JPEG_START)
    while index != -1:
        starts.append(index)
        index = data.find(JPEG_START, index + 3)
    for begin, end in zip(starts, [*starts[1:], len(data)], strict=True):
        yield data[begin:end]


class SegmentFile:
    """The bookkeeping of one camera's segment files, whatever their format: name, frames, bytes, times;
    reports each finished file."""

    def __init__(self, storage: Path, camera_id: int, server: str, suffix: str,
                 on_closed: Callable[[SegmentRecord], None],
                 on_written: Callable[[int], None] | None = None):  # fmt: skip
        self.storage = storage
        self.camera_id = camera_id
        self.server = server
        self.suffix = suffix
        self.on_closed = on_closed
        self.on_written = on_written  # each frame's bytes once written (the agent's counters)
        self.path: Path | None = None
        self.started_at = self.last_at = 0.0
        self.frames = self.size = 0

    def open(self, at: float) -> Path:
        path = segment_path(self.storage, self.camera_id, at, self.suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.started_at, self.last_at, self.frames, self.size = path, at, at, 0, 0
        return path

    def wrote(self, size: int, at: float) -> None:
        self.frames += 1
        self.size += size
        self.last_at = at
        if self.on_written is not None:
            self.on_written(size)

    def finish(self) -> None:
        record = SegmentRecord(self.camera_id, self.server, self.started_at, self.last_at, self.frames, self.size,
                               str(self.path))  # fmt: skip
        self.path = None
        if record.frame_count:
            self.on_closed(record)


class SegmentWriter:
    """Writes one camera's JPEG frames into files of ``length`` seconds."""

    suffix = SUFFIX

    def __init__(self, storage: Path, camera_id: int, server: str, length: float,
                 on_closed: Callable[[SegmentRecord], None],
                 on_written: Callable[[int], None] | None = None):  # fmt: skip
        self.file = SegmentFile(storage, camera_id, server, SUFFIX, on_closed, on_written)
        self.length = length
        self._file = None

    def write(self, jpeg: bytes, at: float) -> None:
        if self._file is not None and at - self.file.started_at >= self.length:
            self.close()
        if self._file is None:
            self._file = open(self.file.open(at), "ab")  # noqa: SIM115 (kept open across frames, closed in close())
        self._file.write(jpeg)
        self._file.flush()  # into the OS: survives the agent being killed
        self.file.wrote(len(jpeg), at)

    def abandon(self) -> None:
        """After a write failed (disk full, storage gone): let go of the file, keeping what reached it."""
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError:
            pass
        self._file = None  # the frames written so far are still indexed
        self.file.finish()

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self.file.finish()


def unindexed_segments(storage: Path, server: str, known: set[str], now: float, max_age: float) -> list[SegmentRecord]:
    """Segments on disk that no index entry covers: left open by a killed agent, for example."""
    records = []
    if not storage.is_dir():
        return records
    for path in (path for suffix in SUFFIXES for path in storage.glob(f"*/*/*{suffix}")):
        if str(path) in known or not path.parent.parent.name.isdigit():
            continue
        try:
            started = started_at_of(path)
            stat = path.stat()
        except (ValueError, OSError):
            continue
        if now - stat.st_mtime > max_age:
            continue
        frames = count_frames(path)
        if frames:
            records.append(
                SegmentRecord(
                    int(path.parent.parent.name), server, started, stat.st_mtime, frames, stat.st_size, str(path)
                )  # fmt: skip
            )
    if records:
        log.info("server=%s event=segments_recovered count=%s", server, len(records))
    return records


def remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
