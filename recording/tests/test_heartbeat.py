"""The heartbeat alone, against the real Redis: what the engine reads of a server, beat by beat."""

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from recording import live
from recording.heartbeat import Heartbeat
from recording.lease import ServerLease


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def heartbeat(client, clock, reports=None, problems=None, pictures=None) -> Heartbeat:
    lease = ServerLease(client, "srv-a", 3.0, clock)
    return Heartbeat(client, "srv-a", lease, 1.0, 3.0, clock, lambda: (reports or {}, problems or {}),
                     lambda: dict(pictures or {}))  # fmt: skip


def test_a_beat_says_the_server_is_alive_with_its_cameras_and_storage(redis_client):
    clock = Clock()
    reports = {7: {"state": "streaming", "fps": 25.0}, 8: {"state": "lost", "fps": 0.0}}
    heartbeat(redis_client, clock, reports, {None: "disk full"}, {7: b"\xff\xd8jpeg"}).beat()
    beat = live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]
    assert (beat["at"], beat["cameras"], beat["streaming"], beat["storage_error"]) == (clock.now, 2, 1, "disk full")
    assert live.read_stream_health(redis_client, "srv-a")[7]["fps"] == 25.0
    assert live.read_snapshot(redis_client, 7) is not None


def test_redis_back_after_an_outage_is_reported_as_the_witness_of_it(redis_client):
    clock = Clock()
    beat = heartbeat(redis_client, clock)
    beat.beat()
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    beat.redis = dead
    clock.now += 5
    beat.beat()  # fails: Redis away
    assert beat.lost_since == clock.now
    beat.redis = redis_client
    clock.now += 5
    beat.beat()
    assert live.read_outages(redis_client, ["srv-a"]) == [(clock.now - 10, clock.now)]
    assert beat.lost_since is None


def test_while_another_agent_holds_the_name_nothing_is_published(redis_client):
    clock = Clock()
    other = ServerLease(redis_client, "srv-a", 30.0, clock)
    other.acquire()
    heartbeat(redis_client, clock, {7: {"state": "streaming", "fps": 25.0}}).beat()
    assert live.read_heartbeats(redis_client, ["srv-a"])["srv-a"] is None
    assert live.read_stream_health(redis_client, "srv-a") == {}
