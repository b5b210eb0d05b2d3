"""Recorded segments: short files of one camera's JPEG frames (an MJPEG stream).

A segment is ``<storage>/<camera id>/<YYYY-MM-DD>/<HHMMSS.mmm>.mjpeg`` (UTC start time).
Every frame is flushed as it is written, so a killed agent loses no frame it had received;
a segment it never closed is found and indexed when the agent starts again.
"""

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".mjpeg"
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


def segment_path(storage: Path, camera_id: int, started_at: float) -> Path:
    start = datetime.fromtimestamp(started_at, UTC)
    return storage / str(camera_id) / f"{start:%Y-%m-%d}" / f"{start:%H%M%S}.{start.microsecond // 1000:03d}{SUFFIX}"


def started_at_of(path: Path) -> float:
    """The start time a segment's name encodes."""
    day = path.parent.name
    clock, millis = path.stem.split(".")
    start = datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H%M%S").replace(tzinfo=UTC)
    return start.timestamp() + int(millis) / 1000


def count_frames(path: Path) -> int:
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


class SegmentWriter:
    """Writes one camera's frames into files of ``length`` seconds; reports each closed file."""

    def __init__(
        self,
        storage: Path,
        camera_id: int,
        server: str,
        length: float,
        on_closed: Callable[[SegmentRecord], None],
    ):
        self.storage = storage
        self.camera_id = camera_id
        self.server = server
        self.length = length
        self.on_closed = on_closed
        self._file = None
        self._path: Path | None = None
        self._started_at = self._last_at = 0.0
        self._frames = self._size = 0

    def write(self, jpeg: bytes, at: float) -> None:
        if self._file is not None and at - self._started_at >= self.length:
            self.close()
        if self._file is None:
            self._open(at)
        self._file.write(jpeg)
        self._file.flush()  # into the OS: survives the agent being killed
        self._frames += 1
        self._size += len(jpeg)
        self._last_at = at

    def _open(self, at: float) -> None:
        path = segment_path(self.storage, self.camera_id, at)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 (kept open across frames, closed in close())
        self._path, self._started_at, self._frames, self._size = path, at, 0, 0

    def abandon(self) -> None:
        """After a write failed (disk full, storage gone): let go of the file, keeping what reached it."""
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError:
            pass
        self._file = None  # the frames written so far are still indexed
        self._finish()

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._finish()

    def _finish(self) -> None:
        record = SegmentRecord(
            self.camera_id, self.server, self._started_at, self._last_at, self._frames, self._size, str(self._path)
        )
        self._file = self._path = None
        if record.frame_count:
            self.on_closed(record)


def unindexed_segments(storage: Path, server: str, known: set[str], now: float, max_age: float) -> list[SegmentRecord]:
    """Segments on disk that no index entry covers: left open by a killed agent, for example."""
    records = []
    if not storage.is_dir():
        return records
    for path in storage.glob(f"*/*/*{SUFFIX}"):
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
