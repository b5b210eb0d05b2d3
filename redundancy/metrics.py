"""An engine worker's metrics (Prometheus) and health, served over HTTP from a thread of its loop.

- ``GET /metrics``: the text exposition of the worker's own registry (each ``EngineLoop`` has one, not the
  process's global registry: the tests run several loops in one process): its passes, the events it stored, and
  the cameras and servers of the systems it holds as it holds them;
- ``GET /health/live``: 200 while the process answers;
- ``GET /health/ready``: 200 when the worker's last complete pass is recent (within two backstop periods and a
  second), else 503; a pass abandoned (Redis unreachable, a database error, its term superseded) is no complete
  pass. A standby worker, which holds no system but passes, is ready: it takes systems over when a lease ends.
  The body says why: ``{"ready": bool, "checks": {"pass": {"ok": bool, "detail": "..."}}}``.

Other paths: 404. The address and port are ``ENGINE_METRICS_ADDRESS`` and ``ENGINE_METRICS_PORT`` (``run_engine
--metrics-port``: two workers of one host need two); a port that cannot be bound is logged and the worker runs
without metrics: its decisions matter more. Labels name cameras' placements, servers' statuses, systems' ids and
the worker's name: no address, credential or stream URL.
"""

import json
import logging
import threading
import time
from collections import Counter as Tally
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from redundancy.models import EventKind, Placement, ServerStatus
from utilities import bearer

log = logging.getLogger(__name__)

OUTCOMES = ("ran", "idle", "abandoned")
PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def ready_within(tick_seconds: float) -> float:
    """Seconds since the last complete pass within which a worker is ready: two backstop periods and a second."""
    return 2 * tick_seconds + 1.0


# Abandoned passes after which this worker may no longer be the one that decides its systems.
CUT_OFF = ("redis_unreachable", "term_superseded")


class EngineMetrics:
    """The metrics of one engine worker, in a registry of its own; ``observe`` after each pass (the loop's
    thread), read at scrape (the HTTP server's threads)."""

    def __init__(self, worker: str, tick_seconds: float):
        self.worker = worker
        self.ready_within = ready_within(tick_seconds)
        self.registry = registry = CollectorRegistry()
        self.tick_duration = Histogram("eocortex_engine_tick_duration_seconds", "Seconds each pass of the engine took",
                                       buckets=PASS_BUCKETS, registry=registry)  # fmt: skip
        self.passes = Counter("eocortex_engine_passes_total", "Passes by outcome: ran (decided for the systems held), "
                              "idle (held none), abandoned (Redis unreachable, database error, term superseded)",
                              ["outcome"], registry=registry)  # fmt: skip
        self.decisions = Counter("eocortex_engine_decisions_total", "Events the engine stored, by kind", ["kind"],
                                 registry=registry)  # fmt: skip
        self.cameras = Gauge("eocortex_engine_cameras", "Enabled cameras of the systems held, by placement",
                             ["placement"], registry=registry)  # fmt: skip
        self.servers = Gauge("eocortex_engine_servers", "Servers of the systems held, by status", ["status"],
                             registry=registry)  # fmt: skip
        self.last_pass = Gauge("eocortex_engine_last_pass_timestamp_seconds", "When the last complete pass ended "
                               "(seconds since the epoch)", registry=registry)  # fmt: skip
        self.last_pass_age = Gauge("eocortex_engine_last_pass_age_seconds", "Seconds since the last complete pass "
                                   "(since the worker started, before its first)", registry=registry)  # fmt: skip
        self.last_pass_age.set_function(self.age)
        self.lease_held = Gauge("eocortex_engine_lease_held", "1 for each system whose lease this worker holds",
                                ["system", "worker"], registry=registry)  # fmt: skip
        self.systems_held = Gauge("eocortex_engine_systems_held", "Systems this worker decides for", registry=registry)
        for outcome in OUTCOMES:  # every series from the start: a rate of one never seen is 0, not absent
            self.passes.labels(outcome)
        for kind in EventKind.values:
            self.decisions.labels(kind)
        for placement in Placement.values:
            self.cameras.labels(placement).set(0)
        for status in ServerStatus.values:
            self.servers.labels(status).set(0)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._completed: float | None = None  # monotonic time of the last complete pass
        self._abandoned = ""  # why the last pass was abandoned, if it was
        self._held: set[int] = set()
        self._config = None  # the engine's configuration the cameras were last counted of

    # -- after each pass ----------------------------------------------------------------------------

    def observe(self, result, seconds: float, engine) -> None:
        """A pass's outcome (``engine.TickResult``), the seconds it took, and what ``engine`` holds after it."""
        outcome = "abandoned" if result.abandoned else "ran" if result.ran else "idle"
        if outcome != "abandoned":  # what an abandoned pass holds may run ahead of what it stored
            self._count(engine, result)
            self._leases(engine.leases.held)
        elif result.abandoned in CUT_OFF:
            # Another worker may hold these systems by now, and counts them: this one counts nothing until it
            # passes again (and then counts everything afresh), so that the site's sums stay true.
            self._set(self.cameras, Placement.values, {})
            self._set(self.servers, ServerStatus.values, {})
            self._config = None
            self._leases(set())
        for kind, count in Tally(event.kind for event in result.events).items():
            self.decisions.labels(kind).inc(count)
        with self._lock:
            if outcome == "abandoned":
                self._abandoned = result.abandoned
            else:
                self._completed, self._abandoned = time.monotonic(), ""
        if outcome != "abandoned":
            self.last_pass.set(time.time())
        self.tick_duration.observe(seconds)
        self.passes.labels(outcome).inc()  # last: a scrape that sees the pass counted sees its figures

    def _count(self, engine, result) -> None:
        """Cameras by placement and servers by status, as the engine holds them. The cameras are counted again
        only when some were decided or the configuration was loaded again: a pass costs what changed."""
        config = engine.config
        if config is None:  # it holds no system
            self._set(self.cameras, Placement.values, {})
            self._set(self.servers, ServerStatus.values, {})
            self._config = None
            return
        if config is not self._config or result.decided:
            self._config = config
            placements = engine.placements
            self._set(self.cameras, Placement.values, Tally(placements[pk].state for pk in engine.cameras
                                                           if pk in placements))  # fmt: skip
        states = engine.states
        self._set(self.servers, ServerStatus.values, Tally(states[pk].status for pk in config.servers if pk in states))

    @staticmethod
    def _set(gauge: Gauge, values, counts) -> None:
        for value in values:
            gauge.labels(value).set(counts.get(value, 0))

    def _leases(self, held: set[int]) -> None:
        for system in self._held - held:
            self.lease_held.remove(str(system), self.worker)
        for system in held - self._held:
            self.lease_held.labels(str(system), self.worker).set(1)
        self._held = set(held)
        self.systems_held.set(len(held))

    # -- at scrape ----------------------------------------------------------------------------------

    def age(self) -> float:
        with self._lock:
            since = self._started if self._completed is None else self._completed
        return time.monotonic() - since

    def readiness(self) -> dict:
        """``{"ready": bool, "checks": {"pass": {"ok": bool, "detail": str}}}``."""
        with self._lock:
            completed, abandoned = self._completed, self._abandoned
        if completed is None:
            ok, detail = False, "no complete pass yet"
        else:
            age = time.monotonic() - completed
            ok = age <= self.ready_within
            detail = f"last complete pass {age:.1f} s ago (ready within {self.ready_within:.1f} s)"
        if abandoned:
            detail += f"; the last pass was abandoned: {abandoned}"
        return {"ready": ok, "checks": {"pass": {"ok": ok, "detail": detail}}}

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``EngineMetrics`` over HTTP, on a daemon thread. ``start`` says whether it is served: a port taken (another
    worker of the host on it) is a warning, and the worker decides without metrics."""

    def __init__(self, metrics: EngineMetrics, address: str, port: int):
        self.metrics = metrics
        self.address, self.requested = address, port
        self.httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        return self.httpd.server_address[1] if self.httpd is not None else None

    def start(self) -> bool:
        handler = type("Handler", (_Handler,), {"metrics": self.metrics})
        try:
            self.httpd = ThreadingHTTPServer((self.address, self.requested), handler)
        except OSError as exc:
            log.warning("event=engine_metrics_not_served address=%s port=%s error=%r: the worker runs without "
                        "metrics and health", self.address, self.requested, exc.strerror or str(exc))  # fmt: skip
            return False
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="engine-metrics", daemon=True)  # fmt: skip
        self._thread.start()
        log.info("event=engine_metrics_served address=%s port=%s worker=%s", self.address, self.port,
                 self.metrics.worker)  # fmt: skip
        return True

    def stop(self) -> None:
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.httpd = None


class _Handler(BaseHTTPRequestHandler):
    metrics: EngineMetrics
    server_version = "eocortex-engine"
    timeout = 10  # a client that connects and says nothing holds a thread this long at most

    def log_message(self, format, *args):  # noqa: A002 (the signature is http.server's)
        pass  # a line per scrape would drown the engine's log

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = urlsplit(self.path).path
        if path == "/metrics":
            if not bearer.allows(self.headers.get("Authorization"), settings.METRICS_TOKEN):
                return self._json(HTTPStatus.UNAUTHORIZED, {"error": "the metrics ask for the scrape token "
                                                                     "(METRICS_TOKEN)"})  # fmt: skip
            return self._answer(HTTPStatus.OK, self.metrics.exposition(), CONTENT_TYPE_LATEST)
        if path == "/health/live":
            return self._json(HTTPStatus.OK, {"live": True})
        if path == "/health/ready":
            body = self.metrics.readiness()
            return self._json(HTTPStatus.OK if body["ready"] else HTTPStatus.SERVICE_UNAVAILABLE, body)
        return self._json(HTTPStatus.NOT_FOUND, {"error": "not found: /metrics, /health/live or /health/ready"})

    def _json(self, status: HTTPStatus, body: dict) -> None:
        self._answer(status, json.dumps(body).encode(), "application/json")

    def _answer(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
