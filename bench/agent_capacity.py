"""How many cameras one video-server agent carries, what each costs, and how fast a stream opens.

    .venv/bin/python bench/agent_capacity.py [--steps 10,25,50,75,100] [--seconds 20]

For each step N it starts the camera simulator (N cameras, 320x180, 2 fps) and one agent
(``manage.py run_video_server``, a real Celery worker) on a scratch database, lets it record
for a while, and reads every recorded frame's stamp back: a step passes when no camera misses
a frame. CPU per camera is the agent process's CPU time over the window, divided by N.
Open-to-first-frame is measured separately with OpenCV against the simulator, MJPEG over HTTP.
Everything runs on loopback; every process started is stopped. Results: a table on stdout
and JSON in bench/out/.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import cv2  # noqa: E402  (after common: Django is set up there)
import psutil
from common import OUT, SCRATCH, recorded_stamps, start, stop
from django.core.management import call_command  # noqa: E402

from cameras.models import Camera  # noqa: E402
from recording.models import Segment  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402

BASE_PORT = 19001
FPS = 2.0


def prepare(count: int) -> Server:
    Segment.objects.all().delete()
    Camera.objects.all().delete()
    Server.objects.all().delete()
    MultiserverSystem.objects.all().delete()
    server = Server.objects.create(system=MultiserverSystem.objects.create(name="bench"), name="bench-srv",
                                   address="127.0.0.1", recordings_path=str(SCRATCH / f"rec-{count}"))  # fmt: skip
    License.objects.create(key=f"BENCH-{count:04d}", server=server, ip_camera_channels=count)
    Camera.objects.bulk_create(
        Camera(
            name=f"bench-{n}",
            stream_url=f"http://127.0.0.1:{BASE_PORT + n - 1}/video.mjpg",
            codec="mjpeg",
            width=320,
            height=180,
            fps=2,
            primary_server=server,
        )  # fmt: skip
        for n in range(1, count + 1)
    )
    return server


def missing_frames(camera: Camera, storage: Path, warmup_until: float) -> tuple[int, int]:
    """(frames recorded after the warm-up, frames missing between them) from the stamps."""
    counters = [s.counter for s in recorded_stamps(storage, camera.pk) if s.captured_ms / 1000 >= warmup_until]
    if len(counters) < 2:
        return len(counters), 0
    return len(counters), (counters[-1] - counters[0] + 1) - len(counters)


def run_step(count: int, seconds: float) -> dict:
    prepare(count)
    sim = start(["simulate_cameras", "--count", str(count), "--base-port", str(BASE_PORT), "--control-port", "0",
                 "--width", "320", "--height", "180", "--fps", str(FPS)], f"sim-{count}")  # fmt: skip
    time.sleep(1.5)
    agent = start(["run_video_server", "--server", "bench-srv", "--loglevel", "WARNING"], f"agent-{count}",
                  AGENT_SEGMENT_SECONDS=5, AGENT_SWEEP_SECONDS=2)  # fmt: skip
    try:
        time.sleep(8)  # worker start-up and every stream opened
        process = psutil.Process(agent.pid)
        warmup_until = time.time()
        cpu_before = sum(process.cpu_times()[:2])
        rss = []  # sampled through the window: a long run shows whether memory stays flat
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            rss.append(process.memory_info().rss / 2**20)
            time.sleep(min(10.0, max(0.0, ends - time.monotonic())))
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        rss.append(process.memory_info().rss / 2**20)
    finally:
        stop(agent)  # a graceful stop closes and indexes every segment
        stop(sim)
    recorded = missing = silent = 0
    storage = Server.objects.get(name="bench-srv").storage_dir
    for camera in Camera.objects.all():
        got, lost = missing_frames(camera, storage, warmup_until)
        recorded, missing = recorded + got, missing + lost
        silent += got < seconds * FPS * 0.5
    return {"cameras": count, "seconds": seconds, "frames_recorded": recorded, "frames_missing": missing,
            "cameras_short_of_frames": silent, "agent_cpu_percent": round(100 * cpu / seconds, 1),
            "cpu_percent_per_camera": round(100 * cpu / seconds / count, 2), "agent_rss_mb": round(rss[-1]),
            "agent_rss_first_mb": round(rss[0]), "agent_rss_max_mb": round(max(rss))}  # fmt: skip


def open_to_first_frame(samples: int = 20) -> list[float]:
    sim = start(["simulate_cameras", "--count", "1", "--base-port", str(BASE_PORT), "--control-port", "0",
                 "--width", "320", "--height", "180", "--fps", "5"], "sim-open")  # fmt: skip
    time.sleep(1.5)
    times = []
    try:
        for _ in range(samples):
            began = time.perf_counter()
            capture = cv2.VideoCapture(
                f"http://127.0.0.1:{BASE_PORT}/video.mjpg",
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000],
            )
            ok, _ = capture.read()
            capture.release()
            if ok:
                times.append(time.perf_counter() - began)
    finally:
        stop(sim)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="10,25,50,75,100")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    opens = open_to_first_frame()
    rows = []
    for count in [int(n) for n in args.steps.split(",")]:
        row = run_step(count, args.seconds)
        rows.append(row)
        print(f"  {count} cameras: {row}", flush=True)
        if row["frames_missing"] or row["cameras_short_of_frames"]:
            break
    carried = max((r["cameras"] for r in rows if not r["frames_missing"] and not r["cameras_short_of_frames"]),
                  default=0)  # fmt: skip
    print(f"\nAgent capacity, 320x180 MJPEG at {FPS:g} fps, {os.cpu_count()} cores, {args.seconds:g} s per step")
    print("| cameras | frames recorded | frames missing | agent CPU | CPU per camera | agent memory (start → end) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['cameras']} | {r['frames_recorded']} | {r['frames_missing']} | {r['agent_cpu_percent']} % | "
              f"{r['cpu_percent_per_camera']} % | {r['agent_rss_first_mb']} → {r['agent_rss_mb']} MB |")  # fmt: skip
    print(f"\nLargest step with no frame missing: {carried} cameras")
    if opens:
        print(f"Open to first frame, MJPEG over HTTP: median {statistics.median(opens) * 1000:.0f} ms, "
              f"max {max(opens) * 1000:.0f} ms over {len(opens)} opens")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "agent_capacity.json").write_text(json.dumps({"steps": rows, "carried": carried, "open_seconds": opens},
                                                        indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
