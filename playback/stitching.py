"""Recorded segments' packets into one MP4 track by stream copy, in time order (what ``playback.export`` writes).

The pieces of a camera's timeline come with their segments' bytes; MPEG-TS segments are read by one demuxer
one after the other, MJPEG ones each by its own. A packet's time in the file is its wall time (the segment's
first frame at the segment's start, the others placed by the camera's timestamps) less the file's start, so a
gap stays a gap; times only ever increase. Where the timeline cuts from one server's recording to another's
of the same moment, the frames near the cut are matched by their bytes, so that each is in the file once.
"""

import io
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import av

from playback import media, timeline
from playback.timeline import CUT_TOLERANCE, Piece
from recording import remote

TIME_BASE = Fraction(1, 90000)  # the file's clock: MPEG-TS's own, so no packet time is rounded
TICKS = 90000  # per second
# The codec's parameters are in the first keyframe's packet: no need to read seconds of video to find them.
PROBE = {"probesize": "32", "analyzeduration": "0"}
TS_PACKET = 188
# Near a cut into another server's recording, frames this far either side are matched by their bytes.
OVERLAP = 1.0  # seconds
MATCH = 3  # packets of the next piece that must be the same, in the same order
WRAP = 1 << 33  # MPEG-TS timestamps wrap at 2^33 ticks (26.5 hours)


Timed = tuple[float, float, av.Packet]  # wall time, decode wall time, packet


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
    last_server: str | None = None  # of the last frame written
    last_bytes: bytes = b""  # the last frame written, as recorded (stream copy: the same frame is the same bytes)

    def add_ts(self, fetched: Iterator[Fetched]) -> Iterator[tuple[Fetched, int]]:
        """Mux the pieces of MPEG-TS segments; yields each piece as it is done with (its frame count so far: frames
        held at a cut go in with the next piece)."""
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
        try:
            for packet in source.demux(stream):
                if packet.size and packet.pts is not None:
                    yield reader.index_of(packet.pos), packet
        except av.FFmpegError as exc:
            raise reader.error or remote.Unreachable(f"the recordings cannot be read ({type(exc).__name__})") from None

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
        data = bytes(packet)
        if id(piece) not in self.written and piece.segment.server != self.last_server and data == self.last_bytes:
            # A failover's seam: the backup's first frame is the primary's last (a camera sends a new connection
            # the frame it has), recorded by both; the file holds it once.
            return
        self.last_server, self.last_bytes = piece.segment.server, data
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
