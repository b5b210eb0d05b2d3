"""A soak: one video-server agent records many RTSP cameras for an hour while they drop and come back.

    .venv/bin/python bench/soak.py [--cameras 50] [--minutes 60] [--retention-minutes 6] [--restarts 3]

One agent (``manage.py run_video_server``, a real Celery worker) records N simulated RTSP H.264
cameras (1920x1080, 25 fps, 4 Mbit/s, a keyframe every 2 s) on a scratch database, with the
server's retention set to a few minutes so that housekeeping deletes as the agent records: the
disk holds minutes of video, not the 90 GB an hour of 50 such cameras would take. Each camera
is cut a few times at random moments (alternately stopped, its RTSP port closed, and stalled,
its connection kept and silent) for a few seconds and then streams again.

Every minute: the agent's resident memory, open file descriptors and threads, the bytes on
disk and the age of the oldest recording. Every closed segment is read back (by an independent
reader, PyAV's demuxer, through ``simulation.identity``) before housekeeping can delete it:
a frame is lost when its identity is missing from the recordings while its camera was streaming,
that is outside the cuts and the reconnection after each (up to the backoff's longest wait, the
open and one keyframe interval). The reconnections' own cost is reported apart: from each
camera's return to its first recorded frame.

Results: a table on stdout and JSON in bench/out/soak.json. Every process started is stopped,
every recording deleted.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from common import OUT, SCRATCH, start, stop
from django.core.management import call_command  # noqa: E402

from cameras.models import Camera  # noqa: E402
from recording.ingest import BACKOFF_MAX  # noqa: E402
from recording.models import Segment  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402
from simulation.identity import segment_files, stamps_in  # noqa: E402

BASE_PORT = 19101
CONTROL_PORT = 19099
FPS, GOP, BITRATE = 25, 2.0, 4000
CUT_SECONDS = 5.0
# After a camera returns: the backoff's longest wait, the open and read timeouts, one GOP, a margin.
RECONNECT_ALLOWANCE = BACKOFF_MAX + 2 * 2.0 + GOP + 1.0


@dataclass
class Cut:
    camera: int  # the simulator's camera number
    at: float
    state: str  # stopped or stalled
    back_at: float | None = None


@dataclass
class CameraRecord:
    """What the scanner has read of one camera's recordings so far."""

    seen: set[str] = field(default_factory=set)
    last: tuple[int, float] | None = None  # (counter, capture time) of the last frame read
    frames: int = 0
    gaps: list[tuple[float, int, float]] = field(default_factory=list)  # (last frame before, frames missing, next)
    unread: int = 0  # segments expired before the scanner could read them

    def missing(self) -> list[float]:
        """The capture time of every frame missing between two recorded ones."""
        return [before + k / FPS for before, count, _ in self.gaps for k in range(1, count + 1)]


def prepare(count: int, retention_minutes: float) -> Server:
    Segment.objects.all().delete()
    Camera.objects.all().delete()
    Server.objects.all().delete()
    MultiserverSystem.objects.all().delete()
    server = Server(system=MultiserverSystem.objects.create(name="soak"), name="soak-srv", address="127.0.0.1",
                    recordings_path=str(SCRATCH / "rec"), retention_hours=retention_minutes / 60)  # fmt: skip
    server.full_clean(exclude=["system"])  # the retention of minutes goes through the model's own bounds
    server.save()
    License.objects.create(key=f"SOAK-{count:04d}", server=server, ip_camera_channels=count)
    Camera.objects.bulk_create(
        Camera(
            name=f"soak-{n}",
            stream_url=f"rtsp://127.0.0.1:{BASE_PORT + n - 1}/stream",
            codec="h264",
            width=1920,
            height=1080,
            fps=FPS,
            primary_server=server,
        )  # fmt: skip
        for n in range(1, count + 1)
    )
    return server


def set_state(camera: int, state: str) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{CONTROL_PORT}/cameras/{camera}/{state}", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def scan(storage: Path, ids: dict[int, int], records: dict[int, CameraRecord], final: bool = False) -> None:
    """Read every closed segment not read yet (all but each camera's newest, unless ``final``)."""
    for number, camera_id in ids.items():
        record = records[number]
        files = segment_files(storage, camera_id)
        for path in files if final else files[:-1]:
            if str(path) in record.seen:
                continue
            record.seen.add(str(path))
            try:
                stamps = [s for s in stamps_in(path) if s]
            except FileNotFoundError:
                record.unread += 1  # expired before it could be read
                continue
            for stamp in stamps:
                at = stamp.captured_ms / 1000
                if record.last is not None and stamp.counter > record.last[0] + 1:
                    record.gaps.append((record.last[1], stamp.counter - record.last[0] - 1, at))
                if record.last is None or stamp.counter > record.last[0]:
                    record.last = (stamp.counter, at)
                record.frames += 1


def excused(at: float, cuts: list[Cut], began: float) -> bool:
    """A frame missing while its camera was cut or reconnecting, or before the warm-up ended."""
    if at < began:
        return True
    return any(cut.at - 0.5 <= at <= (cut.back_at or cut.at + CUT_SECONDS) + RECONNECT_ALLOWANCE for cut in cuts)


def storage_figures(storage: Path) -> tuple[int, float]:
    """(bytes on disk, age in seconds of the oldest segment file)."""
    total, oldest = 0, time.time()
    for path in storage.glob("*/*/*.ts"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        total += stat.st_size
        oldest = min(oldest, stat.st_mtime)
    return total, time.time() - oldest


def run(count: int, minutes: float, retention_minutes: float, restarts: int, seed: int) -> dict:
    seconds = minutes * 60
    server = prepare(count, retention_minutes)
    storage = server.storage_dir
    ids = {int(c.name.split("-")[1]): c.pk for c in Camera.objects.all()}
    needed = count * BITRATE * 1000 / 8 * (retention_minutes * 60 * 1.3 + 120) / 1e9
    free = shutil.disk_usage(SCRATCH).free / 1e9
    if free < needed + 5:
        raise SystemExit(f"{count} cameras with {retention_minutes:g} min of retention need about {needed:.0f} GB; "
                         f"{free:.0f} GB free")  # fmt: skip
    rng = random.Random(seed)
    margin = min(180.0, seconds / 4)  # no cut in the first and last three minutes (of an hour)
    cuts = sorted(
        (Cut(n, rng.uniform(margin, seconds - margin), "stopped" if k % 2 == 0 else "stalled")
         for n in ids for k in range(restarts)),
        key=lambda cut: cut.at,
    )  # fmt: skip
    sim = start(["simulate_cameras", "--count", str(count), "--base-port", str(BASE_PORT), "--control-port",
                 str(CONTROL_PORT), "--width", "1920", "--height", "1080", "--fps", str(FPS), "--codecs", "h264",
                 "--gop", str(GOP), "--bitrate", str(BITRATE)], "sim", VAR_DIR=str(SCRATCH))  # fmt: skip
    time.sleep(4)
    agent = start(["run_video_server", "--server", server.name, "--loglevel", "WARNING"], "agent")
    records = {n: CameraRecord() for n in ids}
    samples = []
    try:
        time.sleep(20)  # worker start-up and every stream opened
        process = psutil.Process(agent.pid)
        began = time.time()
        for cut in cuts:
            cut.at += began
        pending, returning = list(cuts), []
        next_sample = next_scan = began
        while time.time() < began + seconds:
            now = time.time()
            while pending and pending[0].at <= now:
                cut = pending.pop(0)
                set_state(cut.camera, cut.state)
                returning.append(cut)
            for cut in [c for c in returning if c.at + CUT_SECONDS <= now]:
                set_state(cut.camera, "streaming")
                cut.back_at = time.time()
                returning.remove(cut)
            if now >= next_sample:
                on_disk, oldest = storage_figures(storage)
                samples.append({"minute": round((now - began) / 60, 2), "rss_mb": process.memory_info().rss / 2**20,
                                "fds": process.num_fds(), "threads": process.num_threads(),
                                "disk_gb": on_disk / 1e9, "oldest_recording_s": oldest,
                                "cpu_percent": process.cpu_percent()})  # fmt: skip
                print(f"  minute {samples[-1]['minute']:.0f}: {samples[-1]['rss_mb']:.0f} MB, "
                      f"{samples[-1]['fds']} fds, {samples[-1]['threads']} threads, {on_disk / 1e9:.1f} GB on disk, "
                      f"oldest {oldest:.0f} s", flush=True)  # fmt: skip
                next_sample += 60
            if now >= next_scan:
                scan(storage, ids, records)
                next_scan += 20
            time.sleep(0.2)
        for cut in returning:
            set_state(cut.camera, "streaming")
        cpu_total = sum(process.cpu_times()[:2])
    finally:
        stop(agent)  # a graceful stop closes and indexes every segment
        stop(sim)
    scan(storage, ids, records, final=True)
    lost = sorted(at for record in records.values() for at in record.missing() if not excused(at, cuts, began))
    reconnects = []  # from a camera's return to its first frame recorded after the cut
    for cut in cuts:
        after = [resumed for before, _, resumed in records[cut.camera].gaps if before <= cut.at + 0.5 < resumed]
        if cut.back_at is not None and after:
            reconnects.append(after[0] - cut.back_at)
    shutil.rmtree(storage, ignore_errors=True)  # no recording left behind
    half = [s for s in samples if s["minute"] >= minutes / 2]
    after = [s for s in samples if s["minute"] >= min(3, minutes / 4)]
    return {
        "cameras": count, "minutes": minutes, "retention_minutes": retention_minutes, "cuts": len(cuts),
        "frames_recorded": sum(r.frames for r in records.values()), "frames_lost_while_streaming": len(lost),
        "lost_at_minutes": [round((at - began) / 60, 2) for at in lost[:20]],
        "frames_missing_in_cuts": sum(len(r.missing()) for r in records.values()) - len(lost),
        "reconnect_seconds_median": round(statistics.median(reconnects), 2) if reconnects else None,
        "reconnect_seconds_max": round(max(reconnects), 2) if reconnects else None,
        "segments_read": sum(len(r.seen) - r.unread for r in records.values()),
        "segments_expired_unread": sum(r.unread for r in records.values()),
        "rss_mb_half_way": round(half[0]["rss_mb"], 1) if half else None,
        "rss_mb_end": round(samples[-1]["rss_mb"], 1),
        "rss_growth_second_half_percent": round(100 * (samples[-1]["rss_mb"] / half[0]["rss_mb"] - 1), 2) if half
        else None,
        "fds_after_warmup": after[0]["fds"] if after else None, "fds_end": samples[-1]["fds"],
        "threads_after_warmup": after[0]["threads"] if after else None, "threads_end": samples[-1]["threads"],
        "disk_gb_max": round(max(s["disk_gb"] for s in samples), 2),
        "oldest_recording_max_s": round(max(s["oldest_recording_s"] for s in after), 1) if after else None,
        "agent_cpu_percent_per_camera": round(100 * cpu_total / (time.time() - began) / count, 2),
        "samples": samples,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--retention-minutes", type=float, default=6)
    parser.add_argument("--restarts", type=int, default=3, help="cuts per camera during the run")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    result = run(args.cameras, args.minutes, args.retention_minutes, args.restarts, args.seed)
    print(f"\nSoak: {result['cameras']} RTSP H.264 cameras (1080p, {FPS} fps, {BITRATE / 1000:g} Mbit/s, GOP {GOP:g} s"
          ") "
          f"for {result['minutes']:g} min, {result['cuts']} cuts of {CUT_SECONDS:g} s, retention "
          f"{result['retention_minutes']:g} min, {os.cpu_count()} cores")  # fmt: skip
    for key, value in result.items():
        if key != "samples":
            print(f"  {key}: {value}")
    OUT.mkdir(exist_ok=True)
    (OUT / "soak.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
