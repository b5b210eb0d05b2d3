"""What network faults between the video servers and the control plane cost: false failovers, video lost and
video recorded twice, per mode.

    .venv/bin/python bench/network_faults.py [--minutes 10] [--cameras 3] [--splits 5,60] [--losses 2,5]

(as root: network namespaces)

Each run builds a site on the test bed (``testbed``): srv-a and srv-b on hosts of their own, the camera
simulator on a third, Redis, the SQLite database and the engine (``manage.py run_engine``) on this machine's
side of the bridge, srv-a the primary of every camera and srv-b its backup; the product's own timings (fast
window 1.5 s, normal 30 s, hold-down 10 s). The faults:

- split 5 s / 60 s: srv-a cut off from Redis, the engine and the web tier (nftables drops every packet), its
  cameras still in reach, then healed;
- loss 2 % / 5 %: that share of the packets between both video servers and Redis dropped, and every chunk on
  that link delayed by up to 200 ms more (the relay's jitter), for ``--minutes``.

srv-a never stops recording, so every failover is one the site did not need. After each fault the site is given
up to ``--converge-timeout`` seconds to converge (all cameras on srv-a, srv-b reading none), from the heal: flap
damping may keep the cameras on srv-b for its whole hold-down (up to 30 min), both servers recording them. Video is read
from both servers' files by frame identity: lost = frames neither recorded between the first and last frame of
the run; twice = frames both recorded.
Prints a table; writes JSON into bench/out/network_faults.json.
"""

import argparse
import json
import os
import statistics
import time

from common import OUT, SCRATCH, empty_site, recorded_stamps, start, stop, wait
from django.conf import settings  # noqa: E402

from cameras.models import Camera  # noqa: E402
from protocol import live  # noqa: E402
from redundancy.models import CameraPlacement, Event, EventKind, Placement, ServerState  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402
from testbed.network import unavailable  # noqa: E402
from testbed.site import BedSite  # noqa: E402

FPS = 5.0


def reset(mode: str, count: int, run: str) -> list[Server]:
    empty_site()
    system = MultiserverSystem.objects.create(name=f"bench {run}")
    servers = []
    for name in ("srv-a", "srv-b"):
        server = Server.objects.create(system=system, name=name, address="127.0.0.1", api_port=8700,
                                       recordings_path=str(SCRATCH / run / name))  # fmt: skip
        License.objects.create(key=f"BENCH-{run}-{name}".upper()[:60], server=server, ip_camera_channels=count)
        server.redundancy.fast_redundancy = mode == "fast"
        server.redundancy.save()
        servers.append(server)
    return servers


def placed(cameras, state) -> bool:
    return CameraPlacement.objects.filter(camera__in=cameras, state=state).count() == len(cameras)


def run(fault: str, amount: float, mode: str, count: int, minutes: float, converge_timeout: float) -> dict:
    name = f"{fault} {amount:g}{' s' if fault == 'split' else ' %'}"
    label = f"{name}-{mode}".replace(" ", "-").replace("%", "pct")
    a, b = reset(mode, count, label)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
           "REDIS_URL": settings.REDIS_URL, "LIVE_KEY_PREFIX": settings.LIVE_KEY_PREFIX}  # fmt: skip
    (SCRATCH / label).mkdir(parents=True, exist_ok=True)
    bed = BedSite(env, SCRATCH / label, agent_timings={})  # the agents' own timings
    engine = None
    try:
        for server in (a, b):
            bed.place(server)
        bed.start_cameras(count, fps=FPS)
        cameras = [Camera.objects.create(name=f"cam {n}", stream_url=bed.camera_url(n), fps=int(FPS), primary_server=a,
                                         backup_server=b) for n in range(1, count + 1)]  # fmt: skip
        engine = start(["run_engine"], f"{label}-engine")
        agents = [bed.start_agent(n) for n in ("srv-a", "srv-b")]
        wait(lambda: all(live.read_stream_reports(live.client(), "srv-a").get(c.pk, {}).get("state") == "streaming"
                         for c in cameras), 60, "srv-a records every camera")  # fmt: skip
        time.sleep(5)
        began = time.time()
        if fault == "split":
            cut = bed.isolate("srv-a")
            time.sleep(amount)
            bed.restore("srv-a", cut)
        else:
            for server in ("srv-a", "srv-b"):
                bed.link(server).set_link(jitter=0.2)
                bed.lose(server, int(amount))
            time.sleep(minutes * 60)
            for server in ("srv-a", "srv-b"):
                bed.restore(server)
                bed.link(server).set_link()
        healed = time.time()
        converged = None  # flap damping may hold the cameras on srv-b far longer (up to its longest hold-down)
        while converged is None and time.time() - healed < converge_timeout:
            if placed(cameras, Placement.ON_PRIMARY) and not live.read_stream_reports(live.client(), "srv-b"):
                converged = time.time() - healed
            time.sleep(0.1)
        hold_down = ServerState.objects.get(server=a).hold_down_seconds
        time.sleep(5)
        ended = time.time()  # the agents' own shutdown below is not counted
        for agent in reversed(agents):  # the backup first: srv-a's shutdown then hands nothing over
            stop(agent)
    finally:
        if engine is not None:
            stop(engine)
        bed.close()
    lost, twice = [], []
    for camera in cameras:
        on_a = {s.counter for s in recorded_stamps(a.storage_dir, camera.pk)}
        on_b = {s.counter for s in recorded_stamps(b.storage_dir, camera.pk)}
        lost.append(len(set(range(min(on_a), max(on_a) + 1)) - on_a - on_b) / FPS)
        twice.append(len(on_a & on_b) / FPS)
    events = Event.objects.filter(at__gte=_when(began), at__lt=_when(ended))
    result = {
        "scenario": name, "mode": mode, "cameras": count,
        "fault_seconds": round(healed - began, 1),
        "server_down": events.filter(kind=EventKind.SERVER_DOWN, server__name="srv-a").count(),
        "backup_down": events.filter(kind=EventKind.SERVER_DOWN, server__name="srv-b").count(),
        "failovers": events.filter(kind=EventKind.FAILOVER_STARTED).count(),
        "flap_damped": events.filter(kind=EventKind.FLAP_DAMPED).count(),
        "lost_s_total": round(sum(lost), 1), "lost_s_max": round(max(lost), 1),
        "twice_s_median": round(statistics.median(twice), 1),
        "converged_s": round(converged, 1) if converged is not None else None,
        "hold_down_s": hold_down, "converge_timeout_s": converge_timeout,
    }  # fmt: skip
    print(f"  {result}", flush=True)
    return result


def converged(r: dict) -> str:
    if r["converged_s"] is not None:
        return f"{r['converged_s']} s"
    return f"not within {r['converge_timeout_s']:.0f} s (srv-a's hold-down {r['hold_down_s']:.0f} s)"


def _when(seconds: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long each loss runs")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--splits", default="5,60", help="seconds of each split, comma-separated, or 'none'")
    parser.add_argument("--losses", default="2,5", help="percent of each loss, comma-separated, or 'none'")
    parser.add_argument("--converge-timeout", type=float, default=600.0,
                        help="seconds to wait for the site to converge after a fault")  # fmt: skip
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        raise SystemExit(f"no test bed here: {reason}")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    def amounts(text: str) -> list[float]:
        return [] if text == "none" else [float(x) for x in text.split(",")]

    plan = [("split", x) for x in amounts(args.splits)] + [("loss", x) for x in amounts(args.losses)]
    results = [run(fault, amount, mode, args.cameras, args.minutes, args.converge_timeout) for fault, amount in plan
               for mode in ("fast", "normal")]  # fmt: skip
    print(f"\n{args.cameras} MJPEG cameras at {FPS:g} fps; loss runs {args.minutes:g} min with up to 200 ms jitter")
    print("| fault | mode | judged down: srv-a, srv-b | false failovers | flap damped | lost video "
          "| recorded twice (median per camera) | time to converge |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['scenario']} | {r['mode']} | {r['server_down']}, {r['backup_down']} | {r['failovers']} | "
              f"{r['flap_damped']} | {r['lost_s_total']} s | {r['twice_s_median']} s | "
              f"{converged(r)} |")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "network_faults.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
