"""Where one camera's frames go on a video server: the recording, analytics, the live wall's picture.

Called from the camera's ingest thread for every frame (``recording.ingest``); a camera with a sub
stream has a second thread reading it (``SubStream``) for analytics and the snapshot. A write that
fails (disk full, storage gone) is reported to the server's ``StorageHealth`` and retried a
few seconds later, never raised into the stream.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recording.analytics import detectors_for
from recording.ingest import CameraFeed, Frame, IngestWorker
from recording.models import StreamState
from recording.segments import SegmentRecord, SegmentWriter
from recording.storage_health import StorageHealth

if TYPE_CHECKING:
    from recording.metrics import AgentMetrics

SNAPSHOT_EVERY = 1.0  # seconds between published snapshots of a camera
# A stream-copied camera's picture is a keyframe decoded (11 ms at 1080p here): at each keyframe while
# someone watches the camera (live.mark_watched), otherwise once in this many seconds.
UNWATCHED_SNAPSHOT_EVERY = 30.0
STORAGE_RETRY_EVERY = 5.0  # seconds between attempts to write again after the storage failed
# A sub stream may go this long without a frame (a reconnect, its first keyframe) before the main stream's
# keyframes make the camera's snapshot instead.
SUB_STREAM_GRACE = 5.0


@dataclass(frozen=True)
class Recording:
    """Where and how a server records: its storage, its name in the index, the segments' length; ``metrics``:
    the agent's counters, which count each camera's frames written."""

    storage: Path
    server: str
    segment_seconds: float
    on_segment: Callable[[SegmentRecord], None]
    metrics: "AgentMetrics | None" = None


def decode_picture(decoder, packet, snapshot_due: bool) -> tuple:
    """(picture, snapshot JPEG): the packet decoded where detectors (every frame) or a due snapshot need it."""
    if not decoder.every_frame and not snapshot_due:
        return None, None
    from recording.streamcopy import snapshot_jpeg

    image = decoder.picture(packet)
    return image, snapshot_jpeg(image) if image is not None and snapshot_due else None


class CameraPipeline:
    """Where one camera's frames go: the recording, analytics (primary only), the snapshot.

    MJPEG frames arrive as JPEGs and pictures; H.264 and H.265 frames as the camera's packets,
    recorded as they are and decoded only for analytics (every frame) or the snapshot (a keyframe:
    each one while someone watches the camera, else one in ``UNWATCHED_SNAPSHOT_EVERY`` seconds).

    Where the feed has a sub stream (``feed.sub_feed()``), analytics and the snapshot read that
    (``SubStream``) and the main stream is recorded without decoding anything; only while the sub
    stream gives no frames do the main stream's keyframes make the snapshot, so the live wall keeps a
    picture. Analytics then wait for the sub stream: decoding the main one for them would cost many
    times what the capacity planner counts for the camera."""

    def __init__(self, feed: CameraFeed, recording: Recording, storage_health: StorageHealth,
                 on_analytics: Callable[[dict], None],
                 watched: Callable[[int], bool] = lambda camera_id: False):  # fmt: skip
        self.feed = feed
        self.storage_health = storage_health
        self.on_analytics = on_analytics
        self.watched = watched
        self.detectors = detectors_for(feed.analytics)
        sub_feed = feed.sub_feed()
        self.sub_stream = SubStream(self, sub_feed) if sub_feed else None
        # An MJPEG main stream is decoded (for analytics and to check it) only where no sub stream gives pictures.
        self.decodes_main = self.sub_stream is None
        args = (recording.storage, feed.camera_id, recording.server, recording.segment_seconds, recording.on_segment,
                recording.metrics.camera(feed.camera_id).wrote if recording.metrics is not None else None)  # fmt: skip
        if feed.over_rtsp:
            from recording.streamcopy import KeyframeDecoder, PacketSegmentWriter

            self.writer = PacketSegmentWriter(*args)
            self.decoder = KeyframeDecoder(every_frame=bool(self.detectors) and self.sub_stream is None)
        else:
            self.writer = SegmentWriter(*args)
            self.decoder = None
        self.latest_jpeg: bytes | None = None
        self._snapshot_at = 0.0
        self._lock = threading.Lock()
        self._closed = False
        self._retry_at = 0.0  # after a storage failure: when to try writing again

    def __call__(self, feed: CameraFeed, frame) -> None:
        from_sub = self.sub_stream is not None and self.sub_stream.supplies_pictures(frame.at)
        if from_sub:
            image = None  # recorded only: the sub stream's worker makes the pictures
        else:
            image = frame.image if self.decoder is None else self._picture(frame)
        with self._lock:
            if self._closed:
                return  # a worker that outlived its stop must not open a segment nobody closes
            self._record(frame)
        if image is not None and self.sub_stream is None:
            self.analyse(image, frame.at)
        if self.decoder is None and not from_sub:
            self.latest_jpeg = frame.jpeg  # published by the heartbeat thread: ingest never waits on Redis

    def analyse(self, image, at: float) -> None:
        for detector in self.detectors:
            event = detector.feed(image, at)
            if event:
                self.on_analytics({"camera_id": self.feed.camera_id, **event})

    def snapshot_every(self) -> float:
        return SNAPSHOT_EVERY if self.watched(self.feed.camera_id) else UNWATCHED_SNAPSHOT_EVERY

    def _picture(self, packet):
        """Decode what analytics or the snapshot need (before the packet goes to the recording)."""
        snapshot_due = packet.keyframe and packet.at - self._snapshot_at >= self.snapshot_every() * 0.8  # jitter
        image, jpeg = decode_picture(self.decoder, packet, snapshot_due)
        if jpeg:
            self._snapshot_at, self.latest_jpeg = packet.at, jpeg
        return image

    def _record(self, frame: Frame) -> None:
        """Write the frame; a full disk or a lost storage path is reported, never raised into the stream."""
        if self._retry_at and frame.at < self._retry_at:
            return
        try:
            if self.decoder is None:
                self.writer.write(frame.jpeg, frame.at)
            else:
                self.writer.write(frame)
        except OSError as exc:
            self.writer.abandon()
            self._retry_at = frame.at + STORAGE_RETRY_EVERY
            self.storage_health.failed(self.feed.camera_id, exc)
            return
        if self._retry_at or self.storage_health.troubled:
            self._retry_at = 0.0
            self.storage_health.recovered(self.feed.camera_id)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            try:
                self.writer.close()
            except OSError:
                self.writer.abandon()
            self.storage_health.forget(self.feed.camera_id)


class SubStream:
    """A camera's sub stream, read by a worker of its own: pictures for analytics and the snapshot, never recorded.

    Only what is needed is decoded. Over RTSP (H.264, H.265): every frame while detectors run (the
    frames between keyframes need the ones before them), otherwise a keyframe when a snapshot is due,
    with the snapshot policy of the main stream (often while watched, seldom otherwise). Over HTTP
    (MJPEG): a JPEG's pixels only for detectors; the snapshot is the camera's JPEG as it came.

    Only the camera's primary reads a sub stream (``CameraSet.load_feeds``): analytics run there
    alone (rule 3), and a backup, which records the camera in a failover or all the time in constant mode,
    makes the live wall's picture from the main stream's keyframes, as every camera without a sub stream
    does: a VMS does not take a second session of a camera (a scarce thing: cameras turn the extra ones
    away) to make a thumbnail that a keyframe decoded now and then gives as well.
    """

    def __init__(self, pipeline: CameraPipeline, feed: CameraFeed):
        self.pipeline = pipeline
        self.feed = feed
        self.worker: IngestWorker | None = None
        self.decoder = None
        if feed.over_rtsp:
            from recording.streamcopy import KeyframeDecoder

            self.decoder = KeyframeDecoder(every_frame=bool(pipeline.detectors))
        self._started_at = 0.0
        self._snapshot_at = 0.0

    @property
    def decodes(self) -> bool:
        """Whether an HTTP sub stream's worker decodes each JPEG: for detectors only."""
        return bool(self.pipeline.detectors)

    def start(self, worker: IngestWorker) -> None:
        self.worker, self._started_at = worker, worker.clock()
        worker.start()

    def supplies_pictures(self, now: float) -> bool:
        """Streaming, or silent for less than ``SUB_STREAM_GRACE`` (connecting, waiting for its keyframe)."""
        worker = self.worker
        if worker is None:
            return False
        if worker.stats.state == StreamState.STREAMING:
            return True
        return now - max(self._started_at, worker.stats.last_frame_at or 0.0) < SUB_STREAM_GRACE

    def report(self) -> dict:
        """The sub stream's figures for the stream report: its state, fps, bitrate, codec and resolution."""
        report = self.worker.stats.report() if self.worker is not None else {"state": str(StreamState.CONNECTING)}
        keep = ("state", "since", "last_frame_at", "fps", "bitrate_kbps", "codec", "width", "height", "reason")
        return {key: report[key] for key in keep if key in report}

    def __call__(self, feed: CameraFeed, frame) -> None:
        pipeline = self.pipeline
        if pipeline.closed:
            return
        if self.decoder is None:  # MJPEG: the camera's JPEG is the snapshot, decoded only for detectors
            pipeline.latest_jpeg = frame.jpeg
            image = frame.image
        else:
            image = self._picture(frame)
        if image is not None and pipeline.detectors:
            pipeline.analyse(image, frame.at)

    def _picture(self, packet):
        pipeline = self.pipeline
        due = packet.at - self._snapshot_at >= pipeline.snapshot_every() * 0.8
        # Decoding every frame for detectors: any frame makes the snapshot; otherwise only a keyframe decodes alone.
        snapshot_due = due and (packet.keyframe or self.decoder.every_frame)
        image, jpeg = decode_picture(self.decoder, packet, snapshot_due)
        if jpeg:
            self._snapshot_at, pipeline.latest_jpeg = packet.at, jpeg
        return image
