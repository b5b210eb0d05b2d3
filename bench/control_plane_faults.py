"""What a fault of the control plane costs a fast-mode failover (issue 17).

    .venv/bin/python bench/control_plane_faults.py [--runs 3] [--faults baseline,leader-killed,...] [--cameras 2]

Per run: a scratch database and Redis prefix (bench/common.py), the camera simulator (MJPEG, 320x180, 10 fps),
two fast-mode agents (srv-a records every camera, srv-b is their backup) and two engine workers
(``run_engine --worker engine-1``, ``engine-2``), all real processes on loopback with the product's timings
(lease 3 s, backstop pass 1 s, fast window 1.5 s, the agents' sweep 5 s). Once srv-a records and one worker
leads, the fault, and srv-a's agent SIGKILLed right after it (during it, for the freeze):

- ``baseline``: no fault of the control plane;
- ``leader-killed``: the worker holding the system's lease SIGKILLed (its lease expires; the other takes it);
- ``leader-frozen``: that worker SIGSTOPped for 20 s, then SIGCONT (it must act on nothing it knew before: no
  event after the failover, srv-b's desired set kept, the lease kept by the other);
- ``schedule-killed``: the worker holding the schedule's lease (the periodic tasks) SIGKILLed while the other
  leads the system; also measured: when the other took the schedule and sent the mail sweep again;
- ``redis-master-killed``: every process on Redis under Sentinel (``testbed.sentinel``: a master, a replica,
  three Sentinels, down-after 2 s), the master SIGKILLed; also measured: when the replica was promoted.

Measured per run: the failover (the kill until every camera is placed on srv-b and streaming there); the first
failover decision (its event's time, by Redis's clock, which is this machine's); the longest gap between the
deciding worker's passes around the kill (``engine-last-pass`` sampled every 20 ms); the lost video per camera,
the longest run of frames neither server recorded from 3 s before the kill on, read from both servers' files by
each frame's identity; and whether the incident was decided once (one server_down, one failover started and
completed per camera, nothing else). Prints a table per fault (medians and worst, extra lost video against the
baseline's median) and writes bench/out/control_plane_faults.json.
"""

import argparse
import json
import signal
import statistics
import time

import redis
from common import OUT, SCRATCH, empty_site, free_port, free_port_block, recorded_stamps, start, stop
from django.conf import settings  # noqa: E402  (after common: Django is set up there)

from cameras.models import Camera  # noqa: E402
from protocol import live  # noqa: E402
from redundancy.models import CameraPlacement, Event, EventKind, Placement  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402
from testbed.passes import PassClock  # noqa: E402

FAULTS = ("baseline", "leader-killed", "leader-frozen", "schedule-killed", "redis-master-killed")
WORKERS = ("engine-1", "engine-2")
FPS = 10.0
FREEZE = 20.0
LEASE = settings.ENGINE_LEASE_SECONDS
MAIL_SWEEP = "redundancy-mail"


def until(condition, timeout: float) -> float | None:
    """When (time.monotonic()) ``condition()`` held, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.02)
    return None


def after(moment: float | None, since: float) -> float | None:
    return None if moment is None else round(moment - since, 2)


def must(condition, timeout: float, what: str) -> None:
    if until(condition, timeout) is None:
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Run:
    def __init__(self, fault: str, number: int, cameras: int):
        self.fault, self.name = fault, f"{fault}-{number}"
        self.directory = SCRATCH / self.name
        self.sentinel = None
        self.env: dict[str, str] = {}
        self.processes: dict[str, object] = {}
        self.count = cameras

    # -- the site -------------------------------------------------------------------------------------

    def build(self):
        empty_site()
        self.system = MultiserverSystem.objects.create(name=f"bench {self.name}")
        servers = []
        for name in ("srv-a", "srv-b"):
            server = Server.objects.create(system=self.system, name=name, address="127.0.0.1", api_port=free_port(),
                                           recordings_path=str(self.directory / name))  # fmt: skip
            License.objects.create(key=f"BENCH-{self.name}-{name}".upper()[:60], server=server,
                                   ip_camera_channels=self.count)  # fmt: skip
            server.redundancy.fast_redundancy = True
            server.redundancy.save()
            servers.append(server)
        self.servers = {s.name: s for s in servers}
        self.base_port = free_port_block(self.count)
        self.cameras = [
            Camera.objects.create(
                name=f"{self.name}-{n}",
                stream_url=f"http://127.0.0.1:{port}/video.mjpg",
                codec="mjpeg",
                width=320,
                height=180,
                fps=int(FPS),
                primary_server=servers[0],
                backup_server=servers[1],
            )  # fmt: skip
            for n, port in enumerate(range(self.base_port, self.base_port + self.count), 1)
        ]

    def use_sentinel(self):
        from testbed.sentinel import SentinelRedis

        self.sentinel = SentinelRedis(self.directory / "sentinel")
        self.env = self.sentinel.env()
        names = ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD")
        self._settings = {name: getattr(settings, name, None) for name in names}
        settings.REDIS_URL = self.env["REDIS_URL"]
        settings.REDIS_SENTINELS = self.sentinel.sentinels
        settings.REDIS_SENTINEL_MASTER = self.sentinel.master_name
        settings.REDIS_SENTINEL_PASSWORD = self.sentinel.password

    def start(self, name, args):
        self.processes[name] = start(args, f"{self.name}-{name}", **self.env)

    def start_engine(self, worker):
        self.start(worker, ["run_engine", "--worker", worker])

    def close(self):
        for name in ("srv-b", "srv-a", *WORKERS, "cameras"):  # srv-b first: an engine hands it over at once
            process = self.processes.get(name)
            if process is not None:
                process.send_signal(signal.SIGCONT)
                stop(process)
        if self.sentinel is not None:
            self.sentinel.close()
            for name, value in self._settings.items():
                setattr(settings, name, value)

    # -- what is read -----------------------------------------------------------------------------------

    def redis(self):
        return live.client()

    def leader(self) -> str:
        try:
            return (self.redis().get(live.key("system-lease", self.system.pk)) or b"").decode()
        except redis.RedisError:
            return ""

    def schedule_holder(self) -> str:
        try:
            return (self.redis().get(live.key("schedule-lease")) or b"").decode()
        except redis.RedisError:
            return ""

    def mail_sent(self) -> float:
        try:
            return float(self.redis().hget(live.key("schedule-sent"), MAIL_SWEEP) or 0)
        except redis.RedisError:
            return 0.0

    def streaming_on(self, server) -> bool:
        try:
            health = live.read_stream_reports(self.redis(), server)
        except redis.RedisError:
            return False
        return all(health.get(c.pk, {}).get("state") == "streaming" for c in self.cameras)

    def placed(self, state) -> bool:
        return CameraPlacement.objects.filter(camera__in=self.cameras, state=state).count() == len(self.cameras)

    def events(self, since_id):
        return sorted((e.kind, e.camera_id or 0, e.server.name if e.server else "")
                      for e in Event.objects.filter(id__gt=since_id))  # fmt: skip

    def expected_events(self):
        moves = [(kind, c.pk, "srv-a") for c in self.cameras
                 for kind in (EventKind.FAILOVER_STARTED, EventKind.FAILOVER_COMPLETED)]  # fmt: skip
        return sorted([(EventKind.SERVER_DOWN, 0, "srv-a"), *moves])

    def lost_video(self, since: float) -> list[float]:
        lost = []
        for camera in self.cameras:
            stamps = [s for server in self.servers.values() for s in recorded_stamps(server.storage_dir, camera.pk)]
            counters = sorted({s.counter for s in stamps if s.captured_ms / 1000 >= since})
            worst = max((b - a for a, b in zip(counters, counters[1:], strict=False)), default=1)
            lost.append(round((worst - 1) / FPS, 2))
        return lost

    # -- one run ----------------------------------------------------------------------------------------

    def run(self) -> dict:
        self.build()
        if self.fault == "redis-master-killed":
            self.use_sentinel()
        result = {"fault": self.fault, "run": self.name, "cameras": self.count}
        clock = PassClock()
        try:
            self.start("cameras", ["simulate_cameras", "--count", str(self.count), "--base-port", str(self.base_port),
                                   "--control-port", "0", "--width", "320", "--height", "180", "--fps", str(FPS),
                                   "--codecs", "mjpeg"])  # fmt: skip
            for name in ("srv-a", "srv-b"):
                self.start(name, ["run_video_server", "--server", name, "--loglevel", "WARNING"])
            first, second = WORKERS
            if self.fault == "schedule-killed":  # engine-1 takes only the schedule; engine-2 the system, in its name
                self.redis().set(live.key("system-lease", self.system.pk), second, px=60_000)
                self.start_engine(first)
                must(lambda: self.schedule_holder() == first and self.mail_sent(), 60, "engine-1 on the schedule")
            else:
                self.start_engine(first)
                must(lambda: self.leader() == first, 60, "engine-1 leading")
            self.start_engine(second)
            must(lambda: self.streaming_on("srv-a") and self.placed(Placement.ON_PRIMARY), 90, "srv-a recording")
            must(lambda: self.leader() in WORKERS, 30, "a worker leading")
            time.sleep(3)  # steady: passes of both workers, the watch on srv-a
            leader = self.leader()
            other = next(w for w in WORKERS if w != leader)
            holder = self.schedule_holder()
            if self.fault == "schedule-killed" and (leader, holder) != (second, first):
                raise RuntimeError(f"engine-2 should lead and engine-1 hold the schedule, not {leader} and {holder}")
            result["leader_before"] = leader
            steady_id = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
            mail_before = self.mail_sent()
            clock.start()
            self.inject(leader)
            self.processes["srv-a"].send_signal(signal.SIGKILL)
            killed, killed_wall = time.monotonic(), time.time()
            if self.fault == "redis-master-killed":
                result["promoted_after_s"] = round(self.sentinel.wait_promoted(30), 2)
            failed_over = until(lambda: self.placed(Placement.ON_BACKUP) and self.streaming_on("srv-b"), 60)
            result["failover_s"] = after(failed_over, killed)
            if self.fault == "schedule-killed":
                # engine-2 (the leader) takes the schedule over once the killed worker's lease expires
                taken = until(lambda: self.schedule_holder() == leader, 30)
                result["schedule_taken_after_s"] = after(taken, killed)
                result["mail_sweep_sent_after_s"] = after(until(lambda: self.mail_sent() > mail_before, 30), killed)
                result["mail_sweep_interval_s"] = round(self.mail_sent() - mail_before, 2)
            if self.fault == "leader-frozen":
                settled = self.events(steady_id)
                time.sleep(max(0.0, FREEZE - (time.monotonic() - killed)))
                self.processes[leader].send_signal(signal.SIGCONT)
                time.sleep(2 * LEASE)
                kept = live.read_desired(self.redis(), "srv-b") == {c.pk for c in self.cameras}
                result["acted_after_resume"] = self.events(steady_id) != settled or self.leader() != other or not kept
            else:
                time.sleep(LEASE)
            result["leader_after"] = self.leader()
            result["decided_once"] = self.events(steady_id) == self.expected_events()
            first_move = Event.objects.filter(id__gt=steady_id, kind=EventKind.FAILOVER_STARTED).order_by("at").first()
            result["decided_after_s"] = round(first_move.at.timestamp() - killed_wall, 2) if first_move else None
            gap = clock.longest_gap(killed_wall, killed_wall + (result["failover_s"] or 60))
            result["pass_gap_s"] = None if gap is None else round(gap, 2)
        finally:
            clock.stop()
            self.close()
        lost = self.lost_video(killed_wall - 3)
        result.update({"lost_median_s": round(statistics.median(lost), 2), "lost_max_s": max(lost)})
        print(f"  {self.name}: {result}", flush=True)
        return result

    def inject(self, leader):
        if self.fault in ("leader-killed", "schedule-killed"):
            victim = leader if self.fault == "leader-killed" else self.schedule_holder()
            self.processes[victim].send_signal(signal.SIGKILL)
        elif self.fault == "leader-frozen":
            self.processes[leader].send_signal(signal.SIGSTOP)
        elif self.fault == "redis-master-killed":
            self.sentinel.kill_master()


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def _worst(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def table(results: list[dict]) -> None:
    baseline = _median([r["lost_median_s"] for r in results if r["fault"] == "baseline"])
    print(
        "\n| fault | runs | failover after the kill: median | worst | first decision after the kill (median) "
        "| longest gap without passes: median | worst | lost video median | extra vs baseline | decided once |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for fault in FAULTS:
        rows = [r for r in results if r["fault"] == fault]
        if not rows:
            continue
        lost = _median([r["lost_median_s"] for r in rows])
        extra = "—" if fault == "baseline" or baseline is None else f"{lost - baseline:+.2f} s"
        failed = sum(r["failover_s"] is None for r in rows)
        once = sum(r["decided_once"] and not r.get("acted_after_resume") for r in rows)
        column = {name: [r[name] for r in rows] for name in ("failover_s", "decided_after_s", "pass_gap_s")}
        print(f"| {fault} | {len(rows)} | {_median(column['failover_s'])} s | "
              f"{_worst(column['failover_s'])} s{f' ({failed} never)' if failed else ''} | "
              f"{_median(column['decided_after_s'])} s | {_median(column['pass_gap_s'])} s | "
              f"{_worst(column['pass_gap_s'])} s | {lost} s | {extra} | {once} of {len(rows)} |")  # fmt: skip
    extras = [(r["fault"], k, r[k]) for r in results for k in
              ("promoted_after_s", "schedule_taken_after_s", "mail_sweep_sent_after_s", "mail_sweep_interval_s")
              if k in r]  # fmt: skip
    for fault in FAULTS:
        rows = [r for r in results if r["fault"] == fault]
        if rows:
            moved = sum(r["leader_before"] != r["leader_after"] for r in rows)
            print(f"{fault}: the system's lease changed hands in {moved} of {len(rows)} runs")
    for fault, figure in sorted({(f, k) for f, k, _ in extras}):
        values = [v for f, k, v in extras if f == fault and k == figure]
        print(f"{fault}: {figure.removesuffix('_s').replace('_', ' ')} median {_median(values)} s, worst "
              f"{_worst(values)} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each fault")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma separated, of {', '.join(FAULTS)}")
    parser.add_argument("--cameras", type=int, default=2, help="srv-a's cameras")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results = [Run(fault, n, args.cameras).run() for n in range(1, args.runs + 1) for fault in faults]
    table(results)
    OUT.mkdir(exist_ok=True)
    (OUT / "control_plane_faults.json").write_text(json.dumps(results, indent=2))
    print(f"JSON: {OUT / 'control_plane_faults.json'}")


if __name__ == "__main__":
    main()
