"""Test connection: a video server's agent opens a camera's stream once, as it would to record it, and says
what comes: the first picture, the codec, resolution and frame rate the camera really sends (measured over a
short read, not what the camera or its settings claim), or why nothing came, in the operator's words.

The open is ``recording.readiness.open_once`` (the backup readiness check's: ingest's own readers, OpenCV for
HTTP, PyAV for RTSP), bounded by ``TIMEOUT`` for the open and the first keyframe, then ``MEASURE_SECONDS`` or
``MEASURE_FRAMES`` of reading. Nothing is recorded. An HTTP camera's failed open is looked at once more with a
plain HTTP request, because OpenCV says no more than that it failed: a refused port, a 401, a web page.
"""

import base64
import errno
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np
import requests
from django.core.exceptions import ImproperlyConfigured

from recording import signing
from recording.ingest import CameraFeed, jpeg_size
from recording.models import REFUSED
from recording.readiness import SLOW_OPEN, Opening, failure_words, open_once
from utilities import encryption

log = logging.getLogger(__name__)

TIMEOUT = 6.0  # seconds for the open and the first keyframe (an H.264 camera's comes within its GOP)
MEASURE_SECONDS = 2.0  # then this long of frames, at most, to measure the frame rate and bitrate
MEASURE_FRAMES = 50
LONGEST = TIMEOUT + MEASURE_SECONDS + 2.0  # an agent's answer comes within this (the wait's end and the stop)
PICTURE_WIDTH = 1920  # the picture shown; the resolution reported is the camera's own
CREDENTIALS_REFUSED = f"{REFUSED}the camera rejects the credentials"  # what open_problem says of a 401 or 403
CODEC_NAMES = {"h264": "H.264", "h265": "H.265", "mjpeg": "MJPEG"}


@dataclass(frozen=True)
class ProbeSettings:
    """The stream to test, as typed (or stored): what travels from the web application to the agent."""

    stream_url: str
    username: str = ""
    password: str = ""
    codec: str = "h264"
    rtsp_transport: str = "tcp"
    timeout: float = TIMEOUT

    def feed(self, camera_id: int) -> CameraFeed:
        """The camera as the test opens it: as the readiness check does, no ONVIF keyframe request (it would force
        a keyframe on the recording of whoever records it now)."""
        return CameraFeed(camera_id, f"test-{camera_id}", self.stream_url, self.username, self.password, self.codec,
                          (), self.rtsp_transport)  # fmt: skip

    def __repr__(self):  # the dataclass default would print the password
        return f"ProbeSettings(codec={self.codec!r})"


def sealed_settings(settings: ProbeSettings, server_name: str, camera_id: int, lifetime: float = 60.0,
                    clock: Callable[[], float] = time.time) -> bytes:  # fmt: skip
    """The request's body: encrypted with the site's credential keys, for this server and camera, for a minute."""
    claims = {**asdict(settings), "server": server_name, "camera": camera_id, "expires": clock() + lifetime}
    return encryption.encrypt(json.dumps(claims)).encode()


def probe_settings(body: bytes, server_name: str, camera_id: int, clock: Callable[[], float] = time.time
                   ) -> ProbeSettings:  # fmt: skip
    """The settings a request's body carries; ``signing.Refused`` unless it was sealed for this server and camera
    and is still fresh."""
    try:
        claims = json.loads(encryption.decrypt(body.decode("ascii")))
    except (ImproperlyConfigured, UnicodeDecodeError, ValueError):
        raise signing.Refused("bad seal") from None
    if not isinstance(claims, dict) or claims.get("server") != server_name or claims.get("camera") != camera_id:
        raise signing.Refused("made for another server or camera")
    if not isinstance(claims.get("expires"), int | float) or claims["expires"] < clock():
        raise signing.Refused("expired")
    try:
        fields = ProbeSettings.__dataclass_fields__
        settings = ProbeSettings(**{name: claims[name] for name in fields if name in claims})
    except TypeError:
        raise signing.Refused("not a connection test's settings") from None
    if not isinstance(settings.timeout, int | float) or not isinstance(settings.stream_url, str):
        raise signing.Refused("not a connection test's settings")
    return replace(settings, timeout=min(max(float(settings.timeout), 0.5), 2 * TIMEOUT))


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str = ""  # why it failed, in words; never the URL or a credential
    codec: str = ""  # as the stream carries it: h264, h265, mjpeg
    width: int = 0  # of the decoded first picture
    height: int = 0
    fps: float = 0.0  # frames that came over the measured span
    bitrate_kbps: float = 0.0
    frames: int = 0
    measured_seconds: float = 0.0
    first_picture_seconds: float | None = None  # from the start of the open to the first keyframe
    jpeg: bytes = field(default=b"", repr=False)

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES.get(self.codec, self.codec or "unknown")

    @property
    def picture_data_url(self) -> str:
        return f"data:image/jpeg;base64,{base64.b64encode(self.jpeg).decode()}" if self.jpeg else ""

    def as_json(self) -> dict:
        return {**asdict(self), "jpeg": base64.b64encode(self.jpeg).decode()}

    @classmethod
    def from_json(cls, values: dict) -> "ProbeResult":
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        return cls(**{**known, "jpeg": base64.b64decode(values.get("jpeg") or "")})


def probe_stream(feed: CameraFeed, timeout: float = TIMEOUT, measure_seconds: float = MEASURE_SECONDS,
                 clock: Callable[[], float] = time.time) -> ProbeResult:  # fmt: skip
    """Open ``feed`` once, take its first picture and measure what it sends; let go within about
    ``timeout + measure_seconds`` seconds."""
    if not feed.over_rtsp:
        # Over HTTP the camera's own JPEGs are taken (what MJPEG ingest keeps), whatever its codec is set to: what
        # it really sends is then known, and a setting that says otherwise is shown as a difference.
        feed = replace(feed, codec="mjpeg")
    arrivals: list[tuple[float, int]] = []
    picture: list[np.ndarray] = []
    jpegs: list[bytes] = []
    decoder = None
    if feed.over_rtsp:
        from recording.streamcopy import KeyframeDecoder

        decoder = KeyframeDecoder(every_frame=False)

    def take(frame) -> bool:
        if decoder is not None:  # an RTSP packet: the first keyframe that decodes is the picture
            arrivals.append((frame.at, frame.size))
            if not picture and frame.keyframe:
                image = decoder.picture(frame)
                if image is not None:
                    picture.append(image)
        else:  # an MJPEG picture, as the camera sent it
            arrivals.append((frame.at, len(frame.jpeg)))
            if not jpegs:
                jpegs.append(frame.jpeg)
        return len(arrivals) > MEASURE_FRAMES or frame.at - arrivals[0][0] >= measure_seconds

    opening = open_once(feed, timeout, take, clock, more_seconds=measure_seconds)
    if not arrivals:
        return ProbeResult(False, _failure(feed, opening, timeout))
    codec = opening.stats.stream.get("codec", "")
    if decoder is not None:
        if not picture:
            return ProbeResult(False, f"the camera sends {CODEC_NAMES.get(codec, codec)}, but no picture of it "
                                      "could be decoded", codec=codec)  # fmt: skip
        image, jpeg = picture[0], b""
    else:
        jpeg = jpegs[0]
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return ProbeResult(False, "the camera's pictures are not JPEGs that decode (not an MJPEG stream?)")
        codec = codec or "mjpeg"
    height, width = image.shape[:2]
    if decoder is not None or width > PICTURE_WIDTH or jpeg_size(jpeg) != (width, height):
        jpeg = picture_jpeg(image)
    # Timed from the second frame: the first comes as soon as the connection is up, not at the camera's pace.
    paced = arrivals[1:] if len(arrivals) > 2 else arrivals
    span = paced[-1][0] - paced[0][0]
    fps = (len(paced) - 1) / span if span > 0 else 0.0
    kbps = sum(size for _, size in paced[1:]) * 8 / 1000 / span if span > 0 else 0.0
    first = round(max(0.0, opening.first_at - opening.started), 3) if opening.first_at is not None else None
    log.info("camera=%s event=connection_tested codec=%s resolution=%sx%s fps=%.2f", feed.camera_id, codec, width,
             height, fps)  # fmt: skip
    return ProbeResult(True, codec=codec, width=width, height=height, fps=round(fps, 2),
                       bitrate_kbps=round(kbps, 1), frames=len(arrivals), measured_seconds=round(span, 3),
                       first_picture_seconds=first, jpeg=jpeg)  # fmt: skip


def picture_jpeg(image: np.ndarray) -> bytes:
    """The picture shown on the page: the camera's own size, at most ``PICTURE_WIDTH`` wide."""
    height, width = image.shape[:2]
    if width > PICTURE_WIDTH:
        image = cv2.resize(image, (PICTURE_WIDTH, round(height * PICTURE_WIDTH / width)), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return encoded.tobytes() if ok else b""


def _failure(feed: CameraFeed, opening: Opening, timeout: float) -> str:
    words = failure_words(opening, timeout)
    if words == CREDENTIALS_REFUSED:  # RTSP's 401 (recording.streamcopy.open_problem), said as an HTTP camera's
        if feed.username or feed.password:
            return "the camera refuses the user name or password (RTSP 401 or 403)"
        return "the camera asks for a user name and password (RTSP 401 or 403)"
    words = words.removeprefix(REFUSED)
    if not feed.over_rtsp and opening.ended and opening.opened:
        return "the camera's HTTP stream is not MJPEG: its pictures are not JPEGs"
    slow = opening.seconds >= timeout * (1 - SLOW_OPEN)
    if not feed.over_rtsp and opening.ended and not opening.opened and not slow:
        words = http_problem(feed, timeout)
    return words


def http_problem(feed: CameraFeed, timeout: float) -> str:
    """What an HTTP camera's address answers, in words, when OpenCV could not open it."""
    auth = (feed.username, feed.password) if feed.username or feed.password else None
    wait = min(timeout, 3.0)
    session = requests.Session()
    session.trust_env = False  # the camera directly, as ingest reaches it: no proxy from the environment
    try:
        response = session.get(feed.stream_url, auth=auth, stream=True, timeout=(wait, wait), allow_redirects=False)
        if response.status_code == 401 and auth and "digest" in response.headers.get("WWW-Authenticate", "").lower():
            response.close()
            response = session.get(feed.stream_url, auth=requests.auth.HTTPDigestAuth(*auth), stream=True,
                                   timeout=(wait, wait), allow_redirects=False)  # fmt: skip
    except requests.exceptions.SSLError:
        return "the TLS handshake with the camera failed"
    except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout):
        return f"the camera does not answer within {wait:g} s"
    except requests.RequestException as exc:
        return _connection_words(exc)
    finally:
        session.close()
    with response:
        status, kind = response.status_code, response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if status == 401:
        if auth:
            return "the camera refuses the user name or password (HTTP 401)"
        return "the camera asks for a user name and password (HTTP 401)"
    if status == 403:
        return "the camera refuses access to the stream (HTTP 403)"
    if status == 404:
        return "the camera has no stream at that path (HTTP 404)"
    if status >= 300:
        return f"the camera answers HTTP {status}, not a video stream"
    if not kind.startswith(("multipart/", "video/", "image/")):
        return f"the address answers, but not with a video stream (it sends {kind or 'no content type'})"
    return f"the camera answers ({kind}), but what it sends cannot be read as MJPEG pictures"


def _connection_words(exc: Exception) -> str:
    """A failed connection's cause, found in the exception's chain; never its message (it names the URL)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "nothing accepts connections on the camera's port (connection refused)"
        if isinstance(seen, socket.gaierror):
            return "the camera's host name is not known"
        if isinstance(seen, OSError) and seen.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "no route to the camera's address from this server"
        if isinstance(seen, TimeoutError):
            return "the camera does not answer"
        wrapped = getattr(seen, "reason", None) or (seen.args[0] if seen.args else None)  # urllib3's, requests'
        seen = seen.__cause__ or seen.__context__ or (wrapped if isinstance(wrapped, Exception) else None)
    text = str(exc).lower()
    if "refused" in text:
        return "nothing accepts connections on the camera's port (connection refused)"
    if "no route" in text or "unreachable" in text:
        return "no route to the camera's address from this server"
    if "name or service not known" in text or "nodename" in text or "resolve" in text:
        return "the camera's host name is not known"
    return f"the connection to the camera failed ({type(exc).__name__})"
