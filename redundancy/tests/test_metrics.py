"""An engine worker's metrics as Prometheus scrapes them: the loop running in a thread against the real database
and Redis, heartbeats written by the test on Redis's clock, every figure read over HTTP from the worker's port."""

import json
import logging
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from protocol import live
from redundancy.engine import Engine
from redundancy.models import Event, Placement
from redundancy.runner import EngineLoop
from testbed.waiting import wait_for
from utilities.ports import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str, str]:
    """(status, content type, body) of a GET on the worker's port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``/metrics``: (name, its labels) → value."""
    status, _, text = get(port, "/metrics")
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def value(samples, name, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


class Beats(threading.Thread):
    """Agents' heartbeats, every 0.1 s by Redis's clock, for the servers in ``names``; each reports ``streams``
    (camera → state) as its stream reports."""

    def __init__(self, redis_client, names, streams=None):
        super().__init__(daemon=True)
        self.redis, self.names, self.streams = redis_client, set(names), streams or {}
        self.stopping = threading.Event()

    def run(self):
        import redis

        while not self.stopping.wait(0.1):
            for name in list(self.names):
                try:
                    live.publish_heartbeat(self.redis, name, {}, ttl=5)
                    reports = {camera.pk: {"state": state} for camera, state in self.streams.get(name, {}).items()}
                    live.publish_stream_reports(self.redis, name, reports, 5)
                except redis.RedisError:
                    pass  # Redis away: the agents' beats do not get through either

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)


class Worker:
    """An engine worker's loop in a thread, its metrics on a free port of loopback."""

    def __init__(self, engine: Engine, tick_seconds=0.1, port=None, address=None):
        self.port = port or free_port()
        self.loop = EngineLoop(engine, tick_seconds=tick_seconds, watch_agents=False, schedule=False,
                               metrics_port=self.port, metrics_address=address)  # fmt: skip
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        if self.loop.metrics_server is not None:
            wait_for(self._answers, message="the worker's metrics port")
        return self

    def _answers(self):
        if not self.thread.is_alive() or (self.loop.passes and self.loop.metrics_server.port is None):
            return True  # it passes, its port not bound: the test sees so
        try:
            return get(self.port, "/health/live", timeout=0.5)[0] == 200
        except OSError:  # refused, or taken by another that does not answer
            return False

    def __exit__(self, *exc):
        self.loop.stop()
        self.thread.join(10)


def engine(redis_client=None, worker=None) -> Engine:
    return Engine(redis_client or live.client(), wake_agent=lambda name: None, wake_mailer=lambda: None,
                  worker=worker)  # fmt: skip


@pytest.fixture
def fast_pair(site, make_camera):
    """srv-a records 'gate' with srv-b as its fast-mode backup."""
    for name in ("a", "b"):
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    return make_camera(site["a"], site["b"], name="gate")


def test_a_failover_shows_in_the_metrics_in_the_desired_word_and_in_the_log(site, fast_pair, caplog):
    camera, redis_client = fast_pair, live.client()
    beats = Beats(redis_client, ["srv-a", "srv-b", "srv-c"], {"srv-a": {camera: "streaming"}})
    beats.start()
    caplog.set_level(logging.INFO, logger="redundancy.engine")
    try:
        with Worker(engine(worker="metrics-a")) as worker:
            port = worker.port
            before = wait_for(lambda: (s := scrape(port)) and value(s, "eocortex_engine_servers", status="up") == 3
                              and s, message="the three servers heard up")  # fmt: skip
            assert value(before, "eocortex_engine_passes_total", outcome="ran") >= 1
            assert value(before, "eocortex_engine_cameras", placement="on_primary") == 1
            assert value(before, "eocortex_engine_servers", status="unknown") == 1  # srv-other, never heard
            assert value(before, "eocortex_engine_systems_held") == 2  # the site's and the other one
            assert value(before, "eocortex_engine_lease_held", system=str(site["system"].pk), worker="metrics-a") == 1
            assert value(before, "eocortex_engine_decisions_total", kind="failover_started") == 0
            count = value(before, "eocortex_engine_tick_duration_seconds_count")
            wait_for(lambda: value(scrape(port), "eocortex_engine_tick_duration_seconds_count") > count,
                     message="the pass histogram counting passes")  # fmt: skip

            beats.names.discard("srv-a")  # srv-a dies: past the fast window its camera moves to srv-b
            after = wait_for(lambda: (s := scrape(port)) and value(s, "eocortex_engine_decisions_total",
                                                                   kind="failover_started") == 1 and s,
                             timeout=15, message="failover_started counted")  # fmt: skip
            assert value(after, "eocortex_engine_cameras", placement="on_primary") == 0
            moved = value(after, "eocortex_engine_cameras", placement="to_backup")
            moved += value(after, "eocortex_engine_cameras", placement="on_backup")
            assert moved == 1
            assert value(after, "eocortex_engine_decisions_total", kind="server_down") == 1
            assert value(after, "eocortex_engine_servers", status="down") == 1
            assert value(after, "eocortex_engine_servers", status="up") == 2
            assert value(after, "eocortex_engine_last_pass_age_seconds") < 1.0
    finally:
        beats.stop()
    event = Event.objects.get(camera=camera, kind="failover_started")
    word = live.read_desired_word(redis_client, "srv-b")
    assert word.cameras == {camera.pk} and word.incidents == {camera.pk: event.pk}
    down = Event.objects.get(kind="server_down")
    assert (f"camera={camera.pk} event=failover_started incident={event.pk} event_id={event.pk} primary=srv-a "
            f"backup=srv-b cause={down.pk} placement={Placement.TO_BACKUP}") in caplog.text  # fmt: skip
    assert f"server=srv-a event=server_down incident={down.pk} event_id={down.pk} " in caplog.text


def test_a_standby_worker_that_holds_no_system_passes_idle_and_is_ready(site):
    redis_client = live.client()
    for system in (site["system"].pk, site["other"].system_id):  # another worker holds every system
        redis_client.set(live.key("system-lease", system), "another-worker", px=60_000)
    with Worker(engine(worker="standby")) as worker:
        samples = wait_for(lambda: (s := scrape(worker.port))
                           and value(s, "eocortex_engine_passes_total", outcome="idle") >= 2 and s,
                           message="idle passes")  # fmt: skip
        assert value(samples, "eocortex_engine_passes_total", outcome="ran") == 0
        assert value(samples, "eocortex_engine_systems_held") == 0
        assert not [k for k in samples if k[0] == "eocortex_engine_lease_held"]
        assert value(samples, "eocortex_engine_cameras", placement="on_primary") == 0
        status, content_type, body = get(worker.port, "/health/ready")
        assert status == 200 and content_type == "application/json" and json.loads(body)["ready"] is True


def test_the_endpoints_and_their_answers(site):
    with Worker(engine()) as worker:
        wait_for(lambda: get(worker.port, "/health/ready")[0] == 200, message="ready")
        status, content_type, body = get(worker.port, "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=")
        assert "# TYPE eocortex_engine_tick_duration_seconds histogram" in body
        assert get(worker.port, "/health/live")[0] == 200
        for path in ("/", "/metrics/x", "/health", "/admin/"):
            assert get(worker.port, path)[0] == 404
        status, _, body = get(worker.port, "/health/ready")
        checks = json.loads(body)["checks"]
        assert checks["pass"]["ok"] is True and "last complete pass" in checks["pass"]["detail"]


def test_a_port_that_cannot_be_bound_is_a_warning_and_the_worker_decides_without_metrics(site, caplog):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    caplog.set_level(logging.WARNING, logger="redundancy.metrics")
    try:
        with Worker(engine(), port=port) as worker:
            wait_for(lambda: worker.loop.passes >= 3, message="passes without metrics")
    finally:
        taken.close()
    assert f"event=engine_metrics_not_served address=127.0.0.1 port={port}" in caplog.text


def test_two_loops_in_one_process_share_the_systems_and_each_counts_its_own(site):
    def held(port):
        samples = scrape(port)
        return value(samples, "eocortex_engine_systems_held"), samples

    with Worker(engine(worker="one")) as one, Worker(engine(worker="two")) as two:
        wait_for(lambda: held(one.port)[0] + held(two.port)[0] == 2 and held(one.port)[0] == 1, timeout=15,
                 message="each worker holding one system")  # fmt: skip
        for worker, name in ((one, "one"), (two, "two")):
            leases = [labels for key, labels in held(worker.port)[1] if key == "eocortex_engine_lease_held"]
            assert len(leases) == 1 and dict(leases[0])["worker"] == name
