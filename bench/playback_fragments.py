"""The playback playlist and its fragments: how long a playlist of an hour takes, how fast fragments are proxied.

    .venv/bin/python bench/playback_fragments.py [--minutes 60] [--bitrate 4000] [--runs 5]

An hour of a 1080p H.264 camera at the bitrate (25 fps, a keyframe every 2 s, no B-frames) in 10 s segments,
times continuous as an agent's stream copy writes them, indexed for one server and served by its real
recording server on loopback (signed HTTP), and ten seconds of a 1080p MJPEG camera beside it. Measured, each
as the web application does it (``playback.hls``): the playlist of the hour starting inside a segment (its
keyframes read from the server), a whole fragment streamed through, a cut one remuxed by stream copy, and an
MJPEG segment transcoded to H.264 (whole, and the first part the playlist makes of it). Medians on stdout
and in bench/out/playback_fragments.json.
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from common import OUT, SCRATCH, free_port  # noqa: F401 (sets Django up on a scratch site)
from django.core.management import call_command  # noqa: E402

from cameras.models import Camera  # noqa: E402
from playback import hls  # noqa: E402
from recording.models import Segment  # noqa: E402
from recording.segments import segment_path  # noqa: E402
from recording.serving import RecordingServer  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402

FPS, SEGMENT_SECONDS, GOP_SECONDS = 25, 10, 2
WIDTH, HEIGHT = 1920, 1080
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def scene(index: int, noise: np.ndarray) -> np.ndarray:
    shift = index * 3 % 64
    return np.ascontiguousarray(noise[shift : shift + HEIGHT, :WIDTH])


def ten_seconds_of_h264(bitrate_kbps: int, noise: np.ndarray):
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    context.time_base, context.framerate = Fraction(1, FPS), Fraction(FPS)
    context.bit_rate = bitrate_kbps * 1000
    keyint = FPS * GOP_SECONDS
    context.options = {"preset": "ultrafast", "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:"
                       f"bframes=0:vbv-maxrate={bitrate_kbps}:vbv-bufsize={bitrate_kbps}:nal-hrd=cbr"}  # fmt: skip
    packets = []
    for index in range(FPS * SEGMENT_SECONDS):
        frame = av.VideoFrame.from_ndarray(scene(index, noise), "bgr24").reformat(format="yuv420p")
        frame.pts = index
        packets += [(bytes(p), p.pts, p.is_keyframe) for p in context.encode(frame)]
    packets += [(bytes(p), p.pts, p.is_keyframe) for p in context.encode(None)]
    return packets, context


def write_h264(server, camera, minutes: int, bitrate_kbps: int, noise) -> int:
    packets, context = ten_seconds_of_h264(bitrate_kbps, noise)
    ticks, rows, total = 90000 // FPS, [], 0
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
                packet.time_base, packet.stream, packet.is_keyframe = Fraction(1, 90000), stream, keyframe
                out.mux(packet)
        total += path.stat().st_size
        rows.append(Segment(camera=camera, server=server, started_at=started, frame_count=len(packets),
                            ended_at=started + timedelta(seconds=(len(packets) - 1) / FPS),
                            size_bytes=path.stat().st_size, path=str(path)))  # fmt: skip
    Segment.objects.bulk_create(rows)
    return total


def write_mjpeg(server, camera, noise) -> Segment:
    """Ten seconds of 1080p MJPEG: a smooth scene with some grain (noise alone would be 1.4 MB a JPEG)."""
    ramp = np.linspace(0, 200, WIDTH, dtype=np.float32)[None, :, None] + np.zeros((HEIGHT, 1, 3), np.float32)
    path = segment_path(server.storage_dir, camera.pk, T0.timestamp(), ".mjpeg")
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = FPS * SEGMENT_SECONDS
    path.write_bytes(b"".join(cv2.imencode(".jpg", (ramp + scene(i, noise) / 8).astype(np.uint8),
                                                  [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
                              for i in range(frames)))  # fmt: skip
    return Segment.objects.create(camera=camera, server=server, started_at=T0, frame_count=frames,
                                  ended_at=T0 + timedelta(seconds=(frames - 1) / FPS),
                                  size_bytes=path.stat().st_size, path=str(path))  # fmt: skip


def timed(runs: int, work) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(runs):
        begin = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - begin)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--bitrate", type=int, default=4000, help="kbit/s")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    system = MultiserverSystem.objects.create(name="bench")
    server = Server.objects.create(system=system, name="srv-a", address="127.0.0.1", api_port=free_port(),
                                   recordings_path=str(SCRATCH / "recordings" / "srv-a"))  # fmt: skip
    License.objects.create(key="BENCH-PLAYBACK", server=server, ip_camera_channels=4)
    camera = Camera.objects.create(name="gate", stream_url="rtsp://127.0.0.1:8554/gate", primary_server=server,
                                   codec="h264", fps=FPS)  # fmt: skip
    door = Camera.objects.create(name="door", stream_url="http://127.0.0.1:8080/door.mjpg", primary_server=server,
                                 codec="mjpeg", fps=FPS)  # fmt: skip
    noise = np.random.default_rng(14).integers(0, 255, (HEIGHT + 64, WIDTH + 64, 3), dtype=np.uint8)
    recorded = write_h264(server, camera, args.minutes, args.bitrate, noise)
    mjpeg = write_mjpeg(server, door, noise)
    print(f"recordings: {args.minutes} min of H.264, {recorded / 1e6:.0f} MB; 10 s of MJPEG, "
          f"{mjpeg.size_bytes / 1e6:.0f} MB", flush=True)  # fmt: skip
    recordings = RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
    recordings.start()
    try:
        since, until = T0 + timedelta(seconds=3), T0 + timedelta(minutes=args.minutes)
        playlist_s, text = timed(args.runs, lambda: hls.playlist(camera, since, until, lambda fragment: "x.ts"))
        fragments = text.count("#EXTINF")
        segment = Segment.objects.filter(camera=camera).order_by("started_at")[1]

        def proxy(start=None, end=None, of=segment):
            return sum(len(chunk) for chunk in hls.fragment(of, start, end))

        start = segment.started_at.timestamp()
        whole_s, whole = timed(args.runs, proxy)
        cut_s, cut = timed(args.runs, lambda: proxy(start + 4.1, start + 9.1))
        mjpeg_s, transcoded = timed(max(1, args.runs // 2), lambda: proxy(of=mjpeg))
        part = hls.MJPEG_FRAGMENT
        part_s, _ = timed(args.runs, lambda: proxy(None, T0.timestamp() + part - 0.5 / FPS, of=mjpeg))
    finally:
        recordings.stop()
    result = {
        "minutes": args.minutes, "bitrate_kbps": args.bitrate, "resolution": f"{WIDTH}x{HEIGHT}", "fps": FPS,
        "playlist": {"fragments": fragments, "median_s": round(playlist_s, 3)},
        "whole_fragment": {"mb": round(whole / 1e6, 2), "median_s": round(whole_s, 3),
                           "mb_per_s": round(whole / 1e6 / whole_s, 1)},
        "cut_fragment": {"mb": round(cut / 1e6, 2), "median_s": round(cut_s, 3),
                         "mb_per_s": round(cut / 1e6 / cut_s, 1)},
        "mjpeg_transcoded": {"seconds_of_video": SEGMENT_SECONDS, "source_mb": round(mjpeg.size_bytes / 1e6, 2),
                             "out_mb": round(transcoded / 1e6, 2), "median_s": round(mjpeg_s, 2),
                             "x_real_time": round(SEGMENT_SECONDS / mjpeg_s, 2), "encoder": hls.h264_encoder(),
                             "first_part_s": part, "first_part_median_s": round(part_s, 2)},
        "command": " ".join([".venv/bin/python", "bench/playback_fragments.py", *sys.argv[1:]]),
    }  # fmt: skip
    print(f"playlist of {args.minutes} min ({fragments} fragments, one cut read from its server): "
          f"median {playlist_s * 1000:.0f} ms")  # fmt: skip
    print(f"whole fragment streamed through: {whole / 1e6:.1f} MB in {whole_s * 1000:.0f} ms, "
          f"{whole / 1e6 / whole_s:.0f} MB/s")  # fmt: skip
    print(
        f"cut fragment remuxed (5 s of 10): {cut / 1e6:.1f} MB in {cut_s * 1000:.0f} ms, {cut / 1e6 / cut_s:.0f} MB/s"
    )
    print(f"MJPEG 1080p transcoded to H.264 ({hls.h264_encoder()}): 10 s of video in {mjpeg_s:.2f} s "
          f"({SEGMENT_SECONDS / mjpeg_s:.1f}x real time); the playlist's first {part:.0f} s part in "
          f"{part_s:.2f} s")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "playback_fragments.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
