"""RTSP cameras recorded by stream copy: the camera's own H.264 or H.265 packets, never decoded.

``RtspIngest`` reads the camera with PyAV (FFmpeg's RTSP demuxer) over TCP, or UDP where the
camera is set so. The stream's parameters come from the SDP (no long probing), so an open
costs the RTSP handshake and the wait for the first keyframe; a camera with an ONVIF address is
asked for a keyframe as soon as the stream is open (``recording.onvif``, on a thread of its own:
the wait for the camera's own next keyframe goes on meanwhile), which cuts that wait from up to a
GOP to a frame or two where the camera allows it. ``PacketSegmentWriter`` puts
the packets, as they came, into MPEG-TS segments of about ``length`` seconds, each starting
on a keyframe so that it plays alone in any player. Every packet reaches the OS as it is
written: a segment cut short by a killed agent plays up to its last written frame and is
indexed when the agent starts again (``recording.segments.unindexed_segments``).

Pixels are decoded only where they are needed (``KeyframeDecoder``): a snapshot for the live
wall from a keyframe now and then, and every frame for analytics on the camera's primary.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from recording.ingest import IngestWorker
from recording.onvif import KeyframeRequest

log = logging.getLogger(__name__)

SUFFIX = ".ts"
STREAM_COPY_CODECS = ("h264", "hevc")
OPEN_OPTIONS = {"analyzeduration": "0", "probesize": "32"}  # parameters from the SDP, not from seconds of video
# The tables every player needs (PAT, PMT) once a second rather than ten times: MPEG-TS costs 3.1 % of a
# 1080p stream's bytes instead of 4.1 % (its 4-byte header per 188-byte packet alone is 2.1 %).
TS_OPTIONS = {"pat_period": "1", "sdt_period": "5"}
SNAPSHOT_WIDTH = 640  # the live wall's pictures: a tile needs no more


@dataclass(frozen=True)
class VideoPacket:
    """One frame as the camera sent it."""

    packet: av.Packet
    stream: av.VideoStream  # the stream it came from: a new one at each connection
    keyframe: bool
    at: float  # arrival time, seconds since the epoch
    size: int


class RtspIngest(IngestWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        feed = self.feed
        # Its profile is looked up once per worker, then one request per connection.
        self.keyframes = KeyframeRequest(feed.camera_id, feed.onvif_url, feed.stream_url, feed.username,
                                         feed.password) if feed.onvif_url else None  # fmt: skip

    def _ask_keyframe(self) -> None:
        """Ask the camera for a keyframe now, without waiting for its answer (that goes into the stats)."""
        if self.keyframes is not None:
            connection = self.stats.keyframe_asked()
            self.keyframes.send_in_background(
                lambda outcome, seconds: self.stats.keyframe_answered(connection, outcome, seconds)
            )

    def _stream(self) -> bool:
        got_frames = False
        try:
            container = av.open(self.feed.open_url(), options=open_options(self.feed.transport, self.open_timeout_ms,
                                                                            self.read_timeout_ms))  # fmt: skip
        except (av.FFmpegError, OSError) as exc:
            # Never the exception itself: FFmpeg's message names the URL, credentials included.
            self.stats.problem = open_problem(exc)
            log.warning("camera=%s event=open_failed error=%s", self.feed.camera_id, _reason(exc))
            return False
        try:
            if not container.streams.video:
                log.warning("camera=%s event=no_video_stream", self.feed.camera_id)
                return False
            self.stats.opened(self.clock())
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in STREAM_COPY_CODECS:
                log.warning("camera=%s event=codec_not_recorded codec=%s", self.feed.camera_id, codec)
                return False
            self.stats.describe("h265" if codec == "hevc" else codec, stream.codec_context.width,
                                stream.codec_context.height)  # fmt: skip
            self._ask_keyframe()
            for packet in container.demux(stream):
                if self._stopping.is_set():
                    break
                if not packet.size:
                    continue  # the demuxer's end-of-stream marker
                if not got_frames and not packet.is_keyframe:
                    # Joined mid-GOP (a camera already streaming to another viewer): nothing before the
                    # first keyframe can be recorded, and the camera is not "streaming" here until then.
                    continue
                got_frames = True
                item = VideoPacket(packet, stream, bool(packet.is_keyframe), self.clock(), packet.size)
                self.stats.frame(item.at, item.size, item.keyframe)
                self.on_frame(self.feed, item)
            return got_frames
        except (av.FFmpegError, OSError) as exc:
            log.warning("camera=%s event=read_failed error=%s", self.feed.camera_id, _reason(exc))
            return got_frames
        except Exception:
            log.exception("camera=%s event=ingest_error", self.feed.camera_id)
            return got_frames
        finally:
            container.close()


def open_options(transport: str, open_timeout_ms: int, read_timeout_ms: int) -> dict[str, str]:
    """FFmpeg's options for an RTSP camera. The socket timeout is FFmpeg's own (microseconds), not PyAV's
    ``timeout=``: that one calls back into Python, under the GIL, on every I/O wait of every camera, which
    measured here doubled the CPU of reading 1080p streams (0.48 % of a core per camera against 0.26 %)."""
    return {**OPEN_OPTIONS, "rtsp_transport": transport, "timeout": str(max(open_timeout_ms, read_timeout_ms) * 1000)}


def open_problem(exc: Exception) -> str:
    """What an operator is told of a failed open; a camera turning the connection away says so."""
    from recording.models import REFUSED

    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return f"{REFUSED}the camera rejects the credentials"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "the camera has no stream at that path"
    if isinstance(exc, av.error.HTTPOtherClientError):
        # 453 Not Enough Bandwidth, most often: the camera allows no more RTSP sessions at once.
        return f"{REFUSED}the camera turned the RTSP session away (no more sessions allowed at once?)"
    if isinstance(exc, ConnectionRefusedError):
        return "the camera's port refuses connections"
    if isinstance(exc, TimeoutError):
        return "the camera does not answer"
    return f"the stream could not be opened ({_reason(exc)})"


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


class PacketSegmentWriter:
    """Writes one camera's packets into MPEG-TS files of about ``length`` seconds, each from a keyframe."""

    suffix = SUFFIX

    def __init__(self, storage: Path, camera_id: int, server: str, length: float, on_closed: Callable,
                 on_written: Callable[[int], None] | None = None):  # fmt: skip
        from recording.segments import SegmentFile

        self.file = SegmentFile(storage, camera_id, server, SUFFIX, on_closed, on_written)
        self.length = length
        self._container = None
        self._output = None
        self._source = None  # the input stream the open segment copies
        self._last_dts: int | None = None

    def write(self, item: VideoPacket) -> None:
        if self._container is not None and (
            item.stream is not self._source or (item.keyframe and item.at - self.file.started_at >= self.length)
        ):
            self.close()
        if self._container is None:
            if not item.keyframe:
                return  # a segment starts on a keyframe: what comes before it cannot be shown
            self._open(item)
        packet = item.packet
        if packet.dts is None or (self._last_dts is not None and packet.dts <= self._last_dts):
            # The first packet of an RTSP session may have no time yet; the muxer needs increasing times.
            packet.dts = 0 if self._last_dts is None else self._last_dts + 1
        if packet.pts is None or packet.pts < packet.dts:
            packet.pts = packet.dts
        self._last_dts = packet.dts
        packet.stream = self._output
        try:
            self._container.mux(packet)
        except av.FFmpegError as exc:  # a full disk, a storage gone: what the pipeline handles as OSError
            raise OSError(exc.errno, exc.strerror) from exc
        self.file.wrote(item.size, item.at)

    def _open(self, item: VideoPacket) -> None:
        path = self.file.open(item.at)
        # flush_packets: each packet goes to the OS as it is muxed, so a killed agent loses none it had.
        self._container = av.open(str(path), "w", format="mpegts", options=TS_OPTIONS,
                                  container_options={"flush_packets": "1"})  # fmt: skip
        self._output = self._container.add_stream_from_template(item.stream)
        self._source, self._last_dts = item.stream, None

    def abandon(self) -> None:
        """After a write failed (disk full, storage gone): let go of the file, keeping what reached it."""
        if self._container is None:
            return
        try:
            self._container.close()
        except (av.FFmpegError, OSError):
            pass
        self._container = None
        self.file.finish()

    def close(self) -> None:
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            container.close()
        except av.FFmpegError as exc:  # the trailer could not be written: the frames before it still count
            raise OSError(exc.errno, exc.strerror) from exc
        finally:
            self.file.finish()


def count_packets(path: Path) -> int:
    """The frames of a recorded segment, read back by a demuxer; a cut-off tail counts as far as it goes."""
    count = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    count += 1
    except (av.FFmpegError, OSError):
        pass
    return count


def iter_packets(path: Path):
    """The bytes of each frame of a recorded segment, in order."""
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                yield bytes(packet)


class KeyframeDecoder:
    """Pictures from a camera's packets, decoded only when asked for: keyframes for snapshots, or every
    frame (``every_frame``) for analytics, which need the frames in between."""

    def __init__(self, every_frame: bool):
        self.every_frame = every_frame
        self._context = None
        self._source = None
        self._reformatter = av.video.reformatter.VideoReformatter()  # keeps its conversion set up (50 ms)

    def picture(self, item: VideoPacket) -> np.ndarray | None:
        """The decoded BGR picture of ``item``, or None when it is not decoded (or not decodable)."""
        if item.stream is not self._source:
            self._context, self._source = None, item.stream
        if not self.every_frame and not item.keyframe:
            return None
        if self._context is None:
            if not item.keyframe:
                return None
            self._context = av.CodecContext.create(item.stream.codec_context.name, "r")
            self._context.extradata = item.stream.codec_context.extradata
            self._context.thread_count = 1  # no frame threads: a picture comes out of the packet that made it
        try:
            frames = self._context.decode(av.Packet(bytes(item.packet)))
        except av.FFmpegError:
            self._context = None  # start again at the next keyframe
            return None
        finally:
            if not self.every_frame:
                self._context = None  # a snapshot now and then: no decoder and its pictures held between them
        return self._reformatter.reformat(frames[-1], format="bgr24").to_ndarray() if frames else None


def snapshot_jpeg(image: np.ndarray) -> bytes | None:
    """A picture for the live wall: at most ``SNAPSHOT_WIDTH`` wide."""
    height, width = image.shape[:2]
    if width > SNAPSHOT_WIDTH:
        image = cv2.resize(image, (SNAPSHOT_WIDTH, round(height * SNAPSHOT_WIDTH / width)),
                           interpolation=cv2.INTER_AREA)  # fmt: skip
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return encoded.tobytes() if ok else None
