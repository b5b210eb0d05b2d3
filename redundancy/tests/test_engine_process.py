"""The engine as operators run it (``manage.py run_engine``, the Procfile's ``engine``), with real agent
processes and a simulated camera: what it does is woken by what happens, not by a schedule. Its backstop
period is set to a minute here, and beat does not run, so every failover below is the event-driven path's."""

import signal
import subprocess
import time
from pathlib import Path

import pytest

from protocol import live
from redundancy.models import CameraPlacement, Event, Placement
from testbed.processes import ROOT, procfile_command, stop_process
from testbed.waiting import wait_for

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]

BACKSTOP = 60.0  # seconds: far longer than any wait below


@pytest.fixture
def engine_process(process_env, tmp_path):
    started = []

    def start(**settings):
        env = {**process_env, "ENGINE_TICK_SECONDS": str(BACKSTOP), **{k: str(v) for k, v in settings.items()}}
        log = (tmp_path / f"engine-{len(started)}.log").open("w+")
        process = subprocess.Popen(procfile_command("engine"), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append((process, log))
        return process, log

    yield start
    for process, log in started:
        stop_process(process)
        log.close()


@pytest.fixture
def fast_pair(recorded_site, make_camera, simulator):
    site = recorded_site
    for name in ("a", "b"):
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    sim = simulator(count=2, fps=10.0)
    cameras = [make_camera(site["a"], site["b"], name=f"gate-{n}", stream_url=sim.url(n)) for n in (1, 2)]
    return site, cameras


def _placements(cameras):
    return set(CameraPlacement.objects.filter(camera__in=cameras).values_list("state", flat=True))


def _watching(log, server):
    """The engine's watch holds the server's agent connection: only its log says so (read apart from the child's
    file offset, which a seek here would move)."""
    return f"server={server} event=agent_watch_connected" in Path(log.name).read_text(errors="replace")


def _streaming_on(redis_client, server, cameras):
    health = live.read_stream_reports(redis_client, server)
    return all(health.get(camera.pk, {}).get("state") == "streaming" for camera in cameras)


def test_a_killed_agent_s_fast_cameras_move_at_once_without_beat_or_a_pass_due(
    fast_pair, agent_process, engine_process, redis_client
):
    site, cameras = fast_pair
    primary = agent_process("srv-a")
    agent_process("srv-b")
    engine, log = engine_process()
    wait_for(lambda: _streaming_on(redis_client, "srv-a", cameras), 40, message="srv-a records both cameras")
    wait_for(lambda: _placements(cameras) == {Placement.ON_PRIMARY}, 20, message="the engine's first passes")
    # Both agents up and watched: the kill's failover, not srv-b's own start, is what is timed.
    for server in ("srv-a", "srv-b"):
        wait_for(lambda server=server: _watching(log, server), 10, message=f"the engine's watch on {server}")
    killed = time.monotonic()
    primary.send_signal(signal.SIGKILL)
    wait_for(lambda: _streaming_on(redis_client, "srv-b", cameras), 10, message="srv-b records both cameras")
    took = time.monotonic() - killed
    # Far inside the minute after which the backstop pass was due: the watch saw the process end.
    assert took < 5.0, took
    wait_for(lambda: _placements(cameras) == {Placement.ON_BACKUP}, 10, message="both on their backup")
    down = Event.objects.get(kind="server_down", server=site["a"])
    assert "process ended" in down.message, down.message
    assert engine.poll() is None
    log.seek(0)
    console = log.read()
    assert "server=srv-a event=agent_process_ended" in console, console
    print(f"\nSIGKILL of srv-a's agent -> both cameras streaming on srv-b after {took:.2f} s")


def test_a_frozen_agent_is_found_by_its_heartbeat_s_silence_within_the_fast_window(
    fast_pair, agent_process, engine_process, redis_client
):
    site, cameras = fast_pair
    primary = agent_process("srv-a")
    agent_process("srv-b")
    engine_process()
    wait_for(lambda: _streaming_on(redis_client, "srv-a", cameras), 40, message="srv-a records both cameras")
    wait_for(lambda: _placements(cameras) == {Placement.ON_PRIMARY}, 20, message="the engine's first passes")
    frozen = time.monotonic()
    primary.send_signal(signal.SIGSTOP)  # a frozen host: its connections stay open, it says nothing
    try:
        wait_for(lambda: _placements(cameras) & {Placement.TO_BACKUP, Placement.ON_BACKUP}, 15,
                 message="the failover")  # fmt: skip
        took = time.monotonic() - frozen
    finally:
        primary.send_signal(signal.SIGCONT)
    # The pass runs when srv-a's heartbeat passes the fast window (1.5 s), not at the backstop a minute away.
    assert took < 5.0, took
    down = Event.objects.get(kind="server_down", server=site["a"])
    assert "no heartbeat for" in down.message, down.message
    print(f"\nSIGSTOP of srv-a's agent -> failover started after {took:.2f} s")


def test_two_engine_workers_share_the_systems_and_one_takes_over_when_the_other_dies(
    recorded_site, make_camera, engine_process, redis_client
):
    site = recorded_site
    cameras = [make_camera(site["a"], site["b"]), make_camera(site["other"], None)]
    systems = {site["system"].pk, site["other"].system_id}
    first, _ = engine_process(ENGINE_TICK_SECONDS="0.5")
    wait_for(lambda: all(redis_client.get(live.key("system-lease", s)) for s in systems), 30,
             message="both systems led")  # fmt: skip
    second, _ = engine_process(ENGINE_TICK_SECONDS="0.5")

    def holders():
        return {s: (redis_client.get(live.key("system-lease", s)) or b"").decode() for s in systems}

    # The second worker gets its share: one system each.
    wait_for(lambda: len(set(holders().values()) - {""}) == 2, 30, message="one system for each worker")
    assert CameraPlacement.objects.filter(camera__in=cameras).count() == 2
    first.send_signal(signal.SIGKILL)  # its leases are not given back: they expire
    wait_for(lambda: len(set(holders().values()) - {""}) == 1 and "" not in holders().values(), 30,
             message="the surviving worker leads both systems")  # fmt: skip
    assert second.poll() is None
