"""The video-server agent: plain code that a Celery worker (or a test) runs.

Threads: a heartbeat (Redis only, never blocked by cameras or the database), a supervisor
that reconciles the cameras ingested to the desired set and writes the index, and one
ingest thread per camera (``recording.ingest``, ``recording.streamcopy``) handing each frame
to the camera's pipeline (``recording.pipeline``), which reports its writes to the server's
``recording.storage_health``. Redis or the database going away changes nothing that is being
recorded: the supervisor keeps what it has and catches up when they return.
"""

import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from celery import current_app
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from cameras.models import Camera
from recording import live
from recording.archive import Archive
from recording.desired import baseline_camera_ids
from recording.ingest import CameraFeed, IngestWorker, ingest_worker
from recording.lease import ServerLease, ttl_for
from recording.models import StreamHealth
from recording.outbox import Outbox
from recording.pipeline import SNAPSHOT_EVERY, CameraPipeline, Recording, SubStream
from recording.segments import SegmentRecord
from recording.storage_health import StorageHealth
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
    ):
        self.name = name
        self.heartbeat_interval = heartbeat_interval
        self.sweep_interval = sweep_interval
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.segment_seconds = segment_seconds
        self.redis = redis_client or live.client()
        self.clock = clock
        self.heartbeat_ttl = ttl_for(heartbeat_interval)
        # The exclusive claim on the server's name, renewed with each heartbeat.
        self.lease = lease or ServerLease(self.redis, name, self.heartbeat_ttl, clock)
        self.server: Server | None = None
        self.storage: Path | None = None
        self.outbox: Outbox | None = None
        self.workers: dict[int, IngestWorker] = {}
        self.pipelines: dict[int, CameraPipeline] = {}
        self._feeds: dict[int, CameraFeed] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._health_saved_at = 0.0
        self.storage_health = StorageHealth(name)
        self._snapshots_at = 0.0
        self.archive: Archive | None = None
        self.watched: set[int] = set()  # cameras someone looks at on the live wall

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Raises ServerClaimed while another live agent runs this video server."""
        if not self.lease.held:
            self.lease.acquire()
        self.server = Server.objects.get(name=self.name)
        self.storage = self.server.storage_dir
        try:
            self.storage.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.storage_health.failed(None, exc)  # cameras still connect; the error is reported, not a crash loop
        self.outbox = Outbox(self.storage / "index-spool.jsonl")
        self.archive = Archive(self.server, self.storage, self.outbox, self.clock)
        self.archive.recover()
        try:
            live.clear_leaving(self.redis, self.name)
        except redis.RedisError:
            pass
        for target, name in ((self._heartbeat_loop, "heartbeat"), (self._supervise_loop, "supervisor")):
            thread = threading.Thread(target=target, name=f"{name}-{self.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("server=%s event=agent_started storage=%s", self.name, self.storage)

    def request_reconcile(self) -> None:
        """Reconcile now rather than at the next sweep (the engine's change notice)."""
        self._wake.set()

    def leave(self, handover_timeout: float = 20.0) -> None:
        """A graceful stop: announce it, keep recording until the engine has moved what it can
        (make before break), then close every recording and index it."""
        try:
            live.announce_leaving(self.redis, self.name)
            # Nobody to hand over to when no engine ticks (the whole site is stopping, say).
            engine_active = live.engine_ticking(self.redis) and live.read_desired(self.redis, self.name) is not None
            if engine_active:
                current_app.send_task("redundancy.tick", queue=settings.CONTROL_QUEUE, expires=5)
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
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=self.read_timeout + self.open_timeout + 5)
        self._stop_cameras(list(self.workers))
        if self.server is not None:
            self.outbox.flush(self.server.pk)
        self.lease.release()
        connection.close()

    # -- heartbeat --------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        ttl = self.heartbeat_ttl
        last_ok, lost = self.clock(), False
        while not self._stop.is_set():
            started = time.monotonic()
            problems = self.storage_health.snapshot()  # one view of the storage for the heartbeat and the reports
            reports = self.stream_reports(problems)
            try:
                if self.lease.renew() is not None:
                    # Another agent holds this server's name: it speaks for the server, not us. We keep
                    # recording (when in doubt, record) and claim the name again once it is free.
                    lost, last_ok = False, self.clock()
                    self._stop.wait(self.heartbeat_interval)
                    continue
                live.publish_heartbeat(
                    self.redis,
                    self.name,
                    {"at": self.clock(), "pid": os.getpid(), "cameras": len(reports),
                     "streaming": sum(1 for r in reports.values() if r["state"] == "streaming"),
                     "storage_error": next(iter(problems.values()), None)},
                    ttl,
                )  # fmt: skip
                live.publish_stream_health(self.redis, self.name, reports, ttl)
                if lost:
                    # Witness for the engine: the silence of every server meanwhile was Redis's, not theirs.
                    live.report_outage(self.redis, self.name, last_ok, self.clock())
                    log.info("server=%s event=redis_back lost_for=%.1fs", self.name, self.clock() - last_ok)
                    lost = False
                last_ok = self.clock()
                self.watched = live.read_watched(self.redis)
                self.publish_snapshots()
            except redis.RedisError as exc:
                lost = True
                log.warning("server=%s event=heartbeat_failed error=%s", self.name, type(exc).__name__)
            self._stop.wait(max(0.0, self.heartbeat_interval - (time.monotonic() - started)))

    def stream_reports(self, problems: dict | None = None) -> dict[int, dict]:
        reports = {camera_id: worker.stats.report() for camera_id, worker in list(self.workers.items())}
        for camera_id, report in reports.items():
            pipeline = self.pipelines.get(camera_id)
            if pipeline is not None and pipeline.sub_stream is not None:
                # Beside the camera's state, never in it: the engine reads the main stream's, which is recorded.
                report["sub_stream"] = pipeline.sub_stream.report()
        problems = self.storage_health.snapshot() if problems is None else problems
        for camera_id, report in reports.items():
            error = problems.get(camera_id) or problems.get(None)
            if error and report["state"] == "streaming":
                # Frames that cannot be written are not recorded: the engine must not count on them.
                report.update(state="lost", reason=f"storage: {error}")
        return reports

    def publish_snapshots(self) -> None:
        """The latest picture of each camera, at most once a second, all in one round trip."""
        now = self.clock()
        if now - self._snapshots_at < SNAPSHOT_EVERY:
            return
        self._snapshots_at = now
        pictures = {}
        for camera_id, pipeline in list(self.pipelines.items()):
            jpeg, pipeline.latest_jpeg = pipeline.latest_jpeg, None
            if jpeg:
                pictures[camera_id] = jpeg
        if pictures:
            live.publish_snapshots(self.redis, self.name, pictures)

    # -- supervisor -------------------------------------------------------------------------

    def _supervise_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.reconcile()
                self.outbox.flush(self.server.pk)
                self._save_health()
                if self.archive.due:
                    self.archive.expire()
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
            desired = live.read_desired(self.redis, self.name)
        except redis.RedisError:
            desired = None
        if desired is not None:
            return desired
        try:
            close_old_connections()
            baseline = baseline_camera_ids(self.server)
        except DatabaseError:
            connection.close()
            return None
        # No word from the engine (not running yet, or Redis emptied): add, never drop.
        return baseline | set(self.workers)

    def reconcile(self) -> None:
        """Start what is desired and missing, stop what runs and is not desired (level-triggered)."""
        desired = self.desired_camera_ids()
        if desired is None:
            return  # nobody to ask: keep recording what we record
        feeds = self._load_feeds(desired)
        self._stop_cameras(
            [
                camera_id
                for camera_id, worker in self.workers.items()
                if camera_id not in desired or (camera_id in feeds and feeds[camera_id] != worker.feed)
            ]
        )
        for camera_id in sorted(desired):
            feed = feeds.get(camera_id)
            if feed is not None and camera_id not in self.workers:
                self._start_camera(feed)

    def _load_feeds(self, camera_ids: set[int]) -> dict[int, CameraFeed]:
        try:
            close_old_connections()
            cameras = Camera.objects.filter(pk__in=camera_ids, enabled=True)
            self._feeds = {
                camera.pk: CameraFeed(
                    camera.pk,
                    camera.name,
                    camera.stream_url,
                    camera.username,
                    camera.password,
                    camera.codec,
                    tuple(camera.analytics_on(self.server)),
                    camera.rtsp_transport,
                    # Read by the camera's primary only: recording.pipeline.SubStream says why.
                    sub_stream_url=camera.sub_stream_url if camera.primary_server_id == self.server.pk else "",
                    onvif_url=camera.onvif_url,
                )  # fmt: skip
                for camera in cameras
            }
        except DatabaseError:
            connection.close()  # keep the last feeds we knew
        feeds = {camera_id: feed for camera_id, feed in self._feeds.items() if camera_id in camera_ids}
        for camera_id, feed in feeds.items():
            pipeline = self.pipelines.get(camera_id)
            if pipeline is None or feed != pipeline.feed:
                continue  # not running, or restarted whole by reconcile
            running = pipeline.sub_stream.feed.stream_url if pipeline.sub_stream else ""
            if feed.sub_stream_url == running:
                continue
            if not (running and feed.sub_stream_url):
                self._stop_cameras([camera_id])  # a sub stream added or removed: the camera starts again, anew
                continue
            # Another sub stream URL: its reader alone starts again; the recording goes on.
            old = pipeline.sub_stream
            old.worker.stop()
            old.worker.join(timeout=self.read_timeout + self.open_timeout + 1)
            sub = pipeline.sub_stream = SubStream(pipeline, feed.sub_feed())
            sub.start(ingest_worker(sub.feed, sub, self.open_timeout, self.read_timeout, self.clock, sub.decodes,
                                    "sub"))  # fmt: skip
            log.info("server=%s camera=%s event=sub_stream_restarted", self.name, camera_id)
        return feeds

    def _start_camera(self, feed: CameraFeed) -> None:
        recording = Recording(self.storage, self.name, self.segment_seconds, self.segment_closed)
        pipeline = CameraPipeline(feed, recording, self.storage_health, self.analytics_event,
                                  lambda camera_id: camera_id in self.watched)  # fmt: skip
        worker = ingest_worker(feed, pipeline, self.open_timeout, self.read_timeout, self.clock, pipeline.decodes_main)
        self.pipelines[feed.camera_id], self.workers[feed.camera_id] = pipeline, worker
        worker.start()
        sub = pipeline.sub_stream
        if sub is not None:  # its own worker: a sub stream that fails leaves the recording alone
            sub.start(ingest_worker(sub.feed, sub, self.open_timeout, self.read_timeout, self.clock, sub.decodes,
                                    "sub"))  # fmt: skip
        log.info("server=%s camera=%s event=ingest_started analytics=%s sub_stream=%s", self.name, feed.camera_id,
                 ",".join(feed.analytics) or "-", "yes" if sub else "no")  # fmt: skip

    def _stop_cameras(self, camera_ids: list[int]) -> None:
        """Signal all first, then wait: a worker stuck in a read holds up only itself."""
        workers = [self.workers.pop(camera_id) for camera_id in camera_ids]
        subs = [sub.worker for worker in workers if (sub := self.pipelines[worker.feed.camera_id].sub_stream)]
        for worker in workers + subs:
            worker.stop()
        for worker in subs:
            worker.join(timeout=self.read_timeout + self.open_timeout + 1)
        for worker in workers:
            worker.join(timeout=self.read_timeout + self.open_timeout + 1)
            self.pipelines.pop(worker.feed.camera_id).close()
            log.info("server=%s camera=%s event=ingest_stopped", self.name, worker.feed.camera_id)

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
