"""Simulated IP cameras on loopback, so everything runs without hardware.

Each camera listens on its own port. An MJPEG camera serves ``/video.mjpg``
(multipart/x-mixed-replace) and ``/snapshot.jpg``; its frames show moving content and carry a
stamp (see ``simulation.stamp``) with the frame counter and capture time. An RTSP camera (H.264 or
H.265) serves ``rtsp://host:port/stream`` from GStreamer's RTSP server in a process of its own
(``simulation.rtsp_server``), its pictures encoded once and replayed (``simulation.loops``), each
frame's identity in an SEI message (``simulation.sei``). The counter follows the clock (frame n is
due at start + n / fps), so every viewer of one camera sees the same numbering. With
``fps_drop_per_viewer`` (percent) a camera lowers its frame rate for each viewer beyond the first, as
some real cameras do: its frames come later, none is skipped (``simulation.pacing``).

A control endpoint switches a camera's behaviour at run time, to stage faults:

- ``streaming``: the normal camera;
- ``stopped``: the port refuses connections and open streams are cut (a dead camera);
- ``stalled``: connections are accepted and then nothing is sent (a broken path);
- ``garbage``: connections get random bytes instead of video.

Each RTSP camera also answers ONVIF media service requests (SOAP 1.2, Media ver10) at
``http://host:<control port>/onvif/<n>/media_service`` (without a control port, on a loopback
port of the ONVIF service's own): GetProfiles (one profile, ``main``), GetStreamUri and
SetSynchronizationPoint, which makes the camera's next frame a keyframe. With
``onvif_credentials`` a request must carry a WS-Security UsernameToken digest of them;
``keyframe_on_request=False`` makes a camera that refuses SetSynchronizationPoint. A stopped
camera does not answer, a stalled one holds the request unanswered.

Only loopback addresses are ever bound, or a test bed's address (``testbed``) in a network namespace with no
default route: the bed's camera host, which nothing beyond the bed can reach.
"""

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np

from simulation.pacing import Pace, viewer_rate
from simulation.stamp import draw_stamp

log = logging.getLogger(__name__)

BOUNDARY = b"frame"
STATES = ("streaming", "stopped", "stalled", "garbage")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def in_test_bed(host: str) -> bool:
    """``host`` is a test bed's address (``testbed.network.BED_NETWORK``) and this process's network namespace has
    no default route: nothing served here can be reached from beyond the bed."""
    from testbed.network import BED_NETWORK

    try:
        if ipaddress.ip_address(host) not in ipaddress.ip_network(BED_NETWORK):
            return False
        routes = Path("/proc/net/route").read_text().splitlines()[1:]
    except (ValueError, OSError):
        return False
    return not any(line.split()[1] == "00000000" for line in routes if len(line.split()) > 1)


CODECS = ("mjpeg", "h264", "h265")
# GStreamer's RTSP server comes with Debian's Python (python3-gi), not with the project's venv.
RTSP_PYTHON = os.environ.get("RTSP_CAMERA_PYTHON", "/usr/bin/python3")
RTSP_PACKAGES = ("python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
                 "gstreamer1.0-plugins-bad")  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent


def background(width: int, height: int) -> np.ndarray:
    """A still gradient, the same for every frame of a camera."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.dstack(
        [(x + y) / 2 % 256, np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width))]
    ).astype(np.uint8)


def scene(backdrop: np.ndarray, label: str, counter: int, fps: float) -> np.ndarray:
    """Frame ``counter``: a block bouncing over the gradient and a caption (the camera, the frame)."""
    image = backdrop.copy()
    height, width = image.shape[:2]
    size = max(8, height // 6)
    span_x, span_y = width - size, height - size
    t = counter / fps
    px = int(abs((t * 0.37 * width) % (2 * span_x) - span_x))
    py = int(abs((t * 0.29 * height) % (2 * span_y) - span_y))
    cv2.rectangle(image, (px, py), (px + size, py + size), (40, 40, 230), -1)
    cv2.putText(
        image, label, (6, height - 8),
        cv2.FONT_HERSHEY_SIMPLEX, max(0.35, height / 500), (255, 255, 255), 1, cv2.LINE_AA,
    )  # fmt: skip
    return image


@dataclass
class SimulatedCamera:
    number: int
    port: int
    width: int = 320
    height: int = 180
    fps: float = 2.0
    quality: int = 80
    fps_drop_per_viewer: float = 0.0  # percent of the frame rate lost for each viewer beyond the first
    host: str = "127.0.0.1"
    state: str = "streaming"
    started: float = field(default_factory=time.time)
    frames_sent: int = 0
    _server: asyncio.AbstractServer | None = None
    _viewers: set = field(default_factory=set)
    _streams: set = field(default_factory=set)  # viewers of /video.mjpg
    _pace: Pace | None = None
    _background: np.ndarray | None = None
    _last: tuple[int, bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/video.mjpg"

    @property
    def pace(self) -> Pace:
        if self._pace is None:
            self._pace = Pace(self.started, self.fps)
        return self._pace

    def frame(self, counter: int) -> bytes:
        """The JPEG of frame ``counter``, encoded once however many viewers there are."""
        if self._last is None or self._last[0] != counter:
            self._last = (counter, self._render(counter))
        return self._last[1]

    def _render(self, counter: int) -> bytes:
        if self._background is None:
            self._background = background(self.width, self.height)
        image = scene(self._background, f"cam {self.number} #{counter}", counter, self.fps)
        captured_ms = int(self.pace.due(counter) * 1000)
        draw_stamp(image, counter, captured_ms)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        assert ok
        return jpeg.tobytes()

    def counter_now(self) -> int:
        return self.pace.counter_at(time.time())

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._viewers):
            writer.close()
        self._viewers.clear()

    async def set_state(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}")
        self.state = state
        if state == "stopped":
            await self.stop()
        else:
            for writer in list(self._viewers):  # viewers of the old behaviour reconnect into the new one
                writer.close()
            self._viewers.clear()
            await self.start()
        log.info("camera=%s port=%s event=simulator_state state=%s", self.number, self.port, state)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._viewers.add(writer)
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            path = request.split(b" ", 2)[1].decode(errors="replace") if request.count(b" ") >= 2 else ""
            if self.state == "stalled":
                await asyncio.sleep(3600)
            elif self.state == "garbage":
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=frame\r\n\r\n")
                while True:
                    writer.write(os.urandom(4096))
                    await writer.drain()
                    await asyncio.sleep(0.1)
            elif path.startswith("/video.mjpg"):
                await self._stream(reader, writer)
            elif path.startswith("/snapshot.jpg"):
                jpeg = self.frame(self.counter_now())
                writer.write(
                    b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg
                )
                await writer.drain()
            else:
                writer.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: end the connection quietly rather than log a cancelled handler
        finally:
            self._viewers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\nConnection: close\r\n"
            b"Content-Type: multipart/x-mixed-replace;boundary=" + BOUNDARY + b"\r\n\r\n"
        )
        self._viewing(writer, True)
        # Completes when the viewer goes (it sends nothing more): its share of the frame rate returns at once.
        gone = asyncio.ensure_future(reader.read())
        try:
            counter = self.counter_now()
            while True:
                jpeg = self.frame(counter)
                writer.write(
                    b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    + jpeg + b"\r\n"
                )  # fmt: skip
                await writer.drain()
                self.frames_sent += 1
                counter += 1
                await asyncio.wait([gone], timeout=max(0.0, self.pace.due(counter) - time.time()))
                if gone.done():
                    return
        finally:
            gone.cancel()
            self._viewing(writer, False)

    def _viewing(self, writer, watching: bool) -> None:
        """A viewer of the stream came or went: the frame rate for this many viewers from now on."""
        (self._streams.add if watching else self._streams.discard)(writer)
        self.pace.change_rate(viewer_rate(self.fps, self.fps_drop_per_viewer / 100, len(self._streams)), time.time())

    def describe(self) -> dict:
        return {"number": self.number, "port": self.port, "url": self.url, "state": self.state,
                "fps": self.fps, "fps_now": self.pace.rate, "resolution": f"{self.width}x{self.height}",
                "viewers": len(self._viewers), "frames_sent": self.frames_sent}  # fmt: skip


@dataclass
class RtspCamera:
    """An H.264 or H.265 camera served by the RTSP camera process; its state is switched there."""

    number: int
    port: int
    codec: str = "h264"
    width: int = 320
    height: int = 180
    fps: float = 2.0
    gop_seconds: float = 2.0  # keyframe interval
    bitrate_kbps: int = 0  # 0: a bitrate fit for the resolution and frame rate
    max_viewers: int = 0  # the most RTSP sessions at once; 0: no limit
    fps_drop_per_viewer: float = 0.0  # percent of the frame rate lost for each session beyond the first
    onvif_credentials: tuple[str, str] | None = None  # ONVIF requests must carry a digest of these
    keyframe_on_request: bool = True  # False: SetSynchronizationPoint is refused, as some cameras do
    host: str = "127.0.0.1"
    started: float = field(default_factory=time.time)
    process: "RtspProcess | None" = None
    last: dict = field(default_factory=dict)
    onvif_port: int | None = None  # set when the simulator's ONVIF service listens

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/stream"

    @property
    def onvif_url(self) -> str | None:
        return f"http://{self.host}:{self.onvif_port}/onvif/{self.number}/media_service" if self.onvif_port else None

    @property
    def state(self) -> str:
        return self.last.get("state", "streaming")

    def loop_spec(self):
        from simulation.loops import LoopSpec

        bitrate = self.bitrate_kbps or max(100, round(self.width * self.height * self.fps * 0.08 / 1000))
        return LoopSpec(self.codec, self.width, self.height, self.fps, max(1, round(self.gop_seconds * self.fps)),
                        bitrate)  # fmt: skip

    def config(self, loop: Path) -> dict:
        return {"number": self.number, "host": self.host, "port": self.port, "codec": self.codec, "fps": self.fps,
                "started": self.started, "loop": str(loop), "max_viewers": self.max_viewers,
                "fps_drop_per_viewer": self.fps_drop_per_viewer}  # fmt: skip

    async def set_state(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}")
        if self.process is None:
            raise ValueError(f"camera {self.number} cannot be served: {self.last.get('error', 'not started')}")
        self.last = await self.process.command({"camera": self.number, "state": state})
        log.info("camera=%s port=%s event=simulator_state state=%s", self.number, self.port, state)

    async def force_keyframe(self) -> None:
        """The camera's next frame is a keyframe (ONVIF's SetSynchronizationPoint)."""
        if self.process is None:
            raise ValueError(f"camera {self.number} is not served")
        await self.process.command({"camera": self.number, "keyframe": True})

    def describe(self) -> dict:
        return {"number": self.number, "port": self.port, "url": self.url, "codec": self.codec, "state": self.state,
                "fps": self.fps, "resolution": f"{self.width}x{self.height}", "gop_seconds": self.gop_seconds,
                "max_viewers": self.max_viewers, "onvif_url": self.onvif_url, **{k: self.last[k] for k in
                ("fps_now", "viewers", "sessions", "refused", "frames_sent", "keyframes_forced")
                if k in self.last}}  # fmt: skip


class RtspProcess:
    """The process that serves every RTSP camera of a simulator (``simulation.rtsp_server``)."""

    def __init__(self, cameras: list[RtspCamera], loops_dir: Path):
        self.cameras = {camera.number: camera for camera in cameras}
        self.loops_dir = loops_dir
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._config: Path | None = None

    async def start(self) -> None:
        from simulation.loops import loop_file

        loops = {}
        for camera in self.cameras.values():
            spec = camera.loop_spec()
            if spec not in loops:  # every camera of the same kind replays one loop, encoded once
                loops[spec] = await asyncio.to_thread(loop_file, spec, self.loops_dir)
        handle, name = tempfile.mkstemp(prefix="rtsp-cameras-", suffix=".json")
        with os.fdopen(handle, "w") as out:
            json.dump({"cameras": [c.config(loops[c.loop_spec()]) for c in self.cameras.values()]}, out)
        self._config = Path(name)
        try:
            self._process = await asyncio.create_subprocess_exec(
                RTSP_PYTHON, "-m", "simulation.rtsp_server", name, cwd=ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise RuntimeError(f"RTSP cameras need {RTSP_PYTHON}: apt-get install {RTSP_PACKAGES}") from exc
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout=30)
        if not line:
            error = (await self._process.stderr.read()).decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"the RTSP cameras did not start ({error[-1] if error else 'no output'}); they need "
                               f"GStreamer's RTSP server: apt-get install {RTSP_PACKAGES}")  # fmt: skip
        self._update(json.loads(line)["ready"])
        self._drain = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        while await self._process.stderr.readline():
            pass  # GStreamer's warnings; read so the pipe never fills

    def _update(self, descriptions: list[dict]) -> None:
        for description in descriptions:
            self.cameras[description["number"]].last = description

    async def command(self, request: dict) -> dict:
        async with self._lock:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            await self._process.stdin.drain()
            answer = json.loads(await asyncio.wait_for(self._process.stdout.readline(), timeout=10))
        if "error" in answer:
            raise ValueError(answer["error"])
        return answer

    async def refresh(self) -> None:
        self._update((await self.command({"describe": True}))["cameras"])

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.stdin.close()  # the cameras go when their simulator does
            try:
                await asyncio.wait_for(self._process.wait(), timeout=5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._config is not None:
            self._config.unlink(missing_ok=True)


MJPEG_OPTIONS = ("width", "height", "fps", "quality", "fps_drop_per_viewer")
RTSP_OPTIONS = ("width", "height", "fps", "gop_seconds", "bitrate_kbps", "max_viewers", "onvif_credentials",
                "keyframe_on_request", "fps_drop_per_viewer")  # fmt: skip


class CameraSimulator:
    """Cameras 1..count on ports base_port..base_port+count-1, plus a control endpoint.

    ``codecs`` is cycled over the cameras: ``("h264", "mjpeg")`` makes odd cameras RTSP H.264
    and even ones MJPEG."""

    def __init__(self, count: int, base_port: int, control_port: int | None = None, host: str = "127.0.0.1",
                 codecs: tuple[str, ...] = ("mjpeg",), loops_dir: Path | None = None,
                 **camera_options):  # fmt: skip
        if host not in LOOPBACK and not in_test_bed(host):
            raise ValueError("the camera simulator serves on loopback addresses only (or in a test bed's namespace)")
        unknown = [codec for codec in codecs if codec not in CODECS] or ([] if codecs else ["(none)"])
        if unknown:
            raise ValueError(f"unknown codec {unknown[0]}; use {', '.join(CODECS)}")
        self.host = host
        self.control_port = control_port
        self.cameras: dict[int, SimulatedCamera | RtspCamera] = {}
        for n in range(1, count + 1):
            codec = codecs[(n - 1) % len(codecs)]
            port = base_port + n - 1
            if codec == "mjpeg":
                options = {k: v for k, v in camera_options.items() if k in MJPEG_OPTIONS}
                self.cameras[n] = SimulatedCamera(number=n, port=port, host=host, **options)
            else:
                options = {k: v for k, v in camera_options.items() if k in RTSP_OPTIONS}
                # Real cameras' keyframes fall at unrelated moments: each camera's GOP starts elsewhere.
                phase = (n * 0.618034) % 1 * options.get("gop_seconds", RtspCamera.gop_seconds)
                self.cameras[n] = RtspCamera(number=n, port=port, host=host, codec=codec, started=time.time() - phase,
                                             **options)  # fmt: skip
        rtsp = [camera for camera in self.cameras.values() if isinstance(camera, RtspCamera)]
        self.rtsp = RtspProcess(rtsp, loops_dir or _default_loops_dir()) if rtsp else None
        for camera in rtsp:
            camera.process = self.rtsp
        self._control = None
        self._onvif = None  # the ONVIF service's own server, when there is no control endpoint

    async def start(self, strict: bool = True) -> None:
        """``strict=False``: RTSP cameras that cannot be served (no GStreamer) are reported, not raised."""
        for camera in self.cameras.values():
            if isinstance(camera, SimulatedCamera):
                await camera.start()
        if self.rtsp:
            try:
                await self.rtsp.start()
            except RuntimeError as exc:
                if strict:
                    raise
                # `make run` on a machine without GStreamer: the other cameras still stream.
                log.error("event=rtsp_cameras_not_started error=%s", exc)
                for camera in self.rtsp.cameras.values():
                    camera.last, camera.process = {"state": "stopped", "error": str(exc)}, None
                self.rtsp = None
        if self.control_port:
            self._control = await asyncio.start_server(self._serve_control, self.host, self.control_port,
                                                       reuse_address=True)  # fmt: skip
        if self.rtsp:  # ONVIF on the control port, or on a port of its own
            onvif_port = self.control_port
            if not onvif_port:
                self._onvif = await asyncio.start_server(self._serve_onvif_only, self.host, 0)
                onvif_port = self._onvif.sockets[0].getsockname()[1]
            for camera in self.rtsp.cameras.values():
                camera.onvif_port = onvif_port
        log.info("event=simulator_started cameras=%s first_port=%s control_port=%s", len(self.cameras),
                 min(c.port for c in self.cameras.values()), self.control_port)  # fmt: skip

    async def stop(self) -> None:
        for camera in self.cameras.values():
            if isinstance(camera, SimulatedCamera):
                await camera.stop()
        if self.rtsp:
            await self.rtsp.stop()
        if self._control:
            self._control.close()
        if self._onvif:
            self._onvif.close()

    async def describe(self) -> list[dict]:
        if self.rtsp:
            await self.rtsp.refresh()
        return [camera.describe() for camera in self.cameras.values()]

    async def _serve_onvif_only(self, reader, writer) -> None:
        await self._serve_control(reader, writer, onvif_only=True)

    async def _serve_control(self, reader, writer, onvif_only: bool = False) -> None:
        """``GET /cameras`` lists states; ``POST /cameras/<n>/<state>`` switches one camera; ``POST
        /onvif/<n>/media_service`` is camera n's ONVIF media service."""
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, path = request.decode(errors="replace").split(" ", 2)[:2]
            parts = [p for p in path.split("/") if p]
            status, body = "404 Not Found", {"error": "use GET /cameras or POST /cameras/<n>/<state>"}
            if len(parts) == 3 and parts[0] == "onvif" and parts[2] == "media_service" and parts[1].isdigit():
                await self._onvif_request(int(parts[1]), method, request, reader, writer)
                return
            if onvif_only:
                body = {"error": "use POST /onvif/<n>/media_service"}
            elif method == "GET" and parts == ["cameras"]:
                status, body = "200 OK", await self.describe()
            elif method == "POST" and len(parts) == 3 and parts[0] == "cameras" and parts[1].isdigit():
                camera = self.cameras.get(int(parts[1]))
                if camera is None:
                    body = {"error": f"no camera {parts[1]}"}
                elif parts[2] not in STATES:
                    status, body = "400 Bad Request", {"error": f"state must be one of {', '.join(STATES)}"}
                else:
                    await camera.set_state(parts[2])
                    status, body = "200 OK", camera.describe()
            payload = json.dumps(body).encode()
            head = f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            writer.write(head.encode() + payload)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _onvif_request(self, number: int, method: str, head: bytes, reader, writer) -> None:
        camera = self.cameras.get(number)
        if not isinstance(camera, RtspCamera) or method != "POST":
            writer.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        length = 0
        for line in head.decode(errors="replace").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if not 0 < length <= 65536:
            raise ValueError("a SOAP request needs a body of at most 64 KiB")
        body = await asyncio.wait_for(reader.readexactly(length), timeout=5)
        if camera.state == "stopped":
            return  # a dead camera answers nothing
        if camera.state == "stalled":
            await asyncio.sleep(60)  # holds the request unanswered
            return
        status, envelope = await onvif_answer(camera, body)
        payload = envelope.encode()
        writer.write(f"HTTP/1.0 {status}\r\nContent-Type: application/soap+xml; charset=utf-8\r\n"
                     f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)  # fmt: skip
        await writer.drain()


# -- ONVIF media service (the operations a recorder needs) ---------------------------------------

SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
SCHEMA_NS = "http://www.onvif.org/ver10/schema"
ERROR_NS = "http://www.onvif.org/ver10/error"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PROFILE_TOKEN = "main"
DIGEST_MAX_AGE = 300  # seconds a UsernameToken's Created may be off from the camera's clock


def soap_envelope(body: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{SOAP_NS}" xmlns:trt="{MEDIA_NS}" '
            f'xmlns:tt="{SCHEMA_NS}" xmlns:ter="{ERROR_NS}"><env:Body>{body}</env:Body></env:Envelope>')  # fmt: skip


def soap_fault(code: str, subcodes: tuple[str, ...], reason: str) -> tuple[str, str]:
    """An HTTP status and a SOAP 1.2 fault: ``code`` is Sender (the request is wrong) or Receiver."""
    sub = ""
    for subcode in reversed(subcodes):
        sub = f"<env:Subcode><env:Value>ter:{subcode}</env:Value>{sub}</env:Subcode>"
    fault = (f"<env:Fault><env:Code><env:Value>env:{code}</env:Value>{sub}</env:Code><env:Reason>"
             f'<env:Text xml:lang="en">{escape(reason)}</env:Text></env:Reason></env:Fault>')  # fmt: skip
    return ("400 Bad Request" if code == "Sender" else "500 Internal Server Error"), soap_envelope(fault)


def digest_valid(security, username: str, password: str) -> bool:
    """A WS-Security UsernameToken with PasswordDigest = Base64(SHA-1(nonce + created + password))."""
    token = security.find(f"{{{WSSE_NS}}}UsernameToken") if security is not None else None
    if token is None:
        return False
    user = token.findtext(f"{{{WSSE_NS}}}Username") or ""
    digest = token.findtext(f"{{{WSSE_NS}}}Password") or ""
    nonce = token.findtext(f"{{{WSSE_NS}}}Nonce") or ""
    created = token.findtext(f"{{{WSU_NS}}}Created") or ""
    try:
        raw_nonce = base64.b64decode(nonce, validate=True)
        at = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return False
    if at.tzinfo is None or abs(time.time() - at.timestamp()) > DIGEST_MAX_AGE:
        return False
    expected = base64.b64encode(hashlib.sha1(raw_nonce + created.encode() + password.encode()).digest()).decode()
    return user == username and digest == expected


async def onvif_answer(camera: RtspCamera, body: bytes) -> tuple[str, str]:
    """The HTTP status and SOAP envelope that answer one media service request."""
    try:
        envelope = ET.fromstring(body)
    except ET.ParseError:
        return soap_fault("Sender", ("WellFormed",), "The request is not well-formed XML.")
    request = envelope.find(f"{{{SOAP_NS}}}Body")
    operation = request[0] if request is not None and len(request) else None
    if operation is None:
        return soap_fault("Sender", ("WellFormed",), "The request has no SOAP 1.2 body.")
    if camera.onvif_credentials and not digest_valid(
        envelope.find(f"{{{SOAP_NS}}}Header/{{{WSSE_NS}}}Security"), *camera.onvif_credentials
    ):
        return soap_fault("Sender", ("NotAuthorized",), "The action requires authorization.")
    name = operation.tag.rpartition("}")[2] if operation.tag.startswith(f"{{{MEDIA_NS}}}") else ""
    token = operation.findtext(f"{{{MEDIA_NS}}}ProfileToken")
    if name in ("GetStreamUri", "SetSynchronizationPoint") and token != PROFILE_TOKEN:
        return soap_fault("Sender", ("InvalidArgVal", "NoProfile"), "The requested profile token does not exist.")
    if name == "GetProfiles":
        encoding = "H264" if camera.codec == "h264" else "H265"
        profile = (f'<trt:Profiles token="{PROFILE_TOKEN}" fixed="true"><tt:Name>main stream</tt:Name>'
                   f'<tt:VideoEncoderConfiguration token="encoder_main"><tt:Name>main</tt:Name>'
                   f"<tt:UseCount>1</tt:UseCount><tt:Encoding>{encoding}</tt:Encoding><tt:Resolution>"
                   f"<tt:Width>{camera.width}</tt:Width><tt:Height>{camera.height}</tt:Height></tt:Resolution>"
                   f"</tt:VideoEncoderConfiguration></trt:Profiles>")  # fmt: skip
        return "200 OK", soap_envelope(f"<trt:GetProfilesResponse>{profile}</trt:GetProfilesResponse>")
    if name == "GetStreamUri":
        uri = (f"<trt:MediaUri><tt:Uri>{escape(camera.url)}</tt:Uri><tt:InvalidAfterConnect>false"
               f"</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
               f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>")  # fmt: skip
        return "200 OK", soap_envelope(f"<trt:GetStreamUriResponse>{uri}</trt:GetStreamUriResponse>")
    if name == "SetSynchronizationPoint":
        if not camera.keyframe_on_request:
            return soap_fault("Receiver", ("ActionNotSupported",), "SetSynchronizationPoint is not supported.")
        await camera.force_keyframe()
        return "200 OK", soap_envelope("<trt:SetSynchronizationPointResponse/>")
    return soap_fault("Receiver", ("ActionNotSupported",), "The camera does not support this action.")


def _default_loops_dir() -> Path:
    """Encoded loops are kept between runs (encoding 1080p takes seconds): under var/ with Django, else /tmp."""
    try:
        from django.conf import settings

        return Path(settings.VAR_DIR) / "camera-loops"
    except Exception:  # no settings: a bare simulator
        return Path(tempfile.gettempdir()) / "camera-loops"
