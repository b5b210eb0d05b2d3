"""What the engine and the status API see of the servers in Redis, read once per pass."""

from dataclasses import dataclass, field

from recording import live
from redundancy.decisions import ServerView


@dataclass(frozen=True)
class Observation:
    now: float
    last_seen: dict[str, float]  # server name → time of its last heartbeat
    leaving: set[str]
    health: dict[str, dict[int, dict]]  # server name → camera id → stream report
    # server name → its agent's storage error; only servers whose heartbeat was read
    storage_errors: dict[str, str | None] = field(default_factory=dict)

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
        return Observation(self.now, last_seen, self.leaving, self.health, self.storage_errors)

    def heartbeat_age(self, name: str) -> float | None:
        seen = self.last_seen.get(name)
        # A heartbeat stamped a moment after this reader's clock is fresh, not from the future.
        return None if seen is None else max(0.0, self.now - seen)

    def server_view(self, server, state) -> ServerView:
        """The engine's view of one server; ``state`` is its stored ServerState, or None."""
        seen = self.last_seen.get(server.name)
        healthy_since = state.healthy_since.timestamp() if state and state.healthy_since else None
        return ServerView(
            pk=server.pk,
            name=server.name,
            heartbeat_age=self.heartbeat_age(server.name),
            leaving=server.name in self.leaving,
            draining=bool(state and state.draining),
            max_cameras=server.max_cameras,
            streams={camera: report.get("state") for camera, report in self.health.get(server.name, {}).items()},
            streaming_for={
                camera: self.now - report["since"]
                for camera, report in self.health.get(server.name, {}).items()
                if report.get("state") == "streaming" and report.get("since")
            },
            # Up to its last heartbeat: a silence not yet past the window is not health.
            healthy_for=seen - healthy_since if seen is not None and healthy_since is not None else 0.0,
            hold_down=state.hold_down_seconds if state else 0.0,
        )


def observe(redis_client, server_names: list[str], now: float) -> Observation:
    """Raises redis.RedisError when Redis cannot be read: silence from Redis is no observation."""
    heartbeats = live.read_heartbeats(redis_client, server_names)
    return Observation(
        now=now,
        last_seen=live.read_last_seen(redis_client),
        leaving=live.leaving_servers(redis_client, server_names),
        health=live.read_all_stream_health(redis_client, server_names),
        storage_errors={name: (beat or {}).get("storage_error") for name, beat in heartbeats.items() if beat},
    )
