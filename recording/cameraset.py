"""The cameras a video server ingests now, kept to the set the engine (or the baseline) desires.

Each camera runs as an ingest worker (``recording.ingest``) handing its frames to the camera's
pipeline (``recording.pipeline``), and where the camera has a sub stream that this server
reads, a second worker for it. Matching is level-triggered: whatever the set was, ``match``
starts what is desired and missing and stops what runs and is not desired, or runs with
settings that changed. The cameras' settings are read from the database and kept: a database
outage keeps every camera as it was.

A camera started because the engine moved it here carries the event that did (the desired word's
``incidents``): ``event=takeover_started incident=<event>`` when its ingest starts, and at its first
keyframe recorded ``event=takeover_recording`` with the seconds to the open and to that keyframe (every
start says the latter, with ``incident=`` when it has one), so one incident is followed from the engine's
decision to the first frame recorded.
"""

import logging
from collections.abc import Callable
from pathlib import Path

from django.db import DatabaseError, close_old_connections, connection

from cameras.models import Camera
from recording.ingest import CameraFeed, IngestWorker, ingest_worker
from recording.metrics import AgentMetrics
from recording.pipeline import CameraPipeline, Recording, SubStream
from recording.segments import SegmentRecord
from recording.storage_health import StorageHealth
from servers.models import Server

log = logging.getLogger(__name__)


class CameraSet:
    def __init__(
        self,
        server: Server,
        storage: Path,
        storage_health: StorageHealth,
        *,
        segment_seconds: float,
        open_timeout: float,
        read_timeout: float,
        clock: Callable[[], float],
        on_segment: Callable[[SegmentRecord], None],
        on_analytics: Callable[[dict], None],
        watched: Callable[[int], bool],
        on_stream_change: Callable[[], None] | None = None,
        metrics: AgentMetrics | None = None,
    ):
        self.server = server
        self.storage_health = storage_health
        self.metrics = metrics  # each camera's counters: frames written, connections, the last one's seconds
        self.recording = Recording(storage, server.name, segment_seconds, on_segment, metrics)
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.clock = clock
        self.on_analytics = on_analytics
        self.watched = watched
        # Called when a camera's main stream changes state (the heartbeat's nudge): cheap, from its ingest thread.
        self.on_stream_change = on_stream_change
        self.workers: dict[int, IngestWorker] = {}
        self.pipelines: dict[int, CameraPipeline] = {}
        self._feeds: dict[int, CameraFeed] = {}

    @property
    def join_timeout(self) -> float:
        return self.read_timeout + self.open_timeout + 1

    def match(self, desired: set[int], incidents: dict[int, int] | None = None) -> None:
        """Start what is desired and missing, stop what runs and is not desired or has other settings now;
        ``incidents``: camera → the event that moved it here, for the log lines of the cameras started."""
        incidents = incidents or {}
        feeds = self.load_feeds(desired)
        self.stop(
            [
                camera_id
                for camera_id, worker in self.workers.items()
                if camera_id not in desired or (camera_id in feeds and feeds[camera_id] != worker.feed)
            ]
        )
        self._follow_sub_streams(feeds)
        for camera_id in sorted(desired):
            feed = feeds.get(camera_id)
            if feed is not None and camera_id not in self.workers:
                self.start(feed, incidents.get(camera_id))

    def load_feeds(self, camera_ids: set[int]) -> dict[int, CameraFeed]:
        """The feeds of these cameras (enabled ones), from the database, or as last read when it is away."""
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
        return {camera_id: feed for camera_id, feed in self._feeds.items() if camera_id in camera_ids}

    def _follow_sub_streams(self, feeds: dict[int, CameraFeed]) -> None:
        """A camera running with the same main feed whose sub stream changed: another URL restarts its reader
        alone (the recording goes on); a sub stream added or removed restarts the camera, whose decoding changes."""
        for camera_id, feed in feeds.items():
            pipeline = self.pipelines.get(camera_id)
            if pipeline is None or feed != pipeline.feed:
                continue  # not running, or restarted whole
            running = pipeline.sub_stream.feed.stream_url if pipeline.sub_stream else ""
            if feed.sub_stream_url == running:
                continue
            if not (running and feed.sub_stream_url):
                self.stop([camera_id])  # started again, anew, by match()
                continue
            old = pipeline.sub_stream
            old.worker.stop()
            old.worker.join(timeout=self.join_timeout)
            pipeline.sub_stream = SubStream(pipeline, feed.sub_feed())
            self._start_sub_stream(pipeline.sub_stream)
            log.info("server=%s camera=%s event=sub_stream_restarted", self.server.name, camera_id)

    def start(self, feed: CameraFeed, incident: int | None = None) -> None:
        pipeline = CameraPipeline(feed, self.recording, self.storage_health, self.on_analytics, self.watched)
        worker = ingest_worker(feed, pipeline, self.open_timeout, self.read_timeout, self.clock, pipeline.decodes_main)
        worker.stats.on_change = self._stream_changed
        self._follow_connections(worker, incident)
        if incident is not None:
            log.info("camera=%s server=%s event=takeover_started incident=%s", feed.camera_id, self.server.name,
                     incident)  # fmt: skip
        self.pipelines[feed.camera_id], self.workers[feed.camera_id] = pipeline, worker
        self._stream_changed()  # a camera more in the reports
        worker.start()
        if pipeline.sub_stream is not None:  # its own worker: a sub stream that fails leaves the recording alone
            self._start_sub_stream(pipeline.sub_stream)
        log.info("server=%s camera=%s event=ingest_started analytics=%s sub_stream=%s", self.server.name,
                 feed.camera_id, ",".join(feed.analytics) or "-", "yes" if pipeline.sub_stream else "no")  # fmt: skip

    def _follow_connections(self, worker: IngestWorker, incident: int | None) -> None:
        """Count the worker's connections, and say when the start's first keyframe is recorded."""
        camera_id, server = worker.feed.camera_id, self.server.name
        counters = self.metrics.camera(camera_id) if self.metrics is not None else None
        said = False

        def first_frame(connect: dict) -> None:
            nonlocal said
            first = connect.get("first_frame_seconds", 0.0)
            if counters is not None:
                counters.first_keyframe(first)
            if said:
                return  # a reconnection: counted, not a takeover
            said = True
            log.info("camera=%s server=%s event=takeover_recording%s open_seconds=%.3f first_keyframe_seconds=%.3f",
                     camera_id, server, "" if incident is None else f" incident={incident}",
                     connect.get("open_seconds", 0.0), first)  # fmt: skip

        worker.stats.on_first_frame = first_frame
        if counters is not None:
            opens = 0

            def opened(seconds: float) -> None:
                nonlocal opens
                opens += 1
                counters.opened(seconds, reconnect=opens > 1)  # a takeover's first open is no reconnect

            worker.stats.on_opened = opened

    def _start_sub_stream(self, sub: SubStream) -> None:
        sub.start(ingest_worker(sub.feed, sub, self.open_timeout, self.read_timeout, self.clock, sub.decodes, "sub"))

    def stop(self, camera_ids: list[int]) -> None:
        """Signal all first, then wait: a worker stuck in a read holds up only itself."""
        workers = [self.workers.pop(camera_id) for camera_id in camera_ids]
        if workers:
            self._stream_changed()  # cameras fewer in the reports
        subs = [sub.worker for worker in workers if (sub := self.pipelines[worker.feed.camera_id].sub_stream)]
        for worker in workers + subs:
            worker.stop()
        for worker in subs:
            worker.join(timeout=self.join_timeout)
        for worker in workers:
            worker.join(timeout=self.join_timeout)
            self.pipelines.pop(worker.feed.camera_id).close()
            log.info("server=%s camera=%s event=ingest_stopped", self.server.name, worker.feed.camera_id)

    def _stream_changed(self) -> None:
        if self.on_stream_change is not None:
            self.on_stream_change()

    def stop_all(self) -> None:
        self.stop(list(self.workers))

    def reports(self, problems: dict) -> dict[int, dict]:
        """Each camera's stream report; ``problems``: the storage's errors by camera (None: all of them)."""
        reports = {camera_id: worker.stats.report() for camera_id, worker in list(self.workers.items())}
        for camera_id, report in reports.items():
            pipeline = self.pipelines.get(camera_id)
            if pipeline is not None and pipeline.sub_stream is not None:
                # Beside the camera's state, never in it: the engine reads the main stream's, which is recorded.
                report["sub_stream"] = pipeline.sub_stream.report()
            error = problems.get(camera_id) or problems.get(None)
            if error and report["state"] == "streaming":
                # Frames that cannot be written are not recorded: the engine must not count on them.
                report.update(state="lost", reason=f"storage: {error}")
        return reports

    def take_pictures(self) -> dict[int, bytes]:
        """The latest picture of each camera that has a new one since the last call."""
        pictures = {}
        for camera_id, pipeline in list(self.pipelines.items()):
            jpeg, pipeline.latest_jpeg = pipeline.latest_jpeg, None
            if jpeg:
                pictures[camera_id] = jpeg
        return pictures
