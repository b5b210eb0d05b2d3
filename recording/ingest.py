"""One thread per camera: pull its stream, hand each frame on, keep stream statistics.

An HTTP camera (MJPEG) is read with OpenCV, its JPEGs taken as they come; an RTSP camera
(H.264, H.265) with PyAV, its packets taken as they come for the stream copy
(``recording.streamcopy``). Opening and reading are bounded by FFmpeg's timeouts, so a camera
that never answers or stalls mid-stream costs its own thread a few seconds and nothing else.
A lost stream is reopened with exponential backoff.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlsplit, urlunsplit

import cv2
import numpy as np

from recording.models import StreamState

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 2.0  # a camera back from a reboot is recorded again within this (plus the open and a keyframe)
STATS_WINDOW = 5.0  # seconds of frames behind the fps and bitrate figures


@dataclass(frozen=True)
class CameraFeed:
    """What an agent needs to ingest one camera; kept in memory so ingest survives a database outage."""

    camera_id: int
    name: str
    stream_url: str
    username: str
    password: str
    codec: str
    analytics: tuple[str, ...]  # the modules to run on this server: empty unless it is the camera's primary
    transport: str = "tcp"  # RTSP: tcp (interleaved) or udp
    onvif_url: str = ""  # the camera's ONVIF media service: asked for a keyframe at each connection (RTSP)
    # The camera's low-resolution stream where this server reads it (its primary): analytics and the snapshot
    # come from there. Not compared: a changed sub stream restarts its own reader, not the recording.
    sub_stream_url: str = field(default="", compare=False)

    def open_url(self) -> str:
        """The stream URL with credentials for FFmpeg. Never log it."""
        if not self.username and not self.password:
            return self.stream_url
        parts = urlsplit(self.stream_url)
        userinfo = quote(self.username, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))

    @property
    def over_rtsp(self) -> bool:
        """RTSP streams are read by PyAV and recorded by stream copy; HTTP ones through OpenCV."""
        return urlsplit(self.stream_url).scheme.lower() == "rtsp"

    def sub_feed(self) -> "CameraFeed | None":
        """The sub stream as a feed of its own, with the main stream's credentials: RTSP (H.264, H.265) or,
        over HTTP, MJPEG, as cameras offer it. None without a sub stream. It asks for no keyframe: pictures
        can wait for the next one, and a camera with a single ONVIF profile would force one on the recording."""
        if not self.sub_stream_url:
            return None
        url = self.sub_stream_url
        codec = self.codec if urlsplit(url).scheme.lower() == "rtsp" else "mjpeg"
        return replace(self, stream_url=url, codec=codec, sub_stream_url="", onvif_url="")

    def __repr__(self):  # the dataclass default would print the password
        return f"CameraFeed(camera_id={self.camera_id}, name={self.name!r})"


@dataclass(frozen=True)
class Frame:
    jpeg: bytes  # as received for MJPEG cameras, encoded once otherwise
    image: np.ndarray | None  # None: an MJPEG frame nobody needs the pixels of (``IngestWorker.decode``)
    at: float  # arrival time, seconds since the epoch


class StreamStats:
    """State, last frame time, fps and bitrate over a short sliding window; thread-safe reads."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.state = StreamState.CONNECTING
        self.last_frame_at: float | None = None
        self.since = clock()
        self.stream: dict = {}  # codec and resolution as the camera sends them
        self.connect: dict = {}  # the last connection: seconds from connecting to the open, to the first frame
        self.connections = 0  # opens so far: a keyframe request's answer counts for its own connection only
        self.problem = ""  # why the last connection failed, when it did
        self.on_change: Callable[[], None] | None = None  # called (cheap, under the lock) when the state changes
        # Called (outside the lock, from the ingest thread) at each open with its seconds, and at each connection's
        # first recorded frame with the connection's figures (open_seconds, first_frame_seconds...).
        self.on_opened: Callable[[float], None] | None = None
        self.on_first_frame: Callable[[dict], None] | None = None
        self._window: deque[tuple[float, int]] = deque()
        self._keyframes: deque[float] = deque(maxlen=3)
        self._lock = threading.Lock()

    def opened(self, at: float) -> None:
        """The stream answered (RTSP: the session is set up and the camera's first packet came)."""
        with self._lock:
            self.connect = {"open_seconds": round(at - self.since, 3)}
            self.connections += 1
            seconds = self.connect["open_seconds"]
        if self.on_opened is not None:
            self.on_opened(seconds)

    def keyframe_asked(self) -> int:
        """A keyframe was asked of the camera (ONVIF) for this connection; its number, for the answer."""
        with self._lock:
            self.connect = {**self.connect, "keyframe_request": "asked"}
            return self.connections

    def keyframe_answered(self, connection: int, outcome: str, seconds: float) -> None:
        """How the camera took the request: accepted, refused or failed (no answer), and how long it took."""
        with self._lock:
            if connection == self.connections:
                self.connect = {**self.connect, "keyframe_request": outcome,
                                "keyframe_request_seconds": round(seconds, 3)}  # fmt: skip

    def describe(self, codec: str, width: int, height: int) -> None:
        with self._lock:
            self.stream = {"codec": codec, "width": width, "height": height}

    def frame(self, at: float, size: int, keyframe: bool = False) -> None:
        first_of_connection = None
        with self._lock:
            self.last_frame_at = at
            if keyframe:
                self._keyframes.append(at)
            self._window.append((at, size))
            while self._window and self._window[0][0] < at - STATS_WINDOW:
                self._window.popleft()
            self.problem = ""
            if self.state != StreamState.STREAMING:
                if self.state == StreamState.CONNECTING:  # the first recorded frame (RTSP: a keyframe)
                    first = round(at - self.since, 3)
                    self.connect = {**self.connect, "first_frame_seconds": first}
                    if "open_seconds" in self.connect:  # the wait for the keyframe, once the stream was open
                        self.connect["keyframe_wait_seconds"] = round(first - self.connect["open_seconds"], 3)
                    first_of_connection = dict(self.connect)
                self.state, self.since = StreamState.STREAMING, at
                if self.on_change is not None:
                    self.on_change()
        if first_of_connection is not None and self.on_first_frame is not None:
            self.on_first_frame(first_of_connection)

    def set_state(self, state: str) -> None:
        with self._lock:
            if self.state != state:
                self.state, self.since = state, self.clock()
                self._window.clear()
                self._keyframes.clear()
                if self.on_change is not None:
                    self.on_change()

    def report(self) -> dict:
        with self._lock:
            now = self.clock()
            recent = [(t, size) for t, size in self._window if t >= now - STATS_WINDOW]
            span = (recent[-1][0] - recent[0][0]) if len(recent) > 1 else 0.0
            fps = (len(recent) - 1) / span if span > 0 else 0.0
            kbps = sum(size for _, size in recent[1:]) * 8 / 1000 / span if span > 0 else 0.0
            keys = list(self._keyframes)
            report = {
                "state": str(self.state),
                "since": self.since,
                "last_frame_at": self.last_frame_at,
                "fps": round(fps, 2),
                "bitrate_kbps": round(kbps, 1),
                **self.stream,
                **self.connect,
            }
            if self.problem and self.state != StreamState.STREAMING:
                report["reason"] = self.problem
            if len(keys) > 1:
                report["keyframe_interval"] = round((keys[-1] - keys[0]) / (len(keys) - 1), 2)
            return report


class IngestWorker(threading.Thread):
    """The loop every camera's thread runs: stream, and when the stream is lost, back off and reopen."""

    def __init__(
        self,
        feed: CameraFeed,
        on_frame: Callable[[CameraFeed, Frame], None],
        open_timeout: float,
        read_timeout: float,
        clock: Callable[[], float] = time.time,
        decode: bool = True,
        stream: str = "main",
    ):
        super().__init__(name=f"ingest-{feed.camera_id}" + ("" if stream == "main" else f"-{stream}"), daemon=True)
        self.feed = feed
        self.on_frame = on_frame
        self.decode = decode  # HTTP: decode each picture; else MJPEG frames go on as their JPEGs alone
        self.stream = stream  # "main" (recorded) or "sub" (pictures only)
        self.open_timeout_ms = int(open_timeout * 1000)
        self.read_timeout_ms = int(read_timeout * 1000)
        self.clock = clock
        self.stats = StreamStats(clock)
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stopping.is_set():
            self.stats.set_state(StreamState.CONNECTING)
            if self._stream():
                backoff = BACKOFF_FIRST
            if self._stopping.is_set():
                break
            self.stats.set_state(StreamState.LOST)
            log.warning("camera=%s stream=%s event=stream_lost retry_in=%.1fs", self.feed.camera_id, self.stream,
                        backoff)  # fmt: skip
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _stream(self) -> bool:
        """Read until the stream ends or fails; True when at least one frame came."""
        raise NotImplementedError


class HttpIngest(IngestWorker):
    """An HTTP camera through OpenCV: MJPEG kept as the camera's JPEGs, anything else decoded and encoded once."""

    def _stream(self) -> bool:
        capture = cv2.VideoCapture(
            self.feed.open_url(),
            cv2.CAP_FFMPEG,
            [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                self.open_timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                self.read_timeout_ms,
            ],
        )
        got_frames = False
        try:
            if not capture.isOpened():
                return False
            self.stats.opened(self.clock())
            # MJPEG: take the camera's own JPEGs (exact bitrate, recorded without re-encoding).
            raw = self.feed.codec == "mjpeg" and capture.set(cv2.CAP_PROP_FORMAT, -1)
            while not self._stopping.is_set():
                ok, data = capture.read()
                if not ok or data is None:
                    return got_frames
                frame = self._frame(data, raw)
                if frame is None:
                    log.warning("camera=%s event=undecodable_frame", self.feed.camera_id)
                    return got_frames
                if not got_frames and raw:
                    self.stats.describe("mjpeg", *jpeg_size(frame.jpeg))
                got_frames = True
                self.stats.frame(frame.at, len(frame.jpeg))
                self.on_frame(self.feed, frame)
            return got_frames
        except Exception:
            log.exception("camera=%s event=ingest_error", self.feed.camera_id)
            return got_frames
        finally:
            capture.release()

    def _frame(self, data: np.ndarray, raw: bool) -> Frame | None:
        at = self.clock()
        if raw:
            jpeg = data.tobytes()
            if not self.decode:  # a JPEG's start marker, not its pixels
                return Frame(jpeg, None, at) if jpeg[:2] == b"\xff\xd8" else None
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if image is None:
                return None
            return Frame(jpeg, image, at)
        ok, encoded = cv2.imencode(".jpg", data, [cv2.IMWRITE_JPEG_QUALITY, 90])
        return Frame(encoded.tobytes(), data, at) if ok else None


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """A JPEG's width and height from its frame header, without decoding it; (0, 0) when it has none."""
    index = 2
    while index + 9 <= len(jpeg) and jpeg[index] == 0xFF:
        marker = jpeg[index + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            return int.from_bytes(jpeg[index + 7 : index + 9]), int.from_bytes(jpeg[index + 5 : index + 7])
        index += 2 + int.from_bytes(jpeg[index + 2 : index + 4])
    return 0, 0


def ingest_worker(feed: CameraFeed, on_frame, open_timeout: float, read_timeout: float, clock=time.time,
                  decode: bool = True, stream: str = "main"):  # fmt: skip
    """The ingest for the camera's stream: RTSP by stream copy, HTTP (MJPEG) through OpenCV."""
    if feed.over_rtsp:
        from recording.streamcopy import RtspIngest

        return RtspIngest(feed, on_frame, open_timeout, read_timeout, clock, decode, stream)
    return HttpIngest(feed, on_frame, open_timeout, read_timeout, clock, decode, stream)
