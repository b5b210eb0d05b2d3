"""How long the capacity planner and the backup proposal take on a large site.

    .venv/bin/python bench/planner.py [--servers 200] [--cameras 10000] [--systems 1] [--rounds 5]

Builds the site in a scratch SQLite database: servers with licenses and capacity figures (a
tenth without any), cameras of all three codecs at mixed resolutions, a fifth with analytics,
a third without backup, the rest backed up by the next server only (a skewed plan), one server
in ten in constant mode, and a measured stream report for half the cameras. Then, per round,
times reading the configuration (``load_site``), the plan with single and double failures, and
a proposal for all cameras; prints the medians and writes JSON to bench/out/.
"""

import argparse
import json
import random
import statistics
import time

from common import OUT
from django.core.management import call_command
from django.utils import timezone

from cameras.models import Camera
from capacity.inputs import load_site
from capacity.planner import plan
from capacity.proposal import propose
from recording.models import StreamHealth
from servers.models import License, MultiserverSystem, RedundancySettings, Server

RESOLUTIONS = [(1920, 1080), (1280, 720), (2560, 1440), (640, 360)]


def build(server_count: int, camera_count: int, system_count: int) -> None:
    rng = random.Random(7)
    call_command("migrate", verbosity=0)
    systems = [MultiserverSystem.objects.create(name=f"bench-{n}") for n in range(system_count)]
    servers = Server.objects.bulk_create(
        Server(
            system=systems[n % system_count],
            name=f"srv-{n:03d}",
            address="127.0.0.1",
            max_inbound_mbps=None if n % 10 == 9 else 1000,
            cpu_budget_cores=None if n % 10 == 9 else 16,
            storage_gb=None if n % 10 == 9 else 200_000,
            max_cameras=None if n % 10 == 9 else 128,
        )  # fmt: skip
        for n in range(server_count)
    )
    RedundancySettings.objects.bulk_create(
        RedundancySettings(server=s, constant_redundancy=n % 10 == 5, fast_redundancy=n % 3 == 0)
        for n, s in enumerate(servers)
    )
    License.objects.bulk_create(
        License(
            key=f"BENCH-{s.pk:05d}",
            server=s,
            ip_camera_channels=camera_count,
            analytics_channels=camera_count,
            valid_from=timezone.localdate(),
        )  # fmt: skip
        for s in servers
    )
    by_system = {system.pk: [s for s in servers if s.system_id == system.pk] for system in systems}
    cameras = []
    for n in range(camera_count):
        primary = servers[n % server_count]
        peers = by_system[primary.system_id]
        backup = None if n % 3 == 0 or len(peers) < 2 else peers[(peers.index(primary) + 1) % len(peers)]
        codec = rng.choice(["h264", "h264", "h265", "mjpeg"])
        width, height = (640, 360) if codec == "mjpeg" else rng.choice(RESOLUTIONS)  # MJPEG cameras are small ones
        cameras.append(
            Camera(
                name=f"cam-{n:05d}",
                stream_url=f"http://127.0.0.1:{20000 + n % 40000}/video.mjpg",
                codec=codec,
                width=width,
                height=height,
                fps=rng.choice([10, 15, 25]),
                quality=rng.choice(["low", "medium", "high"]),
                primary_server=primary,
                backup_server=backup,
                analytics=["motion_detection"] if n % 5 == 0 else [],
            )  # fmt: skip
        )
    cameras = Camera.objects.bulk_create(cameras, batch_size=2000)
    now = timezone.now()
    StreamHealth.objects.bulk_create(
        (
            StreamHealth(
                camera=c,
                server_id=c.primary_server_id,
                state="streaming",
                fps=c.fps,
                bitrate_kbps=rng.uniform(500, 8000),
                reported_at=now,
            )  # fmt: skip
            for c in cameras[::2]
        ),
        batch_size=2000,
    )


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--cameras", type=int, default=10_000)
    parser.add_argument("--systems", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    build(args.servers, args.cameras, args.systems)
    rows = []
    for _ in range(args.rounds):
        read, site = timed(load_site)
        planned, capacity_plan = timed(lambda s=site: plan(s, pairs=True))
        proposed, proposal = timed(lambda s=site: propose(s, "all"))
        rows.append({"read": read, "plan": planned, "propose": proposed, "total": read + planned + proposed,
                     "peak_before": proposal.peak_before, "peak_after": proposal.peak_after,
                     "changes": len(proposal.changes), "unplaced": len(proposal.unplaced)})  # fmt: skip
    median = {key: statistics.median(row[key] for row in rows) for key in ("read", "plan", "propose", "total")}
    last = rows[-1]
    print(f"{args.servers} servers in {args.systems} system(s), {args.cameras} cameras, {args.rounds} rounds (median):")
    print(f"  read configuration {median['read']:.2f} s, plan (single and double failures) {median['plan']:.2f} s, "
          f"proposal for all cameras {median['propose']:.2f} s; total {median['total']:.2f} s "
          f"(max {max(r['total'] for r in rows):.2f} s)")  # fmt: skip
    print(f"  proposal: {last['changes']} changes, {last['unplaced']} cameras left as they are; worst case "
          f"{last['peak_before']:.0%} -> {last['peak_after']:.0%} of the tightest server's capacity")  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "planner.json").write_text(json.dumps({"args": vars(args), "median": median, "rounds": rows}, indent=2))


if __name__ == "__main__":
    main()
