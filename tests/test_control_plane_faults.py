"""Faults of the control plane (issue 17), with real processes: the Redis master killed under Sentinel, the
leading engine worker killed, the worker that sends the periodic tasks killed, the leading worker frozen for
20 s and resumed. Each time srv-a's agent (fast mode, two cameras, srv-b their backup) is killed during or right
after the fault, and must still fail over: within 5 s of decisions, with its cameras' video read back frame by
frame from both servers' files, every decision made once. Run with ``-s`` to see the figures of each fault."""

import signal
import subprocess
import time

import pytest
import redis
from django.conf import settings as django_settings

from protocol import live
from redundancy.models import CameraPlacement, Event, EventKind, Placement
from simulation.identity import recorded_stamps
from testbed.passes import PassClock
from testbed.processes import ROOT, procfile_command, stop_process
from testbed.waiting import wait_for, wait_for_engine_passes

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]

FPS = 10.0
WORKERS = ("engine-1", "engine-2")
LEASE = 3.0  # ENGINE_LEASE_SECONDS, as the product ships it
TARGET = 5.0  # issue 17: at most 5 s without decisions
# What a failover costs with a healthy control plane, kill to both cameras streaming on the backup: 0.2-0.6 s in
# bench/failover.py and test_engine_process.py (the watch sees the process end; the backup opens the streams). The
# fault may add at most TARGET to that; 1 s covers the normal part on these two shared cores.
NORMAL_FAILOVER = 1.0
BOUND = TARGET + NORMAL_FAILOVER
MAIL_SWEEP, EXPORT_EXPIRY = "redundancy-mail", "playback-expire-exports"  # settings.PERIODIC_TASKS
MAIL_PERIOD = 10.0  # the mail sweep's period; the exports' expiry is hourly
SCHEDULE_ROUND = 1.0  # how often each worker's schedule thread tries the lease (redundancy.schedule)
# A process's round late by up to this on these two shared cores (the scheduler, a pass beside it).
SLACK = 1.0


class Plane:
    """srv-a and srv-b as fast-mode agent processes, two cameras of the simulator on srv-a backed up by srv-b, and
    engine workers (``run_engine --worker NAME``) started and faulted by the test."""

    def __init__(self, site, cameras, agent_process, env, tmp_path):
        self.site, self.cameras = site, cameras
        self.agent_process, self.env, self.tmp_path = agent_process, env, tmp_path
        self.redis = live.client()
        self.system = site["system"].pk
        self.engines: dict[str, subprocess.Popen] = {}
        self.agents: dict[str, subprocess.Popen] = {}
        self.extra_env: dict[str, str] = {}
        self.clock = PassClock()
        self.killed_at = None  # (monotonic, wall) of srv-a's kill
        self.events_before = 0

    # -- processes -----------------------------------------------------------------------------------

    def start_agents(self):
        # The agents' own sweep as the product ships it, not the 1 s of the fixture: it is how a backup learns its
        # desired set when the engine's notice (a Celery message) is held up, as it is while a broker fails over.
        sweep = {"AGENT_SWEEP_SECONDS": str(django_settings.AGENT_SWEEP_SECONDS)}
        for name in ("srv-a", "srv-b"):
            self.agents[name] = self.agent_process(name, **sweep, **self.extra_env)

    def start_engine(self, name):
        env = {**self.env, **self.extra_env, "ENGINE_LEASE_SECONDS": str(LEASE)}
        log = (self.tmp_path / f"{name}.log").open("ab")
        self.engines[name] = subprocess.Popen([*procfile_command("engine"), "--worker", name], cwd=ROOT, env=env,
                                              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        log.close()  # the child holds it

    def engine_log(self, name) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def watching(self, worker, server) -> bool:
        """The worker's watch holds the server's agent connection: only its log says so."""
        return f"server={server} event=agent_watch_connected" in self.engine_log(worker)

    def close(self):
        self.clock.stop()
        for process in self.engines.values():
            stop_process(process, grace=10)

    # -- what the test reads -------------------------------------------------------------------------

    def leader(self) -> str:
        """The worker that holds the system's lease (decides for it), '' when none does."""
        try:
            return (self.redis.get(live.key("system-lease", self.system)) or b"").decode()
        except redis.RedisError:
            return ""

    def workers_alive(self) -> set[str]:
        return {w.decode() for w in self.redis.zrange(live.key("engine-workers"), 0, -1)}

    def placements(self) -> set[str]:
        return set(CameraPlacement.objects.filter(camera__in=self.cameras).values_list("state", flat=True))

    def streaming_on(self, server) -> bool:
        try:
            health = live.read_stream_reports(self.redis, server)
        except redis.RedisError:
            return False
        return all(health.get(camera.pk, {}).get("state") == "streaming" for camera in self.cameras)

    def failed_over(self) -> bool:
        return self.placements() == {Placement.ON_BACKUP} and self.streaming_on("srv-b")

    # -- the scenario's steps ------------------------------------------------------------------------

    def wait_steady(self, workers=WORKERS):
        """Both cameras recorded by srv-a and placed on it, one worker leading, every worker alive in the registry;
        every worker's watch holds srv-a's agent connection (as test_engine_process waits). Returns the leader."""
        wait_for(lambda: self.streaming_on("srv-a"), 60, message="srv-a records both cameras")
        wait_for(lambda: self.placements() == {Placement.ON_PRIMARY}, 30, message="both cameras placed on srv-a")
        wait_for(lambda: self.leader() in workers and set(workers) <= self.workers_alive(), 30,
                 message="one worker leading, all of them alive")  # fmt: skip
        wait_for(lambda: all(self.watching(name, "srv-a") for name in workers), 10,
                 message="every worker's watch holding srv-a's connection")  # fmt: skip
        assert self.placements() == {Placement.ON_PRIMARY}
        assert not Event.objects.filter(kind__in=[EventKind.SERVER_DOWN, EventKind.FAILOVER_STARTED]).exists()
        self.events_before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        if not self.clock.is_alive():
            self.clock.start()
        return self.leader()

    def kill_primary(self):
        self.agents["srv-a"].send_signal(signal.SIGKILL)
        self.killed_at = (time.monotonic(), time.time())

    def wait_failed_over(self, timeout=30.0) -> float:
        """Seconds from srv-a's kill until both cameras are placed on srv-b and streaming there (bounded: a slower
        failover fails the test's bound with its figure, a missing one here)."""
        wait_for(self.failed_over, timeout, interval=0.02, message="both cameras placed on srv-b and streaming there")
        return time.monotonic() - self.killed_at[0]

    def events_since_steady(self) -> list[tuple[str, str, str]]:
        rows = Event.objects.filter(id__gt=self.events_before).order_by("id")
        return [(e.kind, e.camera.name if e.camera else "", e.server.name if e.server else "") for e in rows]

    def expected_events(self) -> list[tuple[str, str, str]]:
        """The one incident: srv-a down, each camera's failover started and completed, nothing else."""
        moves = [(kind, camera.name, "srv-a") for camera in self.cameras
                 for kind in (EventKind.FAILOVER_STARTED, EventKind.FAILOVER_COMPLETED)]  # fmt: skip
        return sorted([(EventKind.SERVER_DOWN, "", "srv-a"), *moves])

    def decided_after(self) -> float:
        """Seconds from the kill to the first failover decision (its event, stamped by Redis's clock, which is this
        machine's)."""
        first = Event.objects.filter(kind=EventKind.FAILOVER_STARTED, id__gt=self.events_before).order_by("at").first()
        return first.at.timestamp() - self.killed_at[1]

    def stop_backup(self):
        """srv-b stopped gracefully, so that its last segment is closed before the frames are read."""
        backup = self.agents["srv-b"]
        backup.send_signal(signal.SIGTERM)
        backup.wait(timeout=40)

    def lost_video(self) -> dict[str, float]:
        """Per camera: seconds of the longest run of frames neither server recorded, from 3 s before the kill on
        (read from both servers' files by each frame's identity)."""
        since = self.killed_at[1] - 3.0
        lost = {}
        for camera in self.cameras:
            stamps = [s for server in (self.site["a"], self.site["b"])
                      for s in recorded_stamps(server.storage_dir, camera.pk)]  # fmt: skip
            counters = sorted({s.counter for s in stamps if s.captured_ms / 1000 >= since})
            assert counters, f"{camera.name}: no frame recorded after the kill"
            worst = max((b - a for a, b in zip(counters, counters[1:], strict=False)), default=1)
            lost[camera.name] = (worst - 1) / FPS
        return lost

    def backup_frames(self, camera) -> list:
        return recorded_stamps(self.site["b"].storage_dir, camera.pk)

    def report(self, fault, failover, lost, settled, **more):
        figures = "".join(f"; {name.replace('_', ' ')} {value}" for name, value in more.items())
        print(f"\n{fault}: srv-a killed -> both cameras streaming on srv-b after {failover:.2f} s; first failover "
              f"decided {self.decided_after():.2f} s after the kill; longest gap between decision passes "
              f"{settled['pass_gap'] or 0:.2f} s; lost video per camera {lost}{figures}")  # fmt: skip

    def settled(self, failover) -> dict:
        """What the site holds once the failover is over, read before srv-b is stopped for its files."""
        return {
            "events": self.events_since_steady(),
            "placements": self.placements(),
            "desired": live.read_desired(self.redis, "srv-b"),
            "pass_gap": self.clock.longest_gap(self.killed_at[1], self.killed_at[1] + failover),
        }

    def check_incident(self, failover, lost, settled):
        """The figures within the bound and the incident decided once, by one worker at a time."""
        assert failover <= BOUND, f"failover took {failover:.2f} s (bound {BOUND} s)"
        assert max(lost.values()) <= BOUND, f"lost video {lost} (bound {BOUND} s)"
        assert settled["pass_gap"] is not None, "no decision pass seen around the kill"
        assert settled["pass_gap"] <= TARGET, f"{settled['pass_gap']:.2f} s without a decision pass"
        assert sorted(settled["events"]) == self.expected_events(), settled["events"]
        assert settled["placements"] == {Placement.ON_BACKUP}
        assert settled["desired"] == {camera.pk for camera in self.cameras}
        for name in self.engines:  # a pass that raised is logged and retried: none did
            assert "event=tick_failed" not in self.engine_log(name), self.engine_log(name)


@pytest.fixture
def plane(make_system, make_server, make_camera, simulator, agent_process, process_env, tmp_path):
    """One multiserver system, so that the worker that leads it is the one whose passes ``engine-last-pass`` shows."""
    system = make_system("Site")
    site = {"system": system}
    for name in ("a", "b"):
        site[name] = make_server(f"srv-{name}", system, fast=True, recordings_path=str(tmp_path / f"srv-{name}"))
    sim = simulator(count=2, fps=FPS)
    cameras = [make_camera(site["a"], site["b"], name=f"gate-{n}", stream_url=sim.url(n)) for n in (1, 2)]
    harness = Plane(site, cameras, agent_process, process_env, tmp_path)
    yield harness
    harness.close()


def _start_two_workers(plane):
    """engine-1 first, so that it leads; engine-2 once it does. Returns (leader, other)."""
    plane.start_agents()
    plane.start_engine(WORKERS[0])
    wait_for(lambda: plane.leader() == WORKERS[0], 60, message="engine-1 leading")
    plane.start_engine(WORKERS[1])
    leader = plane.wait_steady()
    return leader, next(w for w in WORKERS if w != leader)


def test_leading_engine_worker_killed_then_a_fast_server_fails_over_via_the_other(plane):
    leader, other = _start_two_workers(plane)
    plane.engines[leader].send_signal(signal.SIGKILL)  # its lease is not given back: it expires
    plane.kill_primary()
    failover = plane.wait_failed_over()
    assert plane.leader() == other, "the surviving worker took the system's lease"
    wait_for_engine_passes(LEASE)  # a lease's time of passes after the failover: nothing more moves
    settled = plane.settled(failover)
    plane.stop_backup()
    lost = plane.lost_video()
    plane.report("leader killed", failover, lost, settled)
    plane.check_incident(failover, lost, settled)
    assert plane.engines[other].poll() is None
    down = Event.objects.get(kind=EventKind.SERVER_DOWN, server__name="srv-a")
    assert "no heartbeat for" in down.message, "found by its silence: the new leader never watched it alive"


def test_leading_engine_worker_frozen_20_s_acts_on_nothing_it_knew_when_resumed(plane):
    leader, other = _start_two_workers(plane)
    frozen = plane.engines[leader]
    frozen.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        plane.kill_primary()
        failover = plane.wait_failed_over()
        assert plane.leader() == other, "the other worker took the lease the frozen one could not renew"
        during = plane.events_since_steady()
        assert time.monotonic() - stopped < 20.0, "failed over within the freeze"
        time.sleep(max(0.0, 20.0 - (time.monotonic() - stopped)))
    finally:
        frozen.send_signal(signal.SIGCONT)
    resumed = time.time()
    # Two leases' time after the resume: the resumed worker passes again, renews nothing, takes nothing, and what it
    # knew before the freeze (srv-a up, both cameras on it) moves nothing.
    for _ in range(int(2 * LEASE / 0.5)):
        time.sleep(0.5)
        assert plane.leader() == other, "the resumed worker did not take the system back"
        assert plane.streaming_on("srv-b"), "srv-b records both cameras through the resume"
    assert frozen.poll() is None, "the resumed worker runs on"
    assert plane.engine_log(leader).count("event=term_begun") == 1, "the resumed worker began no new term"
    settled = plane.settled(failover)
    assert settled["events"] == during, "no event after the failover: nothing decided again"
    plane.stop_backup()
    lost = plane.lost_video()
    plane.report("leader frozen 20 s", failover, lost, settled)
    plane.check_incident(failover, lost, settled)
    for camera in plane.cameras:  # srv-b recorded each camera without a gap from its takeover to after the resume
        frames = plane.backup_frames(camera)
        counters = sorted({s.counter for s in frames})
        assert set(range(counters[0], counters[-1] + 1)) == set(counters), f"{camera.name}: a gap on srv-b"
        assert frames[-1].captured_ms / 1000 >= resumed + 2 * LEASE - 1.0, f"{camera.name}: srv-b stopped early"


def test_schedule_holder_killed_the_schedule_goes_on_and_a_fast_server_fails_over(plane, redis_client):
    """The periodic tasks (the mail sweep, the exports' expiry) are sent by the engine worker that holds the schedule
    lease; here that is engine-1 while engine-2 leads the system, so killing engine-1 leaves the decisions alone and
    stops only the schedule, which engine-2 must carry on."""
    plane.start_agents()
    # engine-2's name on the system's lease before anyone runs: engine-1, started first, takes only the schedule;
    # engine-2 renews the lease in its name at its first pass.
    redis_client.set(live.key("system-lease", plane.system), WORKERS[1], px=60_000)
    plane.start_engine(WORKERS[0])

    def schedule_holder():
        return (redis_client.get(live.key("schedule-lease")) or b"").decode()

    def last_sent(name=MAIL_SWEEP):
        value = redis_client.hget(live.key("schedule-sent"), name)
        return float(value) if value is not None else None

    wait_for(lambda: schedule_holder() == WORKERS[0] and last_sent() and last_sent(EXPORT_EXPIRY), 60,
             message="engine-1 holding the schedule lease and both tasks sent")  # fmt: skip
    plane.start_engine(WORKERS[1])
    assert plane.wait_steady() == WORKERS[1]
    assert schedule_holder() == WORKERS[0], "the schedule stayed with engine-1"
    mail_before, expiry_before = last_sent(), last_sent(EXPORT_EXPIRY)
    plane.engines[WORKERS[0]].send_signal(signal.SIGKILL)
    plane.kill_primary()
    failover = plane.wait_failed_over()
    assert plane.leader() == WORKERS[1], "the decisions stayed with engine-2"

    def within(seconds):  # what is left of ``seconds`` after the kill
        return max(0.5, seconds - (time.monotonic() - plane.killed_at[0]))

    # The schedule goes on: engine-2 takes the lease once it expires (its last renewal was within a round of the
    # kill), at its next round; and sends the mail sweep when it is due (its last send time is in Redis).
    taken = wait_for(lambda: schedule_holder() == WORKERS[1] and time.monotonic(),
                     within(SCHEDULE_ROUND + LEASE + SCHEDULE_ROUND + SLACK),
                     message="engine-2 taking the schedule lease")  # fmt: skip
    sent = wait_for(lambda: last_sent() > mail_before and time.monotonic(), within(MAIL_PERIOD + LEASE + SLACK),
                    message="the mail sweep sent again, a period after the last")  # fmt: skip
    assert schedule_holder() == WORKERS[1]
    mail_after = last_sent()
    settled = plane.settled(failover)
    plane.stop_backup()
    lost = plane.lost_video()
    plane.report("schedule holder killed", failover, lost, settled,
                 schedule_lease_taken_after=f"{taken - plane.killed_at[0]:.2f} s",
                 mail_sweep_sent_after=f"{sent - plane.killed_at[0]:.2f} s",
                 mail_sweep_interval=f"{mail_after - mail_before:.2f} s")  # fmt: skip
    plane.check_incident(failover, lost, settled)
    # Sent once per period: the new holder read when each task was last sent instead of sending it again at once.
    assert mail_after - mail_before >= MAIL_PERIOD - 0.001, (mail_before, mail_after)
    assert last_sent(EXPORT_EXPIRY) == expiry_before, "the hourly task was not sent again"


def test_redis_master_killed_then_a_fast_server_fails_over_after_the_promotion(sentinel_settings, sentinel_redis,
                                                                                plane):  # fmt: skip
    """Every process on Sentinel (``testbed.sentinel``: a master, a replica, three Sentinels, down-after 2 s): the
    master is killed and srv-a's agent right after it, while nobody can decide; the replica is promoted and the
    decisions go on there."""
    plane.extra_env = sentinel_redis.env()
    plane.redis = live.client()  # the Sentinels' master, as sentinel_settings points this process at it
    leader, _other = _start_two_workers(plane)
    master = sentinel_redis.master()
    sentinel_redis.kill_master()
    plane.kill_primary()
    promoted = sentinel_redis.wait_promoted(20)
    failover = plane.wait_failed_over()
    assert sentinel_redis.master() != master, "a replica was promoted"
    assert plane.leader() in WORKERS, "a worker leads on the promoted master"
    wait_for_engine_passes(LEASE)  # a lease's time of passes after the failover: nothing more moves
    settled = plane.settled(failover)
    plane.stop_backup()
    lost = plane.lost_video()
    plane.report("Redis master killed", failover, lost, settled, replica_promoted_after=f"{promoted:.2f} s",
                 leader=f"{leader} then {plane.leader()}")  # fmt: skip
    plane.check_incident(failover, lost, settled)
    assert all(process.poll() is None for process in plane.engines.values()), "both workers rode out the failover"
