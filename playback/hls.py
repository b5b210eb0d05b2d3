"""A camera's recordings as one HLS VOD playlist for the browser (hls.js), and each fragment of it.

The playlist lays the camera's timeline over ``[since, until)`` end to end, so that a player's
``currentTime`` is the wall time less ``since`` throughout: one fragment per piece (a stretch of one
segment, ``playback.timeline``), an ``EXT-X-GAP`` fragment for each gap, every fragment stamped with
its wall time (``EXT-X-PROGRAM-DATE-TIME``). hls.js places the first fragment it loads of each
discontinuity sequence by the playlist and the rest by their timestamps, so a discontinuity comes
wherever timestamps do not carry on from the fragment before: another server, a gap, a cut, an MJPEG
fragment (its timestamps are made for it alone), a new connection. An MJPEG piece comes in parts of two
seconds at most, since each is transcoded before the player has any of it.

Video starts only at a keyframe: where ``since`` falls inside a segment the playlist starts at the
segment's first keyframe at or after it, the moment before it listed as a gap, which keeps the
player's clock on the wall clock (a fragment starting at the keyframe before ``since`` would shift
it by up to a GOP).

Fragments come from the segment's video server (``recording.remote``), never from a disk: a whole
segment streamed through as it is; a cut one remuxed by stream copy (from the keyframe at ``from``,
nothing at or after ``until``, timestamps kept); an MJPEG one transcoded to H.264 for the browser,
never stored. A frame's time is as ``playback.media`` reads it: the segment's first packet is its
``started_at``, the others follow by their timestamps (MJPEG: evenly spread).
"""

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import av

from playback import media, timeline
from playback.timeline import CUT_TOLERANCE, Piece, SegmentInfo, Timeline, cut_at_keyframes, segment_info, when
from recording import remote
from recording.segments import JPEG_START

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.apple.mpegurl"
FRAGMENT_TYPE = "video/mp2t"
# Frames of one connection further apart than this many frame intervals are taken for a new connection.
NEW_CONNECTION_FRAMES = 2.0
# An MJPEG piece is played in fragments of this many seconds at most: each is transcoded before the player has it.
MJPEG_FRAGMENT = 2.0
SHORTEST = 0.001  # a fragment shorter than this (seconds) is left out
TIME_TOLERANCE = 1e-6  # the precision of a fragment's from and until in its address
H264_ENCODERS = ("libx264", "libopenh264", "h264_v4l2m2m")
TS_TIME_BASE = Fraction(1, 90000)
CHUNK = 1 << 16


@dataclass(frozen=True)
class Fragment:
    """One entry of the playlist: a piece of a segment from ``start`` for ``duration`` seconds, or a gap."""

    start: float
    duration: float
    piece: Piece | None  # None: a gap, nothing recorded
    discontinuity: bool = False
    cut_start: bool = False
    cut_end: bool = False


def _first_keyframe_from(piece: Piece, moment: float, keyframes: Callable[[SegmentInfo], list[float]]) -> Piece | None:
    times = [t for t in keyframes(piece.segment) if moment - CUT_TOLERANCE <= t < piece.end]
    return Piece(piece.segment, min(times), piece.end) if times else None


def _in_parts(piece: Piece, keyframes: Callable[[SegmentInfo], list[float]]) -> list[Piece]:
    """An MJPEG piece in parts of MJPEG_FRAGMENT seconds at most, cut at its frames (each one a keyframe)."""
    if piece.segment.suffix != ".mjpeg" or piece.end - piece.start <= MJPEG_FRAGMENT + CUT_TOLERANCE:
        return [piece]
    times = [t for t in keyframes(piece.segment) if piece.start + CUT_TOLERANCE < t < piece.end - CUT_TOLERANCE]
    bounds = [piece.start]
    for last, moment in zip([piece.start, *times], [*times, piece.end], strict=True):
        if moment - bounds[-1] > MJPEG_FRAGMENT + CUT_TOLERANCE and last > bounds[-1] + CUT_TOLERANCE:
            bounds.append(last)  # the longest part that fits
    return [Piece(piece.segment, start, end) for start, end in zip(bounds, [*bounds[1:], piece.end], strict=True)]


def plan(line: Timeline, keyframes: Callable[[SegmentInfo], list[float]]) -> list[Fragment]:
    """The playlist's fragments over ``[line.since, line.until)``, end to end (pure but for ``keyframes``: the
    times of a segment's keyframes, read only for segments cut inside)."""
    keyframes = cache(keyframes)
    pieces = cut_at_keyframes(line.pieces, keyframes)
    while pieces and pieces[0].start < line.since - CUT_TOLERANCE:  # the range starts inside a segment
        head = _first_keyframe_from(pieces[0], line.since, keyframes)
        pieces = ([head] if head else []) + pieces[1:]
        if head:
            break
    pieces = [part for piece in pieces for part in _in_parts(piece, keyframes)]
    items: list[Piece | None] = sorted(pieces, key=lambda piece: piece.start)
    starts = [piece.start for piece in items]
    gaps = [(gap.started_at, gap.ended_at) for gap in line.gaps]
    if items and items[0].start > line.since + CUT_TOLERANCE and not any(a <= line.since < b for a, b in gaps):
        gaps.append((line.since, items[0].start))  # before the first keyframe of the range
    for start, _ in gaps:
        starts.append(start)
        items.append(None)
    order = sorted(range(len(items)), key=lambda index: (starts[index], items[index] is not None))
    fragments: list[Fragment] = []
    for position, index in enumerate(order):
        start = starts[index]
        end = starts[order[position + 1]] if position + 1 < len(order) else line.until
        if end - start < SHORTEST:
            continue
        piece = items[index]
        if piece is None:
            fragments.append(Fragment(start, end - start, None))
            continue
        segment, interval = piece.segment, line.frame_interval
        cut_start = piece.cut_start
        cut_end = piece.end <= segment.ended_at + CUT_TOLERANCE
        before = fragments[-1] if fragments else None
        previous = before.piece if before is not None else None
        continues = (
            previous is not None and not before.cut_end and not cut_start
            and (previous.server, previous.segment.recorded_by) == (piece.server, segment.recorded_by)
            and segment.suffix == previous.segment.suffix == ".ts"
            and 0 < segment.started_at - previous.segment.ended_at <= NEW_CONNECTION_FRAMES * interval + CUT_TOLERANCE
        )  # fmt: skip
        fragments.append(Fragment(start, end - start, piece, before is not None and not continues, cut_start, cut_end))
    return fragments


def _pdt(seconds: float) -> str:
    millis = round(seconds * 1000)
    return when(millis / 1000).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def render(fragments: list[Fragment], url: Callable[[Fragment], str]) -> str:
    """The playlist's text; ``url`` names a fragment's address."""
    gaps = any(fragment.piece is None for fragment in fragments)
    longest = max((fragment.duration for fragment in fragments), default=1.0)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{8 if gaps else 6}",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest - CUT_TOLERANCE))}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    first_video = next((f for f in fragments if f.piece is not None), None)
    if first_video is not None and first_video is not fragments[0]:
        # hls.js does not start inside a gap: a player told nothing else starts at the first video.
        lines.append(f"#EXT-X-START:TIME-OFFSET={first_video.start - fragments[0].start:.6f},PRECISE=YES")
    for fragment in fragments:
        if fragment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(fragment.start)}")
        if fragment.piece is None:
            lines.append("#EXT-X-GAP")
        lines += [f"#EXTINF:{fragment.duration:.6f},", url(fragment)]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def keyframes_of(rows: dict) -> Callable[[SegmentInfo], list[float]]:
    """A segment's keyframe times read from its server (``rows``: Segment rows by id). A server that does not
    answer leaves only the segment's start: its video cannot be played now anyway."""

    def keyframes(info: SegmentInfo) -> list[float]:
        try:
            return media.keyframe_times(rows[info.id])
        except remote.Unreachable as exc:
            log.warning("segment=%s server=%s event=keyframes_unreadable reason=%s", info.id, info.server,
                        str(exc).replace(" ", "_"))  # fmt: skip
            return [info.started_at]

    return keyframes


def playlist(camera, since, until, url: Callable[[Fragment], str]) -> str:
    """The camera's playlist from ``since`` to ``until`` (aware datetimes)."""
    from recording.models import Segment

    line = timeline.for_camera(camera, since, until)
    rows = Segment.objects.select_related("server").in_bulk({piece.segment.id for piece in line.pieces})
    return render(plan(line, keyframes_of(rows)), url)


# Fragments -------------------------------------------------------------------------------------------------------


class _Sink:
    """What a muxer writes, taken away chunk by chunk."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def fragment(segment, start: float | None = None, end: float | None = None) -> Iterator[bytes]:
    """The bytes of a segment's fragment for the browser, MPEG-TS, from its video server; raises
    ``remote.Unreachable`` before the first byte when the server does not answer."""
    info = segment_info(segment)
    if info.suffix == ".mjpeg":
        return transcoded(segment, start, end)
    if start is None and end is None:
        return streamed(segment)
    return remuxed(segment, start, end)


def streamed(segment) -> Iterator[bytes]:
    response = remote.open_stream(segment)

    def chunks():
        with response:
            yield from response.iter_content(CHUNK)

    return chunks()


def remuxed(segment, start: float | None, end: float | None) -> Iterator[bytes]:
    """Stream copy of the packets from the last keyframe at or before ``start`` to before ``end``."""
    info = segment_info(segment)
    try:
        source = av.open(remote.segment_url(segment), options=media.OPEN_OPTIONS)
        stream = source.streams.video[0]
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise remote.Unreachable(f"the segment cannot be read ({type(exc).__name__})") from None

    def chunks():
        sink = _Sink()
        output = av.open(sink, "w", format="mpegts")
        copy = output.add_stream_from_template(stream)
        first, pending, written = None, [], False
        try:
            for packet in source.demux(stream):
                if not packet.size or packet.pts is None:
                    continue
                first = packet.pts if first is None else first
                at = info.started_at + float((packet.pts - first) * stream.time_base)
                if end is not None and at >= end - TIME_TOLERANCE:
                    break
                if start is not None and at <= start + CUT_TOLERANCE:  # up to the cut: from its latest keyframe
                    if packet.is_keyframe:
                        pending = [packet]
                    elif pending:
                        pending.append(packet)
                    continue
                if not (pending or written or packet.is_keyframe):
                    continue  # nothing decodable yet
                for item in [*pending, packet]:
                    item.stream = copy
                    output.mux(item)
                pending, written = [], True
                data = sink.take()
                if data:
                    yield data
            for item in pending:  # the range ends before a frame after ``start`` came
                item.stream = copy
                output.mux(item)
            output.close()
            yield sink.take()
        except (av.FFmpegError, OSError) as exc:
            log.warning("segment=%s event=fragment_cut_short reason=%s", segment.pk, type(exc).__name__)
        finally:
            source.close()

    return chunks()


def h264_encoder() -> str:
    """The H.264 encoder PyAV's FFmpeg has: libx264 where it can."""
    for name in H264_ENCODERS:
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
            except (av.FFmpegError, ValueError):
                continue
            return name
    raise RuntimeError("PyAV's FFmpeg has no H.264 encoder")


def jpegs(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The JPEGs of an MJPEG segment's bytes as they arrive (they follow each other, each from its start marker)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        begin = buffer.find(JPEG_START)
        following = buffer.find(JPEG_START, begin + 3) if begin != -1 else -1
        while following != -1:
            yield buffer[begin:following]
            buffer, begin = buffer[following:], 0
            following = buffer.find(JPEG_START, 3)
    begin = buffer.find(JPEG_START)
    if begin != -1:
        yield buffer[begin:]


def transcoded(segment, start: float | None, end: float | None) -> Iterator[bytes]:
    """An MJPEG segment as H.264 in MPEG-TS, for the browser only: a keyframe every second, each frame at its
    time (evenly spread between the segment's first and last), from the frame at ``start`` to before ``end``."""
    info = segment_info(segment)
    times = media.frame_times(info)
    step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1 / max(segment.camera.fps, 1)
    rate = max(1, round(1 / step)) if step > 0 else 1
    response = remote.open_stream(segment)
    encoder = h264_encoder()

    def chunks():
        sink = _Sink()
        output = av.open(sink, "w", format="mpegts")
        video = None
        decoder = av.CodecContext.create("mjpeg", "r")
        try:
            with response:
                for index, jpeg in enumerate(jpegs(response.iter_content(CHUNK))):
                    at = times[index] if index < len(times) else times[-1] + (index - len(times) + 1) * step
                    following = times[index + 1] if index + 1 < len(times) else at + step
                    if start is not None and following <= start + CUT_TOLERANCE:
                        continue  # a later frame is at or before ``start``
                    if end is not None and at >= end - TIME_TOLERANCE:
                        break
                    try:
                        pictures = decoder.decode(av.Packet(jpeg))
                    except av.FFmpegError:
                        continue  # a damaged JPEG: the next one shows
                    for picture in pictures:
                        if video is None:
                            video = _h264_stream(output, encoder, picture.width & ~1, picture.height & ~1, rate)
                        frame = picture.reformat(width=video.width, height=video.height, format="yuv420p")
                        frame.pts = round((at - info.started_at) / TS_TIME_BASE)
                        frame.time_base = TS_TIME_BASE
                        for packet in video.encode(frame):
                            output.mux(packet)
                    data = sink.take()
                    if data:
                        yield data
            if video is not None:
                for packet in video.encode():
                    output.mux(packet)
            output.close()
            yield sink.take()
        except (av.FFmpegError, OSError) as exc:
            log.warning("segment=%s event=fragment_cut_short reason=%s", segment.pk, type(exc).__name__)

    return chunks()


def _h264_stream(output, encoder: str, width: int, height: int, rate: int):
    video = output.add_stream(encoder, rate=rate)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.time_base = TS_TIME_BASE
    video.codec_context.time_base = TS_TIME_BASE
    if encoder == "libx264":
        video.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(rate),
                                       "keyint_min": str(rate), "sc_threshold": "0"}  # fmt: skip
    else:
        video.codec_context.gop_size = rate
    return video
