"""The heartbeat alone, against the real Redis: what the engine reads of a server, beat by beat."""

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from protocol import live
from recording.heartbeat import Heartbeat, steady_fps, stream_tokens, streams_digest
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
    assert (beat["cameras"], beat["streaming"], beat["storage_error"]) == (2, 1, "disk full")
    # Stamped by Redis's clock, not the agent's (moved far from it here): hosts need not agree on the time. The
    # time is kept once, in last-seen; the heartbeat carries none of its own.
    heard = live.read_last_seen(redis_client)["srv-a"]
    assert abs(heard - live.redis_time(redis_client)) < 5 and abs(heard - clock.now) > 1000
    assert "at" not in beat
    assert live.read_stream_reports(redis_client, "srv-a")[7]["fps"] == 25.0
    assert live.read_snapshot(redis_client, 7) is not None


def test_redis_back_after_an_outage_is_reported_as_the_witness_of_it(redis_client, monkeypatch):
    clock = Clock()
    beat = heartbeat(redis_client, clock)
    outages_when_heard = []
    publish = live.publish_heartbeat

    def heard(r, *args, **kwargs):
        outages_when_heard.append(live.read_outages(r, ["srv-a"]))
        return publish(r, *args, **kwargs)

    monkeypatch.setattr(live, "publish_heartbeat", heard)
    beat.beat()
    before = live.read_last_seen(redis_client)["srv-a"]
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    beat.redis = dead
    clock.now += 5
    beat.beat()  # fails: Redis away
    assert beat.lost_since == clock.now
    beat.redis = redis_client
    clock.now += 5
    beat.beat()
    # From the last beat that got through to the first one after, both by Redis's clock (as heartbeat ages are),
    # said before that heartbeat: an engine that hears the server again knows of the outage already.
    after = live.read_last_seen(redis_client)["srv-a"]
    assert after > before
    [(lost, back)] = live.read_outages(redis_client, ["srv-a"])
    assert lost == pytest.approx(before, abs=1e-5) and before < back <= after
    assert outages_when_heard == [[], [(lost, back)]], "the outage is in Redis before the heartbeat that ends it"
    assert beat.lost_since is None


def test_while_another_agent_holds_the_name_nothing_is_published(redis_client):
    clock = Clock()
    other = ServerLease(redis_client, "srv-a", 30.0, clock)
    other.acquire()
    heartbeat(redis_client, clock, {7: {"state": "streaming", "fps": 25.0}}).beat()
    assert live.read_heartbeats(redis_client, ["srv-a"])["srv-a"] is None
    assert live.read_stream_reports(redis_client, "srv-a") == {}


# -- the streams digest, and the engine woken when it moves -----------------------------------


def wake_messages(client):
    """A subscription to the engine's wake-up channel, its confirmation taken."""
    subscription = client.pubsub()
    subscription.subscribe(live.key("engine-wake"))
    assert subscription.get_message(timeout=2)["type"] == "subscribe"  # subscribed before anything is published
    return subscription


def next_wake(subscription, timeout: float) -> str | None:
    """The next wake-up's reason, or None when none comes within ``timeout``."""
    message = subscription.get_message(timeout=timeout)
    return message["data"].decode() if message else None


def digest_of(*reports_in_turn: dict) -> list[str]:
    tokens, digests = {}, []
    for reports in reports_in_turn:
        tokens = stream_tokens(reports, tokens)
        digests.append(streams_digest(tokens))
    return digests


def test_the_streams_digest_moves_with_a_camera_s_state_but_not_with_a_lost_stream_s_retries():
    streaming = {7: {"state": "streaming", "since": 10.0}, 8: {"state": "streaming", "since": 11.0}}
    lost, retrying = {**streaming, 8: {"state": "lost", "since": 20.0}}, {**streaming, 8: {"state": "connecting",
                                                                                           "since": 22.0}}  # fmt: skip
    relost = {**streaming, 8: {"state": "lost", "since": 24.0}}
    again = {**streaming, 8: {"state": "streaming", "since": 25.0}}
    same, down, retry, retry_lost, back = digest_of(streaming, lost, retrying, relost, again)
    assert down != same and retry == down and retry_lost == down and back not in (same, down)
    assert digest_of(streaming, {**streaming, 7: {**streaming[7], "fps": 3.0}}) == [same, same]  # figures: no news
    assert digest_of(streaming, {7: streaming[7]})[1] != same  # a camera fewer
    assert digest_of(streaming, {**streaming, 9: {"state": "connecting", "since": 30.0}})[1] != same  # one more
    new_one = {**streaming, 9: {"state": "connecting", "since": 30.0}}
    assert len(set(digest_of(new_one, {**new_one, 9: {"state": "lost", "since": 31.0}}))) == 2  # never streamed
    # A stream lost and back between two beats: the same state, since moved.
    assert digest_of(streaming, {**streaming, 7: {"state": "streaming", "since": 40.0}})[1] != same


def test_a_beat_whose_streams_changed_wakes_the_engine_and_a_quiet_one_does_not(redis_client):
    clock = Clock()
    reports = {7: {"state": "streaming", "since": 10.0, "fps": 25.0}}
    subscription = wake_messages(redis_client)
    beat = heartbeat(redis_client, clock, reports)
    beat.beat()
    first = live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["streams"]
    assert next_wake(subscription, 1.0) == "streams:srv-a"  # the first beat: the server's cameras are news
    clock.now += 1
    reports[7] = {**reports[7], "fps": 24.0}
    beat.beat()
    assert live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["streams"] == first
    assert next_wake(subscription, 0.3) is None  # a quiet beat wakes nobody
    clock.now += 1
    reports[7] = {"state": "lost", "since": clock.now, "fps": 0.0}
    beat.beat()
    assert live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["streams"] != first
    assert next_wake(subscription, 1.0) == "streams:srv-a"
    subscription.close()


def test_a_nudge_that_changes_the_streams_beats_at_once_and_one_that_does_not_waits(redis_client):
    reports = {7: {"state": "streaming", "since": 10.0}}
    subscription = wake_messages(redis_client)
    lease = ServerLease(redis_client, "srv-a", 30.0, time.time)
    beat = Heartbeat(redis_client, "srv-a", lease, 10.0, 30.0, time.time, lambda: (dict(reports), {}), dict)
    stop = threading.Event()
    thread = threading.Thread(target=beat.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert next_wake(subscription, 2.0) == "streams:srv-a"  # the first beat
        first = live.read_last_seen(redis_client)["srv-a"]
        digest = live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["streams"]
        reports[7] = {"state": "streaming", "since": 10.0, "fps": 12.0}
        beat.nudge()  # nothing the engine acts on changed: no beat before the interval's end
        assert next_wake(subscription, 0.3) is None
        assert live.read_last_seen(redis_client)["srv-a"] == first
        reports[7] = {"state": "lost", "since": time.time()}
        nudged_at = time.monotonic()
        beat.nudge()
        assert next_wake(subscription, 1.0) == "streams:srv-a"
        latency = time.monotonic() - nudged_at
        print(f"\nstream lost -> engine woken: {latency * 1000:.1f} ms")
        assert latency < 0.1  # not the 10 s interval
        assert live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["streams"] != digest
        assert live.read_stream_reports(redis_client, "srv-a")[7]["state"] == "lost"  # published before the wake
    finally:
        stop.set()
        thread.join(timeout=15)
        subscription.close()


def test_a_new_digest_is_published_only_once_the_reports_it_stands_for_are(redis_client, monkeypatch):
    """A reader that sees a digest it knows does not read the reports again: they must be there before it."""
    clock = Clock()
    reports = {7: {"state": "streaming", "since": 10.0}}
    beat = heartbeat(redis_client, clock, reports)
    beat.beat()
    seen_with_digest = []
    publish = live.publish_heartbeat

    def publish_and_look(r, server, payload, ttl):
        seen_with_digest.append(live.read_stream_reports(r, server)[7]["state"])
        return publish(r, server, payload, ttl)

    monkeypatch.setattr(live, "publish_heartbeat", publish_and_look)
    reports[7] = {"state": "lost", "since": 20.0}
    beat.beat()
    assert seen_with_digest == ["lost"]


def test_a_beat_carries_each_camera_s_frame_rate_said_again_only_when_it_moved_by_1_fps_or_10_percent(redis_client):
    clock = Clock()
    reports = {7: {"state": "streaming", "since": 10.0, "fps": 25.04}, 8: {"state": "streaming", "since": 10.0,
                                                                          "fps": 5.0}}  # fmt: skip
    beat = heartbeat(redis_client, clock, reports)
    said = []
    for fps_7, fps_8 in ((25.04, 5.0), (24.6, 5.3), (24.0, 5.5), (12.5, 0.0)):
        reports[7]["fps"], reports[8]["fps"] = fps_7, fps_8
        beat.beat()
        said.append(live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["fps"])
    assert said == [{"7": 25.0, "8": 5.0}, {"7": 25.0, "8": 5.0}, {"7": 24.0, "8": 5.5}, {"7": 12.5, "8": 0.0}]
    assert steady_fps({9: {"state": "connecting", "fps": 0.0}}, {7: 25.0}) == {9: 0.0}  # a camera gone: gone
