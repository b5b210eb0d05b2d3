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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av

from playback import media, remote, timeline
from playback.timeline import CUT_TOLERANCE, Piece

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)  # the file's clock: MPEG-TS's own, so no packet time is rounded
DEMUXERS = {".ts": "mpegts", ".mjpeg": "mjpeg"}
CODECS = {".mjpeg": "mjpeg"}  # a .ts segment names its codec itself (h264, hevc)
PREFETCH = 3  # segments read ahead of the muxer, so the network and the agent's checksum overlap the muxing
WRAP = 1 << 33  # MPEG-TS timestamps wrap at 2^33 ticks (26.5 hours)


class NothingRecorded(ValueError):
    """No server holds any video of the camera over the range."""


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

    def add(self, piece: Piece, data: bytes) -> int:
        """Mux the frames of ``piece`` from its segment's bytes; returns how many went in."""
        suffix = piece.segment.suffix
        try:
            source = av.open(io.BytesIO(data), format=DEMUXERS[suffix])
        except (av.FFmpegError, OSError) as exc:
            raise remote.Unreachable(f"segment {piece.segment.id} cannot be read ({type(exc).__name__})") from None
        with source:
            if not source.streams.video:
                return 0
            input_stream = source.streams.video[0]
            if self.container is None:
                self._open(input_stream, CODECS.get(suffix) or input_stream.codec_context.name)
            elif (CODECS.get(suffix) or input_stream.codec_context.name) != self.codec:
                log.warning("segment=%s event=export_codec_changed codec=%s", piece.segment.id,
                            input_stream.codec_context.name)  # fmt: skip
                return 0
            packets = self._timed(piece, source, input_stream)
            return self._mux(piece, packets)

    def _open(self, template: av.VideoStream, codec: str) -> None:
        self.container = av.open(str(self.path), "w", format="mp4")
        # The MP4 needs the codec's parameters out of band (avcC, hvcC): from the first piece's stream; the
        # muxer turns the Annex B packets into the MP4's length-prefixed ones as they come.
        self.stream = self.container.add_stream_from_template(template)
        self.stream.time_base = TIME_BASE
        self.codec = codec

    def _timed(self, piece: Piece, source, stream) -> Iterator[tuple[float, float, av.Packet]]:
        """(wall time, decode wall time, packet) of the piece's frames in decode order."""
        info = piece.segment
        cut_start, cut_end = piece.cut_start, piece.end < info.ended_at + self.frame_interval - CUT_TOLERANCE
        if info.suffix == ".mjpeg":
            times = media.frame_times(info)
            for index, packet in enumerate(p for p in source.demux(stream) if p.size):
                at = times[min(index, len(times) - 1)]
                if (cut_start and at < piece.start - CUT_TOLERANCE) or (cut_end and at >= piece.end):
                    continue
                yield at, at, packet
            return
        first, tb, started = None, float(stream.time_base), not cut_start
        for packet in source.demux(stream):
            if not packet.size or packet.pts is None:
                continue
            first = packet.pts if first is None else first
            at = info.started_at + _ticks(packet.pts - first) * tb
            if not started:
                if not packet.is_keyframe or at < piece.start - CUT_TOLERANCE:
                    continue  # video starts at the keyframe the cut was moved to
                started = True
            if cut_end and at >= piece.end:
                continue
            decoded = at if packet.dts is None else info.started_at + _ticks(packet.dts - first) * tb
            yield at, decoded, packet

    def _mux(self, piece: Piece, packets: Iterator[tuple[float, float, av.Packet]]) -> int:
        count, shift = 0, None
        for at, decoded, packet in packets:
            pts, dts = round((at - self.origin) / TIME_BASE), round((decoded - self.origin) / TIME_BASE)
            if shift is None:
                # Two servers' clocks (or one camera's and its arrival times) may disagree by a few frames at a
                # boundary: the piece moves later as a whole rather than squeezing its first frames.
                step = round(self.frame_interval / TIME_BASE)
                shift = max(0, self.last_dts + step - dts) if self.last_dts is not None else 0
            pts, dts = pts + shift, dts + shift
            if self.last_dts is not None and dts <= self.last_dts:
                dts = self.last_dts + 1
            packet.pts, packet.dts = max(pts, dts), dts
            packet.time_base = TIME_BASE
            packet.stream = self.stream
            self.container.mux(packet)
            self.last_dts = dts
            count += 1
            moment = at + shift * float(TIME_BASE)
            self.first_time = moment if self.first_time is None else self.first_time
            self.last_time = moment
            self._credit(piece, moment)
        if count:
            self.contributions[-1].segments += 1
        self.frames += count
        return count

    def _credit(self, piece: Piece, moment: float) -> None:
        info, runs = piece.segment, self.contributions
        if not runs or (runs[-1].server, runs[-1].recorded_by) != (info.server, info.recorded_by):
            runs.append(Contribution(info.server, info.recorded_by, moment, moment))
        runs[-1].ended_at = moment + self.frame_interval
        runs[-1].frames += 1

    def close(self) -> None:
        container, self.container = self.container, None
        if container is not None:
            container.close()


def _ticks(delta: int) -> int:
    return delta + WRAP if delta < -(WRAP >> 1) else delta


def iso(seconds: float) -> str:
    return timeline.when(seconds).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _prefetched(pieces: list[Piece], rows: dict) -> Iterator[tuple[Piece, bytes, str]]:
    """Each piece with its segment's bytes (checked against its server's SHA-256), read a few ahead."""
    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="export-fetch") as pool:
        pending = [pool.submit(remote.fetch, rows[piece.segment.id]) for piece in pieces[:PREFETCH]]
        for index, piece in enumerate(pieces):
            data = pending[index].result()
            pending[index] = None  # let go of the bytes once muxed
            if index + PREFETCH < len(pieces):
                pending.append(pool.submit(remote.fetch, rows[pieces[index + PREFETCH].segment.id]))
            yield piece, data, hashlib.sha256(data).hexdigest()


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
    total = sum(rows[piece.segment.id].size_bytes or 1 for piece in pieces)
    done, read = 0, []
    try:
        for piece, data, digest in _prefetched(pieces, rows):
            frames = stitcher.add(piece, data)
            read.append({"server": piece.server, "name": remote.segment_name(rows[piece.segment.id]),
                         "recorded_by": piece.segment.recorded_by, "sha256": digest, "frames": frames,
                         "from": iso(piece.start), "to": iso(piece.end)})  # fmt: skip
            done += rows[piece.segment.id].size_bytes or 1
            if progress is not None:
                progress(min(done / total, 1.0))
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
        "segments": read,
        "generated_at": iso((now or timezone.now)().timestamp()),
    }
    manifest_path(out_path).write_text(json.dumps(manifest, indent=2) + "\n")
    servers = ",".join(dict.fromkeys(run.server for run in stitcher.contributions))
    log.info("camera=%s event=exported frames=%s size=%s servers=%s", camera.pk, stitcher.frames,
             manifest["file"]["size"], servers)  # fmt: skip
    return manifest


def manifest_path(out_path: Path) -> Path:
    return Path(out_path).with_suffix(".json")
