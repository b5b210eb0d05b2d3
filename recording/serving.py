"""A video server's own recordings, served by its agent over HTTP.

Recordings stay on the server that wrote them; the web application (for playback and export) and
other agents (for merge-back) read them here:

- ``GET /recordings/<camera>/?since=<epoch s>&until=<epoch s>&token=T``: the camera's segments this
  server holds that overlap the range, from its index, as JSON;
- ``GET /recordings/<camera>/<YYYY-MM-DD>/<HHMMSS.mmm>.<ts|mjpeg>?token=T``: one segment's bytes, with
  range requests; a whole-file answer carries ``X-Content-SHA256`` when the request asks for it with
  ``X-Want-SHA256: 1``.

Every request carries a token for this server and that camera (``recording.signing``): without one,
or with a forged or expired one, 403. The file is named by the URL's parts, each matched exactly
(digits, a date, a time, a known suffix), and must lie inside this server's storage directory: no
path from a request reaches the file system (``..``, absolute paths, anything else: 400).

``GET /alive`` is the agent's liveness for the engine (``redundancy.watch``): 200 at once with the server's
name on a line, then the connection is held open, a newline every ``ALIVE_KEEPALIVE`` seconds, until the
agent stops; when its process is killed, the kernel closes it and the engine knows within milliseconds.
It says nothing but that the process lives, so it asks for no token; at most ``MAX_WATCHERS`` are held at
once (then 503), so that it cannot tie up the agent's threads.

``POST /probe/<camera>/?token=T`` is Test connection (``recording.probe``): this server opens the stream the
body names once and answers what came (the first picture, codec, resolution, measured frame rate) or why
nothing did, as JSON. The body is the settings as the operator typed them, credentials included, encrypted
with the site's credential keys (``utilities.encryption``, as they are at rest) and naming this server, that
camera and an expiry; at most ``MAX_PROBES`` run at once (then 503).

For Prometheus and load balancers, unsigned (they say nothing of a camera but its id, never its address or
credentials): ``GET /metrics``, the agent's metrics in the text exposition format (``recording.metrics``; with
``METRICS_TOKEN`` set, for that bearer token only);
``GET /health/live``, 200 while the process answers; ``GET /health/ready``, 200 when the agent is ready
(started, its storage takes writes, its recording runs), else 503, with the checks as JSON
(``recording.metrics.health``). A server without an agent behind it (``observed`` None) is not ready and has
no metrics (404).
"""

import hashlib
import json
import logging
import re
import select
import socket
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from prometheus_client import CONTENT_TYPE_LATEST

from recording import probe, signing
from recording.probe import probe_settings
from utilities import bearer

log = logging.getLogger(__name__)

LIST = re.compile(r"/recordings/(?P<camera>[0-9]{1,12})/")
FILE = re.compile(r"/recordings/(?P<camera>[0-9]{1,12})/(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})/"
                  r"(?P<name>[0-9]{6}\.[0-9]{3}\.(?:ts|mjpeg))")  # fmt: skip
RANGE = re.compile(r"bytes=(?P<first>[0-9]*)-(?P<last>[0-9]*)")
CONTENT_TYPES = {".ts": "video/mp2t", ".mjpeg": "video/x-motion-jpeg"}
CHUNK = 1 << 20
PROBE = re.compile(r"/probe/(?P<camera>[0-9]{1,12})/")
PROBE_BODY_LIMIT = 16 * 1024  # the settings of one camera
PROBE_BODY_SECONDS = 5.0
MAX_PROBES = 2  # stream opens for Test connection at once: each holds a thread and a camera session for seconds
ALIVE = "/alive"
ALIVE_KEEPALIVE = 2.0  # seconds between the newlines that keep an idle watch connection seen alive
MAX_WATCHERS = 8  # watch connections held at once: the engine needs one (one per engine worker)
METRICS = "/metrics"
HEALTH_LIVE = "/health/live"
HEALTH_READY = "/health/ready"


def segment_name(storage: Path, path: str) -> str | None:
    """A segment's name as URLs give it (``YYYY-MM-DD/HHMMSS.mmm.ts``), or None when it is not in ``storage``."""
    try:
        relative = Path(path).relative_to(storage)
    except ValueError:
        return None
    return "/".join(relative.parts[1:]) if len(relative.parts) == 3 else None


def _epoch(values: dict, name: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(values[name][0]), UTC) if name in values else None
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{name} must be seconds since the epoch") from None


class RecordingServer:
    """The agent's HTTP server for its recordings, on a thread of its own."""

    def __init__(self, server, storage: Path, host: str, port: int, observed=None):
        self.server = server
        self.storage = storage
        self.observed = observed  # the agent's metrics (``recording.metrics.AgentMetrics``): /metrics and /health
        handler = type("Handler", (_Handler,), {"recordings": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.watch_slots = threading.BoundedSemaphore(MAX_WATCHERS)
        self.probe_slots = threading.BoundedSemaphore(MAX_PROBES)
        self._watchers: set[socket.socket] = set()
        self._watchers_lock = threading.Lock()
        self._stopping = False

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"recordings-{self.server.name}", daemon=True)  # fmt: skip
        self._thread.start()
        log.info("server=%s event=recordings_served port=%s", self.server.name, self.port)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._watchers_lock:
            self._stopping = True
            watchers = list(self._watchers)
        for sock in watchers:  # wakes each watch's wait: it ends, and its connection closes
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def watching(self, sock: socket.socket) -> bool:
        """Hold ``sock`` as a watch connection until ``unwatch``; False when the server is stopping."""
        with self._watchers_lock:
            if self._stopping:
                return False
            self._watchers.add(sock)
            return True

    def unwatch(self, sock: socket.socket) -> None:
        with self._watchers_lock:
            self._watchers.discard(sock)

    def segments(self, camera_id: int, since: datetime | None, until: datetime | None) -> list[dict]:
        from recording.models import Segment

        rows = Segment.objects.filter(server=self.server, camera_id=camera_id).select_related("recorded_by")
        if since is not None:
            rows = rows.filter(ended_at__gte=since)
        if until is not None:
            rows = rows.filter(started_at__lte=until)
        listed = []
        for segment in rows.order_by("started_at"):
            name = segment_name(self.storage, segment.path)
            if name is None or not Path(segment.path).is_file():
                continue
            listed.append({
                "name": name, "started_at": segment.started_at.timestamp(), "ended_at": segment.ended_at.timestamp(),
                "frame_count": segment.frame_count, "size_bytes": segment.size_bytes,
                "recorded_by": (segment.recorded_by or self.server).name,
            })  # fmt: skip
        return listed


class _Handler(BaseHTTPRequestHandler):
    recordings: RecordingServer
    protocol_version = "HTTP/1.1"
    server_version = "recordings"

    def end_headers(self):
        if self.close_connection:
            # The request said "Connection: close" (or was HTTP/1.0): say so, or a client may send its next request
            # on a connection it takes for open (FFmpeg's http input does, and then gives up).
            self.send_header("Connection", "close")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 (the signature is http.server's)
        pass  # a line per request would drown the agent's log; refusals are logged below

    def do_GET(self):  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        if url.path == ALIVE:
            return self._alive()
        if url.path in (METRICS, HEALTH_LIVE, HEALTH_READY):
            return self._observed(url.path)
        query = parse_qs(url.query)
        listing, file = LIST.fullmatch(url.path), FILE.fullmatch(url.path)
        match = listing or file
        if match is None:
            return self._error(HTTPStatus.BAD_REQUEST, "not a recording's address")
        camera_id = int(match["camera"])
        server = self.recordings.server
        try:
            signing.check(query.get("token", [None])[0], server.name, camera_id)
        except signing.Refused as refusal:
            log.info("server=%s event=recording_request_refused camera=%s reason=%s", server.name, camera_id,
                     str(refusal).replace(" ", "_"))  # fmt: skip
            return self._error(HTTPStatus.FORBIDDEN, "no valid signature")
        if listing:
            return self._list(camera_id, query)
        return self._file(camera_id, file["day"], file["name"])

    def do_POST(self):  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        match = PROBE.fullmatch(url.path)
        length = self.headers.get("Content-Length", "")
        if match is None or not length.isdigit() or int(length) > PROBE_BODY_LIMIT:
            self.close_connection = True  # its body, if any, is not read
            return self._error(HTTPStatus.BAD_REQUEST, "not a connection test's address")
        self.connection.settimeout(PROBE_BODY_SECONDS)  # a sender that stalls holds no thread for long
        try:
            body = self.rfile.read(int(length))
        except OSError:
            self.close_connection = True
            return
        finally:
            self.connection.settimeout(None)
        camera_id, server = int(match["camera"]), self.recordings.server
        try:
            signing.check(parse_qs(url.query).get("token", [None])[0], server.name, camera_id)
            settings = probe_settings(body, server.name, camera_id)
        except signing.Refused as refusal:
            log.info("server=%s event=probe_refused camera=%s reason=%s", server.name, camera_id,
                     str(refusal).replace(" ", "_"))  # fmt: skip
            return self._error(HTTPStatus.FORBIDDEN, "no valid signature")
        if not self.recordings.probe_slots.acquire(blocking=False):
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, "this server is testing other connections now")
        try:
            result = probe.probe_stream(settings.feed(camera_id), timeout=settings.timeout)
        finally:
            self.recordings.probe_slots.release()
        self._send(HTTPStatus.OK, json.dumps(result.as_json()).encode(), "application/json")

    def _list(self, camera_id: int, query: dict) -> None:
        try:
            since, until = _epoch(query, "since"), _epoch(query, "until")
        except ValueError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        try:
            close_old_connections()
            segments = self.recordings.segments(camera_id, since, until)
        except DatabaseError:
            connection.close()
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, "the recording index cannot be read now")
        finally:
            connection.close()  # a thread per request: its connection goes with it
        body = json.dumps({"server": self.recordings.server.name, "camera": camera_id, "segments": segments})
        self._send(HTTPStatus.OK, body.encode(), "application/json")

    def _file(self, camera_id: int, day: str, name: str) -> None:
        storage = self.recordings.storage.resolve()
        path = (storage / str(camera_id) / day / name).resolve()
        if not path.is_relative_to(storage):
            return self._error(HTTPStatus.BAD_REQUEST, "not a recording's address")
        try:
            file = path.open("rb")
        except FileNotFoundError:
            return self._error(HTTPStatus.NOT_FOUND, "no such recording on this server")
        except OSError:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, "the recording cannot be read now")
        with file:
            size = path.stat().st_size
            first, last = 0, size - 1
            status = HTTPStatus.OK
            wanted = self.headers.get("Range")
            if wanted:
                match = RANGE.fullmatch(wanted.strip())
                if match is None or not (match["first"] or match["last"]):
                    return self._error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "only one byte range is served")
                if match["first"]:
                    first = int(match["first"])
                    last = min(int(match["last"]), size - 1) if match["last"] else size - 1
                else:  # the last N bytes
                    first = max(0, size - int(match["last"]))
                if first > last or first >= size:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPES[path.suffix])
            self.send_header("Content-Length", str(last - first + 1))
            self.send_header("Accept-Ranges", "bytes")
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            elif self.headers.get("X-Want-SHA256") == "1":
                self.send_header("X-Content-SHA256", hashlib.file_digest(file, "sha256").hexdigest())
            self.end_headers()
            try:
                self.connection.sendfile(file, first, last - first + 1)
            except OSError:
                self.close_connection = True  # the reader went away

    def _alive(self) -> None:
        """Answer at once, then hold the connection until the agent stops or the watcher leaves."""
        recordings = self.recordings
        if not recordings.watch_slots.acquire(blocking=False):
            self.close_connection = True
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, "too many watch connections")
        try:
            self.close_connection = True  # the body runs until the connection closes
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(f"{recordings.server.name}\n".encode())
            self.wfile.flush()
            sock = self.connection
            if not recordings.watching(sock):
                return
            poll = select.poll()  # not select(): an agent's descriptors run past 1024 with many cameras
            poll.register(sock, select.POLLIN)
            try:
                while True:
                    if poll.poll(ALIVE_KEEPALIVE * 1000) and not sock.recv(1024):
                        return  # the watcher closed its end, or the server is stopping
                    sock.sendall(b"\n")
            finally:
                recordings.unwatch(sock)
        except OSError:
            pass  # the watcher went away
        finally:
            recordings.watch_slots.release()

    def _observed(self, path: str) -> None:
        observed = self.recordings.observed
        if path == HEALTH_LIVE:
            body = {"live": True, "server": self.recordings.server.name}
            return self._send(HTTPStatus.OK, json.dumps(body).encode(), "application/json", no_store=True)
        if path == METRICS:
            if not bearer.allows(self.headers.get("Authorization"), settings.METRICS_TOKEN):
                return self._error(HTTPStatus.UNAUTHORIZED, "the metrics ask for the scrape token (METRICS_TOKEN)")
            if observed is None:
                return self._error(HTTPStatus.NOT_FOUND, "no agent's metrics on this server")
            return self._send(HTTPStatus.OK, observed.exposition(), CONTENT_TYPE_LATEST, no_store=True)
        if observed is None:
            body = {"ready": False, "checks": {"recording": {"ok": False, "detail": "no agent", "required": True}}}
        else:
            body = observed.health()
        status = HTTPStatus.OK if body["ready"] else HTTPStatus.SERVICE_UNAVAILABLE
        self._send(status, json.dumps(body).encode(), "application/json", no_store=True)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"detail": message}).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, no_store: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if no_store:
            self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
