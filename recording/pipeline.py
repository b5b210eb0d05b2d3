"""Where one camera's frames go on a video server: the recording, analytics, the live wall's picture.

Called from the camera's ingest thread for every frame (``recording.ingest``). A write that
fails (disk full, storage gone) is reported to the server's ``StorageHealth`` and retried a
few seconds later, never raised into the stream.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recording.analytics import detectors_for
from recording.ingest import CameraFeed, Frame
from recording.segments import SegmentRecord, SegmentWriter
from recording.storage_health import StorageHealth

SNAPSHOT_EVERY = 1.0  # seconds between published snapshots of a camera
# A stream-copied camera's picture is a keyframe decoded (11 ms at 1080p here): at each keyframe while
# someone watches the camera (live.mark_watched), otherwise once in this many seconds.
UNWATCHED_SNAPSHOT_EVERY = 30.0
STORAGE_RETRY_EVERY = 5.0  # seconds between attempts to write again after the storage failed


@dataclass(frozen=True)
class Recording:
    """Where and how a server records: its storage, its name in the index, the segments' length."""

    storage: Path
    server: str
    segment_seconds: float
    on_segment: Callable[[SegmentRecord], None]


class CameraPipeline:
    """Where one camera's frames go: the recording, analytics (primary only), the snapshot.

    MJPEG frames arrive as JPEGs and pictures; H.264 and H.265 frames as the camera's packets,
    recorded as they are and decoded only for analytics (every frame) or the snapshot (a keyframe:
    each one while someone watches the camera, else one in ``UNWATCHED_SNAPSHOT_EVERY`` seconds)."""

    def __init__(self, feed: CameraFeed, recording: Recording, health: StorageHealth,
                 on_analytics: Callable[[dict], None],
                 watched: Callable[[int], bool] = lambda camera_id: False):  # fmt: skip
        self.feed = feed
        self.health = health
        self.on_analytics = on_analytics
        self.watched = watched
        self.detectors = detectors_for(feed.analytics)
        args = (recording.storage, feed.camera_id, recording.server, recording.segment_seconds, recording.on_segment)
        if feed.over_rtsp:
            from recording.streamcopy import KeyframeDecoder, PacketSegmentWriter

            self.writer = PacketSegmentWriter(*args)
            self.decoder = KeyframeDecoder(every_frame=bool(self.detectors))
        else:
            self.writer = SegmentWriter(*args)
            self.decoder = None
        self.latest_jpeg: bytes | None = None
        self._snapshot_at = 0.0
        self._lock = threading.Lock()
        self._closed = False
        self._retry_at = 0.0  # after a storage failure: when to try writing again

    def __call__(self, feed: CameraFeed, frame) -> None:
        image = frame.image if self.decoder is None else self._picture(frame)
        with self._lock:
            if self._closed:
                return  # a worker that outlived its stop must not open a segment nobody closes
            self._record(frame)
        if image is None:
            return
        for detector in self.detectors:
            event = detector.feed(image, frame.at)
            if event:
                self.on_analytics({"camera_id": feed.camera_id, **event})
        if self.decoder is None:
            self.latest_jpeg = frame.jpeg  # published by the heartbeat thread: ingest never waits on Redis

    def _picture(self, packet):
        """Decode what analytics or the snapshot need (before the packet goes to the recording)."""
        from recording.streamcopy import snapshot_jpeg

        every = SNAPSHOT_EVERY if self.watched(self.feed.camera_id) else UNWATCHED_SNAPSHOT_EVERY
        snapshot_due = packet.keyframe and packet.at - self._snapshot_at >= every * 0.8  # keyframes jitter
        if not self.detectors and not snapshot_due:
            return None
        image = self.decoder.picture(packet)
        if image is not None and snapshot_due:
            self._snapshot_at = packet.at
            self.latest_jpeg = snapshot_jpeg(image)
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
            self.health.failed(self.feed.camera_id, exc)
            return
        if self._retry_at or self.health.troubled:
            self._retry_at = 0.0
            self.health.recovered(self.feed.camera_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            try:
                self.writer.close()
            except OSError:
                self.writer.abandon()
            self.health.forget(self.feed.camera_id)
