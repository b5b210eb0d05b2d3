"""What a video server's agent tells Prometheus and load balancers: its metrics and its health.

The counters that only the agent's own threads see as they happen (frames and bytes written to segments,
connections, storage errors, the heartbeat's send time) are kept here, per camera, for the life of the
process: a camera stopped and started again keeps counting, so no counter ever goes down while the process
lives. Everything else (the cameras ingested, their states, frame rates and bitrates, the storage's free
bytes) is read from the agent at scrape time by ``AgentCollector``, so a scrape costs the agent nothing
between scrapes. Each agent has a registry of its own (tests run several agents in one process); every
series carries ``server=<name>``, cameras are named by their id, never by a URL.

``health`` is the body of ``GET /health/ready``: the agent is ready when it has started (and is not stopping),
its storage takes a write (``StorageProbe``) and its recording machinery runs. A camera that is offline is the
camera's problem, not the agent's: a load balancer or an orchestrator that took an agent out of service for
it, or restarted it, would only lose what the agent records of its other cameras.
"""

import threading

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from recording.models import StreamState

PREFIX = "eocortex_agent_"
# Seconds from asked to open to the stream open, and to the first keyframe recorded: RTSP sessions open in tens
# of milliseconds on a LAN and a keyframe comes within a GOP (often 1-4 s); a camera far away or busy, later.
CONNECT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# A heartbeat's writes: under a millisecond to a local Redis, the TTL's order when Redis struggles.
HEARTBEAT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class CameraCounters:
    """One camera's counts on this server since the process started; written by its ingest thread and the
    storage's reports, read by a scrape."""

    def __init__(self, camera_id: int, metrics: "AgentMetrics"):
        self.camera_id = camera_id
        self.metrics = metrics
        self.frames_written = 0
        self.written_bytes = 0
        self.reconnects = 0  # stream opens after the first of an ingest's start (a camera taken again is none)
        self.storage_errors = 0
        self.open_seconds: float | None = None  # the last connection's
        self.first_keyframe_seconds: float | None = None
        self._lock = threading.Lock()

    def wrote(self, size: int) -> None:
        """A frame of ``size`` bytes went into a segment."""
        with self._lock:
            self.frames_written += 1
            self.written_bytes += size

    def opened(self, seconds: float, reconnect: bool = False) -> None:
        with self._lock:
            self.reconnects += reconnect
            self.open_seconds, self.first_keyframe_seconds = seconds, None
        self.metrics.stream_open.labels(self.metrics.server).observe(seconds)

    def first_keyframe(self, seconds: float) -> None:
        with self._lock:
            self.first_keyframe_seconds = seconds
        self.metrics.stream_first_keyframe.labels(self.metrics.server).observe(seconds)

    def storage_failed(self) -> None:
        with self._lock:
            self.storage_errors += 1


class AgentMetrics:
    """The agent's registry and its counters. ``agent``: read at scrape time only."""

    def __init__(self, agent):
        self.agent = agent
        self.server = agent.name
        self.registry = CollectorRegistry()
        self._cameras: dict[int, CameraCounters] = {}
        self._lock = threading.Lock()
        self.storage_errors = 0  # of the storage itself (its directory cannot be made), not of a camera's writes
        self.heartbeat_failures = 0
        self.heartbeat_send = Histogram(
            f"{PREFIX}heartbeat_send_duration_seconds", "Seconds to write a heartbeat to Redis (lease, stream "
            "reports, the heartbeat), of the beats that got through", ["server"], buckets=HEARTBEAT_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.stream_open = Histogram(
            f"{PREFIX}stream_open_duration_seconds", "Seconds from asking a camera's stream to its open, each "
            "connection", ["server"], buckets=CONNECT_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.stream_first_keyframe = Histogram(
            f"{PREFIX}stream_first_keyframe_duration_seconds", "Seconds from asking a camera's stream to its first "
            "keyframe recorded, each connection", ["server"], buckets=CONNECT_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(AgentCollector(self))

    def camera(self, camera_id: int) -> CameraCounters:
        with self._lock:
            counters = self._cameras.get(camera_id)
            if counters is None:
                counters = self._cameras[camera_id] = CameraCounters(camera_id, self)
            return counters

    def cameras(self) -> list[CameraCounters]:
        with self._lock:
            return sorted(self._cameras.values(), key=lambda counters: counters.camera_id)

    def storage_failed(self, camera_id: int | None) -> None:
        """A write failed: a camera's (``camera_id``) or the storage's own (None)."""
        if camera_id is None:
            with self._lock:
                self.storage_errors += 1
        else:
            self.camera(camera_id).storage_failed()

    def heartbeat_sent(self, seconds: float) -> None:
        self.heartbeat_send.labels(self.server).observe(seconds)

    def heartbeat_failed(self) -> None:
        with self._lock:
            self.heartbeat_failures += 1

    def health(self) -> dict:
        return health(self.agent)

    def exposition(self) -> bytes:
        """The text exposition of every series, for ``GET /metrics``."""
        return generate_latest(self.registry)


class AgentCollector(Collector):
    """Reads the agent's state at scrape time."""

    def __init__(self, metrics: AgentMetrics):
        self.metrics = metrics

    def describe(self):
        return []  # the families depend on the agent's cameras: collected, never described ahead

    def collect(self):
        metrics, agent, server = self.metrics, self.metrics.agent, self.metrics.server
        reports = agent.stream_reports()  # with the storage's errors: a camera that cannot be written is lost
        ingested = GaugeMetricFamily(f"{PREFIX}cameras_ingested", "Cameras this server ingests now",
                                     labels=["server"])  # fmt: skip
        ingested.add_metric([server], len(reports))
        yield ingested
        fps = GaugeMetricFamily(f"{PREFIX}camera_frames_per_second", "A camera's frame rate over the last seconds",
                                labels=["server", "camera"])  # fmt: skip
        bitrate = GaugeMetricFamily(f"{PREFIX}camera_bitrate_bits_per_second", "A camera's bitrate over the "
                                    "last seconds", labels=["server", "camera"])  # fmt: skip
        state = GaugeMetricFamily(f"{PREFIX}camera_state", "1 for a camera's stream state now, 0 for the others",
                                  labels=["server", "camera", "state"])  # fmt: skip
        for camera_id, report in sorted(reports.items()):
            camera = str(camera_id)
            fps.add_metric([server, camera], float(report.get("fps") or 0.0))
            bitrate.add_metric([server, camera], float(report.get("bitrate_kbps") or 0.0) * 1000)
            for value in StreamState.values:
                state.add_metric([server, camera, value], 1.0 if report.get("state") == value else 0.0)
        yield from (fps, bitrate, state)
        yield from self._counters(server, metrics, set(reports))
        yield from self._storage(server, agent, metrics)
        failures = CounterMetricFamily(f"{PREFIX}heartbeat_failures", "Heartbeats that Redis did not take",
                                       labels=["server"])  # fmt: skip
        failures.add_metric([server], metrics.heartbeat_failures)
        yield failures

    def _counters(self, server: str, metrics: AgentMetrics, ingested: set[int]):
        frames = CounterMetricFamily(f"{PREFIX}frames_written", "Frames written to a camera's segments",
                                     labels=["server", "camera"])  # fmt: skip
        written = CounterMetricFamily(f"{PREFIX}written_bytes", "Bytes of frames written to a camera's segments",
                                      labels=["server", "camera"])  # fmt: skip
        reconnects = CounterMetricFamily(f"{PREFIX}reconnects", "A camera's stream connections after the first of "
                                         "each start of its ingest (a takeover is none)",
                                         labels=["server", "camera"])  # fmt: skip
        opened = GaugeMetricFamily(f"{PREFIX}takeover_open_seconds", "The last connection's seconds from asking "
                                   "the camera's stream to its open", labels=["server", "camera"])  # fmt: skip
        keyframe = GaugeMetricFamily(f"{PREFIX}takeover_first_keyframe_seconds", "The last connection's seconds "
                                     "from asking the camera's stream to its first keyframe recorded",
                                     labels=["server", "camera"])  # fmt: skip
        errors = CounterMetricFamily(f"{PREFIX}storage_errors", "Writes to the storage that failed (camera: the "
                                     "camera's frames; empty: the storage directory itself)",
                                     labels=["server", "camera"])  # fmt: skip
        errors.add_metric([server, ""], metrics.storage_errors)
        for counters in metrics.cameras():
            camera = str(counters.camera_id)
            frames.add_metric([server, camera], counters.frames_written)
            written.add_metric([server, camera], counters.written_bytes)
            reconnects.add_metric([server, camera], counters.reconnects)
            errors.add_metric([server, camera], counters.storage_errors)
            if counters.camera_id in ingested and counters.open_seconds is not None:
                opened.add_metric([server, camera], counters.open_seconds)
            if counters.camera_id in ingested and counters.first_keyframe_seconds is not None:
                keyframe.add_metric([server, camera], counters.first_keyframe_seconds)
        yield from (frames, written, reconnects, errors, opened, keyframe)

    def _storage(self, server: str, agent, metrics: AgentMetrics):
        usage = agent.storage_probe.usage() if agent.storage_probe is not None else None
        if usage is None:
            return  # gone, or it hangs: no figure rather than a wrong one or a hung scrape (the health says why)
        free = GaugeMetricFamily(f"{PREFIX}storage_free_bytes", "Free bytes of the storage's file system",
                                 labels=["server"])  # fmt: skip
        free.add_metric([server], usage[0])
        total = GaugeMetricFamily(f"{PREFIX}storage_size_bytes", "Size of the storage's file system in bytes",
                                  labels=["server"])  # fmt: skip
        total.add_metric([server], usage[1])
        yield from (free, total)


def check(ok: bool, detail: str, required: bool = True) -> dict:
    """One check of the health body; ``required``: whether it decides readiness."""
    return {"ok": ok, "detail": detail, "required": required}


def health(agent) -> dict:
    """``{"ready": bool, "checks": {...}}`` for ``GET /health/ready``.

    - ``storage``: a small file written, fsynced and removed in the storage directory (at most once a second,
      bounded in time: ``recording.storage_health.StorageProbe``), and no camera's frames failing to be written;
    - ``recording``: the agent has started and is not stopping (a leave makes it not ready at once: nothing new
      should be sent to a server handing its cameras over), its supervisor (which follows the desired set, so
      it must run even with no camera desired now) runs and so does the ingest thread of every camera it
      ingests. The detail says how many of them stream; cameras offline do not make the agent not ready: the
      agent keeps trying them and the engine moves them, and an orchestrator that restarted the agent for
      them would only stop what it records of the others.
    - ``redis``: whether the last heartbeat got through. Not required: the agent records without Redis (the
      engine then judges the server by its silence, which is the engine's business). The database is not
      checked: the agent records without it too and its index catches up, and a query per poll would load it.
    """
    checks = {"storage": _storage_check(agent), "recording": _recording_check(agent)}
    lost_since = agent.heartbeat.lost_since
    checks["redis"] = check(lost_since is None, "heartbeats get through" if lost_since is None else
                            f"heartbeats failing for {agent.clock() - lost_since:.0f} s", required=False)  # fmt: skip
    return {"ready": all(c["ok"] for c in checks.values() if c["required"]), "checks": checks}


def _storage_check(agent) -> dict:
    if agent.storage_probe is None:
        return check(False, "the agent has not started")
    ok, detail = agent.storage_probe.check()
    if not ok:
        return check(False, detail)
    # A camera whose frames come and cannot be written: not one offline since its last failed write (its error
    # stays until it writes again), which the probe above has said nothing against.
    workers = agent.workers
    failing = {camera_id: error for camera_id, error in agent.storage_health.snapshot().items()
               if camera_id and camera_id in workers and workers[camera_id].stats.state == StreamState.STREAMING}
    if failing:
        cameras = ", ".join(str(camera_id) for camera_id in sorted(failing))
        return check(False, f"writes of camera {cameras} fail: {next(iter(failing.values()))}")
    return check(True, detail)


def _recording_check(agent) -> dict:
    if not agent.started:
        return check(False, "the agent is stopping" if agent.stopping else "the agent has not started")
    if not agent.supervising:
        return check(False, "the supervisor has stopped: the desired cameras are not followed")
    workers = agent.workers
    # Started and ended (a worker is listed a moment before it starts): that camera would never be tried again.
    dead = sorted(camera_id for camera_id, worker in list(workers.items())
                  if worker.ident is not None and not worker.is_alive())  # fmt: skip
    if dead:
        return check(False, f"the ingest of camera {', '.join(map(str, dead))} has stopped")
    reports = agent.stream_reports()
    streaming = sum(1 for report in reports.values() if report["state"] == StreamState.STREAMING)
    return check(True, f"{streaming} of {len(reports)} cameras streaming")
