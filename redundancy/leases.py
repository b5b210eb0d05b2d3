"""Which engine worker decides for which multiserver system: a lease per system in Redis.

Systems are independent of each other, so engine workers share them: each holds the leases of
some, renews them every pass, and decides only for those. A worker takes free systems up to its
fair share (the systems divided by the workers alive, rounded up) and gives back one system per
pass while it holds more, so a worker that joins gets its share within a few passes; a worker
that dies stops renewing, and its systems are free to the others after ``ttl``. The lease's
value names the worker, so only its holder renews or releases it.
"""

import math
import uuid

import redis

from recording import live

# Renew each lease held by ARGV[1] (KEYS: leases); returns one flag per key.
_RENEW = """
local held = {}
for i, name in ipairs(KEYS) do
  if redis.call('GET', name) == ARGV[1] then
    redis.call('PEXPIRE', name, ARGV[2])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
"""

_RELEASE = """
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

    def hold(self, systems: set[int]) -> set[int]:
        """Renew the leases held, take free ones up to the fair share, give one back above it; returns the
        systems this worker decides for now. Raises redis.RedisError: without Redis nobody holds anything."""
        systems = set(systems)
        ttl_ms = int(self.ttl * 1000)
        now = live.redis_time(self.redis)
        with self.redis.pipeline() as pipe:
            pipe.zadd(live.key("engine-workers"), {self.worker: now})
            pipe.zremrangebyscore(live.key("engine-workers"), "-inf", now - 3 * self.ttl)
            pipe.zcard(live.key("engine-workers"))
            _, _, workers = pipe.execute()
        ordered = sorted(systems)
        flags = self.redis.eval(_RENEW, len(ordered), *[live.key("lease", s) for s in ordered], self.worker,
                                ttl_ms) if ordered else []  # fmt: skip
        held = {system for system, flag in zip(ordered, flags, strict=True) if flag}
        share = math.ceil(len(systems) / max(1, workers))
        for system in ordered:
            if len(held) >= share:
                break
            if system not in held and self.redis.set(live.key("lease", system), self.worker, nx=True, px=ttl_ms):
                held.add(system)
        if len(held) > share:  # another worker joined: leave it one
            given = max(held)
            self.release({given})
            held.discard(given)
        self.held = held
        return held

    def release(self, systems=None) -> None:
        """Give leases back (a worker stopping): the others take them at their next pass, not after ``ttl``."""
        for system in list(self.held if systems is None else systems):
            try:
                self.redis.eval(_RELEASE, 1, live.key("lease", system), self.worker)
            except redis.RedisError:
                pass  # it expires
            self.held.discard(system)
        if systems is None:
            try:
                self.redis.zrem(live.key("engine-workers"), self.worker)
            except redis.RedisError:
                pass
