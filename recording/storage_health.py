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


class _AtMostEvery:
    """``read`` (which may hang: a storage on a network mount) on a thread of its own, at most once in ``every``
    seconds and waited for at most ``timeout``: a caller never hangs, and a reading that hangs is never started
    twice."""

    def __init__(self, read: Callable[[], object], name: str, every: float, timeout: float,
                 clock: Callable[[], float]):  # fmt: skip
        self.read, self.name, self.every, self.timeout, self.clock = read, name, every, timeout, clock
        self._lock = threading.Lock()
        self._value = None
        self._read_at: float | None = None
        self._running: threading.Thread | None = None
        self._running_since = 0.0

    def get(self) -> tuple[bool, object, float]:
        """(answered, the last reading's value, seconds the reading under way has taken so far)."""
        with self._lock:
            now = self.clock()
            if self._running is not None and self._running.is_alive():
                return False, None, now - self._running_since
            if self._read_at is not None and now - self._read_at < self.every:
                return True, self._value, 0.0
            done = threading.Event()
            self._running = threading.Thread(target=self._run, args=(done,), name=self.name, daemon=True)
            self._running_since = now
            self._running.start()
            if not done.wait(self.timeout):
                return False, None, self.clock() - self._running_since
            self._read_at = self.clock()
            return True, self._value, 0.0

    def _run(self, done: threading.Event) -> None:
        try:
            self._value = self.read()
        finally:
            done.set()


class StorageProbe:
    """Whether the storage takes a write now: a small file written, fsynced and removed, at most once in
    ``every`` seconds (a busy poller costs the disk nothing more), waited for at most ``timeout`` seconds on a
    thread of its own, so a storage that hangs makes the answer "not ready", never a hung request. The file
    system's free and total bytes, for the metrics, are read the same way."""

    def __init__(self, storage: Path, every: float = PROBE_EVERY, timeout: float = PROBE_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.storage = storage
        self._write = _AtMostEvery(self._probe, "storage-probe", every, timeout, clock)
        self._size = _AtMostEvery(self._usage, "storage-size", every, timeout, clock)

    def check(self) -> tuple[bool, str]:
        """(writable, what was seen), at most ``every`` seconds old."""
        answered, result, waited = self._write.get()
        if not answered:
            return False, f"a write to the storage has not returned for {waited:.1f} s"
        return result

    def usage(self) -> tuple[int, int] | None:
        """(free, total) bytes of the storage's file system, at most ``every`` seconds old: None while it does not
        answer, or is gone."""
        answered, usage, _ = self._size.get()
        return usage if answered else None

    def _usage(self) -> tuple[int, int] | None:
        try:
            usage = shutil.disk_usage(self.storage)
        except OSError:
            return None
        return usage.free, usage.total

    def _probe(self) -> tuple[bool, str]:
        path = self.storage / f".ready-probe-{os.getpid()}"
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(descriptor, b"ready\n")
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.remove(path)
        except OSError as exc:
            return False, f"the storage takes no write: {exc.strerror or type(exc).__name__}"
        return True, "the storage takes writes"
