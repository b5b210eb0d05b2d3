"""Celery beat ticks the engine, which runs as a worker on the control queue: real processes."""

import subprocess
import sys

import pytest

from conftest import ROOT, wait_for
from recording import live
from redundancy.models import CameraPlacement, ServerState

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]


def test_beat_ticks_the_engine_worker(process_env, site, make_camera, tmp_path, redis_client):
    camera = make_camera(site["a"], site["b"])
    live.publish_heartbeat(redis_client, "srv-a", {"at": 4e9}, ttl=60)
    celery = [sys.executable, "-m", "celery", "-A", "eocortex_web"]
    processes = [
        subprocess.Popen([*celery, "worker", "-Q", "control", "-P", "solo", "-n", "engine-test@%h",
                          "--without-gossip", "--without-mingle", "--without-heartbeat"],
                         cwd=ROOT, env=process_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([*celery, "beat", "-s", str(tmp_path / "beat-schedule")], cwd=ROOT, env=process_env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]  # fmt: skip
    try:
        # The end of a tick: the desired sets are written for the agents.
        wait_for(lambda: live.read_desired(redis_client, "srv-a") == {camera.pk}, 40, message="a tick")
        assert CameraPlacement.objects.get(camera=camera).state == "on_primary"
        assert ServerState.objects.get(server=site["a"]).status == "up"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
