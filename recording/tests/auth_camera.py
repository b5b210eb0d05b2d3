"""An MJPEG camera that asks for a user name and password (HTTP Basic), as most real ones do, and a web page
that is not a video: for the tests of Test connection (the simulator's cameras ask for no credentials)."""

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class PasswordCamera:
    """``http://127.0.0.1:<port>/video.mjpg`` with ``username``/``password``; ``/index.html`` is a web page."""

    def __init__(self, username: str, password: str, width: int = 352, height: int = 288, fps: float = 8.0):
        self.width, self.height, self.fps = width, height, fps
        image = np.zeros((height, width, 3), np.uint8)
        image[:, : width // 2] = (40, 160, 40)
        ok, jpeg = cv2.imencode(".jpg", image)
        assert ok
        self.jpeg = jpeg.tobytes()
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.refused = 0
        handler = type("Handler", (_Handler,), {"camera": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/video.mjpg"

    @property
    def page_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/index.html"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    camera: PasswordCamera

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        camera = self.camera
        if self.path.startswith("/index.html"):
            body = b"<!doctype html><title>Camera</title><p>Welcome to the camera's web interface.</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.headers.get("Authorization") != camera.expected:
            if self.headers.get("Authorization"):
                camera.refused += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=frame")
        self.end_headers()
        try:
            for _ in range(int(camera.fps * 30)):  # at most 30 s of video per viewer
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(camera.jpeg)
                                 + camera.jpeg + b"\r\n")  # fmt: skip
                self.wfile.flush()
                time.sleep(1 / camera.fps)
        except OSError:
            pass  # the viewer went away
