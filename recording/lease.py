"""One agent per video server: an exclusive lease on the server's name, held in Redis.

An agent claims ``lease:<server>`` before it records and renews it with every heartbeat. A
second agent for the same name (a second demo started beside the first, a cloned VM) finds it
held and refuses to start, naming the holder's host and process. A holder that died on this
host (its process is gone, or only waits to be reaped) is taken over at once; one elsewhere must let its lease expire.
Should two agents ever speak for one server anyway, each conflict is reported for the engine
to record as an event. Without Redis nobody can be asked: the agent records, and claims the
lease once Redis answers.
"""

import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path

import redis

from protocol import live

log = logging.getLogger(__name__)

# Set the lease if it is free or already ours; otherwise answer the holder.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return false
end
return holder
"""
# Take over a lease whose holder is known to be dead, unless it changed meanwhile.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def ttl_for(heartbeat_interval: float) -> float:
    """How long a heartbeat, and the lease renewed with it, outlive a silent agent: a few beats."""
    return max(3 * heartbeat_interval, 2.0)


class ServerClaimed(Exception):
    """Another live agent holds the video server's name."""

    def __init__(self, server: str, holder: dict):
        self.server, self.holder = server, holder
        super().__init__(
            f"video server {server} is already run by another agent: process {holder.get('pid')} on host "
            f"{holder.get('host')}, since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.get('since', 0)))}."
            " Stop that agent first, or give this one another server's name."
        )


def describe(agent: dict) -> str:
    return f"process {agent.get('pid')} on {agent.get('host')}"


class ServerLease:
    def __init__(self, redis_client: redis.Redis, server: str, ttl: float, clock=time.time):
        self.redis, self.server, self.ttl, self.clock = redis_client, server, ttl, clock
        self.identity = {"agent": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "since": clock()}
        self._value = json.dumps(self.identity, sort_keys=True)
        self.held = False
        self._conflict_with: str | None = None  # the holder last reported, so each conflict is reported once

    @property
    def key(self) -> str:
        return live.key("lease", self.server)

    def acquire(self) -> None:
        """Claim the name; raises ServerClaimed while another live agent holds it."""
        try:
            holder = self._claim()
            if holder is not None and self._holder_died(holder):
                took = self.redis.eval(_TAKE_OVER, 1, self.key, self._value, holder, self._ttl_ms())
                holder = None if took else self._claim()
        except redis.RedisError:
            log.warning("server=%s event=lease_unchecked reason=redis_unreachable", self.server)
            return  # record anyway; the heartbeat claims the lease once Redis answers
        if holder is not None:
            other = json.loads(holder)
            self._report_conflict(holder, refused=True)
            raise ServerClaimed(self.server, other)
        self.held = True
        log.info("server=%s event=lease_acquired agent=%s", self.server, describe(self.identity))

    def renew(self) -> dict | None:
        """With each heartbeat: keep the lease. Returns the other holder if it was lost to another
        agent (which is reported, once per holder), None while it is ours. Raises redis.RedisError."""
        holder = self._claim()
        if holder is None:
            if not self.held:
                log.info("server=%s event=lease_acquired agent=%s", self.server, describe(self.identity))
            self.held, self._conflict_with = True, None
            return None
        self.held = False
        if holder != self._conflict_with:
            self._conflict_with = holder
            self._report_conflict(holder, refused=False)
        return json.loads(holder)

    def release(self) -> None:
        try:
            self.redis.eval(_RELEASE, 1, self.key, self._value)
        except redis.RedisError:
            pass  # it expires on its own
        self.held = False

    def _claim(self) -> str | None:
        holder = self.redis.eval(_CLAIM, 1, self.key, self._value, self._ttl_ms())
        return holder.decode() if holder else None

    def _ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    def _holder_died(self, holder: str) -> bool:
        """A holder on this host whose process is gone (a killed agent restarted at once)."""
        try:
            other = json.loads(holder)
        except ValueError:
            return False
        if other.get("host") != self.identity["host"] or not isinstance(other.get("pid"), int):
            return False
        try:
            os.kill(other["pid"], 0)  # signal 0: does the process exist?
        except ProcessLookupError:
            return True
        except PermissionError:  # it exists, under another user
            pass
        return _zombie(other["pid"])

    def _report_conflict(self, holder: str, refused: bool) -> None:
        other = json.loads(holder)
        log.error("server=%s event=agent_conflict holder=%r agent=%r refused=%s", self.server, describe(other),
                  describe(self.identity), refused)  # fmt: skip
        live.report_agent_conflict(self.redis, self.server, {"holder": other, "agent": self.identity,
                                                             "refused": refused, "at": self.clock()})  # fmt: skip


def _zombie(pid: int) -> bool:
    """The process ended and waits only for its parent to reap it (Linux: state Z in /proc): it answers signal 0
    but will never renew a lease."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
