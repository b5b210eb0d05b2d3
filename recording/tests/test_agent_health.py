"""The agent's health for load balancers and Prometheus: ``GET /health/live`` and ``/health/ready`` on its own
port, real agents, real Redis, a storage made unwritable by putting a file where its directory was (the tests
run as root, whom no mode bit stops); and no camera secret in any of its answers."""

import shutil

import pytest
import requests

from recording.serving import RecordingServer
from recording.tests.auth_camera import PasswordCamera
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def get(server, path: str) -> requests.Response:
    return requests.get(f"http://{server.address}:{server.api_port}{path}", timeout=5)


def ready(server) -> tuple[int, dict]:
    answer = get(server, "/health/ready")
    return answer.status_code, answer.json()


def test_a_recording_agent_is_live_and_ready(recorded_site, simulator, agents, make_camera):
    sim = simulator(2)
    server = recorded_site["a"]
    make_camera(server, stream_url=sim.url(1), codec="mjpeg")
    offline = make_camera(server, stream_url=sim.url(2), codec="mjpeg")
    sim.set_state(2, "stopped")
    agent = agents("srv-a")
    live = get(server, "/health/live")
    assert live.status_code == 200 and live.json()["live"] is True
    status, body = wait_for(lambda: (answer := ready(server))[1]["checks"]["recording"]["detail"] ==
                            "1 of 2 cameras streaming" and answer, 15, message="one camera streaming")  # fmt: skip
    # A camera offline is the camera's problem: the agent records the others and is ready.
    assert status == 200 and body["ready"] is True
    assert body["checks"]["storage"] == {"ok": True, "detail": "the storage takes writes", "required": True}
    assert body["checks"]["recording"]["ok"] is True
    assert body["checks"]["redis"] == {"ok": True, "detail": "heartbeats get through", "required": False}
    assert agent.workers[offline.pk].is_alive()
    for _ in range(20):  # pollers as often as they like: the probe leaves nothing behind
        assert ready(server)[0] == 200
    assert not list(agent.storage.glob(".ready-probe-*"))


def _storage_taken_away(recorded_site, simulator, agents, make_camera):
    """srv-a ready and recording one camera, then a file put where its storage directory was (the directory moved
    aside). Returns (simulator, server, camera, agent, storage, aside)."""
    sim = simulator(1)
    server = recorded_site["a"]
    camera = make_camera(server, stream_url=sim.url(1), codec="mjpeg")
    agent = agents("srv-a", segment_seconds=1.0)
    wait_for(lambda: ready(server)[0] == 200 and agent.metrics.camera(camera.pk).frames_written, 15,
             message="ready and recording")  # fmt: skip
    storage = agent.storage
    aside = storage.with_name(storage.name + "-aside")
    storage.rename(aside)
    storage.write_text("not a directory")
    return sim, server, camera, agent, storage, aside


def test_an_unwritable_storage_makes_the_agent_not_ready_until_it_is_fixed(recorded_site, simulator, agents,
                                                                           make_camera):  # fmt: skip
    sim, server, camera, agent, storage, aside = _storage_taken_away(recorded_site, simulator, agents, make_camera)
    status, body = wait_for(lambda: (answer := ready(server))[0] == 503 and answer, 5, message="not ready")
    assert body["ready"] is False
    assert body["checks"]["storage"]["ok"] is False
    assert "Not a directory" in body["checks"]["storage"]["detail"] or "No such file" in body["checks"]["storage"][
        "detail"]  # fmt: skip
    assert body["checks"]["recording"]["ok"] is True, "the storage alone is named"
    wait_for(lambda: agent.metrics.camera(camera.pk).storage_errors > 0, 10, message="the camera's writes failing")
    storage.unlink()
    aside.rename(storage)
    status, body = wait_for(lambda: (answer := ready(server))[0] == 200 and answer, 15, message="ready again")
    assert body["checks"]["storage"]["ok"] is True
    errors = get(server, "/metrics").text
    assert f'eocortex_agent_storage_errors_total{{camera="{camera.pk}",server="srv-a"}}' in errors


def test_a_camera_gone_offline_while_its_writes_failed_keeps_no_agent_out_of_service(recorded_site, simulator,
                                                                                      agents, make_camera):  # fmt: skip
    sim, server, camera, agent, storage, aside = _storage_taken_away(recorded_site, simulator, agents, make_camera)
    wait_for(lambda: agent.storage_health.snapshot().get(camera.pk), 10, message="the camera's writes failing")
    sim.set_state(1, "stopped")  # offline before it could write again: its error stays with it
    wait_for(lambda: agent.workers[camera.pk].stats.state != "streaming", 15, message="the camera offline")
    storage.unlink()
    aside.rename(storage)
    status, body = wait_for(lambda: (answer := ready(server))[0] == 200 and answer, 15, message="ready again")
    assert body["checks"]["storage"] == {"ok": True, "detail": "the storage takes writes", "required": True}
    assert agent.storage_health.snapshot().get(camera.pk), "the camera's last error is still on record"


def test_no_camera_secret_in_metrics_or_health(recorded_site, agents, make_camera):
    camera = PasswordCamera("operator", "pw-planted-7Q")
    try:
        server = recorded_site["a"]
        with_fields = make_camera(server, stream_url=camera.url, codec="mjpeg", username="operator",
                                  password="pw-planted-7Q")  # fmt: skip
        in_url = camera.url.replace("http://", "http://viewer:url-secret-9Z@")
        make_camera(server, stream_url=in_url, codec="mjpeg")
        agents("srv-a")
        wait_for(lambda: ready(server)[1]["checks"]["recording"]["detail"].startswith("1 of 2"), 15,
                 message="the camera with its password streaming")  # fmt: skip
        port = camera.url.split(":")[2].split("/")[0]
        bodies = {path: get(server, path).text for path in ("/metrics", "/health/ready", "/health/live")}
        assert f'camera="{with_fields.pk}"' in bodies["/metrics"]
        for path, body in bodies.items():
            for secret in ("pw-planted-7Q", "url-secret-9Z", "operator", "viewer", camera.url, in_url, f":{port}"):
                assert secret not in body, f"{secret} in {path}"
    finally:
        camera.close()


def test_a_server_without_its_agent_is_live_but_not_ready(make_server, tmp_path):
    server = make_server(recordings_path=str(tmp_path / "srv"))
    recordings = RecordingServer(server, server.storage_dir, server.address, server.api_port)
    recordings.start()
    try:
        assert get(server, "/health/live").status_code == 200
        status, body = ready(server)
        assert status == 503 and body["ready"] is False
        assert get(server, "/metrics").status_code == 404
    finally:
        recordings.stop()


def test_a_storage_gone_leaves_no_free_bytes_figure(recorded_site, agents):
    agent = agents("srv-a")
    server = recorded_site["a"]
    assert "eocortex_agent_storage_free_bytes" in get(server, "/metrics").text
    shutil.rmtree(agent.storage)
    # Read at most once a second (on a thread of its own, bounded): gone from the next reading on.
    wait_for(lambda: "eocortex_agent_storage_free_bytes{" not in get(server, "/metrics").text, 5,
             message="no free bytes figure")  # fmt: skip
    status, body = ready(server)
    assert status == 503 and "No such file or directory" in body["checks"]["storage"]["detail"]


def test_the_storage_is_probed_at_most_once_a_second(tmp_path):
    from recording.storage_health import StorageProbe

    now = [100.0]
    probe = StorageProbe(tmp_path / "storage", clock=lambda: now[0])
    assert probe.check() == (False, "the storage takes no write: No such file or directory")
    (tmp_path / "storage").mkdir()
    now[0] += 0.9
    assert probe.check()[0] is False, "within the second: the last answer, no new write"
    now[0] += 0.2
    assert probe.check() == (True, "the storage takes writes")
    assert not list((tmp_path / "storage").iterdir())
