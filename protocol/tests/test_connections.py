"""The clients protocol/connections.py makes: of the plain URL, or of the Sentinels' master with the URL's database
and password; Sentinels that are away cost a caller little."""

import time

import pytest
import redis
import redis.asyncio
from redis.sentinel import SentinelConnectionPool

from protocol import connections
from utilities.ports import free_ports


@pytest.fixture
def sentinels_at(settings):
    def configure(sentinels, url="redis://:p%40ss@ignored.example:6379/5", master="site-redis", password=""):
        settings.REDIS_URL = url
        settings.REDIS_SENTINELS = sentinels
        settings.REDIS_SENTINEL_MASTER = master
        settings.REDIS_SENTINEL_PASSWORD = password

    return configure


def test_without_sentinels_a_client_is_of_the_url(settings):
    settings.REDIS_URL = "redis://:secret@10.1.2.3:6380/4"
    client = connections.redis_client(socket_timeout=1.0)
    kwargs = client.connection_pool.connection_kwargs
    assert not isinstance(client.connection_pool, SentinelConnectionPool)
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"], kwargs["socket_timeout"]) == (
        "10.1.2.3", 6380, 4, "secret", 1.0)  # fmt: skip


def test_with_sentinels_a_client_asks_them_for_the_master_with_the_url_s_database_and_password(sentinels_at):
    sentinels_at([("10.0.0.11", 26379), ("10.0.0.12", 26379)], password="s3ntinel")
    client = connections.redis_client(socket_timeout=1.0, health_check_interval=15)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "site-redis"
    assert {k: pool.connection_kwargs[k] for k in ("db", "password", "socket_timeout", "health_check_interval")} == {
        "db": 5, "password": "p@ss", "socket_timeout": 1.0, "health_check_interval": 15}  # fmt: skip
    asked = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(k["host"], k["port"], k["password"], k["socket_timeout"]) for k in asked] == [
        ("10.0.0.11", 26379, "s3ntinel", connections.SENTINEL_TIMEOUT),
        ("10.0.0.12", 26379, "s3ntinel", connections.SENTINEL_TIMEOUT)]  # fmt: skip


def test_clients_share_one_sentinel_per_configuration(sentinels_at):
    sentinels_at([("10.0.0.11", 26379)])
    first, second = connections.redis_client(), connections.redis_client()
    assert first.connection_pool.sentinel_manager is second.connection_pool.sentinel_manager
    sentinels_at([("10.0.0.21", 26379)])
    assert connections.redis_client().connection_pool.sentinel_manager is not first.connection_pool.sentinel_manager


def test_sentinels_that_are_away_fail_a_call_at_once(sentinels_at):
    sentinels_at([("127.0.0.1", port) for port in free_ports(3)])  # nobody listens there
    client = connections.redis_client(socket_timeout=1.0, socket_connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError, match="No master found for 'site-redis'"):
        client.ping()
    assert time.monotonic() - started < 1.0  # each Sentinel asked once, not retried with backoff


def test_the_channel_layer_s_sentinels_are_asked_with_an_asyncio_retry():
    kwargs = connections.sentinel_kwargs("s3ntinel", asynchronous=True)
    assert isinstance(kwargs["retry"], redis.asyncio.retry.Retry)
    assert kwargs["retry"].get_retries() == 0
    assert not isinstance(connections.sentinel_kwargs()["retry"], redis.asyncio.retry.Retry)
