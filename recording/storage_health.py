"""Whether a video server can write its recordings: per camera, and for the storage itself.

The ingest threads report what their writes do; the heartbeat reads one consistent view of it
for the engine and the stream reports. Cheap enough to ask on every frame (``troubled``). Each failed
write is also counted (``on_failed``: the agent's metrics). ``StorageProbe`` is the readiness check's own
write, for a storage that no camera writes to now.
"""

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_EVERY = 1.0  # seconds: however often the readiness is asked, the storage is written to at most this often
PROBE_TIMEOUT = 2.0  # seconds a readiness answer waits for the probe's write (a hung network mount: not ready)


class StorageHealth:
    def __init__(self, server: str, on_failed: Callable[[int | None], None] | None = None):
        self.server = server
        self.on_failed = on_failed  # called with the camera (None: the storage itself) at each failed write
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
        if self.on_failed is not None:
            self.on_failed(camera_id)
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


class StorageProbe:
    """Whether the storage takes a write now: a small file written, fsynced and removed, at most once in
    ``every`` seconds (a busy poller costs the disk nothing more), waited for at most ``timeout`` seconds on a
    thread of its own, so a storage that hangs makes the answer "not ready", never a hung request."""

    def __init__(self, storage: Path, every: float = PROBE_EVERY, timeout: float = PROBE_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.storage = storage
        self.every = every
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._result: tuple[bool, str] = (False, "not probed yet")
        self._probed_at: float | None = None
        self._running: threading.Thread | None = None
        self._running_since = 0.0
        self._usage_lock = threading.Lock()
        self._usage: tuple[int, int] | None = None
        self._sized_at: float | None = None
        self._sizing: threading.Thread | None = None

    def check(self) -> tuple[bool, str]:
        """(writable, what was seen), at most ``every`` seconds old."""
        with self._lock:
            now = self.clock()
            if self._running is not None and self._running.is_alive():
                return False, f"a write to the storage has not returned for {now - self._running_since:.1f} s"
            if self._probed_at is not None and now - self._probed_at < self.every:
                return self._result
            done = threading.Event()
            self._running = threading.Thread(target=self._probe, args=(done,), name="storage-probe", daemon=True)
            self._running_since = now
            self._running.start()
            if not done.wait(self.timeout):
                return False, f"a write to the storage has not returned within {self.timeout:.0f} s"
            self._probed_at = self.clock()
            return self._result

    def usage(self) -> tuple[int, int] | None:
        """(free, total) bytes of the storage's file system for the metrics, read at most once in ``every`` seconds
        and waited for at most ``timeout`` on a thread of its own: None while it does not answer, or is gone."""
        with self._usage_lock:
            if self._sizing is not None and self._sizing.is_alive():
                return None  # the last reading hangs still: no second thread for a scrape
            if self._sized_at is None or self.clock() - self._sized_at >= self.every:
                done = threading.Event()
                self._sizing = threading.Thread(target=self._size, args=(done,), name="storage-size", daemon=True)
                self._sizing.start()
                if not done.wait(self.timeout):
                    return None
                self._sized_at = self.clock()
            return self._usage

    def _size(self, done: threading.Event) -> None:
        try:
            usage = shutil.disk_usage(self.storage)
            self._usage = (usage.free, usage.total)
        except OSError:
            self._usage = None
        finally:
            done.set()

    def _probe(self, done: threading.Event) -> None:
        path = self.storage / f".ready-probe-{os.getpid()}"
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(descriptor, b"ready\n")
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.remove(path)
            self._result = (True, "the storage takes writes")
        except OSError as exc:
            self._result = (False, f"the storage takes no write: {exc.strerror or type(exc).__name__}")
        finally:
            done.set()
