"""The settings of every use of Redis, from one plain URL (as before Sentinel) or from a Sentinel deployment, as
settings.py derives them at start-up; a bad Sentinel address stops the start with the entry named."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import kombu
import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from eocortex_web import launcher, redis_settings
from utilities.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
REDIS_ENV = ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD", "CELERY_BROKER_URL")
PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
names = ["REDIS_SENTINELS", "CACHES", "CHANNEL_LAYERS", "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS"]
print(json.dumps({name: getattr(settings, name) for name in names}, default=lambda value: type(value).__name__))
"""


def start_settings(env: dict, tmp_path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in REDIS_ENV}
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**clean, "VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "eocortex_web.settings", **env},
    )  # fmt: skip


def derived(env: dict, tmp_path) -> dict:
    result = start_settings(env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_without_sentinels_every_use_is_the_plain_url_as_before(tmp_path):
    url = "redis://:secret@10.1.2.3:6380/4"
    assert derived({"REDIS_URL": url}, tmp_path) == {
        "REDIS_SENTINELS": [],
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}},
        "CHANNEL_LAYERS": {"default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": 15}], "group_expiry": 600, "capacity": 500},
        }},
        "CELERY_BROKER_URL": url,
        "CELERY_BROKER_TRANSPORT_OPTIONS": {},
    }  # fmt: skip


def test_with_sentinels_every_use_asks_them_for_the_master(tmp_path):
    env = {"REDIS_URL": "redis://:p%40ss@ignored.example:6379/4",
           "REDIS_SENTINELS": "10.0.0.11:26379, 10.0.0.12:26380,[fd00::13]:26379",
           "REDIS_SENTINEL_MASTER": "site-redis", "REDIS_SENTINEL_PASSWORD": "s3ntinel"}  # fmt: skip
    settings = derived(env, tmp_path)
    sentinels = [["10.0.0.11", 26379], ["10.0.0.12", 26380], ["fd00::13", 26379]]
    sentinel_kwargs = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3, "retry": "Retry", "password": "s3ntinel"}
    assert settings["REDIS_SENTINELS"] == sentinels
    assert settings["CELERY_BROKER_URL"] == (
        "sentinel://:p%40ss@10.0.0.11:26379/4;sentinel://:p%40ss@10.0.0.12:26380/4;sentinel://:p%40ss@[fd00::13]:26379/4"
    )
    options = {"master_name": "site-redis", "sentinel_kwargs": sentinel_kwargs}
    assert settings["CELERY_BROKER_TRANSPORT_OPTIONS"] == options
    assert settings["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == [{
        "sentinels": sentinels, "master_name": "site-redis", "sentinel_kwargs": sentinel_kwargs,
        "db": 4, "password": "p@ss", "socket_timeout": 15,
    }]  # fmt: skip
    assert settings["CACHES"]["default"] == {
        "BACKEND": "eocortex_web.cache.SentinelRedisCache",
        "LOCATION": "redis://:p%40ss@ignored.example:6379/4",
        "OPTIONS": {"sentinels": sentinels, "master_name": "site-redis", "sentinel_password": "s3ntinel"},
    }


def test_kombu_reads_every_sentinel_and_the_master_s_database_and_password_from_the_broker_url():
    url = redis_settings.broker_url("redis://:p%40ss@ignored:6379/4", [("10.0.0.11", 26379), ("10.0.0.12", 26380)])
    connection = kombu.Connection(url, transport_options={"master_name": "site-redis"})
    assert connection.transport_cls == "sentinel"
    assert (connection.hostname, connection.port, connection.password, connection.virtual_host) == (
        "10.0.0.11", 26379, "p@ss", "4")  # fmt: skip
    assert [kombu.Connection(alt).port for alt in connection.alt] == [26379, 26380]


def test_an_explicit_broker_url_wins_over_the_sentinels(tmp_path):
    settings = derived({"REDIS_SENTINELS": "10.0.0.11:26379", "CELERY_BROKER_URL": "redis://broker.example/2"},
                       tmp_path)  # fmt: skip
    assert settings["CELERY_BROKER_URL"] == "redis://broker.example/2"
    assert settings["CELERY_BROKER_TRANSPORT_OPTIONS"] == {}


def test_sentinel_addresses_are_read_as_host_and_port():
    assert redis_settings.parse_sentinels([" redis-a.example:26379", "10.0.0.12:26380 ", "[::1]:26381"]) == [
        ("redis-a.example", 26379), ("10.0.0.12", 26380), ("::1", 26381)]  # fmt: skip


@pytest.mark.parametrize("entry", ["10.0.0.12", "10.0.0.12:", ":26379", "10.0.0.12:sentinel", "10.0.0.12:99999",
                                   "10.0.0.12:0", "10.0.0.12:-1"])  # fmt: skip
def test_a_sentinel_address_without_a_port_number_is_refused_by_name(entry):
    with pytest.raises(ImproperlyConfigured, match=f"REDIS_SENTINELS: '{entry}' is not host:port"):
        redis_settings.parse_sentinels(["10.0.0.11:26379", entry])


def test_a_bad_sentinel_address_stops_the_start(tmp_path):
    result = start_settings({"REDIS_SENTINELS": "10.0.0.11:26379,10.0.0.12"}, tmp_path)
    assert result.returncode != 0
    assert "REDIS_SENTINELS: '10.0.0.12' is not host:port" in result.stderr


def test_the_launcher_starts_no_private_redis_when_sentinels_are_configured(monkeypatch):
    monkeypatch.setattr(launcher, "start_private_redis", lambda: pytest.fail("a private Redis was started"))
    env = {"REDIS_SENTINELS": "10.0.0.11:26379"}
    assert launcher.ensure_redis(env) is None
    assert env == {"REDIS_SENTINELS": "10.0.0.11:26379"}


def test_a_channel_layer_and_a_cache_whose_sentinels_are_away_fail_at_once():
    """Each Sentinel is asked once (no retry with backoff, redis-py's default): a live page's send, or an API
    request's rate count, fails within a second rather than hangs for many."""
    from channels_redis.core import RedisChannelLayer

    from eocortex_web.cache import SentinelRedisCache

    away = [("127.0.0.1", port) for port in free_ports(3)]  # nobody listens there
    layer = RedisChannelLayer(hosts=[redis_settings.channel_layer_host("redis://x/4", away, "site-redis", "")])
    cache = redis_settings.cache("redis://x/4", away, "site-redis", "")
    rate_counts = SentinelRedisCache(cache["LOCATION"], {"OPTIONS": cache["OPTIONS"]})

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError, match="No master found for 'site-redis'"):
        asyncio.run(layer.send("probe", {"type": "probe"}))
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError, match="No master found for 'site-redis'"):
        rate_counts.get("throttle_user_1")
    assert time.monotonic() - started < 1.0
