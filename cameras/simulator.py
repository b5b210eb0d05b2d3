"""Simulated IP cameras on loopback, so everything runs without hardware.

Each camera listens on its own port. An MJPEG camera serves ``/video.mjpg``
(multipart/x-mixed-replace) and ``/snapshot.jpg``; its frames show moving content and carry a
stamp (see ``cameras.stamp``) with the frame counter and capture time. An RTSP camera (H.264 or
H.265) serves ``rtsp://host:port/stream`` from GStreamer's RTSP server in a process of its own
(``cameras.rtsp_server``), its pictures encoded once and replayed (``cameras.loops``), each
frame's identity in an SEI message (``cameras.sei``). The counter follows the clock (frame n is
due at start + n / fps), so every viewer of one camera sees the same numbering.

A control endpoint switches a camera's behaviour at run time, to stage faults:

- ``streaming``: the normal camera;
- ``stopped``: the port refuses connections and open streams are cut (a dead camera);
- ``stalled``: connections are accepted and then nothing is sent (a broken path);
- ``garbage``: connections get random bytes instead of video.

Only loopback addresses are ever bound.
"""

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cameras.stamp import draw_stamp

log = logging.getLogger(__name__)

BOUNDARY = b"frame"
STATES = ("streaming", "stopped", "stalled", "garbage")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
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
    host: str = "127.0.0.1"
    state: str = "streaming"
    started: float = field(default_factory=time.time)
    frames_sent: int = 0
    _server: asyncio.AbstractServer | None = None
    _viewers: set = field(default_factory=set)
    _background: np.ndarray | None = None
    _last: tuple[int, bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/video.mjpg"

    def frame(self, counter: int) -> bytes:
        """The JPEG of frame ``counter``, encoded once however many viewers there are."""
        if self._last is None or self._last[0] != counter:
            self._last = (counter, self._render(counter))
        return self._last[1]

    def _render(self, counter: int) -> bytes:
        if self._background is None:
            self._background = background(self.width, self.height)
        image = scene(self._background, f"cam {self.number} #{counter}", counter, self.fps)
        captured_ms = int((self.started + counter / self.fps) * 1000)
        draw_stamp(image, counter, captured_ms)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        assert ok
        return jpeg.tobytes()

    def counter_now(self) -> int:
        return int((time.time() - self.started) * self.fps)

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
                await self._stream(writer)
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

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\nConnection: close\r\n"
            b"Content-Type: multipart/x-mixed-replace;boundary=" + BOUNDARY + b"\r\n\r\n"
        )
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
            due = self.started + counter / self.fps
            await asyncio.sleep(max(0.0, due - time.time()))

    def describe(self) -> dict:
        return {"number": self.number, "port": self.port, "url": self.url, "state": self.state,
                "fps": self.fps, "resolution": f"{self.width}x{self.height}", "viewers": len(self._viewers),
                "frames_sent": self.frames_sent}  # fmt: skip


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
    host: str = "127.0.0.1"
    started: float = field(default_factory=time.time)
    process: "RtspProcess | None" = None
    last: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/stream"

    @property
    def state(self) -> str:
        return self.last.get("state", "streaming")

    def loop_spec(self):
        from cameras.loops import LoopSpec

        bitrate = self.bitrate_kbps or max(100, round(self.width * self.height * self.fps * 0.08 / 1000))
        return LoopSpec(self.codec, self.width, self.height, self.fps, max(1, round(self.gop_seconds * self.fps)),
                        bitrate)  # fmt: skip

    def config(self, loop: Path) -> dict:
        return {"number": self.number, "host": self.host, "port": self.port, "codec": self.codec, "fps": self.fps,
                "started": self.started, "loop": str(loop), "max_viewers": self.max_viewers}  # fmt: skip

    async def set_state(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}")
        if self.process is None:
            raise ValueError(f"camera {self.number} cannot be served: {self.last.get('error', 'not started')}")
        self.last = await self.process.command({"camera": self.number, "state": state})
        log.info("camera=%s port=%s event=simulator_state state=%s", self.number, self.port, state)

    def describe(self) -> dict:
        return {"number": self.number, "port": self.port, "url": self.url, "codec": self.codec, "state": self.state,
                "fps": self.fps, "resolution": f"{self.width}x{self.height}", "gop_seconds": self.gop_seconds,
                "max_viewers": self.max_viewers, **{k: self.last[k] for k in
                ("viewers", "sessions", "refused", "frames_sent") if k in self.last}}  # fmt: skip


class RtspProcess:
    """The process that serves every RTSP camera of a simulator (``cameras.rtsp_server``)."""

    def __init__(self, cameras: list[RtspCamera], loops_dir: Path):
        self.cameras = {camera.number: camera for camera in cameras}
        self.loops_dir = loops_dir
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._config: Path | None = None

    async def start(self) -> None:
        from cameras.loops import loop_file

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
                RTSP_PYTHON, "-m", "cameras.rtsp_server", name, cwd=ROOT,
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


MJPEG_OPTIONS = ("width", "height", "fps", "quality")
RTSP_OPTIONS = ("width", "height", "fps", "gop_seconds", "bitrate_kbps", "max_viewers")


class CameraSimulator:
    """Cameras 1..count on ports base_port..base_port+count-1, plus a control endpoint.

    ``codecs`` is cycled over the cameras: ``("h264", "mjpeg")`` makes odd cameras RTSP H.264
    and even ones MJPEG."""

    def __init__(self, count: int, base_port: int, control_port: int | None = None, host: str = "127.0.0.1",
                 codecs: tuple[str, ...] = ("mjpeg",), loops_dir: Path | None = None,
                 **camera_options):  # fmt: skip
        if host not in LOOPBACK:
            raise ValueError("the camera simulator serves on loopback addresses only")
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

    async def describe(self) -> list[dict]:
        if self.rtsp:
            await self.rtsp.refresh()
        return [camera.describe() for camera in self.cameras.values()]

    async def _serve_control(self, reader, writer) -> None:
        """``GET /cameras`` lists states; ``POST /cameras/<n>/<state>`` switches one camera."""
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, path = request.decode(errors="replace").split(" ", 2)[:2]
            parts = [p for p in path.split("/") if p]
            status, body = "404 Not Found", {"error": "use GET /cameras or POST /cameras/<n>/<state>"}
            if method == "GET" and parts == ["cameras"]:
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


def _default_loops_dir() -> Path:
    """Encoded loops are kept between runs (encoding 1080p takes seconds): under var/ with Django, else /tmp."""
    try:
        from django.conf import settings

        return Path(settings.VAR_DIR) / "camera-loops"
    except Exception:  # no settings: a bare simulator
        return Path(tempfile.gettempdir()) / "camera-loops"
