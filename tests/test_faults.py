"""Faults of the product's own parts, with real processes: Redis restarted, the database gone for
30 s, the engine killed and restarted. Agents are ``run_video_server`` processes, the
cameras come from the simulator, recordings are checked frame by frame."""

import signal
import sqlite3
import subprocess
import time
from contextlib import contextmanager

import pytest
from django.db import connection

from protocol import live
from recording.models import Segment
from redundancy.models import Event, Placement, ServerState, ServerStatus
from redundancy.tests.test_failover import frames_by_server, missing_between, placement, streaming
from testbed.private_redis import PrivateRedis
from testbed.processes import ROOT, procfile_command, stop_process
from testbed.waiting import wait_for, wait_for_engine_passes

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["empty", "persistent"])
def private_redis(request, settings, tmp_path):
    """Restarted empty, every heartbeat forgotten; or with its data, every heartbeat as old as the outage."""
    server = PrivateRedis(tmp_path, persistent=request.param == "persistent")
    settings.REDIS_URL = server.url  # agents, the engine thread and the test read live state there
    yield server
    server.close()


@pytest.fixture
def recorded_pair(site, tmp_path, simulator, make_camera):
    """srv-a records 'gate' with srv-b as its fast-mode backup."""
    for name in ("a", "b"):
        server = site[name]
        server.recordings_path = str(tmp_path / server.name)
        server.save()
        server.redundancy.fast_redundancy = True
        server.redundancy.save()
    sim = simulator(1, fps=5.0)
    return make_camera(site["a"], site["b"], name="gate", stream_url=sim.url(1), codec="mjpeg")


def test_redis_restart_declares_no_failure_and_recording_goes_on(private_redis, recorded_pair, agent_process,
                                                                 engine):  # fmt: skip
    camera = recorded_pair
    primary, backup = agent_process("srv-a"), agent_process("srv-b")
    client = live.client()
    wait_for(lambda: streaming("srv-a", camera, client), 30, message="the primary streaming")
    wait_for(lambda: placement(camera) == Placement.ON_PRIMARY, 10, message="the engine placing the camera")
    private_redis.outage(5)  # agents record on; heartbeats and engine passes go nowhere
    wait_for(lambda: {"srv-a", "srv-b"} <= set(live.read_last_seen(client)), 20, message="heartbeats resuming")
    wait_for(lambda: streaming("srv-a", camera, client), 20, message="stream reports resuming")
    wait_for_engine_passes(3.0)  # passes after the restart, longer than the fast window: no silence misjudged
    assert placement(camera) == Placement.ON_PRIMARY
    assert not Event.objects.filter(kind__in=["server_down", "failover_started"]).exists()
    assert primary.poll() is None and backup.poll() is None
    # Events resume: a real failure after the restart is acted on.
    primary.kill()
    wait_for(lambda: Event.objects.filter(kind="failover_started", camera=camera).exists(), 30,
             message="a failover after the restart")  # fmt: skip
    wait_for(lambda: placement(camera) == Placement.ON_BACKUP, 30, message="the camera on its backup")
    backup.send_signal(signal.SIGTERM)
    backup.wait(timeout=40)
    frames = frames_by_server(camera)
    outage_frames = [c for c in frames["srv-a"]]
    assert missing_between(outage_frames) == [], "the primary recorded through the Redis outage"


@contextmanager
def database_unreachable(seconds: float):
    """The database refuses the agents for ``seconds``: SQLite held under an exclusive lock, PostgreSQL
    closed to new connections with the agents' connections cut."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        holder = sqlite3.connect(settings_dict["NAME"], timeout=30, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
            time.sleep(seconds)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        import psycopg

        name = settings_dict["NAME"]
        connection.close()  # this test's own connection goes too; it reconnects afterwards
        admin = psycopg.connect(host=settings_dict["HOST"] or "127.0.0.1", port=settings_dict["PORT"] or 5432,
                                user=settings_dict["USER"], password=settings_dict["PASSWORD"] or None,
                                dbname="postgres", autocommit=True)  # fmt: skip
        try:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            yield
            time.sleep(seconds)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            admin.close()


def _segment_files(camera):
    return {str(path) for path in camera.primary_server.storage_dir.glob(f"{camera.pk}/*/*.mjpeg")}


def test_database_gone_for_30_seconds_loses_nothing(recorded_pair, agent_process):
    camera = recorded_pair
    agent = agent_process("srv-a")
    wait_for(lambda: Segment.objects.filter(camera=camera).exists(), 30, message="a first indexed segment")
    with database_unreachable(30):
        pass
    assert agent.poll() is None, "the agent rode out the outage"
    files_during = _segment_files(camera)
    assert len(files_during) >= 12, "segments of 2 s went on being written to disk"
    wait_for(lambda: files_during <= set(Segment.objects.values_list("path", flat=True)), 60,
             message="the index catching up")  # fmt: skip
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=40) == 0
    indexed = set(Segment.objects.filter(camera=camera).values_list("path", flat=True))
    assert files_during <= indexed, "every segment written during the outage is in the index"
    frames = frames_by_server(camera)
    assert missing_between(frames["srv-a"]) == []
    assert sum(Segment.objects.filter(camera=camera).values_list("frame_count", flat=True)) == len(frames["srv-a"])


class ControlPlane:
    """The engine as the Procfile runs it (its loop sends the periodic tasks too); killed and started again."""

    def __init__(self, env, tmp_path):
        self.env = {**env, "ENGINE_HOLD_DOWN_SECONDS": "2"}
        self.tmp_path = tmp_path
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name):
        command = procfile_command(name)
        log = open(self.tmp_path / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, name):
        self.processes[name].kill()
        self.processes[name].wait(timeout=10)

    def close(self):
        for process in self.processes.values():
            stop_process(process)


@pytest.fixture
def control_plane(process_env, tmp_path):
    plane = ControlPlane(process_env, tmp_path)
    yield plane
    plane.close()


def test_engine_killed_mid_failover_decides_once(recorded_pair, agent_process, control_plane, redis_client):
    camera = recorded_pair
    primary, backup = agent_process("srv-a"), agent_process("srv-b")
    control_plane.start("engine")
    wait_for(lambda: placement(camera) == Placement.ON_PRIMARY and streaming("srv-a", camera, redis_client), 60,
             message="the camera placed on its primary")  # fmt: skip
    primary.kill()
    wait_for(lambda: Event.objects.filter(kind="failover_started", camera=camera).exists(), 30,
             message="the failover starting")  # fmt: skip
    control_plane.kill("engine")
    time.sleep(3)  # the fault: the engine stays away a while (its lease runs out) before it is restarted
    control_plane.start("engine")
    wait_for(lambda: placement(camera) == Placement.ON_BACKUP, 60, message="the failover completing after the restart")
    assert live.read_desired(redis_client, "srv-b") == {camera.pk}
    # The primary returns: one failback, make-before-break, with the restarted engine.
    agent_process("srv-a")
    wait_for(lambda: placement(camera) == Placement.ON_PRIMARY, 60, message="the failback")
    kinds = list(Event.objects.filter(camera=camera).values_list("kind", flat=True))
    assert kinds.count("failover_started") == 1 and kinds.count("failover_completed") == 1
    assert kinds.count("failback_started") == 1 and kinds.count("failback_completed") == 1
    assert Event.objects.filter(kind="server_down", server__name="srv-a").count() == 1
    assert live.read_desired(redis_client, "srv-a") == {camera.pk}
    backup.send_signal(signal.SIGTERM)


def test_unwritable_storage_is_reported_not_a_crash_loop(recorded_pair, agent_process, engine, tmp_path, api):
    camera = recorded_pair
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the recordings directory should be")
    server = camera.primary_server
    server.recordings_path = str(blocker / "recordings")  # cannot be created, not even by root
    server.save()
    primary, backup = agent_process("srv-a"), agent_process("srv-b")
    wait_for(lambda: Event.objects.filter(kind="storage_failed", server=server).exists(), 30,
             message="a storage_failed event")  # fmt: skip
    status = {s["name"]: s for s in api.get("/api/status/").json()["servers"]}
    assert status["srv-a"]["storage_error"] == "Not a directory"
    assert status["srv-a"]["status"] == "up", "the agent itself is alive and heard"
    # Fast mode: cameras the primary cannot record move to the backup.
    wait_for(lambda: placement(camera) == Placement.ON_BACKUP, 30, message="the camera on its backup")
    time.sleep(3)  # time for a crash loop or a repeated storage_failed event to show
    assert primary.poll() is None, "the agent did not exit"
    assert Event.objects.filter(kind="storage_failed", server=server).count() == 1
    # The path is fixed: the storage comes back on its own.
    blocker.unlink()
    wait_for(lambda: Event.objects.filter(kind="storage_restored", server=server).exists(), 30,
             message="a storage_restored event")  # fmt: skip
    wait_for(lambda: placement(camera) == Placement.ON_PRIMARY, 40, message="the camera back on its primary")
    backup.send_signal(signal.SIGTERM)


def test_a_database_failover_pauses_decisions_and_costs_no_recording(recorded_pair, agent_process, control_plane,
                                                                     redis_client):  # fmt: skip
    """What a failover of PostgreSQL (streaming replication under a failover manager) looks like to the product:
    the database refuses everyone for a few seconds, then answers again at the same address. Agents record on;
    decisions wait for it, and a server killed meanwhile fails over as soon as it is back."""
    camera = recorded_pair
    primary, backup = agent_process("srv-a"), agent_process("srv-b")
    control_plane.start("engine")
    wait_for(lambda: placement(camera) == Placement.ON_PRIMARY and streaming("srv-a", camera, redis_client), 60,
             message="the camera placed on its primary")  # fmt: skip
    wait_for(lambda: set(ServerState.objects.filter(status=ServerStatus.UP).values_list("server__name", flat=True))
             >= {"srv-a", "srv-b"}, 60, message="both servers up (the backup's agent started)")  # fmt: skip
    outage = 8.0
    with database_unreachable(outage):
        time.sleep(1.0)  # the fault's pacing: srv-a dies inside the outage, not at its start
        primary.kill()  # its camera's failover must wait for the database
    back = time.monotonic()
    wait_for(lambda: placement(camera) in (Placement.TO_BACKUP, Placement.ON_BACKUP), 30,
             message="the failover once the database is back")  # fmt: skip
    pause = time.monotonic() - back
    wait_for(lambda: streaming("srv-b", camera, redis_client), 20, message="the backup recording")
    assert pause < 5.0, f"decisions resumed {pause:.2f} s after the database came back"
    assert Event.objects.filter(kind="server_down", server__name="srv-a").count() == 1
    assert Event.objects.filter(kind="failover_started", camera=camera).count() == 1
    assert backup.poll() is None and control_plane.processes["engine"].poll() is None
    print(f"\ndatabase away {outage:.0f} s: failover decided {pause:.2f} s after it returned")
