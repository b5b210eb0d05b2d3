"""The health endpoints as a load balancer meets them: /health/live answers while the process does, whatever the
database and Redis do; /health/ready answers 200 with both, 503 naming the one that is gone, within seconds even
when it hangs, and never says where it is or with what password."""

import contextlib
import logging
import socket
import time

import pytest
from django.db import connection
from django.test import Client

from testbed.waiting import wait_for
from utilities.ports import free_ports

pytestmark = pytest.mark.django_db

SECRET = "s3cret-passphrase"


@pytest.fixture
def closed_port():
    return free_ports(1)[0]


@pytest.fixture
def silent_port():
    """A port that takes connections (the kernel's backlog) and never answers on them: a hung host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@contextlib.contextmanager
def database_at(port=None, tmp_path=None):
    """New connections to the database go to ``port`` (PostgreSQL) or to a file that does not exist (SQLite);
    the test's own connection, already open, keeps its database."""
    settings_dict = connection.settings_dict
    key, value = ("NAME", str(tmp_path / "gone" / "db.sqlite3")) if connection.vendor == "sqlite" else ("PORT", port)
    kept = settings_dict[key]
    settings_dict[key] = value
    try:
        yield
    finally:
        settings_dict[key] = kept


def test_ready_with_the_database_and_redis(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"database": {"ok": True, "detail": "answered"},
                                                         "redis": {"ok": True, "detail": "answered"}}}  # fmt: skip
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]


def test_not_ready_without_redis_names_redis(client, settings, closed_port):
    settings.REDIS_URL = f"redis://:{SECRET}@127.0.0.1:{closed_port}/0"
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["database"] == {"ok": True, "detail": "answered"}
    assert body["checks"]["redis"] == {"ok": False, "detail": "failed: ConnectionError"}
    assert SECRET not in response.content.decode() and str(closed_port) not in response.content.decode()


def test_an_outage_is_one_line_of_its_own_per_probe_not_an_error_of_django_s(client, settings, closed_port, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    with caplog.at_level(logging.INFO):
        assert client.get("/health/ready").status_code == 503
    assert [r.getMessage() for r in caplog.records if r.name == "eocortex_web.health"] == [
        "event=not_ready failed=redis redis=failed:_ConnectionError"]  # fmt: skip
    assert not [r for r in caplog.records if r.name == "django.request"]


def test_not_ready_without_the_database_names_the_database(client, closed_port, tmp_path):
    with database_at(closed_port, tmp_path):
        response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == {"ok": False, "detail": "failed: OperationalError"}
    assert body["checks"]["redis"] == {"ok": True, "detail": "answered"}
    assert str(closed_port) not in response.content.decode() and str(tmp_path) not in response.content.decode()


def test_a_hung_redis_and_database_cost_a_probe_seconds_not_minutes(client, settings, silent_port, tmp_path):
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_port}/0"
    started = time.monotonic()
    with database_at(silent_port, tmp_path):
        response = client.get("/health/ready")
    assert time.monotonic() - started < 4.0
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False and checks["database"]["ok"] is False
    assert checks["redis"]["detail"] in {"no answer within 2 s", "failed: TimeoutError"}


def test_live_answers_with_neither_the_database_nor_redis(client, settings, closed_port, tmp_path,
                                                          django_assert_num_queries):  # fmt: skip
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    with database_at(closed_port, tmp_path), django_assert_num_queries(0):
        response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"live": True}


@pytest.mark.parametrize("url", ["/health/live", "/health/ready", "/metrics"])
def test_probes_need_no_sign_in_no_csrf_token_and_take_only_get_and_head(url):
    client = Client(enforce_csrf_checks=True)
    assert client.get(url).status_code == 200
    assert client.head(url).status_code == 200
    for method in (client.post, client.put, client.delete):
        assert method(url).status_code == 405, method


@pytest.mark.parametrize("url", ["/health/live", "/health/ready", "/metrics"])
def test_probes_over_plain_http_are_not_sent_to_https(client, settings, url):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get(url).status_code == 200
    assert client.get("/accounts/login/").status_code == 301  # the rest of the site is


@pytest.mark.parametrize("sentinel_redis", [{"password": SECRET}], indirect=True)
def test_ready_follows_the_master_the_sentinels_name(client, sentinel_settings, sentinel_redis):
    assert client.get("/health/ready").status_code == 200
    sentinel_redis.kill_master()
    response = client.get("/health/ready")  # the Sentinels still name the dead master
    assert response.status_code == 503 and response.json()["checks"]["redis"]["ok"] is False
    assert SECRET not in response.content.decode()
    sentinel_redis.wait_promoted()
    # A new connection asks the Sentinels again: it reaches the promoted master within a few probes.
    wait_for(lambda: client.get("/health/ready").status_code == 200, 5, message="ready on the promoted master")
