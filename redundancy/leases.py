"""Which engine worker decides for which multiserver system: a lease per system in Redis.

Systems are independent of each other, so engine workers share them: each holds the leases of
some, renews them every pass, and decides only for those. A worker takes free systems up to its
fair share (the systems divided by the workers alive, rounded up) and gives back one system per
pass while it holds more, so a worker that joins gets its share within a few passes; a worker
that dies stops renewing, and its systems are free to the others after ``ttl``. A system nobody
takes is taken beyond the fair share too (the worker that should have it may be gone), except by
the worker that just gave it back. The lease's value names the worker, so only its holder renews
or releases it.

A lease says who should decide; it does not stop a worker that paused past it from writing when it
runs again: each lease taken begins a term with a fencing token (``redundancy.fencing``), checked
where decisions are stored.
"""

import math
import time
import uuid

import redis

from protocol import live

# One round trip: this worker (ARGV[1]) says it is alive in the registry (KEYS[1], scored by Redis's clock),
# workers silent for ARGV[3] seconds (as long as a lease lasts) leave it; each lease (KEYS[2..]) held by this
# worker is renewed for ARGV[2] ms. Returns the live workers, each lease's holder ('' when free) and the ms left of
# each (-2 when free).
_PASS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
local holders, left = {}, {}
for i = 2, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
  holders[i - 1] = holder or ''
  left[i - 1] = redis.call('PTTL', KEYS[i])
end
return {redis.call('ZRANGE', KEYS[1], 0, -1), holders, left}
"""

# Before a pass writes: each lease (KEYS) still this worker's (ARGV[1]) is renewed for ARGV[2] ms, one that
# expired meanwhile (a long pass) is taken again; returns the holders (this worker, or the one that took it).
_CONFIRM = """
local holders = {}
for i = 1, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  elseif not holder then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    holder = ARGV[1]
  end
  holders[i] = holder
end
return holders
"""

# Between passes and during a long one (the first load of a large site): this worker (ARGV[1]) is still alive in
# the registry (KEYS[1]) and its leases (KEYS[2..]) are renewed for ARGV[2] ms while they are still its own.
_RENEW = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
end
return 0
"""

# A lease (KEYS[1]) deleted if this worker (ARGV[1]) holds it (the schedule's too, redundancy.schedule).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class SystemLeases:
    def __init__(self, redis_client: redis.Redis, worker: str | None = None, ttl: float | None = None):
        from django.conf import settings

        self.redis = redis_client
        self.worker = worker or uuid.uuid4().hex[:12]
        self.ttl = settings.ENGINE_LEASE_SECONDS if ttl is None else ttl
        self.held: set[int] = set()
        self.taken: set[int] = set()  # the systems the last ``hold`` took (each begins a new term)
        # Seconds until the first lease another worker holds runs out, as the last ``hold`` saw it (None: none):
        # the loop passes then, so that a dead worker's systems are taken when its lease ends, not at a backstop.
        self.others_end_in: float | None = None
        self._given_back: dict[int, float] = {}  # system → when this worker gave it back (monotonic)

    def hold(self, systems: set[int]) -> set[int]:
        """Renew the leases held, take free ones up to the fair share (beyond it, those nobody else takes), give
        one back while another live worker has less than its share; returns the systems this worker decides
        for now. Raises redis.RedisError: without Redis nobody holds anything."""
        ordered = sorted(systems)
        ttl_ms = int(self.ttl * 1000)
        keys = [live.key("engine-workers"), *[live.key("system-lease", s) for s in ordered]]
        workers, holders, left = self.redis.eval(_PASS, len(keys), *keys, self.worker, ttl_ms, self.ttl)
        workers = [w.decode() for w in workers]
        holder_of = {system: h.decode() for system, h in zip(ordered, holders, strict=True)}
        others = [ms for h, ms in zip(holder_of.values(), left, strict=True) if h and h != self.worker and ms >= 0]
        self.others_end_in = min(others) / 1000 if others else None
        held = {system for system, holder in holder_of.items() if holder == self.worker}
        self.taken = set()
        share = math.ceil(len(ordered) / max(1, len(workers)))
        recently = time.monotonic() - 3 * self.ttl
        for system, holder in holder_of.items():
            if holder or (len(held) >= share and self._given_back.get(system, 0.0) > recently):
                continue
            if self.redis.set(live.key("system-lease", system), self.worker, nx=True, px=ttl_ms):
                held.add(system)
                self.taken.add(system)
                holder_of[system] = self.worker
        counts = {worker: 0 for worker in workers}
        for holder in holder_of.values():
            if holder in counts:
                counts[holder] += 1
        wanting = any(count < share for worker, count in counts.items() if worker != self.worker)
        if len(held) > share and wanting:  # another worker is short of its share: leave it one
            given = max(held)
            self.release({given})
            self._given_back[given] = time.monotonic()
            held.discard(given)
        self.held = held
        return held

    def confirm(self) -> set[int]:
        """Right before a pass writes: renew the leases held (one that expired during a long pass is taken
        again, if nobody else took it); returns the systems lost to another worker, which this one no longer
        holds. Raises redis.RedisError."""
        ordered = sorted(self.held)
        if not ordered:
            return set()
        keys = [live.key("system-lease", s) for s in ordered]
        holders = self.redis.eval(_CONFIRM, len(keys), *keys, self.worker, int(self.ttl * 1000))
        lost = {system for system, holder in zip(ordered, holders, strict=True) if holder.decode() != self.worker}
        self.held -= lost
        return lost

    def renew(self) -> None:
        """Renew the leases held, from the loop's keeper thread: a pass longer than ``ttl`` (loading a large
        site) keeps them, while a process that is frozen or killed renews nothing. Raises redis.RedisError."""
        held = sorted(frozenset(self.held))  # a copy taken at once: the loop's thread may change the set
        keys = [live.key("engine-workers"), *[live.key("system-lease", s) for s in held]]
        self.redis.eval(_RENEW, len(keys), *keys, self.worker, int(self.ttl * 1000))

    def drop(self, systems: set[int]) -> None:
        """Stop deciding for ``systems`` (another worker's term superseded this one's) without touching their
        leases, which are another worker's now or expire."""
        self.held -= systems

    def release(self, systems=None) -> None:
        """Give leases back (a worker stopping): the others take them at their next pass, not after ``ttl``."""
        for system in list(self.held if systems is None else systems):
            try:
                self.redis.eval(RELEASE, 1, live.key("system-lease", system), self.worker)
            except redis.RedisError:
                pass  # it expires
            self.held.discard(system)
        if systems is None:
            try:
                self.redis.zrem(live.key("engine-workers"), self.worker)
            except redis.RedisError:
                pass
