"""Whether a video server can write its recordings: per camera, and for the storage itself.

The ingest threads report what their writes do; the heartbeat reads one consistent view of it
for the engine and the stream reports. Cheap enough to ask on every frame (``troubled``).
"""

import logging
import threading

log = logging.getLogger(__name__)


class StorageHealth:
    def __init__(self, server: str):
        self.server = server
        self._problems: dict[int | None, str] = {}  # camera (None: the storage itself) -> error
        self._lock = threading.Lock()

    def snapshot(self) -> dict[int | None, str]:
        with self._lock:
            return dict(self._problems)

    @property
    def troubled(self) -> bool:
        """No lock, no copy (a dict's truth is read atomically): asked on every frame."""
        return bool(self._problems)

    @property
    def error(self) -> str | None:
        return next(iter(self.snapshot().values()), None)

    def failed(self, camera_id: int | None, exc: OSError) -> None:
        error = exc.strerror or str(exc)
        with self._lock:
            known = self._problems.get(camera_id)
            self._problems[camera_id] = error
        if known != error:
            log.error("server=%s camera=%s event=storage_failed error=%s", self.server, camera_id or "-", error)

    def recovered(self, camera_id: int) -> None:
        """A frame of the camera was written: its storage, and the storage itself, work."""
        with self._lock:
            self._problems.pop(None, None)
            known = self._problems.pop(camera_id, None)
        if known is not None:
            log.info("server=%s camera=%s event=storage_recovered", self.server, camera_id)

    def forget(self, camera_id: int) -> None:
        """A camera no longer recorded here has no error."""
        with self._lock:
            self._problems.pop(camera_id, None)
