"""Celery beat ticks the engine, which runs as a worker on the control queue: real processes,
started as the Procfile starts them."""

import subprocess
import threading
import time

import pytest

from conftest import ROOT, procfile_command, wait_for
from recording import live
from redundancy.models import CameraPlacement, Placement, ServerState

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]


def test_beat_ticks_the_engine_worker_and_the_console_shows_transitions_not_ticks(
    process_env, site, make_camera, tmp_path, redis_client
):
    for name in ("a", "b"):
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    camera = make_camera(site["a"], site["b"])
    live.publish_heartbeat(redis_client, "srv-b", {"at": 4e9}, ttl=600)
    alive = threading.Event()
    alive.set()

    def heartbeat():  # srv-a beats until the test lets it fall silent, however slowly the processes start
        while alive.is_set():
            live.publish_heartbeat(redis_client, "srv-a", {"at": time.time()}, ttl=60)
            time.sleep(0.2)

    beating = threading.Thread(target=heartbeat, daemon=True)
    beating.start()
    logs = {name: (tmp_path / f"{name}.log").open("w+") for name in ("engine", "beat")}
    engine = [*procfile_command("engine"), "-n", "engine-test@%h"]
    beat = [*procfile_command("beat"), "-s", str(tmp_path / "beat-schedule")]
    processes = [subprocess.Popen(command, cwd=ROOT, env=process_env, stdout=logs[name], stderr=subprocess.STDOUT)
                 for name, command in (("engine", engine), ("beat", beat))]  # fmt: skip
    try:
        # The end of a tick: the desired sets are written for the agents.
        wait_for(lambda: live.read_desired(redis_client, "srv-a") == {camera.pk}, 40, message="a tick")
        wait_for(lambda: ServerState.objects.filter(server=site["a"], status="up").exists(), 20, message="srv-a up")
        alive.clear()
        beating.join(5)
        # srv-a falls silent: the engine declares it down and moves its fast-mode camera.
        wait_for(lambda: CameraPlacement.objects.get(camera=camera).state == Placement.TO_BACKUP, 30,
                 message="the failover")  # fmt: skip
        passes = []
        wait_for(lambda: passes.append(redis_client.get(live.key("engine-last-pass"))) or len(set(passes)) > 3, 20,
                 message="a few more ticks", interval=0.2)  # fmt: skip
    finally:
        alive.clear()
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
    console = {name: (log.seek(0), log.read())[1] for name, log in logs.items()}
    # Per-tick lines stay at DEBUG; the transitions are on the console.
    assert "Sending due task" not in console["beat"], console["beat"]
    assert "Task redundancy.tick[" not in console["engine"], console["engine"]  # received, succeeded
    assert "server=srv-a event=server_down" in console["engine"]
    assert f"camera={camera.pk} event=failover_started" in console["engine"]
