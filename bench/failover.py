"""How much video a failover costs, per mode and per kind of stop.

    .venv/bin/python bench/failover.py [--quick]
    .venv/bin/python bench/failover.py --codec h264 --gop 1 [--quick]
    .venv/bin/python bench/failover.py --codec h264 --gop 1 --keyframe-request --fast-only --runs 4

Starts the web app, then for each scenario the camera simulator, the engine (``manage.py run_engine``)
and one agent per server (``manage.py run_video_server``), all on loopback, against
a scratch database and Redis prefix. It stops a primary agent (SIGKILL, SIGTERM or a drain),
waits for its cameras to record on the backup, lets them fail back where the scenario says,
and reads every recorded frame's identity back from both servers' files. MJPEG cameras run at
320x180 and 5 fps; RTSP cameras (``--codec h264`` or ``h265``) at 640x360 and 25 fps with a keyframe
every ``--gop`` seconds, recorded by stream copy, so that a takeover also waits for a keyframe. Per camera, the lost
video of a transition is the longest run of frames neither server recorded around it. With
``--keyframe-request`` the RTSP cameras have their ONVIF address (the simulator's), so that the
backup asks each camera for a keyframe as soon as its stream is open (SetSynchronizationPoint)
instead of waiting for the next one; the backup's own figures of each takeover (the open, the
wait for the keyframe) are read from its stream reports.
Prints a table, writes JSON and a PNG timeline into bench/out/.
"""

import argparse
import json
import signal
import statistics
import sys
import time
from collections import Counter

import cv2  # noqa: E402  (after common: Django is set up there)
import numpy as np  # noqa: E402
from common import OUT, SCRATCH, empty_site, free_port, percentile, recorded_stamps, start, stop, wait

from cameras.models import Camera  # noqa: E402
from protocol import live  # noqa: E402
from redundancy import actions  # noqa: E402
from redundancy.models import CameraPlacement, Placement  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402

BASE_PORT = 19501
CONTROL_PORT = 19500  # the simulator's control endpoint, and its cameras' ONVIF service
ENGINE_ENV = {"ENGINE_HOLD_DOWN_SECONDS": 5}
CODEC, GOP, KEYFRAME_REQUEST = "mjpeg", 2.0, False  # set from the command line in main()


def stream_url(number: int) -> str:
    port = BASE_PORT + number - 1
    return f"http://127.0.0.1:{port}/video.mjpg" if CODEC == "mjpeg" else f"rtsp://127.0.0.1:{port}/stream"


def onvif_url(number: int) -> str:
    return f"http://127.0.0.1:{CONTROL_PORT}/onvif/{number}/media_service" if KEYFRAME_REQUEST else ""


def reset(mode: str, count: int, run: str, fps: float, width: int, height: int) -> list[Camera]:
    empty_site()
    system = MultiserverSystem.objects.create(name=f"bench {run}")
    servers = []
    for name in ("srv-a", "srv-b"):
        server = Server.objects.create(system=system, name=name, address="127.0.0.1", api_port=free_port(),
                                       recordings_path=str(SCRATCH / run / name))  # fmt: skip
        License.objects.create(key=f"BENCH-{run}-{name}".upper()[:60], server=server, ip_camera_channels=count)
        server.redundancy.fast_redundancy = mode == "fast"
        server.redundancy.constant_redundancy = mode == "constant" and name == "srv-b"
        server.redundancy.save()
        servers.append(server)
    return [
        Camera.objects.create(
            name=f"{run}-{n}",
            stream_url=stream_url(n),
            onvif_url=onvif_url(n),
            codec=CODEC,
            width=width,
            height=height,
            fps=int(fps),
            primary_server=servers[0],
            backup_server=servers[1],
        )  # fmt: skip
        for n in range(1, count + 1)
    ]


def all_streaming(server: str, cameras) -> bool:
    reports = live.read_stream_reports(live.client(), server)
    return all(reports.get(c.pk, {}).get("state") == "streaming" for c in cameras)


def all_placed(cameras, state) -> bool:
    return CameraPlacement.objects.filter(camera__in=cameras, state=state).count() == len(cameras)


def lost_between(stamps, since: float, until: float, fps: float) -> tuple[float, int]:
    """(seconds of video lost, frames missing) in the longest hole of the union of both servers'
    recordings between two times."""
    counters = sorted({s.counter for s in stamps if since <= s.captured_ms / 1000 <= until})
    worst = max((b - a for a, b in zip(counters, counters[1:], strict=False)), default=1)
    return (worst - 1) / fps, worst - 1


def scenario(name: str, mode: str, how: str, count: int, fps: float, failback: bool):
    run = name.replace(" ", "-")
    width, height = (320, 180) if CODEC == "mjpeg" else (640, 360)
    cameras = reset(mode, count, run, fps, width, height)
    env = {**ENGINE_ENV}
    procs = [
        start(["simulate_cameras", "--count", str(count), "--base-port", str(BASE_PORT), "--control-port",
               str(CONTROL_PORT if KEYFRAME_REQUEST else 0),
               "--width", str(width), "--height", str(height), "--fps", str(fps), "--codecs", CODEC,
               "--gop", str(GOP)], f"{run}-sim"),
        start(["run_engine"], f"{run}-engine", **env),
    ]  # fmt: skip
    agents = {n: start(["run_video_server", "--server", n, "--loglevel", "WARNING"], f"{run}-{n}", **env)
              for n in ("srv-a", "srv-b")}  # fmt: skip
    result = {"scenario": name, "mode": mode, "stop": how, "cameras": count}
    try:
        wait(lambda: all_streaming("srv-a", cameras), 60, "the primary streaming")
        time.sleep(3)
        began = time.time()
        if how == "SIGKILL":
            agents["srv-a"].kill()
        elif how == "SIGTERM":
            agents["srv-a"].send_signal(signal.SIGTERM)
        else:
            actions.drain(Server.objects.get(name="srv-a"))
        result["moved_after_s"] = round(wait(lambda: all_placed(cameras, Placement.ON_BACKUP), 120, "failover"), 2)
        time.sleep(3)
        result.update(takeover_figures(cameras))
        failed_back = None
        if failback:
            failed_back = time.time()
            if how == "drain":
                actions.fail_back(Server.objects.get(name="srv-a"))
            else:
                agents["srv-a"].wait(timeout=30)
                agents["srv-a"] = start(["run_video_server", "--server", "srv-a"], f"{run}-srv-a-again", **env)
            wait(lambda: all_placed(cameras, Placement.ON_PRIMARY), 120, "failback")
            time.sleep(3)
    finally:
        for process in [*agents.values(), *procs]:
            stop(process)
    server = {s.name: s for s in Server.objects.all()}
    lost, missing, takeover, failback_lost = [], 0, [], []
    for camera in cameras:
        primary = recorded_stamps(server["srv-a"].storage_dir, camera.pk)
        backup = recorded_stamps(server["srv-b"].storage_dir, camera.pk)
        seconds, frames = lost_between(primary + backup, began - 3, failed_back or time.time(), fps)
        lost.append(seconds)
        missing += frames
        after = [s.captured_ms / 1000 for s in backup if s.captured_ms / 1000 > began]
        if after:
            takeover.append(min(after) - began)
        if failed_back:
            failback_lost.append(lost_between(primary + backup, failed_back - 1, time.time(), fps)[0])
    result.update({
        "lost_median_s": round(statistics.median(lost), 2), "lost_p95_s": round(percentile(lost, 0.95), 2),
        "lost_max_s": round(max(lost), 2), "frames_missing": missing,
        "backup_first_frame_max_s": round(max(takeover), 2) if takeover else None,
        "failback_lost_max_s": round(max(failback_lost), 2) if failback_lost else None,
    })  # fmt: skip
    if name == "fast SIGKILL 1" and CODEC == "mjpeg":
        timeline(cameras[:6], server, began, failed_back, fps)
    print(f"  {name}: {result}", flush=True)
    return result


def takeover_figures(cameras) -> dict:
    """The backup's own figures of its connections: the open, the wait for the first keyframe, the request."""
    reports = live.read_stream_reports(live.client(), "srv-b")
    connects = [reports[c.pk] for c in cameras if "first_frame_seconds" in reports.get(c.pk, {})]
    if not connects:
        return {}
    opens = [r["open_seconds"] for r in connects if "open_seconds" in r]
    waits = [r["keyframe_wait_seconds"] for r in connects if "keyframe_wait_seconds" in r]
    figures = {"backup_open_median_s": round(statistics.median(opens), 3) if opens else None,
               "backup_keyframe_wait_median_s": round(statistics.median(waits), 3) if waits else None,
               "backup_keyframe_wait_max_s": round(max(waits), 3) if waits else None}  # fmt: skip
    requests = Counter(r.get("keyframe_request", "none") for r in connects)
    figures["keyframe_requests"] = dict(requests)
    return figures


def timeline(cameras, server, began, failed_back, fps) -> None:
    """A PNG of which server recorded each frame of a few cameras around the failover."""
    width, row, left, span = 1200, 26, 110, 40.0
    start_t = began - 8
    image = np.full((70 + row * 2 * len(cameras), width, 3), 255, np.uint8)
    colours = {"srv-a": (200, 110, 30), "srv-b": (30, 140, 240)}
    for i, camera in enumerate(cameras):
        for j, name in enumerate(("srv-a", "srv-b")):
            y = 40 + (2 * i + j) * row
            cv2.putText(image, f"camera {i + 1} {name}", (5, y + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
            for stamp in recorded_stamps(server[name].storage_dir, camera.pk):
                x = left + int((stamp.captured_ms / 1000 - start_t) / span * (width - left - 10))
                if left <= x < width - 10:
                    cv2.line(image, (x, y + 3), (x, y + row - 6), colours[name], 2)
    for at, label in ((began, "primary killed"), (failed_back, "primary back")):
        if at:
            x = left + int((at - start_t) / span * (width - left - 10))
            cv2.line(image, (x, 25), (x, image.shape[0] - 5), (0, 0, 220), 1)
            cv2.putText(image, label, (x + 4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 220), 1)
    cv2.putText(
        image,
        f"frames recorded per server, {span:.0f} s, {fps:g} fps (blue: primary, orange: backup)",
        (left, image.shape[0] - 10),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4,
        (60, 60, 60),
        1,
    )
    OUT.mkdir(exist_ok=True)
    cv2.imwrite(str(OUT / "failover_timeline.png"), image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per scenario, no 100-camera run")
    parser.add_argument("--codec", choices=["mjpeg", "h264", "h265"], default="mjpeg")
    parser.add_argument("--gop", type=float, default=2.0, help="RTSP cameras: seconds between keyframes")
    parser.add_argument("--keyframe-request", action="store_true",
                        help="RTSP cameras: their ONVIF address given, a backup asks for a keyframe")  # fmt: skip
    parser.add_argument("--runs", type=int, default=None,
                        help="fast SIGKILL runs of 10 cameras (default 3, 1 with --quick)")  # fmt: skip
    parser.add_argument("--fast-only", action="store_true", help="only the fast SIGKILL runs")
    args = parser.parse_args()
    global CODEC, GOP, KEYFRAME_REQUEST
    CODEC, GOP, KEYFRAME_REQUEST = args.codec, args.gop, args.keyframe_request and args.codec != "mjpeg"
    fps = 5.0 if CODEC == "mjpeg" else 25.0
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    web = start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "8097", "eocortex_web.asgi:application"],
                "web", manage=False)  # fmt: skip
    runs = args.runs or (1 if args.quick else 3)
    plan = [(f"fast SIGKILL {n}", "fast", "SIGKILL", 10, fps, n == runs) for n in range(1, runs + 1)]
    plan += [] if args.fast_only else [("normal SIGKILL", "normal", "SIGKILL", 5, fps, False),
             ("constant SIGKILL", "constant", "SIGKILL", 5, fps, False),
             ("fast graceful stop", "fast", "SIGTERM", 5, fps, True),
             ("normal drain", "normal", "drain", 5, fps, True)]  # fmt: skip
    if not args.quick and not args.fast_only and CODEC == "mjpeg":
        plan.append(("fast SIGKILL 100 cameras", "fast", "SIGKILL", 100, 2.0, False))
    try:
        results = [scenario(*step) for step in plan]
    finally:
        stop(web)
    fast = [r for r in results if r["scenario"].startswith("fast SIGKILL") and r["cameras"] == 10]
    print(f"\n{CODEC.upper()} cameras" + ("" if CODEC == "mjpeg" else f", keyframe every {GOP:g} s")
          + (", a keyframe asked for at connect (ONVIF)" if KEYFRAME_REQUEST else ""))  # fmt: skip
    print("| scenario | cameras | cameras on backup after | lost video median | p95 | max | frames missing "
          "| failback lost |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        back = "—" if r["failback_lost_max_s"] is None else f"{r['failback_lost_max_s']} s"
        print(f"| {r['scenario']} | {r['cameras']} | {r['moved_after_s']} s | {r['lost_median_s']} s | "
              f"{r['lost_p95_s']} s | {r['lost_max_s']} s | {r['frames_missing']} | {back} |")  # fmt: skip
    if fast:
        per_run = ", ".join(f"{r['lost_p95_s']} s" for r in fast)
        print(f"\nFast mode after SIGKILL, p95 of lost video per run: {per_run}")
        waits = ", ".join(f"{r.get('backup_keyframe_wait_median_s')} s (max {r.get('backup_keyframe_wait_max_s')} s)"
                          for r in fast)  # fmt: skip
        print(f"Backup's wait from the open to the first keyframe, median per run: {waits}")
    OUT.mkdir(exist_ok=True)
    suffix = ("" if CODEC == "mjpeg" else f"_{CODEC}_gop{GOP:g}") + ("_keyframe_request" if KEYFRAME_REQUEST else "")
    (OUT / f"failover{suffix}.json").write_text(json.dumps(results, indent=2))
    if CODEC == "mjpeg":
        print(f"Timeline: {OUT / 'failover_timeline.png'}")


if __name__ == "__main__":
    main()
