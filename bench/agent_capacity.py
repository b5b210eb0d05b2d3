"""How many cameras one video-server agent carries, what each costs, and how fast a stream opens.

    .venv/bin/python bench/agent_capacity.py [--steps 10,25,50,75,100] [--seconds 20]
    .venv/bin/python bench/agent_capacity.py --codec h264 [--analytics] [--steps 25,50,100]
    .venv/bin/python bench/agent_capacity.py --codec h264 --analytics --sub-stream 640x360 [--steps 5,10,25]

For each step N it starts the camera simulator (N cameras) and one agent (``manage.py
run_video_server``, a real Celery worker) on a scratch database, lets it record for a while,
and reads every recorded frame's identity back from the files: a step passes when no camera
misses a frame. MJPEG cameras default to 320x180 at 2 fps; RTSP cameras (``--codec h264`` or
``h265``) to 1920x1080 at 25 fps, 4 Mbit/s, a keyframe every 2 s, recorded by stream copy.
CPU per camera is the agent process's CPU time over the window, divided by N; the simulator's
CPU (with its RTSP camera process) is reported beside it, since both share the machine. For
RTSP cameras the recorded files' bytes are compared with the bytes the cameras sent for the
same frames. With ``--sub-stream WxH`` every camera also has a sub stream of that size (H.264 from a
second simulator, at the same fps), which the agent reads for analytics and snapshots while it
records the main stream without decoding it; the second simulator's CPU is counted with the first.
Open-to-first-frame is measured separately against the simulator: OpenCV for
MJPEG over HTTP, PyAV (as the agent opens it) for RTSP. Everything runs on loopback; every
process started is stopped, every recording deleted. Results: a table on stdout and JSON in
bench/out/.
"""

import argparse
import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import cv2  # noqa: E402  (after common: Django is set up there)
import psutil
from common import OUT, SCRATCH, recorded_stamps, start, stop
from django.core.management import call_command  # noqa: E402

from cameras.models import Camera  # noqa: E402
from recording.models import Segment  # noqa: E402
from recording.streamcopy import open_options  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402
from simulation.identity import segment_files  # noqa: E402
from simulation.loops import loop_file, read_loop  # noqa: E402
from simulation.sei import sei_nal  # noqa: E402
from simulation.simulator import RtspCamera  # noqa: E402

BASE_PORT = 19001
SUB_BASE_PORT = 19401  # the sub streams' simulator, with --sub-stream
LOOPS = SCRATCH / "camera-loops"


@dataclass(frozen=True)
class Kind:
    codec: str
    width: int
    height: int
    fps: float
    bitrate_kbps: int
    gop_seconds: float
    analytics: bool
    sub_stream: tuple[int, int] | None = None  # (width, height) of each camera's sub stream, if any

    @property
    def rtsp(self) -> bool:
        return self.codec != "mjpeg"

    def url(self, number: int) -> str:
        port = BASE_PORT + number - 1
        return f"rtsp://127.0.0.1:{port}/stream" if self.rtsp else f"http://127.0.0.1:{port}/video.mjpg"

    def simulator_args(self, count: int) -> list[str]:
        return ["simulate_cameras", "--count", str(count), "--base-port", str(BASE_PORT), "--control-port", "0",
                "--width", str(self.width), "--height", str(self.height), "--fps", str(self.fps),
                "--codecs", self.codec, "--gop", str(self.gop_seconds),
                "--bitrate", str(self.bitrate_kbps)]  # fmt: skip

    def sub_simulator_args(self, count: int) -> list[str]:
        width, height = self.sub_stream
        return ["simulate_cameras", "--count", str(count), "--base-port", str(SUB_BASE_PORT), "--control-port", "0",
                "--width", str(width), "--height", str(height), "--fps", str(self.fps), "--codecs", "h264",
                "--gop", str(self.gop_seconds), "--bitrate", str(max(200, self.bitrate_kbps // 8))]  # fmt: skip

    def loop(self) -> list:
        camera = RtspCamera(0, 0, self.codec, self.width, self.height, self.fps, self.gop_seconds, self.bitrate_kbps)
        return read_loop(loop_file(camera.loop_spec(), LOOPS))[1]

    def describe(self) -> str:
        text = f"{self.width}x{self.height} {self.codec.upper()} at {self.fps:g} fps"
        if self.rtsp:
            text += f", {self.bitrate_kbps / 1000:g} Mbit/s, keyframe every {self.gop_seconds:g} s, RTSP over TCP"
        if self.sub_stream:
            text += f", sub stream {self.sub_stream[0]}x{self.sub_stream[1]} H.264 for pictures"
        return text + (", motion detection on" if self.analytics else "")


KIND = Kind("mjpeg", 320, 180, 2.0, 0, 2.0, False)  # set from the command line in main()


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
            stream_url=KIND.url(n),
            codec=KIND.codec,
            width=KIND.width,
            height=KIND.height,
            fps=round(KIND.fps),
            primary_server=server,
            analytics=["motion_detection"] if KIND.analytics else [],
            sub_stream_url=f"rtsp://127.0.0.1:{SUB_BASE_PORT + n - 1}/stream" if KIND.sub_stream else "",
        )  # fmt: skip
        for n in range(1, count + 1)
    )
    return server


def stream_and_recorded_bytes(storage: Path, camera: Camera, units: list) -> tuple[int, int]:
    """(bytes the camera sent for the frames recorded, bytes of the recorded files)."""
    sent = 0
    for stamp in recorded_stamps(storage, camera.pk):
        _, head, picture = units[stamp.counter % len(units)]
        sent += len(head) + len(sei_nal(KIND.codec, stamp.counter, stamp.captured_ms)) + len(picture)
    return sent, sum(path.stat().st_size for path in segment_files(storage, camera.pk))


def missing_frames(camera: Camera, storage: Path, warmup_until: float) -> tuple[int, int]:
    """(frames recorded after the warm-up, frames missing between them) from the stamps."""
    counters = [s.counter for s in recorded_stamps(storage, camera.pk) if s.captured_ms / 1000 >= warmup_until]
    if len(counters) < 2:
        return len(counters), 0
    return len(counters), (counters[-1] - counters[0] + 1) - len(counters)


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU of a process and its children (the simulator's RTSP camera process)."""
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def free_gb() -> float:
    return shutil.disk_usage(SCRATCH).free / 1e9


def run_step(count: int, seconds: float) -> dict:
    needed = count * max(KIND.bitrate_kbps, 100) * 1000 / 8 * (seconds + 20) * 1.1 / 1e9
    if free_gb() < needed + 5:
        raise SystemExit(f"{count} cameras need about {needed:.1f} GB for {seconds:g} s; {free_gb():.1f} GB free")
    server = prepare(count)
    sim = start(KIND.simulator_args(count), f"sim-{count}", VAR_DIR=str(SCRATCH))
    sub_sim = None
    if KIND.sub_stream:
        sub_sim = start(KIND.sub_simulator_args(count), f"sub-sim-{count}", VAR_DIR=str(SCRATCH))
    time.sleep(3 if KIND.rtsp else 1.5)
    agent = start(["run_video_server", "--server", "bench-srv", "--loglevel", "WARNING"], f"agent-{count}",
                  AGENT_SEGMENT_SECONDS=5, AGENT_SWEEP_SECONDS=2)  # fmt: skip
    try:
        time.sleep(10)  # worker start-up and every stream opened (RTSP: at a keyframe)
        process, simulators = psutil.Process(agent.pid), [psutil.Process(p.pid) for p in (sim, sub_sim) if p]
        warmup_until = time.time()
        cpu_before, sim_before = cpu_seconds(process), sum(cpu_seconds(p) for p in simulators)
        rss = []  # sampled through the window: a long run shows whether memory stays flat
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            rss.append(process.memory_info().rss / 2**20)
            time.sleep(min(10.0, max(0.0, ends - time.monotonic())))
        cpu, sim_cpu = cpu_seconds(process) - cpu_before, sum(cpu_seconds(p) for p in simulators) - sim_before
        rss.append(process.memory_info().rss / 2**20)
    finally:
        stop(agent)  # a graceful stop closes and indexes every segment
        stop(sim)
        if sub_sim:
            stop(sub_sim)
    recorded = missing = silent = sent_bytes = file_bytes = 0
    storage = server.storage_dir
    units = KIND.loop() if KIND.rtsp else None
    for camera in Camera.objects.all():
        got, lost = missing_frames(camera, storage, warmup_until)
        recorded, missing = recorded + got, missing + lost
        silent += got < seconds * KIND.fps * 0.5
        if units:
            sent, written = stream_and_recorded_bytes(storage, camera, units)
            sent_bytes, file_bytes = sent_bytes + sent, file_bytes + written
    shutil.rmtree(storage, ignore_errors=True)  # no recording left behind
    row = {"cameras": count, "seconds": seconds, "frames_recorded": recorded, "frames_missing": missing,
           "cameras_short_of_frames": silent, "agent_cpu_percent": round(100 * cpu / seconds, 1),
           "cpu_percent_per_camera": round(100 * cpu / seconds / count, 2), "agent_rss_mb": round(rss[-1]),
           "agent_rss_first_mb": round(rss[0]), "agent_rss_max_mb": round(max(rss)),
           "agent_rss_samples_mb": [round(m) for m in rss],
           "simulator_cpu_percent": round(100 * sim_cpu / seconds, 1)}  # fmt: skip
    if units:
        row.update(stream_bytes=sent_bytes, recorded_bytes=file_bytes,
                   recorded_to_stream=round(file_bytes / sent_bytes, 4) if sent_bytes else None)  # fmt: skip
    return row


def open_to_first_frame(samples: int = 20) -> list[dict]:
    """Per open: seconds to the open returning and to the first frame (RTSP: the first keyframe), and for
    RTSP how much of it was the wait for the camera's next keyframe (from the keyframe's own capture time).
    Opens start at random moments of the GOP, as a takeover does."""
    import random

    from simulation.sei import read_identity

    sim = start(KIND.simulator_args(1), "sim-open", VAR_DIR=str(SCRATCH))
    time.sleep(3 if KIND.rtsp else 1.5)
    times = []
    try:
        for _ in range(samples):
            time.sleep(random.uniform(0, KIND.gop_seconds))
            began_at, began = time.time(), time.perf_counter()
            if KIND.rtsp:
                import av

                with av.open(KIND.url(1), options=open_options("tcp", 5000, 5000)) as c:
                    opened = time.perf_counter() - began
                    first = next(p for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe)
                    arrived = time.perf_counter() - began
                    due = read_identity(bytes(first))[1] / 1000 - began_at  # when the camera sent it
                    times.append({"open": opened, "first_frame": arrived, "keyframe_wait": max(0.0, due),
                                  "beyond_keyframe_wait": arrived - max(0.0, due)})  # fmt: skip
                continue
            capture = cv2.VideoCapture(
                KIND.url(1),
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000],
            )
            opened = time.perf_counter() - began
            ok, _ = capture.read()
            capture.release()
            if ok:
                times.append({"open": opened, "first_frame": time.perf_counter() - began})
    finally:
        stop(sim)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="10,25,50,75,100")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--codec", choices=["mjpeg", "h264", "h265"], default="mjpeg")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--fps", type=float)
    parser.add_argument("--bitrate", type=int, default=4000, help="RTSP cameras, kbit/s")
    parser.add_argument("--gop", type=float, default=2.0, help="RTSP cameras: seconds between keyframes")
    parser.add_argument("--analytics", action="store_true", help="motion detection on every camera")
    parser.add_argument("--sub-stream", metavar="WxH", help="RTSP cameras: a sub stream of this size for pictures")
    args = parser.parse_args()
    global KIND
    rtsp = args.codec != "mjpeg"
    KIND = Kind(args.codec, args.width or (1920 if rtsp else 320), args.height or (1080 if rtsp else 180),
                args.fps or (25.0 if rtsp else 2.0), args.bitrate if rtsp else 0, args.gop, args.analytics,
                tuple(int(n) for n in args.sub_stream.split("x")) if args.sub_stream and rtsp else None)  # fmt: skip
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
    print(f"\nAgent capacity, {KIND.describe()}, {os.cpu_count()} cores, {args.seconds:g} s per step")
    print("| cameras | frames recorded | frames missing | agent CPU | CPU per camera | agent memory (start → end) "
          "| simulator CPU | recorded / stream bytes |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        ratio = f"{r['recorded_to_stream']:.4f}" if r.get("recorded_to_stream") else "—"
        print(f"| {r['cameras']} | {r['frames_recorded']} | {r['frames_missing']} | {r['agent_cpu_percent']} % | "
              f"{r['cpu_percent_per_camera']} % | {r['agent_rss_first_mb']} → {r['agent_rss_mb']} MB | "
              f"{r['simulator_cpu_percent']} % | {ratio} |")  # fmt: skip
    print(f"\nLargest step with no frame missing: {carried} cameras")
    if opens:
        first = [o["first_frame"] for o in opens]
        print(f"Open to first frame ({'PyAV, RTSP' if KIND.rtsp else 'OpenCV, MJPEG over HTTP'}): median "
              f"{statistics.median(first) * 1000:.0f} ms, max {max(first) * 1000:.0f} ms over {len(opens)} opens; "
              f"the open alone: median {statistics.median(o['open'] for o in opens) * 1000:.0f} ms")  # fmt: skip
        if KIND.rtsp:
            beyond = [o["beyond_keyframe_wait"] for o in opens]
            print(
                f"  of which waiting for the camera's next keyframe: median "
                f"{statistics.median(o['keyframe_wait'] for o in opens) * 1000:.0f} ms; the rest (RTSP handshake, "
                f"first packets): median {statistics.median(beyond) * 1000:.0f} ms, max {max(beyond) * 1000:.0f} ms"
            )
    OUT.mkdir(exist_ok=True)
    name = "agent_capacity"
    if KIND.rtsp:
        name += f"_{KIND.codec}{'_analytics' if KIND.analytics else ''}{'_sub_stream' if KIND.sub_stream else ''}"
    (OUT / f"{name}.json").write_text(json.dumps({"kind": KIND.describe(), "steps": rows, "carried": carried,
                                                 "opens": opens}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
