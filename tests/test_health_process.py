"""The web server's health as a load balancer sees it, with real processes: Daphne on a Redis of the test's own
and, on PostgreSQL, a database reached through a relay the test stops. /health/ready goes 503 naming Redis while
Redis is gone and the database while the database is, 200 again once each is back; /health/live stays 200 through
both outages."""

import os
import subprocess
import sys
from contextlib import contextmanager

import pytest
import requests
from django.db import connection

from testbed.private_redis import PrivateRedis
from testbed.processes import ROOT, stop_process
from testbed.relay import Relay
from testbed.waiting import wait_for
from utilities.ports import free_ports

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]

PROBE_TIMEOUT = 5.0  # a load balancer's usual probe timeout: the web server answers well within it


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    yield server
    server.close()


class Database:
    """The web server's way to the test's database, which the test may take away and give back: a relay in front
    of PostgreSQL (stopped: connections refused, open ones cut), or SQLite's file moved aside."""

    def __init__(self, process_env):
        self.settings = connection.settings_dict
        self.url = process_env["DATABASE_URL"]
        self.relay = None
        if connection.vendor == "postgresql":
            self.target = (self.settings["HOST"] or "127.0.0.1", int(self.settings["PORT"] or 5432))
            self.relay = Relay(("127.0.0.1", 0), self.target)
            self.port = self.relay.address[1]
            auth = self.settings["USER"] + (f":{self.settings['PASSWORD']}" if self.settings["PASSWORD"] else "")
            self.url = f"postgres://{auth}@127.0.0.1:{self.port}/{self.settings['NAME']}"

    @contextmanager
    def gone(self):
        if self.relay is not None:
            self.relay.close()
            try:
                yield
            finally:
                self.relay = Relay(("127.0.0.1", self.port), self.target)
            return
        path = self.settings["NAME"]
        os.replace(path, f"{path}.away")
        try:
            yield
        finally:
            os.replace(f"{path}.away", path)

    def close(self):
        if self.relay is not None:
            self.relay.close()


@pytest.fixture
def database(process_env):
    way = Database(process_env)
    yield way
    way.close()


@pytest.fixture
def web(process_env, private_redis, database, tmp_path):
    port = free_ports(1)[0]
    env = {**process_env, "REDIS_URL": private_redis.url, "DATABASE_URL": database.url}
    with (tmp_path / "web.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "eocortex_web.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: answer(f"{url}/health/live") is not None, 30, message="the web server")
    yield url
    stop_process(process, grace=15)


def answer(url) -> tuple[int, dict] | None:
    try:
        response = requests.get(url, timeout=PROBE_TIMEOUT)
    except requests.RequestException:
        return None
    return response.status_code, response.json()


def readiness(url) -> tuple[int, dict[str, bool]]:
    status, body = answer(f"{url}/health/ready")
    return status, {name: check["ok"] for name, check in body["checks"].items()}


def test_ready_follows_redis_and_the_database_and_live_stays_up(web, private_redis, database):
    alive = (200, {"live": True})
    wait_for(lambda: readiness(web) == (200, {"database": True, "redis": True}), 20, message="the web server ready")

    private_redis.kill()
    wait_for(lambda: readiness(web) == (503, {"database": True, "redis": False}), 10, message="not ready: redis")
    assert answer(f"{web}/health/live") == alive
    private_redis.start()
    wait_for(lambda: readiness(web) == (200, {"database": True, "redis": True}), 10, message="ready after redis")

    with database.gone():
        wait_for(lambda: readiness(web) == (503, {"database": False, "redis": True}), 10,
                 message="not ready: the database")  # fmt: skip
        assert answer(f"{web}/health/live") == alive
        status, body = answer(f"{web}/health/ready")
        assert body["checks"]["database"]["detail"].startswith(("failed: ", "no answer within"))
        assert str(database.settings["NAME"]) not in str(body)
    wait_for(lambda: readiness(web) == (200, {"database": True, "redis": True}), 10, message="ready after database")
    assert answer(f"{web}/health/live") == alive
