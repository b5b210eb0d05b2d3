"""An engine worker's health as a load balancer or an orchestrator asks it: ready while its passes complete, not
ready while Redis is away (it decides nothing then), ready again once Redis is back; live throughout. The worker's
Redis is a redis-server of the test's own, killed and started again on its port."""

import json
import subprocess

import pytest
import redis

from redundancy.tests.test_metrics import Beats, Worker, engine, get, scrape, value
from testbed.private_redis import PrivateRedis
from testbed.processes import ROOT, procfile_command, stop_process
from testbed.waiting import wait_for
from utilities.ports import free_port

pytestmark = pytest.mark.django_db(transaction=True)


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
            wait_for(lambda: value(scrape(worker.port), "eocortex_engine_cameras", placement="on_primary") == 1,
                     message="the camera counted")  # fmt: skip

            private_redis.stop()  # within 2 × 0.2 s + 1 s of its last complete pass the worker is not ready
            status, body = wait_for(lambda: (answer := ready(worker.port))[0] == 503 and answer, timeout=10,
                                    message="not ready without Redis")  # fmt: skip
            assert body["ready"] is False and body["checks"]["pass"]["ok"] is False
            assert "abandoned: redis_unreachable" in body["checks"]["pass"]["detail"]
            samples = scrape(worker.port)
            assert value(samples, "eocortex_engine_passes_total", outcome="abandoned") >= 1
            assert value(samples, "eocortex_engine_last_pass_age_seconds") > 1.4
            # Cut off, it may no longer be the worker that decides: it counts nothing and holds no lease.
            assert value(samples, "eocortex_engine_cameras", placement="on_primary") == 0
            assert value(samples, "eocortex_engine_lease_held") is None  # no series: no lease
            assert value(samples, "eocortex_engine_systems_held") == 0
            assert get(worker.port, "/health/live")[0] == 200  # the process answers: no reason to restart it

            private_redis.start()  # empty: the worker takes its leases again, begins new terms, and passes
            status, body = wait_for(lambda: (answer := ready(worker.port))[0] == 200 and answer, timeout=15,
                                    message="ready again with Redis back")  # fmt: skip
            assert body["ready"] is True and "abandoned" not in body["checks"]["pass"]["detail"]
            assert value(scrape(worker.port), "eocortex_engine_last_pass_age_seconds") < 1.4
            samples = wait_for(lambda: (found := scrape(worker.port)) and value(
                found, "eocortex_engine_cameras", placement="on_primary") == 1 and found, timeout=10,
                message="the camera counted again")  # fmt: skip
            assert value(samples, "eocortex_engine_systems_held") == 2
    finally:
        beats.stop()


def test_not_ready_before_its_first_complete_pass(private_redis, site):
    private_redis.stop()  # no pass can complete
    with Worker(engine(redis.Redis.from_url(private_redis.url, socket_connect_timeout=0.2))) as worker:
        wait_for(lambda: worker.loop.passes >= 2, message="passes abandoned")
        status, body = ready(worker.port)
        assert status == 503 and body["checks"]["pass"]["detail"].startswith("no complete pass yet")


@pytest.mark.process
def test_run_engine_serves_each_worker_s_metrics_on_its_own_port(process_env, site, tmp_path):
    """Two workers of one host: the first on ``--metrics-port``, the second given the same port by the setting
    warns and decides without metrics; a port out of range is refused at the start."""
    port = free_port()
    started = []
    try:
        for n, (arguments, env) in enumerate((
            (["--worker", "w1", "--metrics-port", str(port)], {}),
            (["--worker", "w2"], {"ENGINE_METRICS_PORT": str(port)}),
        )):  # fmt: skip
            log = (tmp_path / f"engine-{n}.log").open("w+")
            process = subprocess.Popen([*procfile_command("engine"), *arguments], cwd=ROOT, stdout=log,
                                       stderr=subprocess.STDOUT, env={**process_env, "ENGINE_TICK_SECONDS": "0.5",
                                                                      **env})  # fmt: skip
            started.append((process, log))
            if n == 0:
                wait_for(lambda: _answers(port), 30, message="the first worker's metrics port")
        wait_for(lambda: "event=engine_metrics_not_served" in (tmp_path / "engine-1.log").read_text(), 30,
                 message="the second worker's warning")  # fmt: skip
        wait_for(lambda: value(scrape(port), "eocortex_engine_systems_held") == 1, 30,
                 message="the systems shared between the two workers")  # fmt: skip
        samples = scrape(port)
        assert [dict(labels)["worker"] for key, labels in samples if key == "eocortex_engine_lease_held"] == ["w1"]
        assert ready(port)[0] == 200
        assert all(process.poll() is None for process, _ in started)
    finally:
        for process, log in started:
            stop_process(process)
            log.close()
    refused = subprocess.run([*procfile_command("engine"), "--metrics-port", "70000"], cwd=ROOT, env=process_env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode != 0 and "--metrics-port must be a port number from 0 (none) to 65535" in refused.stderr


def _answers(port):
    try:
        return get(port, "/health/live", timeout=0.5)[0] == 200
    except OSError:
        return False
