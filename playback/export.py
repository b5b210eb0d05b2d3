"""One camera's recordings over a time range as one MP4 file, stitched by stream copy, with its manifest.

For an operator handing footage to an investigator this is the chain of custody: the pieces of the
camera's timeline (``playback.timeline``: the active server's video at each moment, the other's where it
has a gap, cuts moved back to keyframes) are read from the agents that hold them (signed HTTP, each
segment checked against the SHA-256 its server computed as it sent it) and their packets, never decoded,
go into one MP4 in time order. A packet's time in the file is its wall time less the start of the file,
so a gap in the recordings stays a gap in the file's time. The manifest beside the file says which
server contributed which span (and who recorded it, for a copy merged back), where the gaps are, the
segments read with their checksums, and the file's own SHA-256.
"""

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
from bisect import bisect_right
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import av
import requests
import urllib3

from playback import media, remote, timeline
from playback.timeline import CUT_TOLERANCE, Piece

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)  # the file's clock: MPEG-TS's own, so no packet time is rounded
TICKS = 90000  # per second
# The codec's parameters are in the first keyframe's packet: no need to read seconds of video to find them.
PROBE = {"probesize": "32", "analyzeduration": "0"}
TS_PACKET = 188
# Near a cut into another server's recording, frames this far either side are matched by their bytes.
OVERLAP = 1.0  # seconds
MATCH = 3  # packets of the next piece that must be the same, in the same order
ROOM_TO_SPARE = 256 << 20  # bytes left free on the exports' disk after a file
PREFETCH = 3  # segments read ahead of the muxer, so the network and the agent's checksum overlap the muxing
WRAP = 1 << 33  # MPEG-TS timestamps wrap at 2^33 ticks (26.5 hours)


Timed = tuple[float, float, av.Packet]  # wall time, decode wall time, packet


class NothingRecorded(ValueError):
    """No server holds any video of the camera over the range."""


class NoRoom(OSError):
    """The disk the file goes to cannot hold it."""


@dataclass
class Contribution:
    """A run of pieces from one server (and one recorder), as the manifest lists it."""

    server: str
    recorded_by: str
    started_at: float
    ended_at: float
    frames: int = 0
    segments: int = 0

    def as_dict(self) -> dict:
        return {"server": self.server, "recorded_by": self.recorded_by, "from": iso(self.started_at),
                "to": iso(self.ended_at), "frames": self.frames, "segments": self.segments}  # fmt: skip


@dataclass
class Fetched:
    """A piece with its segment's bytes, as its server sent them, and their SHA-256 (checked against the server's)."""

    piece: Piece
    segment: object  # the Segment row
    data: bytes
    sha256: str


class Concatenation:
    """The segments' bytes one after the other, read as one MPEG-TS stream by one demuxer: opening a demuxer per
    segment would decode a picture each time just to learn what the first one said."""

    def __init__(self, fetched: Iterator[Fetched]):
        self._fetched = fetched
        self._current, self._at = memoryview(b""), 0
        self.items: list[Fetched] = []
        self.starts: list[int] = []  # where each item's bytes start in the stream
        self.length = 0
        self.error: Exception | None = None

    def read(self, size: int) -> bytes:
        while self._at >= len(self._current):
            try:
                item = next(self._fetched)
            except StopIteration:
                return b""
            except remote.Unreachable as exc:  # raised by the demuxer's caller, not inside FFmpeg's callback
                self.error = exc
                return b""
            data = item.data[: len(item.data) - len(item.data) % TS_PACKET]  # a cut-off tail would shift the next
            self.items.append(item)
            self.starts.append(self.length)
            self.length += len(data)
            self._current, self._at = memoryview(data), 0
        chunk = self._current[self._at : self._at + size]
        self._at += len(chunk)
        return bytes(chunk)

    def index_of(self, position: int) -> int:
        return max(0, bisect_right(self.starts, position) - 1)


@dataclass
class Stitcher:
    """Packets of consecutive pieces into one MP4 track, times strictly increasing."""

    path: Path
    origin: float  # the wall time of the file's time zero
    frame_interval: float
    container: av.container.OutputContainer | None = None
    stream: av.VideoStream | None = None
    codec: str = ""
    last_dts: int | None = None
    frames: int = 0
    first_time: float | None = None
    last_time: float | None = None
    contributions: list[Contribution] = field(default_factory=list)
    held: list[tuple[Piece, float, float, av.Packet, bytes]] = field(default_factory=list)
    written: dict[int, int] = field(default_factory=dict)  # frames in the file by id() of their piece
    shifts: dict[int, int] = field(default_factory=dict)

    def add_ts(self, fetched: Iterator[Fetched]) -> Iterator[tuple[Fetched, int]]:
        """Mux the pieces of MPEG-TS segments; yields each piece with the number of its frames that went in."""
        reader = Concatenation(fetched)
        try:
            source = av.open(reader, format="mpegts", options=PROBE, buffer_size=1 << 20)
        except (av.FFmpegError, OSError) as exc:
            raise reader.error or remote.Unreachable(f"the recordings cannot be read ({type(exc).__name__})") from None
        with source:
            stream = source.streams.video[0]
            self._open(stream, stream.codec_context.name)
            tb, done = float(stream.time_base), 0
            for index, group in groupby(self._positioned(source, stream, reader), key=itemgetter(0)):
                for skipped in reader.items[done:index]:
                    yield skipped, 0  # nothing of it could be read
                item = reader.items[index]
                yield item, self._mux(item.piece, self._ts_timed(item.piece, (p for _, p in group), tb))
                done = index + 1
            if reader.error is not None:
                raise reader.error
            for skipped in reader.items[done:]:
                yield skipped, 0

    def add_mjpeg(self, fetched: Iterator[Fetched]) -> Iterator[tuple[Fetched, int]]:
        for item in fetched:
            try:
                source = av.open(io.BytesIO(item.data), format="mjpeg", options=PROBE)
            except (av.FFmpegError, OSError):
                yield item, 0
                continue
            with source:
                stream = source.streams.video[0]
                if self.container is None:
                    self._open(stream, "mjpeg")
                yield item, self._mux(item.piece, self._mjpeg_timed(item.piece, source.demux(stream)))

    def _open(self, template: av.VideoStream, codec: str) -> None:
        self.container = av.open(str(self.path), "w", format="mp4")
        # The MP4 needs the codec's parameters out of band (avcC, hvcC): from the first piece's stream; the
        # muxer turns the Annex B packets into the MP4's length-prefixed ones as they come.
        self.stream = self.container.add_stream_from_template(template)
        self.stream.time_base = TIME_BASE
        self.codec = codec

    @staticmethod
    def _positioned(source, stream, reader: Concatenation) -> Iterator[tuple[int, av.Packet]]:
        """(index of the piece it came from, packet), in order."""
        for packet in source.demux(stream):
            if packet.size and packet.pts is not None:
                yield reader.index_of(packet.pos), packet

    def _cuts(self, piece: Piece) -> tuple[bool, bool]:
        info = piece.segment
        return piece.cut_start, piece.end < info.ended_at + self.frame_interval - CUT_TOLERANCE

    def _mjpeg_timed(self, piece: Piece, packets) -> Iterator[tuple[float, float, av.Packet]]:
        """(wall time, decode wall time, packet) of the piece's frames: an MJPEG segment's are evenly spread."""
        cut_start, cut_end = self._cuts(piece)
        times = media.frame_times(piece.segment)
        for index, packet in enumerate(p for p in packets if p.size):
            at = times[min(index, len(times) - 1)]
            if (cut_start and at < piece.start - CUT_TOLERANCE) or (cut_end and at >= piece.end + OVERLAP):
                continue
            yield at, at, packet

    def _ts_timed(self, piece: Piece, packets, tb: float) -> Iterator[tuple[float, float, av.Packet]]:
        """(wall time, decode wall time, packet) of the piece's frames in decode order: the segment's first frame
        at its start, the others placed by the camera's timestamps (as ``media.packet_times`` places them)."""
        info = piece.segment
        cut_start, cut_end = self._cuts(piece)
        first, started = None, not cut_start
        for packet in packets:
            first = packet.pts if first is None else first
            at = info.started_at + _ticks(packet.pts - first) * tb
            if not started:
                if not packet.is_keyframe or at < piece.start - CUT_TOLERANCE:
                    continue  # video starts at the keyframe the cut was moved to
                started = True
            if cut_end and at >= piece.end + OVERLAP:  # what may be the same frames as the next piece's
                continue
            decoded = at if packet.dts is None else info.started_at + _ticks(packet.dts - first) * tb
            yield at, decoded, packet

    def _mux(self, piece: Piece, packets: Iterator[Timed]) -> int:
        """Write the piece's frames; returns how many it has in the file so far. Where the piece is cut before the
        end of its segment for another server's recording, its frames near the cut are held back until the next
        piece shows where the same frames begin again (``_join``)."""
        hold_from = piece.end - OVERLAP if self._cuts(piece)[1] else None
        joining, following = bool(self.held), []
        for timed in packets:
            if joining:
                following.append(timed)
                if len(following) == MATCH:
                    self._join(piece, following)
                    joining = False
                continue
            if hold_from is not None and timed[0] >= hold_from:
                if timed[0] < piece.end + OVERLAP:
                    self.held.append((piece, *timed, bytes(timed[2])))
                continue
            self._write(piece, *timed)
        if joining and following:
            self._join(piece, following)
        return self.written.get(id(piece), 0)

    def _join(self, piece: Piece | None, following: list[Timed]) -> None:
        """Two servers recorded the camera's packets by stream copy, so the same frame is the same bytes in both:
        the held frames are written up to the first of those the next piece begins with. Where they are not found
        (the next piece is not the same stream), the cut is by time, as the timeline made it."""
        held, self.held = self.held, []
        wanted = [bytes(packet) for _, _, packet in following]
        keys = [item[4] for item in held]
        start = next((i for i in range(len(keys)) if wanted and keys[i : i + len(wanted)] == wanted[: len(keys) - i]),
                     None)  # fmt: skip
        kept = held[:start] if start is not None else [item for item in held if item[1] < item[0].end]
        for earlier, at, decoded, packet, _ in kept:
            self._write(earlier, at, decoded, packet)
        for at, decoded, packet in following:
            self._write(piece, at, decoded, packet)

    def _write(self, piece: Piece, at: float, decoded: float, packet: av.Packet) -> None:
        pts, dts = round((at - self.origin) * TICKS), round((decoded - self.origin) * TICKS)
        shift = self.shifts.get(id(piece))
        if shift is None:
            # Two servers' clocks (or one camera's and its arrival times) may disagree by a few frames at a
            # boundary: the piece moves later as a whole rather than squeezing its first frames.
            step = round(self.frame_interval * TICKS)
            shift = self.shifts[id(piece)] = max(0, self.last_dts + step - dts) if self.last_dts is not None else 0
        pts, dts = pts + shift, dts + shift
        if self.last_dts is not None and dts <= self.last_dts:
            dts = self.last_dts + 1
        packet.pts, packet.dts = max(pts, dts), dts
        packet.time_base = TIME_BASE
        packet.stream = self.stream
        self.container.mux(packet)
        self.last_dts = dts
        moment = at + shift / TICKS
        self.first_time = moment if self.first_time is None else self.first_time
        self.last_time = moment
        self._credit(piece, moment)
        self.frames += 1
        self.written[id(piece)] = self.written.get(id(piece), 0) + 1
        if self.written[id(piece)] == 1:
            self.contributions[-1].segments += 1

    def _credit(self, piece: Piece, moment: float) -> None:
        info, runs = piece.segment, self.contributions
        if not runs or (runs[-1].server, runs[-1].recorded_by) != (info.server, info.recorded_by):
            runs.append(Contribution(info.server, info.recorded_by, moment, moment))
        runs[-1].ended_at = moment + self.frame_interval
        runs[-1].frames += 1

    def finish(self) -> None:
        """After the last piece: what is still held goes in as the time cut leaves it."""
        held, self.held = self.held, []
        for piece, at, decoded, packet, _ in held:
            if at < piece.end:
                self._write(piece, at, decoded, packet)

    def close(self) -> None:
        container, self.container = self.container, None
        if container is not None:
            container.close()


def _ticks(delta: int) -> int:
    """A difference of MPEG-TS timestamps, across a wrap (or FFmpeg's correction of one) as well."""
    return (delta + (WRAP >> 1)) % WRAP - (WRAP >> 1)


def iso(seconds: float) -> str:
    return timeline.when(seconds).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fetch(segment) -> tuple[bytes, str]:
    """The whole segment and its SHA-256, checked against the one its server computed as it sent it (as
    ``remote.fetch``, with the checksum kept for the manifest and the body read in one go)."""
    try:
        response = requests.get(remote.segment_url(segment), headers={"X-Want-SHA256": "1"}, timeout=remote.TIMEOUT,
                                stream=True)  # fmt: skip
        with response:
            if response.status_code != 200:
                raise remote.Unreachable(f"the video server {segment.server.name} answered {response.status_code}")
            data = response.raw.read(decode_content=True)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise remote.Unreachable(f"the video server {segment.server.name} does not answer "
                                 f"({type(exc).__name__})") from None  # fmt: skip
    digest = hashlib.sha256(data).hexdigest()
    if digest != response.headers.get("X-Content-SHA256"):
        raise remote.Unreachable(f"segment {segment.pk} from {segment.server.name} does not match the checksum its "
                                 "server sent")  # fmt: skip
    return data, digest


def _prefetched(pieces: list[Piece], rows: dict) -> Iterator[Fetched]:
    """Each piece with its segment's bytes, read a few ahead on threads of their own."""

    def get(piece: Piece) -> Fetched:
        segment = rows[piece.segment.id]
        return Fetched(piece, segment, *fetch(segment))

    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="export-fetch") as pool:
        pending = [pool.submit(get, piece) for piece in pieces[:PREFETCH]]
        try:
            for index in range(len(pieces)):
                item = pending[index].result()
                pending[index] = None  # let go of the bytes once muxed
                if index + PREFETCH < len(pieces):
                    pending.append(pool.submit(get, pieces[index + PREFETCH]))
                yield item
        finally:
            for future in pending:
                if future is not None:
                    future.cancel()


def plan(camera, since: datetime, until: datetime) -> tuple[timeline.Timeline, list[Piece], dict]:
    """The camera's timeline over the range, its pieces with cuts at keyframes, and their Segment rows."""
    from recording.models import Segment

    line = timeline.for_camera(camera, since, until)
    ids = {piece.segment.id for piece in line.pieces}
    rows = {row.pk: row for row in Segment.objects.filter(pk__in=ids).select_related("server", "recorded_by")}
    pieces = timeline.cut_at_keyframes(line.pieces, lambda info: media.keyframe_times(rows[info.id]))
    if not pieces:
        raise NothingRecorded(f"Nothing was recorded of {camera.name} between {iso(since.timestamp())} and "
                              f"{iso(until.timestamp())}.")  # fmt: skip
    return line, pieces, rows


Progress = Callable[[float], None]


def export(camera, since: datetime, until: datetime, out_path: Path, progress: Progress | None = None,
           now: Callable[[], datetime] | None = None) -> dict:  # fmt: skip
    """Write the camera's recordings from ``since`` to ``until`` into ``out_path`` (MP4) and its manifest beside it
    (``<name>.json``); returns the manifest. Raises NothingRecorded, or remote.Unreachable when a server that holds
    a piece does not answer (nothing is left at ``out_path`` then)."""
    from django.utils import timezone

    line, pieces, rows = plan(camera, since, until)
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".part")  # a file that is there is a finished one
    origin = min(since.timestamp(), pieces[0].start)
    stitcher = Stitcher(partial, origin, line.frame_interval)
    # One track, one codec: a camera switched to another codec within the range keeps the first one's.
    suffix = pieces[0].segment.suffix
    left_out = [piece for piece in pieces if piece.segment.suffix != suffix]
    kept = [piece for piece in pieces if piece.segment.suffix == suffix]
    total = sum(rows[piece.segment.id].size_bytes or 1 for piece in kept)
    free = shutil.disk_usage(out_path.parent).free
    if free < total + ROOM_TO_SPARE:  # the MP4 is about the size of what it is made of (MPEG-TS costs ~3 % more)
        raise NoRoom(f"The export needs about {total / 1e6:.0f} MB and {out_path.parent} has {free / 1e6:.0f} MB free.")
    done, read = 0, []
    add = stitcher.add_ts if suffix == ".ts" else stitcher.add_mjpeg
    try:
        for item, _ in add(_prefetched(kept, rows)):
            piece = item.piece
            read.append((piece, {"server": piece.server, "name": remote.segment_name(item.segment),
                                 "recorded_by": piece.segment.recorded_by, "sha256": item.sha256, "frames": 0,
                                 "from": iso(piece.start), "to": iso(piece.end)}))  # fmt: skip
            done += item.segment.size_bytes or 1
            if progress is not None:
                progress(min(done / total, 1.0))
        stitcher.finish()
        stitcher.close()
        if not stitcher.frames:
            raise NothingRecorded(f"The recordings of {camera.name} over the range hold no frame that can be read.")
        os.replace(partial, out_path)
    except BaseException:
        with contextlib.suppress(av.FFmpegError, OSError):
            stitcher.close()
        partial.unlink(missing_ok=True)
        raise
    with out_path.open("rb") as file:
        sha256 = hashlib.file_digest(file, "sha256").hexdigest()
    manifest = {
        "camera": {"id": camera.pk, "name": camera.name},
        "range": {"since": iso(since.timestamp()), "until": iso(until.timestamp())},
        "file": {
            "name": out_path.name,
            "size": out_path.stat().st_size,
            "sha256": sha256,
            "starts_at": iso(origin),
        },  # fmt: skip
        "codec": {"hevc": "h265"}.get(stitcher.codec, stitcher.codec),
        "frames": stitcher.frames,
        "first_frame": iso(stitcher.first_time),
        "last_frame": iso(stitcher.last_time),
        "spans": [run.as_dict() for run in stitcher.contributions],
        "gaps": [
            {"from": iso(gap.started_at), "to": iso(gap.ended_at), "seconds": round(gap.seconds, 3)}
            for gap in line.gaps
        ],  # fmt: skip
        "segments": [entry | {"frames": stitcher.written.get(id(piece), 0)} for piece, entry in read],
        "left_out": [
            {
                "server": piece.server,
                "name": remote.segment_name(rows[piece.segment.id]),
                "reason": f"recorded as {piece.segment.suffix.lstrip('.')}, the file holds {stitcher.codec}",
            }
            for piece in left_out
        ],  # fmt: skip
        "generated_at": iso((now or timezone.now)().timestamp()),
    }
    manifest_path(out_path).write_text(json.dumps(manifest, indent=2) + "\n")
    servers = ",".join(dict.fromkeys(run.server for run in stitcher.contributions))
    log.info("camera=%s event=exported frames=%s size=%s servers=%s", camera.pk, stitcher.frames,
             manifest["file"]["size"], servers)  # fmt: skip
    return manifest


def manifest_path(out_path: Path) -> Path:
    return Path(out_path).with_suffix(".json")
