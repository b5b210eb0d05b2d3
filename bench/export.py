"""Export of one hour of a 4 Mbit/s 1080p H.264 camera as one MP4 (target: under 10 s on this machine).

    .venv/bin/python bench/export.py [--minutes 60] [--bitrate 4000] [--runs 3]

Ten seconds of 1080p H.264 at the bitrate (25 fps, a keyframe every 2 s, no B-frames, as cameras send it)
are encoded once with PyAV; the hour is 360 segments of them, remuxed with continuous times as an agent's
stream copy writes them, indexed for one server and served by its real recording server on loopback
(signed HTTP; on a site the recording server and its checksums run on the video server's host, here on
this one). Each run is ``playback.export.export`` as the export worker calls it: the timeline, every
segment fetched and checked against its server's SHA-256, the packets muxed into one MP4, its SHA-256
and manifest. Median of the runs on stdout and in bench/out/export.json.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import av  # noqa: E402
import numpy as np  # noqa: E402
from common import OUT, SCRATCH, free_port  # noqa: F401 (sets Django up on a scratch site)
from django.core.management import call_command  # noqa: E402

from cameras.models import Camera  # noqa: E402
from playback import export  # noqa: E402
from recording.models import Segment  # noqa: E402
from recording.segments import segment_path  # noqa: E402
from recording.serving import RecordingServer  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402

FPS, SEGMENT_SECONDS, GOP_SECONDS = 25, 10, 2
WIDTH, HEIGHT = 1920, 1080
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def encode_ten_seconds(bitrate_kbps: int) -> tuple[list[tuple[bytes, int, bool]], av.CodecContext]:
    """(bytes, pts in frames, keyframe) of 10 s of 1080p H.264 at the bitrate, in MPEG-TS's 90 kHz."""
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    context.time_base, context.framerate = Fraction(1, FPS), Fraction(FPS)
    context.bit_rate = bitrate_kbps * 1000
    context.options = {"preset": "ultrafast", "x264-params": f"keyint={FPS * GOP_SECONDS}:min-keyint="
                       f"{FPS * GOP_SECONDS}:scenecut=0:bframes=0:vbv-maxrate={bitrate_kbps}:vbv-bufsize="
                       f"{bitrate_kbps}:nal-hrd=cbr"}  # fmt: skip
    rng = np.random.default_rng(14)
    noise = rng.integers(0, 255, (HEIGHT + 64, WIDTH + 64, 3), dtype=np.uint8)  # a scene that costs its bitrate
    packets = []
    for index in range(FPS * SEGMENT_SECONDS):
        shift = index * 3 % 64
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(noise[shift : shift + HEIGHT, :WIDTH]), "bgr24")
        frame.pts = index
        packets += [(bytes(p), p.pts, p.is_keyframe) for p in context.encode(frame.reformat(format="yuv420p"))]
    packets += [(bytes(p), p.pts, p.is_keyframe) for p in context.encode(None)]
    return packets, context


def write_hour(server: Server, camera: Camera, minutes: int, bitrate_kbps: int) -> int:
    """The camera's recordings on ``server``: consecutive segments of the same ten seconds, times continuous."""
    packets, context = encode_ten_seconds(bitrate_kbps)
    ticks = 90000 // FPS
    rows, total = [], 0
    for number in range(minutes * 60 // SEGMENT_SECONDS):
        started = T0 + timedelta(seconds=number * SEGMENT_SECONDS)
        path = segment_path(server.storage_dir, camera.pk, started.timestamp(), ".ts")
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w", format="mpegts") as out:
            stream = out.add_stream("h264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            stream.codec_context.extradata = context.extradata
            stream.time_base = Fraction(1, 90000)
            for data, pts, keyframe in packets:
                packet = av.Packet(data)
                packet.pts = packet.dts = (number * FPS * SEGMENT_SECONDS + pts) * ticks
                packet.time_base, packet.stream = Fraction(1, 90000), stream
                packet.is_keyframe = keyframe
                out.mux(packet)
        size = path.stat().st_size
        total += size
        rows.append(Segment(camera=camera, server=server, started_at=started, frame_count=len(packets),
                            ended_at=started + timedelta(seconds=(len(packets) - 1) / FPS), size_bytes=size,
                            path=str(path)))  # fmt: skip
    Segment.objects.bulk_create(rows)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--bitrate", type=int, default=4000, help="kbit/s")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    system = MultiserverSystem.objects.create(name="bench")
    server = Server.objects.create(system=system, name="srv-a", address="127.0.0.1", api_port=free_port(),
                                   recordings_path=str(SCRATCH / "recordings" / "srv-a"))  # fmt: skip
    License.objects.create(key="BENCH-EXPORT", server=server, ip_camera_channels=4)
    camera = Camera.objects.create(name="gate", stream_url="rtsp://127.0.0.1:8554/gate", primary_server=server,
                                   codec="h264", fps=FPS)  # fmt: skip
    started = time.monotonic()
    recorded = write_hour(server, camera, args.minutes, args.bitrate)
    os.sync()  # recordings an hour old are on disk: the runs must not also pay for writing these out
    print(f"recordings: {args.minutes} min, {recorded / 1e6:.0f} MB ({recorded * 8 / args.minutes / 60 / 1e6:.2f} "
          f"Mbit/s), written in {time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
    recordings = RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
    recordings.start()
    out = SCRATCH / "exports" / "gate.mp4"
    out.parent.mkdir(parents=True)
    seconds, cpu_seconds, manifest = [], [], None
    try:
        for run in range(args.runs):
            # Each run writes a new file, as each export does (replacing one would flush it to disk first).
            out.unlink(missing_ok=True)
            begin, cpu = time.perf_counter(), time.process_time()
            manifest = export.export(camera, T0, T0 + timedelta(minutes=args.minutes), out)
            seconds.append(time.perf_counter() - begin)
            cpu_seconds.append(time.process_time() - cpu)
            size_mb = manifest["file"]["size"] / 1e6
            print(f"  run {run + 1}: {seconds[-1]:.2f} s ({cpu_seconds[-1]:.1f} s of CPU, the recording server's "
                  f"included), {manifest['frames']} frames, {size_mb:.0f} MB", flush=True)  # fmt: skip
    finally:
        recordings.stop()
    median = statistics.median(seconds)
    size = manifest["file"]["size"]
    result = {"minutes": args.minutes, "bitrate_kbps": args.bitrate, "resolution": f"{WIDTH}x{HEIGHT}", "fps": FPS,
              "segments": len(manifest["segments"]), "frames": manifest["frames"], "file_mb": round(size / 1e6, 1),
              "runs_s": [round(s, 2) for s in seconds], "median_s": round(median, 2),
              "cpu_s": [round(s, 1) for s in cpu_seconds], "load_average": round(os.getloadavg()[0], 2),
              "mb_per_s": round(size / 1e6 / median, 1), "target_s": 10,
              "command": " ".join([".venv/bin/python", "bench/export.py", *sys.argv[1:]])}  # fmt: skip
    print(f"export of {args.minutes} min at {args.bitrate} kbit/s ({WIDTH}x{HEIGHT}): median {median:.2f} s over "
          f"{len(seconds)} runs, {size / 1e6 / median:.0f} MB/s (target under 10 s)")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "export.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(SCRATCH / "recordings", ignore_errors=True)
    shutil.rmtree(SCRATCH / "exports", ignore_errors=True)


if __name__ == "__main__":
    main()
