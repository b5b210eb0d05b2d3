"""Every use of Redis through Sentinel, across a failover: the master killed, the replica promoted by three
Sentinels (quorum 2, down-after 2 s), each client carrying on against the new master. Real processes
(``testbed.sentinel``); each test prints the promotion time it measured."""

import asyncio
import time
import uuid

import kombu
import pytest
import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from redis.backoff import NoBackoff
from redis.retry import Retry

from protocol import connections
from testbed.waiting import wait_for

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

# Down-after 2 s, the election, and the Sentinels' word reaching a quorum: about 3-5 s here; 20 s is a failure.
PROMOTION_BOUND = 20.0
# A client reaches the promoted master at its next call: within a few polls of the promotion.
REACH_BOUND = 5.0


def live_client() -> redis.Redis:
    """A client as the live protocol makes them (protocol/live.py's timeouts and single retry)."""
    return connections.redis_client(socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=15,
                                    retry=Retry(NoBackoff(), 1))  # fmt: skip


def fail_over(sentinel_redis, with_sentinel: bool = False) -> float:
    sentinel_redis.kill_master(with_sentinel=with_sentinel)
    promoted = sentinel_redis.wait_promoted(timeout=PROMOTION_BOUND)
    print(f"promotion: {promoted:.2f} s after the master was killed" + (" with a Sentinel" if with_sentinel else ""))
    return promoted


def answered(call):
    """``call()``'s answer, or None while Redis is failing over (the error a caller of Redis already handles)."""
    try:
        return call()
    except redis.ConnectionError:
        return None


def test_a_client_reaches_the_promoted_master_with_what_was_written_before(sentinel_settings, sentinel_redis):
    client = live_client()
    key = f"{settings.LIVE_KEY_PREFIX}:sentinel-probe"
    client.hset(key, mapping={"srv-a": "1.5", "srv-b": "2.5"})
    assert client.wait(1, 0) == 1  # the replica has it: a failover keeps it
    old_port = client.info("server")["tcp_port"]

    killed_at = sentinel_redis.kill_master(with_sentinel=True)  # the master's host lost, its Sentinel with it
    kept = wait_for(lambda: answered(lambda: client.hgetall(key)), timeout=30, message="a read by the same client")
    reached = time.monotonic() - killed_at
    promoted = sentinel_redis.wait_promoted(timeout=PROMOTION_BOUND)
    print(f"promotion: {promoted:.2f} s after the master (and a Sentinel) was killed; the client read {reached:.2f} s")

    assert kept == {b"srv-a": b"1.5", b"srv-b": b"2.5"}
    assert reached < PROMOTION_BOUND
    assert client.hset(key, "srv-c", "3.5") == 1  # a write: it is the master, not a replica
    assert client.info("server")["tcp_port"] == sentinel_redis.master()[1] != old_port
    assert client.execute_command("ROLE")[0] == b"master"


def test_engine_wake_ups_reach_a_subscriber_that_subscribes_again_after_a_failover(sentinel_settings,
                                                                                  sentinel_redis):  # fmt: skip
    """As the engine's listener does (redundancy/runner.py): a lost subscription is made again on a new client."""
    channel_name = f"{settings.LIVE_KEY_PREFIX}:engine-wake"

    def subscribed():
        client = connections.redis_client(socket_connect_timeout=1.0, socket_keepalive=True, health_check_interval=10)
        subscriber = client.pubsub(ignore_subscribe_messages=True)
        subscriber.subscribe(channel_name)
        return subscriber

    def woken(subscriber, publisher) -> bool:
        publisher.publish(channel_name, "probe")
        return subscriber.get_message(timeout=1.0) is not None

    publisher = live_client()
    subscriber = subscribed()
    assert wait_for(lambda: woken(subscriber, publisher), timeout=5, message="a wake-up before the failover")

    fail_over(sentinel_redis)
    with pytest.raises(redis.ConnectionError):  # the subscription was on the killed master
        subscriber.get_message(timeout=1.0)
    subscriber.close()
    subscriber = wait_for(lambda: answered(subscribed), timeout=REACH_BOUND, message="a subscription again")
    assert wait_for(lambda: answered(lambda: woken(subscriber, publisher)), timeout=REACH_BOUND,
                    message="a wake-up after the failover")  # fmt: skip
    subscriber.close()


def test_celery_broker_delivers_before_and_after_a_failover(sentinel_settings, sentinel_redis):
    """The broker URL and transport options the settings derive: a task message sent before the kill and one sent
    after (retried as Celery sends, on connection errors) both reach a consumer (that reconnects, as a worker does,
    when its wait for messages breaks)."""
    assert settings.CELERY_BROKER_URL.startswith("sentinel://")
    broker = {"hostname": settings.CELERY_BROKER_URL, "transport_options": settings.CELERY_BROKER_TRANSPORT_OPTIONS}
    name = f"probe-{uuid.uuid4().hex}"
    with kombu.Connection(**broker) as sender, kombu.Connection(**broker) as worker:
        queue = worker.SimpleQueue(name)

        def send(body):
            retry_policy = {"max_retries": 10, "interval_start": 0, "interval_step": 0.2}
            with sender.Producer() as producer:
                producer.publish(body, routing_key=name, serializer="json", retry=True, retry_policy=retry_policy)

        def consumed():
            try:
                message = queue.get(timeout=1)
            except (queue.Empty, *worker.connection_errors):
                return None
            message.ack()
            return message.payload

        send({"task": "before"})
        assert wait_for(consumed, timeout=10, message="the message sent before") == {"task": "before"}

        fail_over(sentinel_redis, with_sentinel=True)
        send({"task": "after"})
        assert wait_for(consumed, timeout=REACH_BOUND, message="the message sent after") == {"task": "after"}
        queue.close()


def test_channel_layer_delivers_before_and_after_a_failover(sentinel_settings, sentinel_redis):
    """The Channels layer the settings configure, in one event loop as Daphne runs it: a group message before the
    kill; a receive waiting through the kill fails (the live page's socket closes and the page reconnects); a new
    receive after the promotion gets the next group message."""
    layer = get_channel_layer()
    assert layer.hosts[0]["master_name"] == sentinel_redis.master_name
    group = f"{settings.LIVE_KEY_PREFIX}.status"

    async def until(call, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await asyncio.wait_for(call(), timeout=max(0.1, deadline - time.monotonic()))
            except (TimeoutError, redis.ConnectionError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "status.delta", "version": 1})
        assert await asyncio.wait_for(layer.receive(channel), 10) == {"type": "status.delta", "version": 1}

        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.to_thread(fail_over, sentinel_redis, True)  # with the Sentinel clients ask first
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(waiting, 10)

        await until(lambda: layer.group_send(group, {"type": "status.delta", "version": 2}), REACH_BOUND)
        assert await until(lambda: layer.receive(channel), REACH_BOUND) == {"type": "status.delta", "version": 2}
        await layer.flush()

    asyncio.run(scenario())


def test_cache_counts_through_sentinel_across_a_failover(sentinel_settings, sentinel_redis):
    """The API's rate counts (eocortex_web/throttles.py) in the cache on the Sentinels' master, kept by the replica."""
    assert settings.CACHES["default"]["BACKEND"] == "eocortex_web.cache.SentinelRedisCache"
    assert cache.add("throttle_failed-token_10.0.0.7", 1, 60)
    assert cache.incr("throttle_failed-token_10.0.0.7") == 2
    assert cache.get_many(["throttle_failed-token_10.0.0.7", "missing"]) == {"throttle_failed-token_10.0.0.7": 2}
    master = cache._cache.get_client(write=True)
    assert master.info("server")["tcp_port"] == sentinel_redis.master()[1]
    assert master.wait(1, 0) == 1

    fail_over(sentinel_redis)

    count = wait_for(lambda: answered(lambda: cache.incr("throttle_failed-token_10.0.0.7")), timeout=REACH_BOUND,
                     message="the count after the failover")  # fmt: skip
    assert count == 3
    assert cache._cache.get_client(write=True).info("server")["tcp_port"] == sentinel_redis.master()[1]


@pytest.mark.parametrize("sentinel_redis", [{"password": "pass:word@1"}], indirect=True)
def test_every_use_logs_in_where_the_master_and_the_sentinels_want_a_password(sentinel_settings, sentinel_redis):
    host, port = sentinel_redis.master()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host, port).ping()  # the password is really asked for
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(*sentinel_redis.sentinels[0]).ping()

    client = live_client()
    client.set(f"{settings.LIVE_KEY_PREFIX}:probe", "1")
    assert client.get(f"{settings.LIVE_KEY_PREFIX}:probe") == b"1"

    cache.set("throttle_user_1", 7, 60)
    assert cache.get("throttle_user_1") == 7

    layer = get_channel_layer()

    async def round_trip():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "probe"})
        message = await asyncio.wait_for(layer.receive(channel), 10)
        await layer.flush()
        return message

    assert asyncio.run(round_trip()) == {"type": "probe"}

    broker = {"hostname": settings.CELERY_BROKER_URL, "transport_options": settings.CELERY_BROKER_TRANSPORT_OPTIONS}
    with kombu.Connection(**broker) as connection, connection.SimpleQueue(f"probe-{uuid.uuid4().hex}") as queue:
        queue.put({"task": "probe"})
        message = queue.get(timeout=5)
        message.ack()
        assert message.payload == {"task": "probe"}


def test_a_connection_to_a_master_demoted_while_frozen_moves_to_the_new_master(sentinel_settings, sentinel_redis):
    """The old master frozen (SIGSTOP) past down-after, a replica promoted, the old one resumed and made a replica
    (the Sentinels then close its clients' connections; a connection they missed would get READONLY, which
    redis-py turns into a reconnection): the client's next write, on its connection to the old master, goes to the
    new master."""
    client = live_client()
    key = f"{settings.LIVE_KEY_PREFIX}:sentinel-probe"
    client.set(key, "before")
    old_port = client.info("server")["tcp_port"]

    sentinel_redis.freeze_master()
    print(f"promotion: {sentinel_redis.wait_promoted(timeout=PROMOTION_BOUND):.2f} s after the master was frozen")
    sentinel_redis.thaw()

    assert client.set(key, "after")  # its connection to the old master fails; the one retry asks the Sentinels
    assert client.info("server")["tcp_port"] == sentinel_redis.master()[1] != old_port
    old = redis.Redis("127.0.0.1", old_port)
    assert old.execute_command("ROLE")[0] == b"slave"
    assert wait_for(lambda: old.get(key) == b"after", timeout=10, message="the write replicated to the old master")
    old.close()
