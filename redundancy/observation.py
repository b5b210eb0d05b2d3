"""What the engine and the status see of the servers in Redis.

``read_pass`` is the engine's one read per pass: Redis's clock, the configuration's version, every
server's heartbeat, last-seen time and announced shutdown, the outages witnessed, the agents'
conflicts, in one round trip; then, in a second one only when needed, the stream reports of the
servers whose stream states changed (their heartbeat carries a digest of them) and of a few more in
turn (for their frame rates). ``observe`` is the same for a reader that keeps nothing between reads.
"""

import json
from dataclasses import dataclass, field

from protocol import live
from redundancy.decisions import Damping, Elapsed, ServerView

ENGINE_WITNESS = "engine"  # the engine's own report of an outage, beside the agents'


@dataclass(frozen=True)
class Observation:
    now: float
    last_seen: dict[str, float]  # server name → time of its last heartbeat
    leaving: set[str]
    reports: dict[str, dict[int, dict]]  # server name → camera id → stream report
    # server name → its agent's storage error; only servers whose heartbeat was read
    storage_errors: dict[str, str | None] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)  # agents whose process ended after their last heartbeat
    gone_under: float = 0.0  # what a gone server's view says (the fast window)

    def without_outages(self, outages: list[tuple[float, float]], slack: float = 1.0) -> "Observation":
        """The same observation with outages of Redis taken out of the silences they caused.

        An outage (lost, back) comes from a witness: an agent that could not reach Redis from its
        last success ``lost`` until ``back``, or the engine, which heard nobody across a gap in its
        passes. A server last heard around the start of an outage (within ``slack`` seconds of it)
        was alive when Redis went away: it is aged as if the outage had not happened. A server
        silent long before stays silent; one heard after the outage is judged on that heartbeat.
        """
        last_seen = dict(self.last_seen)
        for name, at in self.last_seen.items():
            for lost, back in outages:
                if lost - slack <= at <= lost + slack:
                    last_seen[name] = max(last_seen[name], min(self.now, at + (back - lost)))
        return Observation(self.now, last_seen, self.leaving, self.reports, self.storage_errors, self.gone,
                           self.gone_under)  # fmt: skip

    def heartbeat_age(self, name: str) -> float | None:
        seen = self.last_seen.get(name)
        # A heartbeat stamped a moment after this reader's clock is fresh, not from the future.
        return None if seen is None else max(0.0, self.now - seen)

    def server_view(self, server, state, streams: "Streams | None" = None,
                    damping: Damping | None = None) -> ServerView:  # fmt: skip
        """The engine's view of one server (``server``: a ServerConf or a Server); ``state`` is its stored
        ServerState or the engine's record of it (``draining``, ``healthy_since``, ``failures``), or None;
        ``streams``: its stream reports digested (by default, from ``reports``); ``damping``: by default the
        settings'."""
        seen = self.last_seen.get(server.name)
        streams = streams or Streams.of(self.reports.get(server.name, {}))
        healthy_since = _epoch(getattr(state, "healthy_since", None))
        return ServerView(
            pk=server.pk,
            name=server.name,
            heartbeat_age=self.heartbeat_age(server.name),
            leaving=server.name in self.leaving,
            draining=bool(state and state.draining),
            max_cameras=server.max_cameras,
            streams=streams.states,
            streaming_for=Elapsed(streams.streaming_since, self.now),
            # Up to its last heartbeat: a silence not yet past the window is not health.
            healthy_for=seen - healthy_since if seen is not None and healthy_since is not None else 0.0,
            hold_down=(damping or Damping.from_settings()).hold_down_after(state.failures, self.now) if state else 0.0,
            gone_under=self.gone_under if server.name in self.gone else 0.0,
        )


@dataclass(frozen=True)
class Streams:
    """A server's stream reports as the decisions read them: each camera's state, and since when it streams."""

    states: dict[int, str]
    streaming_since: dict[int, float]

    @classmethod
    def of(cls, reports: dict[int, dict]) -> "Streams":
        return cls(
            {camera: report.get("state") for camera, report in reports.items()},
            {camera: report["since"] for camera, report in reports.items()
             if report.get("state") == "streaming" and report.get("since")},
        )  # fmt: skip


def _epoch(moment) -> float | None:
    if moment is None or isinstance(moment, float | int):
        return moment
    return moment.timestamp()


def observe(redis_client, server_names: list[str], now: float) -> Observation:
    """Raises redis.RedisError when Redis cannot be read: silence from Redis is no observation."""
    heartbeats = live.read_heartbeats(redis_client, server_names)
    return Observation(
        now=now,
        last_seen=live.read_last_seen(redis_client),
        leaving=live.leaving_servers(redis_client, server_names),
        reports=live.read_all_stream_reports(redis_client, server_names),
        storage_errors={name: beat.get("storage_error") for name, beat in heartbeats.items() if beat is not None},
    )


@dataclass
class Pass:
    """What one engine pass read from Redis."""

    redis_now: float
    config_version: int
    heartbeats: dict[str, dict | None]
    last_seen: dict[str, float]
    leaving: set[str]
    outages: list[tuple[float, float]]
    previous_pass: float | None
    conflicts: list[dict]


# Redis's clock, and this pass's time in place of the previous one's (the engine's clock, or Redis's).
_MARK_PASS = """
local t = redis.call('TIME')
local now = ARGV[1]
if now == '' then now = string.format('%d.%06d', t[1], t[2]) end
local previous = redis.call('GETSET', KEYS[1], now) or ''
return {t[1], t[2], previous}
"""


def read_pass(r, names: list[str], now: float | None) -> Pass:
    """One round trip: everything a pass judges by but the stream reports. ``now`` is the engine's clock, or
    None for Redis's (then also the time this pass is recorded at)."""
    with r.pipeline(transaction=False) as pipe:
        pipe.eval(_MARK_PASS, 1, live.key("engine-last-pass"), "" if now is None else repr(now))
        pipe.incrby(live.key("config-version"), 0)
        pipe.mget([live.key("heartbeat", name) for name in names] or [live.key("heartbeat")])
        pipe.hgetall(live.key("last-seen"))
        pipe.mget([live.key("leaving", name) for name in names] or [live.key("leaving")])
        pipe.mget([live.key("outage", name) for name in [*names, ENGINE_WITNESS]])
        pipe.lrange(live.key("agent-conflicts"), 0, -1)
        pipe.delete(live.key("agent-conflicts"))
        (seconds, micros, previous), version, beats, seen, leaving, outages, conflicts, _ = pipe.execute()
    redis_now = int(seconds) + int(micros) / 1e6
    return Pass(
        redis_now=redis_now,
        config_version=int(version),
        heartbeats={name: json.loads(beat) if beat else None for name, beat in zip(names, beats, strict=False)},
        last_seen={name.decode(): float(at) for name, at in seen.items()},
        leaving={name for name, value in zip(names, leaving, strict=False) if value},
        outages=[tuple(float(part) for part in value.split()) for value in outages if value],
        previous_pass=float(previous) if previous else None,
        conflicts=[json.loads(report) for report in conflicts],
    )


def read_reports(r, names: list[str]) -> dict[str, dict[int, dict]]:
    """The stream reports of ``names`` (one round trip)."""
    if not names:
        return {}
    return live.read_all_stream_reports(r, names)
