"""The agent's word to the redundancy engine, each interval, through Redis alone.

Each beat renews the server's lease (``recording.lease``), says the server is alive (with how
many cameras stream and the storage's first error), publishes every camera's stream report
and, at most once a second, the live wall's new pictures; it reads back which cameras someone
watches. It runs on a thread of its own that touches neither the cameras nor the database, so
neither can delay the one signal a failover is decided on. While another live agent holds the
server's name, that agent speaks for the server and this one publishes nothing (it records on,
and claims the name again when it is free). When Redis comes back after failing, the first
beat reports the outage, a witness for the engine that the silence was Redis's, not the servers'.
"""

import logging
import os
import threading
import time
from collections.abc import Callable

import redis

from recording import live
from recording.lease import ServerLease
from recording.pipeline import SNAPSHOT_EVERY

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        redis_client: redis.Redis,
        name: str,
        lease: ServerLease,
        interval: float,
        ttl: float,
        clock: Callable[[], float],
        status: Callable[[], tuple[dict[int, dict], dict]],
        pictures: Callable[[], dict[int, bytes]],
    ):
        self.redis = redis_client
        self.name = name
        self.lease = lease
        self.interval = interval
        self.ttl = ttl
        self.clock = clock
        self.status = status  # (stream reports by camera, storage problems by camera) now
        self.pictures = pictures  # the cameras' new pictures since the last call
        self.watched: set[int] = set()  # cameras someone looks at on the live wall
        self.lost_since: float | None = None  # Redis failing since then
        self._last_ok = clock()
        self._pictures_at = 0.0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.beat()
            stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def beat(self) -> None:
        reports, problems = self.status()
        try:
            if self.lease.renew() is not None:
                self.lost_since, self._last_ok = None, self.clock()  # another agent speaks for the server
                return
            live.publish_heartbeat(
                self.redis,
                self.name,
                {"at": self.clock(), "pid": os.getpid(), "cameras": len(reports),
                 "streaming": sum(1 for r in reports.values() if r["state"] == "streaming"),
                 "storage_error": next(iter(problems.values()), None)},
                self.ttl,
            )  # fmt: skip
            live.publish_stream_health(self.redis, self.name, reports, self.ttl)
            if self.lost_since is not None:
                live.report_outage(self.redis, self.name, self._last_ok, self.clock())
                log.info("server=%s event=redis_back lost_for=%.1fs", self.name, self.clock() - self._last_ok)
                self.lost_since = None
            self._last_ok = self.clock()
            self.watched = live.read_watched(self.redis)
            self._publish_pictures()
        except redis.RedisError as exc:
            if self.lost_since is None:
                self.lost_since = self.clock()
            log.warning("server=%s event=heartbeat_failed error=%s", self.name, type(exc).__name__)

    def _publish_pictures(self) -> None:
        """The cameras' new pictures, at most once in ``SNAPSHOT_EVERY``, all in one round trip."""
        now = self.clock()
        if now - self._pictures_at < SNAPSHOT_EVERY:
            return
        self._pictures_at = now
        pictures = self.pictures()
        if pictures:
            live.publish_snapshots(self.redis, self.name, pictures)
