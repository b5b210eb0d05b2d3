"""The video-server agent: plain code that a Celery worker (or a test) runs.

Made of parts, each with its own module: the heartbeat (``recording.heartbeat``, a thread that
talks to Redis only), the cameras ingested (``recording.cameraset``: an ingest worker and a
pipeline per camera), the archive (``recording.archive``: recovery and retention), the index's
on-disk spool (``recording.outbox``), the storage's health (``recording.storage_health``) and
the claim on the server's name (``recording.lease``), the HTTP server of its recordings
(``recording.serving``), which also answers Prometheus and load balancers (its metrics and health:
``recording.metrics``). The agent itself holds the life cycle
(start, the graceful leave, stop) and the supervisor thread, which matches the cameras to the
desired set, flushes the index, saves stream health and sweeps the archive. Redis or the
database going away changes nothing that is being recorded: the supervisor keeps what it has
and catches up when they return. Every part reads the clock the agent is given.
"""

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from django.db import DatabaseError, close_old_connections, connection

from protocol import live
from recording.archive import Archive
from recording.cameraset import CameraSet
from recording.desired import baseline_camera_ids
from recording.heartbeat import Heartbeat
from recording.ingest import IngestWorker
from recording.lease import ServerLease, ttl_for
from recording.mergeback import MergeBack
from recording.metrics import AgentMetrics
from recording.models import StreamHealth
from recording.outbox import Outbox
from recording.pipeline import CameraPipeline
from recording.readiness import BackupReadiness
from recording.segments import SegmentRecord
from recording.serving import RecordingServer
from recording.storage_health import StorageHealth, StorageProbe
from servers.models import Server

log = logging.getLogger(__name__)

HEALTH_TO_DATABASE_EVERY = 5.0


class VideoServerAgent:
    def __init__(
        self,
        name: str,
        *,
        heartbeat_interval: float = 1.0,
        sweep_interval: float = 5.0,
        open_timeout: float = 2.0,
        read_timeout: float = 2.0,
        segment_seconds: float = 10.0,
        redis_client: redis.Redis | None = None,
        clock=time.time,
        lease: ServerLease | None = None,
        serve_recordings: bool = True,
    ):
        self.name = name
        self.heartbeat_interval = heartbeat_interval
        self.sweep_interval = sweep_interval
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.segment_seconds = segment_seconds
        self.serve_recordings = serve_recordings
        self.recordings: RecordingServer | None = None
        self.redis = redis_client or live.client()
        self.clock = clock
        self.heartbeat_ttl = ttl_for(heartbeat_interval)
        # The exclusive claim on the server's name, renewed with each heartbeat.
        self.lease = lease or ServerLease(self.redis, name, self.heartbeat_ttl, clock)
        self.server: Server | None = None
        self.storage: Path | None = None
        self.outbox: Outbox | None = None
        self.cameras: CameraSet | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._health_saved_at = 0.0
        self._word: live.Desired | None = None  # the engine's last word taken: an earlier term's is refused
        self._incidents: dict[int, int] = {}  # the last word's: camera -> the event that moved it here
        self.metrics = AgentMetrics(self)  # counts for the process's life: not reset by a stop and a start
        self.started = False  # between the end of start and the beginning of a stop or leave
        self.stopping = False
        self.storage_probe: StorageProbe | None = None
        self.storage_health = StorageHealth(name, on_failed=self.metrics.storage_failed)
        self.archive: Archive | None = None
        self.merge_back: MergeBack | None = None
        self.heartbeat = Heartbeat(self.redis, name, self.lease, heartbeat_interval, self.heartbeat_ttl, clock,
                                   self._status, self._pictures, on_desired=self.request_reconcile,
                                   on_sent=self.metrics.heartbeat_sent,
                                   on_failed=self.metrics.heartbeat_failed)  # fmt: skip

    @property
    def workers(self) -> dict[int, IngestWorker]:
        return self.cameras.workers if self.cameras is not None else {}

    @property
    def pipelines(self) -> dict[int, CameraPipeline]:
        return self.cameras.pipelines if self.cameras is not None else {}

    @property
    def watched(self) -> set[int]:
        """Cameras someone looks at on the live wall, as the last heartbeat read it."""
        return self.heartbeat.watched

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Raises ServerClaimed while another live agent runs this video server."""
        if not self.lease.held:
            self.lease.acquire()
        self.server = Server.objects.get(name=self.name)
        self.storage = self.server.storage_dir
        self.storage_probe = StorageProbe(self.storage)
        self.stopping = False
        try:
            self.storage.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.storage_health.failed(None, exc)  # cameras still connect; the error is reported, not a crash loop
        self.outbox = Outbox(self.storage / "index-spool.jsonl")
        self.archive = Archive(self.server, self.storage, self.outbox, self.clock)
        self.archive.recover()
        self.merge_back = MergeBack(
            self.server, self.storage, self.outbox, self.clock, segment_seconds=self.segment_seconds,
            sweep_interval=self.sweep_interval,
        )  # fmt: skip
        self.recordings = self._serve_recordings()
        self.cameras = CameraSet(
            self.server, self.storage, self.storage_health, segment_seconds=self.segment_seconds,
            open_timeout=self.open_timeout, read_timeout=self.read_timeout, clock=self.clock,
            on_segment=self.segment_closed, on_analytics=self.analytics_event,
            watched=lambda camera_id: camera_id in self.heartbeat.watched,
            on_stream_change=self.heartbeat.nudge,  # a camera lost or back: the engine hears it at once
            metrics=self.metrics,
        )  # fmt: skip
        try:
            live.clear_leaving(self.redis, self.name)
        except redis.RedisError:
            pass
        beat = lambda: self.heartbeat.run(self._stop)  # noqa: E731
        # Its own thread: a check waits up to seconds on a camera, which must hold up neither part above.
        self.readiness = BackupReadiness(self.server, clock=self.clock, ingesting=lambda: {
            camera_id: worker.stats.report() for camera_id, worker in list(self.workers.items())})  # fmt: skip
        readiness = lambda: self.readiness.run(self._stop)  # noqa: E731
        for target, name in ((beat, "heartbeat"), (self._supervise_loop, "supervisor"), (readiness, "readiness")):
            thread = threading.Thread(target=target, name=f"{name}-{self.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.started = True
        log.info("server=%s event=agent_started storage=%s", self.name, self.storage)

    def _serve_recordings(self) -> RecordingServer | None:
        """Serve this server's recordings at its address and API port; recording goes on without it."""
        if not self.serve_recordings:
            return None
        try:
            recordings = RecordingServer(self.server, self.storage, self.server.address, self.server.api_port,
                                         observed=self.metrics)  # fmt: skip
        except OSError as exc:
            log.warning("server=%s event=recordings_not_served address=%s port=%s error=%s", self.name,
                        self.server.address, self.server.api_port, exc.strerror or type(exc).__name__)  # fmt: skip
            return None
        recordings.start()
        return recordings

    def request_reconcile(self) -> None:
        """Reconcile now rather than at the next sweep (the engine's change notice)."""
        self._wake.set()

    def leave(self, handover_timeout: float = 20.0) -> None:
        """A graceful stop: announce it, keep recording until the engine has moved what it can
        (make before break), then close every recording and index it."""
        self.started, self.stopping = False, True  # not ready from now: a load balancer sends nothing new here
        try:
            live.announce_leaving(self.redis, self.name)
            # Nobody to hand over to when no engine ticks (the whole site is stopping, say).
            engine_active = live.engine_ticking(self.redis) and live.read_desired(self.redis, self.name) is not None
            if engine_active:
                live.wake_engine(self.redis, f"leaving:{self.name}")
        except redis.RedisError:
            engine_active = False
            log.warning("server=%s event=leaving_not_announced", self.name)
        deadline = self.clock() + handover_timeout
        while engine_active and self.clock() < deadline and not self._stop.is_set():
            try:
                if live.is_handed_over(self.redis, self.name) or not live.engine_ticking(self.redis):
                    break
            except redis.RedisError:
                break
            self.request_reconcile()  # hand over camera by camera as the backups take them
            time.sleep(0.1)
        self.stop()
        try:
            self.redis.delete(live.key("heartbeat", self.name))
        except redis.RedisError:
            pass
        log.info("server=%s event=agent_left", self.name)

    def stop(self) -> None:
        self.started, self.stopping = False, True
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=self.read_timeout + self.open_timeout + 5)
        if self.merge_back is not None:
            self.merge_back.stop()
        if self.cameras is not None:
            self.cameras.stop_all()
        if self.recordings is not None:
            self.recordings.stop()
        if self.server is not None:
            self.outbox.flush(self.server.pk)
        self.lease.release()
        connection.close()

    # -- what the heartbeat says --------------------------------------------------------------

    def _status(self) -> tuple[dict[int, dict], dict]:
        problems = self.storage_health.snapshot()  # one view of the storage for the heartbeat and the reports
        return self.stream_reports(problems), problems

    def stream_reports(self, problems: dict | None = None) -> dict[int, dict]:
        if self.cameras is None:
            return {}
        return self.cameras.reports(self.storage_health.snapshot() if problems is None else problems)

    def _pictures(self) -> dict[int, bytes]:
        return self.cameras.take_pictures() if self.cameras is not None else {}

    # -- supervisor -------------------------------------------------------------------------

    @property
    def supervising(self) -> bool:
        """Whether the supervisor thread, which follows the desired set, runs."""
        return any(thread.name.startswith("supervisor-") and thread.is_alive() for thread in self._threads)

    def _supervise_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.reconcile()
                self.outbox.flush(self.server.pk)
                self._save_health()
                if self.archive.due:
                    self.archive.expire()
                if self.merge_back.due:
                    self.merge_back.sweep_in_background()  # a server that does not answer must not hold us up
            except Exception:
                log.exception("server=%s event=supervisor_error", self.name)
            self._wake.wait(self.sweep_interval)
        connection.close()  # this thread's own connection

    def desired_camera_ids(self) -> set[int] | None:
        """The engine's desired set; the configuration's baseline when the engine has said nothing.

        Without Redis the engine cannot be heard: keep everything running and add the baseline
        (when in doubt, record). None when nothing at all can be read.
        """
        try:
            word = live.read_desired_word(self.redis, self.name)
        except redis.RedisError:
            word = None
        if word is not None:
            if not word.supersedes(self._word):  # an engine worker that lost its lease wrote after the new one
                log.warning("server=%s event=desired_refused system=%s term=%s held_term=%s", self.name,
                            word.system, word.term, self._word.term)  # fmt: skip
                word = self._word
            self._word, self._incidents = word, word.incidents
            return set(word.cameras)
        try:
            close_old_connections()
            baseline = baseline_camera_ids(self.server)
        except DatabaseError:
            connection.close()
            return None
        # No word from the engine (not running yet, or Redis emptied): add, never drop.
        self._incidents = {}
        return baseline | set(self.workers)

    def reconcile(self) -> None:
        """Start what is desired and missing, stop what runs and is not desired (level-triggered)."""
        desired = self.desired_camera_ids()
        if desired is None:
            return  # nobody to ask: keep recording what we record
        self.cameras.match(desired, self._incidents)

    def analytics_event(self, event: dict) -> None:
        self.outbox.put("analytics", event)

    def segment_closed(self, record: SegmentRecord) -> None:
        self.outbox.put("segment", record.as_dict())

    def _save_health(self) -> None:
        now = self.clock()
        if now - self._health_saved_at < HEALTH_TO_DATABASE_EVERY:
            return
        self._health_saved_at = now
        rows = [
            StreamHealth(
                camera_id=camera_id,
                server=self.server,
                state=r["state"],
                fps=r["fps"],
                bitrate_kbps=r["bitrate_kbps"],
                reported_at=datetime.fromtimestamp(now, UTC),
                last_frame_at=datetime.fromtimestamp(r["last_frame_at"], UTC) if r["last_frame_at"] else None,
                reason=(r.get("reason") or "")[:200],
            )  # fmt: skip
            for camera_id, r in self.stream_reports().items()
        ]
        try:
            StreamHealth.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["camera", "server"],
                update_fields=["state", "fps", "bitrate_kbps", "reported_at", "last_frame_at", "reason"],
            )  # fmt: skip
        except DatabaseError:
            connection.close()

    def housekeeping(self) -> int:
        """Delete this server's segments past its retention; returns how many went."""
        return self.archive.expire()
