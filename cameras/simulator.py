"""Simulated IP cameras: MJPEG over HTTP on loopback, so everything runs without hardware.

Each camera listens on its own port and serves ``/video.mjpg`` (multipart/x-mixed-replace)
and ``/snapshot.jpg``. Frames show moving content and carry a stamp (see ``cameras.stamp``)
with the frame counter and capture time. The counter follows the clock (frame n is due at
start + n / fps), so every viewer of one camera sees the same numbering.

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
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from cameras.stamp import draw_stamp

log = logging.getLogger(__name__)

BOUNDARY = b"frame"
STATES = ("streaming", "stopped", "stalled", "garbage")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


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
        """A drifting gradient, a bouncing block, the camera's number and the stamp."""
        if self._background is None:
            x = np.linspace(0, 255, self.width, dtype=np.float32)
            y = np.linspace(0, 255, self.height, dtype=np.float32)[:, None]
            self._background = np.dstack(
                [
                    (x + y) / 2 % 256,
                    np.broadcast_to(x, (self.height, self.width)),
                    np.broadcast_to(y, (self.height, self.width)),
                ]
            ).astype(np.uint8)
        image = self._background.copy()
        size = max(8, self.height // 6)
        span_x, span_y = self.width - size, self.height - size
        t = counter / self.fps
        px = int(abs((t * 0.37 * self.width) % (2 * span_x) - span_x))
        py = int(abs((t * 0.29 * self.height) % (2 * span_y) - span_y))
        cv2.rectangle(image, (px, py), (px + size, py + size), (40, 40, 230), -1)
        cv2.putText(
            image, f"cam {self.number} #{counter}", (6, self.height - 8),
            cv2.FONT_HERSHEY_SIMPLEX, max(0.35, self.height / 500), (255, 255, 255), 1, cv2.LINE_AA,
        )  # fmt: skip
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


class CameraSimulator:
    """Cameras 1..count on ports base_port..base_port+count-1, plus a control endpoint."""

    def __init__(self, count: int, base_port: int, control_port: int | None = None, host: str = "127.0.0.1",
                 **camera_options):  # fmt: skip
        if host not in LOOPBACK:
            raise ValueError("the camera simulator serves on loopback addresses only")
        self.host = host
        self.control_port = control_port
        self.cameras = {
            n: SimulatedCamera(number=n, port=base_port + n - 1, host=host, **camera_options)
            for n in range(1, count + 1)
        }
        self._control = None

    async def start(self) -> None:
        for camera in self.cameras.values():
            await camera.start()
        if self.control_port:
            self._control = await asyncio.start_server(self._serve_control, self.host, self.control_port,
                                                       reuse_address=True)  # fmt: skip
        log.info("event=simulator_started cameras=%s first_port=%s control_port=%s", len(self.cameras),
                 min(c.port for c in self.cameras.values()), self.control_port)  # fmt: skip

    async def stop(self) -> None:
        for camera in self.cameras.values():
            await camera.stop()
        if self._control:
            self._control.close()

    async def _serve_control(self, reader, writer) -> None:
        """``GET /cameras`` lists states; ``POST /cameras/<n>/<state>`` switches one camera."""
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, path = request.decode(errors="replace").split(" ", 2)[:2]
            parts = [p for p in path.split("/") if p]
            status, body = "404 Not Found", {"error": "use GET /cameras or POST /cameras/<n>/<state>"}
            if method == "GET" and parts == ["cameras"]:
                status, body = "200 OK", [c.describe() for c in self.cameras.values()]
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
