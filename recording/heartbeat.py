"""The agent's word to the redundancy engine, each interval, through Redis alone.

Each beat renews the server's lease (``recording.lease``), says the server is alive (with how
many cameras stream and the storage's first error), publishes every camera's stream report
and, at most once a second, the live wall's new pictures; it reads back which cameras someone
watches. It runs on a thread of its own that touches neither the cameras nor the database, so
neither can delay the one signal a failover is decided on. While another live agent holds the
server's name, that agent speaks for the server and this one publishes nothing (it records on,
and claims the name again when it is free). When Redis comes back after failing, the first
beat reports the outage, a witness for the engine that the silence was Redis's, not the servers'.

Each beat carries ``streams``, a digest of the cameras' stream states (``streams_digest``). A change of a
camera's state nudges the heartbeat (``nudge``): when the digest moved, it beats at once, not at its next
interval, and wakes the engine (``live.wake_engine``), so a lost stream is acted on within milliseconds.
A beat whose digest is the last one's wakes nobody. Beside it, ``fps``: each camera's frame rate, said again
only when it moved by 1 fps or 10 % (``steady_fps``), so that a reader can take the rates from the beat and read
the reports themselves only when the digest moves.

Each beat that gets through says how long its writes took (``on_sent``: the lease's renewal, the stream
reports and the heartbeat, in seconds; the agent's metrics keep them as a histogram); one that fails says so
(``on_failed``).
"""

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable

import redis

from protocol import live
from recording.lease import ServerLease
from recording.pipeline import SNAPSHOT_EVERY

log = logging.getLogger(__name__)

SETTLE = 0.01  # seconds a nudge waits for the others of one event (a switch down loses many cameras at once)
STOP_SEEN_WITHIN = 0.1  # seconds: the wait for a nudge looks at the agent's stop this often
EARLIEST_AFTER = 0.05  # seconds at least between two beats, however often the states change


def stream_tokens(reports: dict[int, dict], before: dict[int, str]) -> dict[int, str]:
    """What the engine acts on in each camera's report: streaming (since when) or lost; connecting is news only
    for a camera not lost before, as a lost stream's reconnection attempts come and go every few seconds."""
    tokens = {}
    for camera_id, report in reports.items():
        state = report.get("state")
        if state == "streaming":
            tokens[camera_id] = f"streaming@{report.get('since')!r}"
        elif state == "connecting" and before.get(camera_id) == "lost":
            tokens[camera_id] = "lost"  # trying again: still lost
        else:
            tokens[camera_id] = str(state)
    return tokens


def steady_fps(reports: dict[int, dict], before: dict[int, float]) -> dict[int, float]:
    """Each camera's frame rate (to 0.1 fps), or the one said before while it moved by less than 1 fps and 10 %:
    a rate's jitter from one window to the next is no news."""
    rates = {}
    for camera_id, report in reports.items():
        now, last = round(float(report.get("fps") or 0.0), 1), before.get(camera_id)
        rates[camera_id] = now if last is None or abs(now - last) >= min(1.0, 0.1 * last) else last
    return rates


def streams_digest(tokens: dict[int, str]) -> str:
    """A short digest of the sorted (camera, state token): it moves when and only when one of them does."""
    text = ";".join(f"{camera_id}={token}" for camera_id, token in sorted(tokens.items()))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


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
        on_desired: Callable[[], None] | None = None,
        on_sent: Callable[[float], None] | None = None,
        on_failed: Callable[[], None] | None = None,
    ):
        self.redis = redis_client
        self.name = name
        self.lease = lease
        self.interval = interval
        self.ttl = ttl
        self.clock = clock
        self.status = status  # (stream reports by camera, storage problems by camera) now
        self.pictures = pictures  # the cameras' new pictures since the last call
        # Called when the engine's word for this server moved: each beat looks, so the agent follows a new desired
        # set within a beat even when the engine's notice is late (Celery reconnecting after a Redis failover).
        self.on_desired = on_desired
        self.on_sent = on_sent
        self.on_failed = on_failed
        self._desired_seen: bytes | None = None
        self.watched: set[int] = set()  # cameras someone looks at on the live wall
        self.lost_since: float | None = None  # Redis failing since then
        self._last_ok = clock()
        self._last_stamp: float | None = None  # the last beat's time by Redis's clock
        self._pictures_at = 0.0
        self._nudged = threading.Event()
        self._tokens: dict[int, str] = {}  # the cameras' state tokens as last computed
        self.published_digest: str | None = None  # the streams digest of the last beat published
        self._fps: dict[int, float] = {}  # the frame rates as the last beat said them

    def nudge(self) -> None:
        """A camera's stream state changed: look now whether the engine must hear of it. Cheap, any thread."""
        self._nudged.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.beat()
            self._wait(stop, started)

    def _wait(self, stop: threading.Event, started: float) -> None:
        """Until the next beat is due: the interval's end, or sooner when a nudge moved the streams digest (not
        while Redis fails: the beats that fail already come once an interval)."""
        while not stop.is_set():
            remaining = self.interval - (time.monotonic() - started)
            if remaining <= 0:
                return
            if not self._nudged.wait(min(remaining, STOP_SEEN_WITHIN)):
                continue
            stop.wait(SETTLE)
            self._nudged.clear()
            if self.lost_since is None and self._digest(self.status()[0]) != self.published_digest:
                stop.wait(max(0.0, EARLIEST_AFTER - (time.monotonic() - started)))
                return

    def _digest(self, reports: dict[int, dict]) -> str:
        self._tokens = stream_tokens(reports, self._tokens)
        return streams_digest(self._tokens)

    def beat(self) -> None:
        reports, problems = self.status()
        digest = self._digest(reports)
        self._fps = steady_fps(reports, self._fps)
        sending = time.monotonic()
        try:
            if self.lease.renew() is not None:
                self.lost_since, self._last_ok = None, self.clock()  # another agent speaks for the server
                return
            # The reports before the digest that announces them: a reader that sees the new digest (and so does not
            # read the reports again until it moves) finds the new reports too.
            live.publish_stream_reports(self.redis, self.name, reports, self.ttl)
            if self.lost_since is not None and self._last_stamp is not None:
                # The outage, from the last beat that got through to now (Redis's clock), is said before the
                # heartbeat that ends it: a pass that sees this server fresh again sees the outage too, and does
                # not age the servers whose first beat after it has not come yet by the silence Redis caused.
                live.report_outage(self.redis, self.name, self._last_stamp, live.redis_time(self.redis))
            # Stamped by Redis's clock (no "at"): heartbeat ages do not depend on this host's clock.
            stamp = live.publish_heartbeat(
                self.redis,
                self.name,
                {"pid": os.getpid(), "cameras": len(reports),
                 "streaming": sum(1 for r in reports.values() if r["state"] == "streaming"),
                 "storage_error": next(iter(problems.values()), None), "streams": digest,
                 "fps": {str(camera_id): rate for camera_id, rate in self._fps.items()}},
                self.ttl,
            )  # fmt: skip
            if self.on_sent is not None:
                self.on_sent(time.monotonic() - sending)
            if digest != self.published_digest:
                self.published_digest = digest
                live.wake_engine(self.redis, f"streams:{self.name}")
            if self.lost_since is not None:
                log.info("server=%s event=redis_back lost_for=%.1fs", self.name, self.clock() - self._last_ok)
                self.lost_since = None
            self._last_ok, self._last_stamp = self.clock(), stamp
            self.watched, word = live.read_agent_news(self.redis, self.name)  # one round trip
            if word != self._desired_seen and self.on_desired is not None:
                self._desired_seen = word
                self.on_desired()
            self._publish_pictures()
        except redis.RedisError as exc:
            if self.lost_since is None:
                self.lost_since = self.clock()
            log.warning("server=%s event=heartbeat_failed error=%s", self.name, type(exc).__name__)
            if self.on_failed is not None:
                self.on_failed()

    def _publish_pictures(self) -> None:
        """The cameras' new pictures, at most once in ``SNAPSHOT_EVERY``, all in one round trip."""
        now = self.clock()
        if now - self._pictures_at < SNAPSHOT_EVERY:
            return
        self._pictures_at = now
        pictures = self.pictures()
        if pictures:
            live.publish_snapshots(self.redis, self.name, pictures)
