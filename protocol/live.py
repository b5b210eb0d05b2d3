"""The live protocol between the video-server agents, the redundancy engine and the web tier: Redis.

Every key is declared here, with who writes it and who reads it (``KEYS``; a test finds any other
name used with ``key()`` in the tree). All sit under ``settings.LIVE_KEY_PREFIX``. Times are
Redis's clock (``TIME``) wherever two hosts compare them: heartbeats are stamped by Redis, and the
engine measures their age by Redis's clock, so hosts need not agree on the time.

Agents write, the engine and the web tier read:

- ``heartbeat:<server>``: the agent's last heartbeat (JSON: pid, cameras, storage error, ``streams``
  a digest of its stream states, ``fps`` its cameras' frame rates), expiring after a few intervals;
- ``last-seen``: hash server → time of its last heartbeat by Redis's clock, kept after the heartbeat
  expires: the one record of when a server was heard (the heartbeat carries no time of its own);
- ``stream-reports:<server>``: hash camera id → stream report (JSON), written before the heartbeat that
  carries its digest;
- ``leaving:<server>``: set when an agent stops gracefully (a planned shutdown);
- ``lease:<server>``: the agent that holds the server's name (``recording.lease``);
- ``agent-conflicts``: list of reports of two agents claiming one server, taken by the engine;
- ``outage:<witness>``: when a witness (an agent, or the engine: ``engine``) could not reach Redis;
- ``snapshot:<camera>``: the latest JPEG of a camera and the server that took it (read by the web).

The engine writes, the agents read:

- ``desired:<server>``: the camera ids the server should ingest now, with the term they were decided in
  (the system and the deciding worker's fencing token: an agent refuses an earlier term's word);
- ``handed-over:<server>``: the engine's word that a leaving server may stop;
- ``engine-workers`` (below): an engine worker renewed its place within a lease (somebody to hand
  cameras to: ``engine_ticking``).

The engine's own, kept between its passes and across its restarts:

- ``engine-last-pass``: the time of the last pass by the engine's clock (a gap without heartbeats is an
  outage of Redis);
- ``engine-workers``: sorted set worker → when it last passed or renewed its leases, by Redis's clock;
- ``system-lease:<system>``: the engine worker that decides for the multiserver system
  (``redundancy.leases``);
- ``system-term:<system>``: the highest term (fencing token) that wrote the system's desired sets: an
  earlier term's write is refused (the tokens themselves are counted by the database, ``redundancy.fencing``);
- ``schedule-lease``: the engine worker that sends the periodic tasks (``redundancy.schedule``);
- ``schedule-sent``: hash, each periodic task → when it was last sent, by Redis's clock;
- ``stream-states``: hash camera → "server:state" last seen by the engine (lost and restored events);
- ``refused``, ``frame-rate-dropped``: sets of the episodes under way (one event per episode).

The engine publishes, the web tier reads (``redundancy.status``):

- ``status:<system>``: hash, the system's published status (``version``, ``at``, a JSON row per
  server ``s:<id>`` and camera ``c:<id>``), expiring unless renewed;
- ``status-watched``: set by every live socket, renewed each minute: deltas are sent while it exists.

Anyone writes, the engine reads:

- ``config-version``: a counter bumped on every change of the configuration (``redundancy.config``);
- ``engine-wake``: a pub/sub channel; a message asks the engine for a pass now (an agent's stream
  states changed, a shutdown announced, an operator's drain or fail-back).

The web tier's own: ``watched`` (sorted set camera → when its live picture was last asked for,
read by the agents: they decode a fresh one at every keyframe for a while) and
``live-sockets:<user>`` (each user's open live sockets, bounded).

Every call is short and bounded by socket timeouts: a missing Redis must never stall the
caller, so agents catch ``redis.RedisError`` and keep recording.
"""

import json
import time
from dataclasses import dataclass, field
from functools import cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from protocol import connections

SOCKET_TIMEOUT = 1.0


@cache
def _client(configuration: tuple) -> redis.Redis:
    # One quick retry at most: a missing Redis must cost a caller about a second, not many.
    return connections.redis_client(
        socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT, health_check_interval=15,
        retry=Retry(NoBackoff(), 1),
    )  # fmt: skip


def client() -> redis.Redis:
    """This process's client of the live state: one plain Redis, or the master its Sentinels name (it follows a
    failover on its own, ``protocol.connections``)."""
    return _client(connections.redis_configuration())


KEYS = frozenset({
    "heartbeat", "last-seen", "stream-reports", "leaving", "lease", "agent-conflicts", "outage", "snapshot", "desired",
    "handed-over", "engine-last-pass", "engine-workers", "system-lease", "system-term",
    "schedule-lease", "schedule-sent", "stream-states", "refused", "frame-rate-dropped", "status", "status-watched",
    "config-version", "engine-wake", "watched", "live-sockets",
})  # fmt: skip


def key(*parts) -> str:
    """A key of the protocol: its first part is one of ``KEYS``."""
    return ":".join([settings.LIVE_KEY_PREFIX, *map(str, parts)])


# The heartbeat is stamped with Redis's clock unless the caller gives its own time (tests moving a clock):
# heartbeat ages are then Redis's time minus Redis's time, and the hosts need not agree on the time.
_PUBLISH_HEARTBEAT = """
local at = ARGV[2]
if at == '' then
  local t = redis.call('TIME')
  at = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[4], at)
return at
"""


def publish_heartbeat(r: redis.Redis, server: str, payload: dict, ttl: float) -> float:
    """The heartbeat (expiring) and the server's last-seen time (kept: silence is measured from it).
    ``payload["at"]``, when given, is the time it is stamped with; otherwise Redis's clock. Returns that time."""
    at = payload.get("at")
    body = {name: value for name, value in payload.items() if name != "at"}
    stamped = r.eval(_PUBLISH_HEARTBEAT, 2, key("heartbeat", server), key("last-seen"), json.dumps(body),
                     "" if at is None else repr(float(at)), int(ttl * 1000), server)  # fmt: skip
    return float(stamped)


def redis_time(r: redis.Redis) -> float:
    """Redis's clock: the one every heartbeat age is measured by."""
    seconds, micros = r.time()
    return seconds + micros / 1e6


def read_last_seen(r: redis.Redis) -> dict[str, float]:
    return {name.decode(): float(at) for name, at in r.hgetall(key("last-seen")).items()}


def read_heartbeats(r: redis.Redis, servers: list[str]) -> dict[str, dict | None]:
    if not servers:
        return {}
    values = r.mget([key("heartbeat", name) for name in servers])
    return {name: json.loads(value) if value else None for name, value in zip(servers, values, strict=True)}


def announce_leaving(r: redis.Redis, server: str, ttl: float = 60) -> None:
    r.set(key("leaving", server), json.dumps({"at": time.time()}), px=int(ttl * 1000))


def clear_leaving(r: redis.Redis, server: str) -> None:
    r.delete(key("leaving", server), key("handed-over", server))


def leaving_servers(r: redis.Redis, servers: list[str]) -> set[str]:
    if not servers:
        return set()
    with r.pipeline() as pipe:
        for name in servers:
            pipe.exists(key("leaving", name))
        return {name for name, exists in zip(servers, pipe.execute(), strict=True) if exists}


def bump_config_version(r: redis.Redis) -> int:
    """The configuration changed (``redundancy.config``): the engine and the status read it again."""
    return r.incr(key("config-version"))


def read_config_version(r: redis.Redis) -> int:
    return int(r.incrby(key("config-version"), 0))  # 0 until the first change; never missing


def wake_engine(r: redis.Redis, why: str) -> None:
    """Ask the engine for a pass now rather than at its next period (a stream lost, a shutdown announced,
    an operator's action). Missed wake-ups cost only latency: the engine passes on its own as well."""
    r.publish(key("engine-wake"), why)


OUTAGE_MEMORY = 600.0  # seconds an outage of Redis is remembered for the engine's judgement


def mark_engine_pass(r: redis.Redis, now: float) -> float | None:
    """Record an engine pass at ``now``; returns the time of the previous one, if Redis holds it."""
    last = r.getset(key("engine-last-pass"), repr(now))
    return float(last) if last is not None else None


def report_outage(r: redis.Redis, witness: str, lost_at: float, back_at: float) -> None:
    """Redis could not be reached from ``lost_at`` (the witness's last success) until ``back_at``."""
    r.set(key("outage", witness), f"{lost_at!r} {back_at!r}", ex=int(OUTAGE_MEMORY))


def read_outages(r: redis.Redis, witnesses: list[str]) -> list[tuple[float, float]]:
    values = r.mget([key("outage", name) for name in witnesses]) if witnesses else []
    return [tuple(float(part) for part in value.split()) for value in values if value]


_WORKERS_SINCE = """
local t = redis.call('TIME')
return redis.call('ZCOUNT', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000 - tonumber(ARGV[1]), '+inf')
"""


def engine_ticking(r: redis.Redis, within: float = 3.0) -> bool:
    """Whether an engine worker passed or renewed its leases within ``within`` seconds, by Redis's clock
    (``engine-workers``): somebody to hand cameras over to."""
    return bool(r.eval(_WORKERS_SINCE, 1, key("engine-workers"), within))


def mark_handed_over(r: redis.Redis, server: str, ttl: float = 60) -> None:
    """The engine's word to a leaving server: everything that can move has moved; stop now."""
    r.set(key("handed-over", server), "1", px=int(ttl * 1000))


def is_handed_over(r: redis.Redis, server: str) -> bool:
    return bool(r.exists(key("handed-over", server)))


def report_agent_conflict(r: redis.Redis, server: str, report: dict) -> None:
    with r.pipeline() as pipe:
        pipe.rpush(key("agent-conflicts"), json.dumps({"server": server, **report}))
        pipe.ltrim(key("agent-conflicts"), -100, -1)  # bounded, should nobody take them
        pipe.execute()


def publish_stream_reports(r: redis.Redis, server: str, reports: dict[int, dict], ttl: float) -> None:
    """Replace the server's stream reports: cameras it no longer ingests disappear."""
    name = key("stream-reports", server)
    with r.pipeline() as pipe:
        pipe.delete(name)
        if reports:
            pipe.hset(name, mapping={str(camera): json.dumps(report) for camera, report in reports.items()})
            pipe.pexpire(name, int(ttl * 1000))
        pipe.execute()


def read_stream_reports(r: redis.Redis, server: str) -> dict[int, dict]:
    return {int(camera): json.loads(report) for camera, report in r.hgetall(key("stream-reports", server)).items()}


def publish_snapshots(r: redis.Redis, server: str, pictures: dict[int, bytes], ttl: float = 120) -> None:
    with r.pipeline() as pipe:
        for camera_id, jpeg in pictures.items():
            pipe.hset(key("snapshot", camera_id), mapping={"jpeg": jpeg, "server": server, "at": time.time()})
            pipe.pexpire(key("snapshot", camera_id), int(ttl * 1000))
        pipe.execute()


WATCHED_FOR = 10.0  # seconds a camera counts as watched after its picture was last asked for


def mark_watched(r: redis.Redis, camera_id: int, now: float | None = None) -> None:
    """Someone is looking at the camera (the live wall asked for its picture): its server decodes a fresh
    picture at every keyframe for a while, where an unwatched stream-copied camera gets one now and then."""
    now = time.time() if now is None else now
    with r.pipeline() as pipe:
        pipe.zadd(key("watched"), {str(camera_id): now})
        pipe.zremrangebyscore(key("watched"), "-inf", now - WATCHED_FOR)
        pipe.execute()


def read_agent_news(r: redis.Redis, server: str) -> tuple[set[int], bytes | None]:
    """What an agent's heartbeat looks at, in one round trip: the cameras watched on the live wall, and the
    engine's word for ``server`` as stored (cheap to compare with the one seen before)."""
    now = time.time()
    with r.pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(key("watched"), now - WATCHED_FOR, "+inf")
        pipe.get(key("desired", server))
        watched, word = pipe.execute()
    return {int(camera) for camera in watched}, word


def read_snapshot(r: redis.Redis, camera_id: int) -> dict | None:
    value = r.hgetall(key("snapshot", camera_id))
    if not value:
        return None
    return {"jpeg": value[b"jpeg"], "server": value[b"server"].decode(), "at": float(value[b"at"])}


@dataclass(frozen=True)
class Desired:
    """The engine's word to a server: the cameras it should ingest, and the term it was decided in (the
    multiserver system and the fencing token of the engine worker that decided; None when written by hand)
    and its place in that term (``seq``: a later write of the same term has a higher one)."""

    cameras: frozenset[int]
    system: int | None = None
    term: int | None = None
    seq: int = 0
    # The event that moved a camera to this server in the write (its failover or failback started): an agent's log
    # lines of the takeover carry it, so one incident is followed across the engine, the agents and the web tier.
    incidents: dict[int, int] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, value: bytes | str) -> "Desired":
        word = json.loads(value)
        if isinstance(word, list):  # written by hand, without a term
            return cls(frozenset(word))
        incidents = {int(camera): int(event) for camera, event in (word.get("incidents") or {}).items()}
        return cls(frozenset(word["cameras"]), word.get("system"), word.get("term"), word.get("seq", 0), incidents)

    def supersedes(self, earlier: "Desired | None") -> bool:
        """Whether an agent that acted on ``earlier`` takes this word: not when an earlier term of the same
        system wrote it (a worker that lost its lease, or paused past it, and wrote afterwards), nor an earlier
        write of the same term (a Redis failover lost the later one: the engine writes it again)."""
        if earlier is None or self.term is None or earlier.term is None or self.system != earlier.system:
            return True
        return (self.term, self.seq) >= (earlier.term, earlier.seq)


def write_desired(r: redis.Redis, server: str, camera_ids) -> None:
    """The desired set written by hand (tests, tools): no term, every agent takes it."""
    r.set(key("desired", server), json.dumps(sorted(camera_ids)))


# The engine's desired sets, fenced: written only if no later term of the system has written (KEYS[1], the
# system's highest term written; KEYS[2..] the servers' desired sets, ARGV[2..] their words). Returns 1 when
# written, 0 when a later term had written (the caller's lease is gone).
_WRITE_FENCED = """
local written = tonumber(redis.call('GET', KEYS[1]) or '0')
local term = tonumber(ARGV[1])
if written > term then
  return 0
end
if written < term then
  redis.call('SET', KEYS[1], ARGV[1])
end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i])
end
return 1
"""


def write_desired_fenced(r: redis.Redis, system: int, term: int, sets: dict[str, set[int]], seq: int = 0,
                         incidents: dict[int, int] | None = None):
    """The engine's desired sets of one system's servers, decided in ``term``, its ``seq``-th write in it; ``r``
    is usually the engine's pipeline of a pass, whose result for this call is 1 when written and 0 when refused.
    ``incidents``: camera → the event that began its move (while it moves); each server's word carries those of
    its cameras, and none when it has none."""
    incidents = incidents or {}

    def word(cameras: set[int]) -> str:
        value = {"system": system, "term": term, "seq": seq, "cameras": sorted(cameras)}
        mine = {str(camera): incidents[camera] for camera in sorted(cameras) if camera in incidents}
        if mine:
            value["incidents"] = mine
        return json.dumps(value)

    words = [word(cameras) for cameras in sets.values()]
    keys = [key("system-term", system), *[key("desired", name) for name in sets]]
    return r.eval(_WRITE_FENCED, len(keys), *keys, term, *words)


def read_desired_word(r: redis.Redis, server: str) -> Desired | None:
    """The engine's word for ``server``, or None when it has written none yet."""
    value = r.get(key("desired", server))
    return None if value is None else Desired.parse(value)


def read_all_desired(r: redis.Redis, servers: list[str]) -> dict[str, set[int] | None]:
    if not servers:
        return {}
    values = r.mget([key("desired", name) for name in servers])
    return {name: None if v is None else set(Desired.parse(v).cameras) for name, v in zip(servers, values,
                                                                                          strict=True)}


def read_all_stream_reports(r: redis.Redis, servers: list[str]) -> dict[str, dict[int, dict]]:
    with r.pipeline() as pipe:
        for name in servers:
            pipe.hgetall(key("stream-reports", name))
        results = pipe.execute()
    return {
        name: {int(camera): json.loads(report) for camera, report in reports.items()}
        for name, reports in zip(servers, results, strict=True)
    }


def read_desired(r: redis.Redis, server: str) -> set[int] | None:
    """The cameras of the engine's word for ``server``, or None when it has written none yet."""
    word = read_desired_word(r, server)
    return None if word is None else set(word.cameras)
