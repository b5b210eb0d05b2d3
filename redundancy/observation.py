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

    def heard_since(self, moment: float) -> "Observation":
        """The same observation, counting no silence before ``moment`` (when the engine could see again):
        a server heard before an outage of Redis or of the engine is taken as heard at its end."""
        last_seen = {name: max(at, moment) for name, at in self.last_seen.items()}
        return Observation(self.now, last_seen, self.leaving, self.health, self.storage_errors)

    def heartbeat_age(self, name: str) -> float | None:
        seen = self.last_seen.get(name)
        return None if seen is None else self.now - seen

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
