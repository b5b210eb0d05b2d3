import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from simulation.simulator import CODECS, STATES, CameraSimulator


class Command(BaseCommand):
    help = (
        "Serve simulated cameras on loopback: camera n on port BASE_PORT+n-1, MJPEG at /video.mjpg, "
        "H.264 and H.265 at rtsp://host:port/stream (--codecs is cycled over the cameras). "
        f"POST /cameras/<n>/<state> on the control port switches a camera ({', '.join(STATES)}); "
        "/onvif/<n>/media_service there is an RTSP camera's ONVIF media service (SetSynchronizationPoint)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=9)
        parser.add_argument("--base-port", type=int, default=8601)
        parser.add_argument("--control-port", type=int, default=8600, help="0 for none")
        parser.add_argument("--width", type=int, default=640)
        parser.add_argument("--height", type=int, default=360)
        parser.add_argument("--fps", type=float, default=5.0)
        parser.add_argument("--quality", type=int, default=80, help="JPEG quality, 10-100")
        parser.add_argument(
            "--codecs", default="mjpeg", help=f"comma-separated, cycled over the cameras: {', '.join(CODECS)}"
        )
        parser.add_argument("--gop", type=float, default=2.0, help="RTSP cameras: seconds between keyframes")
        parser.add_argument("--bitrate", type=int, default=0, help="RTSP cameras: kbit/s (0: fit for the picture)")
        parser.add_argument("--max-viewers", type=int, default=0,
                            help="RTSP cameras: the most sessions at once (0: no limit)")  # fmt: skip
        parser.add_argument("--fps-drop-per-viewer", type=float, default=0.0, metavar="P",
                            help="percent of the frame rate a camera loses for each viewer beyond the first, as "
                                 "some real cameras do (frames come later, none is dropped); 0: none")  # fmt: skip
        parser.add_argument("--host", default="127.0.0.1",
                            help="a loopback address (or, in a test bed's namespace, its address)")  # fmt: skip

    def handle(self, *args, **options):
        if not 1 <= options["count"] <= 1000:
            raise CommandError("--count must be between 1 and 1000")
        if not 0.1 <= options["fps"] <= 60:
            raise CommandError("--fps must be between 0.1 and 60")
        if not (16 <= options["width"] <= 1920 and 16 <= options["height"] <= 1080):
            raise CommandError("--width and --height must be between 16x16 and 1920x1080")
        if options["bitrate"] < 0 or options["max_viewers"] < 0:
            raise CommandError("--bitrate and --max-viewers cannot be negative")
        if not 0 <= options["fps_drop_per_viewer"] <= 100:
            raise CommandError("--fps-drop-per-viewer must be between 0 and 100 (percent)")
        if not 0.04 <= options["gop"] <= 60:
            raise CommandError("--gop must be between 0.04 and 60 seconds")
        try:
            simulator = CameraSimulator(
                options["count"], options["base_port"], options["control_port"] or None, host=options["host"],
                codecs=tuple(c.strip() for c in options["codecs"].split(",") if c.strip()),
                width=options["width"], height=options["height"], fps=options["fps"], quality=options["quality"],
                gop_seconds=options["gop"], bitrate_kbps=options["bitrate"], max_viewers=options["max_viewers"],
                fps_drop_per_viewer=options["fps_drop_per_viewer"],
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        asyncio.run(self.serve(simulator))

    async def serve(self, simulator):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await simulator.start(strict=False)
        first, last = simulator.cameras[1], simulator.cameras[len(simulator.cameras)]
        self.stdout.write(f"Serving {len(simulator.cameras)} cameras: {first.url} … {last.url}", ending="\n")
        for camera in simulator.cameras.values():
            if getattr(camera, "onvif_url", None):
                self.stdout.write(f"  camera {camera.number}: {camera.url} ONVIF {camera.onvif_url}", ending="\n")
        self.stdout.flush()
        await stop.wait()
        await simulator.stop()
