"""How long the redundancy engine's pass takes as a site grows, and how fast 1,000 cameras move at once.

    nice -n 10 .venv/bin/python bench/engine_scale.py [--scale 1000,10000,100000] [--ticks 20] [--no-takeover]
    nice -n 10 .venv/bin/python bench/engine_scale.py --scale none --cameras 1000 --servers 20
    nice -n 10 .venv/bin/python bench/engine_scale.py --scale 10000 --profile 10000 --no-takeover

Ticks: for each size it builds the site in a scratch SQLite database with bulk inserts (50 cameras a server,
one multiserver system per 100 servers unless ``--systems``; each server's Backup settings make a mix of fast,
normal and constant cameras, nine in ten backed up) and drives one engine in this process with a clock of its
own, as the engine's tests do. The benchmark plays every agent: before each pass it writes every live server's
heartbeat (payload ``{"at", "streams"}``, the second a digest that changes only with the server's stream states)
in one pipeline, and after each pass it makes each server report streaming exactly the cameras of its desired
set, as an agent reconciles. Only ``Engine.tick()`` is timed. Figures: the first pass (it loads the
configuration), the steady passes after it, and the passes after one server with 100 fast-mode cameras falls
silent, until its cameras record on their backups and a pass changes nothing.

Takeover (``--takeover``, the default): real processes on loopback. The camera simulator serves ``--cameras``
small MJPEG cameras at ``--fps``; ``--servers`` video servers (half primaries, half backups, one backup per
primary, fast mode on all) run an agent each (``manage.py run_video_server``); the engine runs as the Procfile's
``engine`` line says (with beat when it is a Celery worker). Once every camera streams on its primary, the
primaries' agents are killed (SIGKILL) at once; per camera, the takeover is the time from the kill to the capture
of the first frame its backup recorded, read from the backup's files by each frame's identity stamp.

Prints a table and writes JSON (and with ``--profile`` a cProfile of one steady pass) into bench/out/.
"""

import argparse
import contextlib
import cProfile
import io
import json
import logging
import math
import os
import pstats
import signal
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field

import psutil
import redis
from common import OUT, SCRATCH, empty_site, free_port_block, percentile, recorded_stamps, start, wait
from django.core.management import call_command

from cameras.models import Camera
from protocol import live
from redundancy.engine import Engine
from redundancy.models import CameraPlacement, Placement
from servers.models import License, MultiserverSystem, RedundancySettings, Server
from testbed.processes import procfile_command
from utilities.ports import free_ports

SERVERS_PER_SYSTEM = 100
VICTIM_CAMERAS = 100  # the cameras of the server that dies in the tick runs
VICTIM_BACKUPS = (1, 2, 3, 5)  # its cameras' backups: fast, not constant (see server_flags)
SETTLED_PASSES = 2  # passes after the move that must change nothing
MOST_PASSES_AFTER_DEATH = 60


def server_flags(index: int) -> tuple[bool, bool]:
    """(fast, constant) of the server at ``index`` within its system: most fast, one in five not, one in ten
    constant. A camera is fast when both its servers are fast, constant when its backup is."""
    return index % 5 != 4, index % 10 == 7


# -- the site -------------------------------------------------------------------------------


@dataclass
class Site:
    names: dict[int, str]  # server pk → name
    victim: str
    victim_cameras: list[int]
    fps: dict[int, int]  # camera pk → configured fps
    baseline: dict[str, set[int]] = field(default_factory=dict)  # server → cameras it ingests with nothing failed


def build(camera_count: int, server_count: int, system_count: int) -> Site:
    """Servers in systems, the first server of the first system primary for VICTIM_CAMERAS cameras (all
    fast, backed up by four servers), the rest spread evenly; nine in ten of the others backed up by the next
    server of their system."""
    systems = MultiserverSystem.objects.bulk_create(MultiserverSystem(name=f"site-{n}") for n in range(system_count))
    servers = Server.objects.bulk_create(
        Server(
            system=systems[n * system_count // server_count],
            name=f"srv-{n:04d}",
            address="127.0.0.1",
            api_port=20000 + n,
            max_cameras=256,
        )  # fmt: skip
        for n in range(server_count)
    )
    by_system: dict[int, list[Server]] = {}
    for server in servers:
        by_system.setdefault(server.system_id, []).append(server)
    index = {server.pk: peers.index(server) for peers in by_system.values() for server in peers}
    flags = {server.pk: server_flags(index[server.pk]) for server in servers}
    RedundancySettings.objects.bulk_create(
        RedundancySettings(server=s, fast_redundancy=flags[s.pk][0], constant_redundancy=flags[s.pk][1])
        for s in servers
    )
    License.objects.bulk_create(
        License(key=f"BENCH-{s.pk:05d}", server=s, ip_camera_channels=512, analytics_channels=0) for s in servers
    )
    victim, peers = servers[0], by_system[servers[0].system_id]
    if len(peers) <= max(VICTIM_BACKUPS):
        raise SystemExit(f"bench: a system needs more than {max(VICTIM_BACKUPS)} servers (fewer --systems)")
    cameras = []
    for n in range(camera_count):
        if n < VICTIM_CAMERAS:
            primary, backup = victim, peers[VICTIM_BACKUPS[n % len(VICTIM_BACKUPS)] % len(peers)]
        else:
            primary = servers[1 + (n - VICTIM_CAMERAS) % (server_count - 1)]
            group = by_system[primary.system_id]
            backup = None if n % 10 == 9 else group[(index[primary.pk] + 1) % len(group)]
        priority = "high" if n % 50 == 0 else "low" if n % 50 == 1 else "normal"
        cameras.append(Camera(name=f"cam-{n:06d}", stream_url=f"http://127.0.0.1:{30000 + n % 30000}/video.mjpg",
                              codec="mjpeg", width=640, height=360, fps=2 + n % 3, primary_server=primary,
                              backup_server=backup, failover_priority=priority,
                              username="viewer", password=f"camera-{n % 97}"))  # fmt: skip
    cameras = Camera.objects.bulk_create(cameras, batch_size=5000)
    live.bump_config_version(live.client())  # bulk inserts send no signals: the configuration's readers load it
    names = {server.pk: server.name for server in servers}
    baseline = {name: set() for name in names.values()}
    for camera in cameras:
        baseline[names[camera.primary_server_id]].add(camera.pk)
        if camera.backup_server_id and flags[camera.backup_server_id][1]:  # constant mode: the backup records too
            baseline[names[camera.backup_server_id]].add(camera.pk)
    return Site(names, victim.name, [c.pk for c in cameras[:VICTIM_CAMERAS]], {c.pk: c.fps for c in cameras},
                baseline)  # fmt: skip


# -- the agents, played by the benchmark ---------------------------------------------------------


class _Queued:
    """A pipeline that ``live.publish_heartbeat`` can write to: the heartbeats of every server go in one round
    trip, with the live protocol's own script."""

    def __init__(self, pipe):
        self.pipe = pipe

    def eval(self, *args):
        self.pipe.eval(*args)
        return 0.0

    def evalsha(self, *args):
        self.pipe.evalsha(*args)
        return 0.0

    def __getattr__(self, name):
        return getattr(self.pipe, name)


class Fleet:
    """Every server's agent as the engine sees it in Redis: a heartbeat before each pass, and stream reports
    that follow the server's desired set after it."""

    def __init__(self, r, site: Site):
        self.r, self.site = r, site
        self.alive = set(site.names.values())
        self.reports: dict[str, dict[int, dict]] = {name: {} for name in self.alive}
        self.digest = dict.fromkeys(self.alive, 0)

    def ingest(self, sets: dict[str, set[int] | None], now: float) -> list[str]:
        """Each live server streams exactly the cameras of its set from now on; returns those whose changed."""
        changed = []
        for name, cameras in sets.items():
            old = self.reports[name]
            if name not in self.alive or cameras is None or cameras == old.keys():
                continue
            self.reports[name] = {
                pk: old.get(pk) or {"state": "streaming", "since": now, "fps": float(self.site.fps[pk])}
                for pk in cameras
            }
            self.digest[name] += 1
            changed.append(name)
        for name in changed:
            live.publish_stream_reports(self.r, name, self.reports[name], ttl=3600)
        return changed

    def follow_desired(self, now: float) -> list[str]:
        return self.ingest(live.read_all_desired(self.r, sorted(self.reports)), now)

    def heartbeat(self, now: float) -> None:
        with self.r.pipeline(transaction=False) as pipe:
            queued = _Queued(pipe)
            for name in sorted(self.alive):
                live.publish_heartbeat(queued, name, {"at": now, "streams": f"{self.digest[name]}"}, ttl=60)
            pipe.execute()


# -- ticks at scale -------------------------------------------------------------------------------


def summary(seconds: list[float]) -> dict:
    if not seconds:
        return {}
    ms = [round(t * 1000, 1) for t in seconds]
    return {"median_ms": statistics.median(ms), "p95_ms": percentile(ms, 0.95), "max_ms": max(ms), "passes": len(ms)}


def placements(pks=None) -> dict[str, int]:
    rows = CameraPlacement.objects.all() if pks is None else CameraPlacement.objects.filter(camera_id__in=pks)
    counts: dict[str, int] = {}
    for state in rows.values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


def measure_scale(cameras: int, servers: int, systems: int, ticks: int, step: float, profile: bool) -> dict:
    empty_site()
    began = time.perf_counter()
    site = build(cameras, servers, systems)
    built = time.perf_counter() - began
    print(f"  {cameras} cameras on {servers} servers in {systems} system(s): built in {built:.1f} s", flush=True)
    r = live.client()
    clock = {"now": time.time()}
    engine = Engine(r, clock=lambda: clock["now"], wake_agent=lambda name: None, wake_mailer=lambda: None)
    fleet = Fleet(r, site)
    fleet.ingest(site.baseline, clock["now"])
    cpu = psutil.Process()
    psutil.cpu_percent(None)
    cpu_before = cpu.cpu_times()

    def one_pass(profiler=None) -> tuple[float, object]:
        fleet.heartbeat(clock["now"])
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        result = engine.tick()
        if profiler:
            profiler.disable()
        took = time.perf_counter() - started
        if not result.ran:
            raise SystemExit("bench: the engine did not pass (its lock is held by another engine on this Redis?)")
        fleet.follow_desired(clock["now"])
        clock["now"] += step
        return took, result

    first, _ = one_pass()
    print(f"    first pass {first * 1000:.0f} ms", flush=True)
    steady = [one_pass()[0] for _ in range(ticks)]
    print(f"    steady median {statistics.median(steady) * 1000:.0f} ms", flush=True)
    steady_placements = placements()
    # A configuration change (one camera saved, as a page or the API would): the pass that reads it again.
    camera = Camera.objects.order_by("pk").first()
    camera.name = camera.name + "-renamed"
    camera.save()
    config_change, _ = one_pass()
    print(f"    pass after a configuration change {config_change * 1000:.0f} ms", flush=True)
    profile_file = None
    if profile:
        profiler = cProfile.Profile()
        one_pass(profiler)
        profile_file = OUT / f"engine_scale_profile_{cameras}.txt"
        write_profile(profiler, profile_file, f"one steady engine pass, {cameras} cameras, {servers} servers")

    fleet.alive.discard(site.victim)  # its heartbeat stops; its last stream reports stay until they expire
    died_at, after, moved_after, quiet = clock["now"], [], None, 0
    # Profiled, the passes after the death take longer than they would: their figures are marked so.
    moves_profiler = cProfile.Profile() if profile else None
    while len(after) < MOST_PASSES_AFTER_DEATH:
        took, result = one_pass(moves_profiler)
        after.append(took)
        if moved_after is None and placements(site.victim_cameras).get(Placement.ON_BACKUP) == VICTIM_CAMERAS:
            moved_after = clock["now"] - step - died_at
        elif moved_after is not None:
            quiet = quiet + 1 if not result.events else 0
            if quiet >= SETTLED_PASSES:
                break
    busy = psutil.cpu_percent(None)
    used = cpu.cpu_times()
    if moves_profiler:
        write_profile(moves_profiler, OUT / f"engine_scale_profile_{cameras}_after_death.txt",
                      f"the {len(after)} engine passes after {site.victim} died, {cameras} cameras")  # fmt: skip
    row = {
        "cameras": cameras, "servers": servers, "systems": systems, "build_s": round(built, 1),
        "first_ms": round(first * 1000, 1), "steady": summary(steady),
        "config_change_ms": round(config_change * 1000, 1), "steady_placements": steady_placements,
        "after_death": summary(after), "after_death_ms": [round(t * 1000, 1) for t in after],
        "victim": site.victim, "victim_moved_after_clock_s": moved_after,
        "victim_placements": placements(site.victim_cameras), "clock_step_s": step,
        "machine_busy_percent": busy, "load_average": [round(x, 2) for x in os.getloadavg()],
        "bench_cpu_s": round(used.user + used.system - cpu_before.user - cpu_before.system, 1),
        "profile": str(profile_file) if profile_file else None, "after_death_profiled": profile,
    }  # fmt: skip
    print(f"    after {site.victim} died: {len(after)} passes, median {row['after_death'].get('median_ms')} ms, "
          f"its cameras {row['victim_placements']}", flush=True)  # fmt: skip
    return row


def write_profile(profiler: cProfile.Profile, path, title: str) -> None:
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    text.write(f"{title}\n\n-- by cumulative time --\n")
    stats.sort_stats("cumulative").print_stats(45)
    text.write("\n-- by own time --\n")
    stats.sort_stats("tottime").print_stats(30)
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(text.getvalue())


# -- takeover with real processes ------------------------------------------------------------------


class Processes:
    """Every child this run starts, ended on the way out whatever happens (Ctrl-C, an error, a timeout)."""

    def __init__(self, env: dict[str, str] | None = None):
        self.running: dict[str, object] = {}
        self.env = env or {}

    def start(self, name: str, args: list[str], manage: bool = True):
        self.running[name] = start(args, f"takeover-{name}", manage=manage, **self.env)
        return self.running[name]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time each kind of child has used so far (agents together, and the busiest one)."""
        used = {}
        for name, process in self.running.items():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(process.pid).cpu_times()
                used[name] = times.user + times.system
        agents = {name: t for name, t in used.items() if name.startswith(("primary", "backup"))}
        figures = {name: round(t, 1) for name, t in used.items() if name not in agents}
        if agents:
            figures["agents"] = round(sum(agents.values()), 1)
            figures["busiest agent"] = round(max(agents.values()), 1)
        return figures

    def stop_all(self, grace: float = 10.0) -> None:
        alive = [p for p in self.running.values() if p.poll() is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in alive:
            with contextlib.suppress(Exception):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in alive:
            if process.poll() is None:
                process.kill()
                process.wait()


def engine_commands() -> list[tuple[str, list[str]]]:
    """The engine as the Procfile starts it (its own loop: nothing else ticks it)."""
    return [("engine", procfile_command("engine"))]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def takeover(
    camera_count: int,
    server_count: int,
    fps: float,
    width: int,
    height: int,
    timeout: float,
    read_timeout: float | None,
) -> dict:
    empty_site()
    pairs = server_count // 2
    per_primary = math.ceil(camera_count / pairs)
    system = MultiserverSystem.objects.create(name="takeover")
    ports = free_ports(2 * pairs)
    primaries, backups = [], []
    for n in range(2 * pairs):
        name = f"{'primary' if n < pairs else 'backup'}-{n % pairs:02d}"
        server = Server.objects.create(system=system, name=name, address="127.0.0.1", api_port=ports[n],
                                       recordings_path=str(SCRATCH / "takeover" / name))  # fmt: skip
        License.objects.create(key=f"BENCH-{name}".upper(), server=server, ip_camera_channels=2 * per_primary)
        server.redundancy.fast_redundancy = True
        server.redundancy.save()
        (primaries if n < pairs else backups).append(server)
    base_port = free_port_block(camera_count, within=(21000, 32000))
    cameras = Camera.objects.bulk_create(
        Camera(
            name=f"takeover-{n:04d}",
            stream_url=f"http://127.0.0.1:{base_port + n}/video.mjpg",
            codec="mjpeg",
            width=width,
            height=height,
            fps=max(1, round(fps)),
            primary_server=primaries[n // per_primary],
            backup_server=backups[n // per_primary],
        )  # fmt: skip
        for n in range(camera_count)
    )
    live.bump_config_version(live.client())
    of_primary = {p.name: [c.pk for c in cameras if c.primary_server_id == p.pk] for p in primaries}
    of_backup = {b.name: [c.pk for c in cameras if c.backup_server_id == b.pk] for b in backups}
    r = live.client()
    # A starved machine delivers a 1 fps camera's frames late: a longer read timeout keeps its streams up.
    children = Processes({"AGENT_READ_TIMEOUT_SECONDS": read_timeout} if read_timeout else {})
    result = {"cameras": camera_count, "servers": 2 * pairs, "fps": fps, "resolution": f"{width}x{height}",
              "agent_read_timeout_s": read_timeout}  # fmt: skip
    try:
        children.start("cameras", ["simulate_cameras", "--count", str(camera_count), "--base-port", str(base_port),
                                   "--control-port", "0", "--width", str(width), "--height", str(height),
                                   "--fps", str(fps), "--codecs", "mjpeg", "--quality", "60"])  # fmt: skip
        # The agents start once every camera listens: a refused first connection would put each on its backoff.
        wait(lambda: listening(base_port + camera_count - 1), timeout, "the simulator's cameras")
        for name, command in engine_commands():
            children.start(name, command, manage=False)
        result["engine_command"] = " ".join(engine_commands()[0][1][1:])
        agents = {s.name: children.start(s.name, ["run_video_server", "--server", s.name, "--loglevel", "WARNING"])
                  for s in (*primaries, *backups)}  # fmt: skip

        progress = {"at": time.monotonic()}

        def streaming(reports_of: dict[str, list[int]]) -> bool:
            count = 0
            for name, pks in reports_of.items():
                try:
                    reports = live.read_stream_reports(r, name)
                except redis.RedisError:  # a busy machine's slow answer: asked again at the next poll
                    return False
                count += sum(reports.get(pk, {}).get("state") == "streaming" for pk in pks)
            if time.monotonic() - progress["at"] > 10:
                progress["at"] = time.monotonic()
                print(f"    {count} of {camera_count} cameras streaming on {', '.join(sorted(reports_of))[:60]}…",
                      flush=True)  # fmt: skip
            return count == camera_count

        result["primaries_streaming_after_s"] = round(wait(lambda: streaming(of_primary), timeout,
                                                           "every camera streaming on its primary"), 1)  # fmt: skip
        psutil.cpu_percent(None)
        time.sleep(5)  # a few frames recorded on each primary, and the machine's load with everything running
        result["machine_busy_before_kill_percent"] = psutil.cpu_percent(None)
        result["load_average_before_kill"] = [round(x, 2) for x in os.getloadavg()]
        killed_at = time.time()
        for server in primaries:
            agents[server.name].kill()
        result["killed_at"] = (
            time.strftime("%H:%M:%S", time.localtime(killed_at)) + f".{int(killed_at * 1000) % 1000:03d}"
        )
        moved = wait(lambda: CameraPlacement.objects.filter(state=Placement.ON_BACKUP).count() == camera_count,
                     timeout, "every camera placed on its backup")  # fmt: skip
        result["all_placed_on_backup_after_s"] = round(moved, 2)
        wait(lambda: streaming(of_backup), timeout, "every camera streaming on its backup")
        result["machine_busy_during_takeover_percent"] = psutil.cpu_percent(None)
        time.sleep(3)  # a few frames on each backup
    finally:
        result["cpu_seconds"] = children.cpu_seconds()
        print(f"    CPU seconds used: {result['cpu_seconds']}", flush=True)
        children.stop_all()
    first, second = [], []
    missing = 0
    storage = {s.pk: s.storage_dir for s in Server.objects.all()}
    for camera in cameras:
        frames = sorted(s.captured_ms / 1000 for s in recorded_stamps(storage[camera.backup_server_id], camera.pk)
                        if s.captured_ms / 1000 > killed_at)  # fmt: skip
        if not frames:
            missing += 1
            continue
        first.append(frames[0] - killed_at)
        second.append((frames[1] if len(frames) > 1 else frames[0] + 1 / fps) - killed_at)
    result.update({
        "recorded_by_backup": len(first), "not_recorded_by_backup": missing,
        "first_frame_median_s": round(statistics.median(first), 2) if first else None,
        "first_frame_p95_s": round(percentile(first, 0.95), 2) if first else None,
        "all_on_backups_after_s": round(max(first), 2) if first and not missing else None,
        # The first frame a backup records was captured at most one frame before it arrived: the next one bounds it.
        "all_on_backups_at_most_s": round(max(second), 2) if second and not missing else None,
    })  # fmt: skip
    return result


# -- the report ------------------------------------------------------------------------------------


def print_report(rows: list[dict], moved: dict | None) -> None:
    if rows:
        print(
            "\n| cameras | servers | systems | build | first pass | steady median | p95 | max | configuration change "
            "| after a server died: passes | median | max | its cameras moved after (engine clock) |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            s, a = row["steady"], row["after_death"]
            print(f"| {row['cameras']:,} | {row['servers']:,} | {row['systems']} | {row['build_s']} s "
                  f"| {row['first_ms']:.0f} ms | {s['median_ms']:.0f} ms | {s['p95_ms']:.0f} ms | {s['max_ms']:.0f} ms "
                  f"| {row['config_change_ms']:.0f} ms "
                  f"| {a['passes']} | {a['median_ms']:.0f} ms | {a['max_ms']:.0f} ms "
                  f"| {row['victim_moved_after_clock_s']} s |")  # fmt: skip
        print("Targets: 10,000 cameras at most 50 ms median per pass, 100,000 at most 500 ms. Machine busy during "
              + ", ".join(f"{r['cameras']:,}: {r['machine_busy_percent']:.0f} % (load average {r['load_average'][0]})"
                          for r in rows)
              + f" of {psutil.cpu_count()} cores.")  # fmt: skip
    if moved:
        print(f"\nTakeover: {moved['cameras']} MJPEG cameras ({moved['resolution']}, {moved['fps']:g} fps) of "
              f"{moved['servers'] // 2} killed agents (SIGKILL) by {moved['servers'] // 2} backups; engine: "
              f"{moved['engine_command']}")  # fmt: skip
        print(f"  first frame on the backup after the kill: median {moved['first_frame_median_s']} s, p95 "
              f"{moved['first_frame_p95_s']} s; all {moved['recorded_by_backup']} recorded by their backups after "
              f"{moved['all_on_backups_after_s']} s (at most {moved['all_on_backups_at_most_s']} s: frames come "
              f"every {1 / moved['fps']:.1f} s); {moved['not_recorded_by_backup']} never; every placement "
              f"'on backup' after {moved['all_placed_on_backup_after_s']} s (target: all within 2 s)")  # fmt: skip
        print(f"  machine busy {moved['machine_busy_before_kill_percent']:.0f} % of {psutil.cpu_count()} cores "
              f"before the kill (load average {moved['load_average_before_kill']}), "
              f"{moved['machine_busy_during_takeover_percent']:.0f} % during the takeover")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="1000,10000,100000", help="camera counts, comma-separated, or 'none'")
    parser.add_argument("--systems", type=int, default=None, help=f"default: one per {SERVERS_PER_SYSTEM} servers")
    parser.add_argument("--ticks", type=int, default=20, help="steady passes after the first")
    parser.add_argument("--step", type=float, default=0.5, help="engine clock seconds between passes")
    parser.add_argument("--profile", default="", help="camera counts at which one steady pass is profiled")
    parser.add_argument("--takeover", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--cameras", type=int, default=1000, help="takeover: simulated cameras")
    parser.add_argument("--servers", type=int, default=20, help="takeover: video servers, half of them primaries")
    parser.add_argument("--fps", type=float, default=2.0, help="takeover: frames a second of each camera")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--timeout", type=float, default=240, help="takeover: seconds any one wait may take")
    parser.add_argument("--read-timeout", type=float, default=None,
                        help="takeover: the agents' AGENT_READ_TIMEOUT_SECONDS (default: their own)")  # fmt: skip
    args = parser.parse_args()
    scales = [] if args.scale == "none" else [int(n) for n in args.scale.split(",")]
    profiled = {int(n) for n in args.profile.split(",") if n}
    logging.getLogger("redundancy").setLevel(logging.WARNING)  # a line per moved camera would time the console
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # ends the children on the way out, as Ctrl-C does
    call_command("migrate", verbosity=0)
    rows, moved = [], None
    report = {"args": vars(args), "cores": psutil.cpu_count(), "scales": rows, "takeover": None}
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"Engine passes (scratch site in {SCRATCH}, Redis {live.client().connection_pool.connection_kwargs.get('db')}"
          f", key prefix {live.key('')}):", flush=True)  # fmt: skip
    for cameras in scales:
        servers = max(2, cameras // 50)
        systems = args.systems or max(1, math.ceil(servers / SERVERS_PER_SYSTEM))
        rows.append(measure_scale(cameras, servers, systems, args.ticks, args.step, cameras in profiled))
        (OUT / "engine_scale.json").write_text(json.dumps(report, indent=2))
    if args.takeover:
        print(f"Takeover: {args.cameras} cameras on {args.servers} servers", flush=True)
        moved = report["takeover"] = takeover(args.cameras, args.servers, args.fps, args.width, args.height,
                                              args.timeout, args.read_timeout)  # fmt: skip
        (OUT / "engine_scale.json").write_text(json.dumps(report, indent=2))
    print_report(rows, moved)
    print(f"\nJSON: {OUT / 'engine_scale.json'}")


if __name__ == "__main__":
    main()
