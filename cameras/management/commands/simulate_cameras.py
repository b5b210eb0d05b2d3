import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from cameras.simulator import STATES, CameraSimulator


class Command(BaseCommand):
    help = (
        "Serve simulated MJPEG cameras on loopback: camera n on port BASE_PORT+n-1 at /video.mjpg. "
        f"POST /cameras/<n>/<state> on the control port switches a camera ({', '.join(STATES)})."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=9)
        parser.add_argument("--base-port", type=int, default=8601)
        parser.add_argument("--control-port", type=int, default=8600, help="0 for none")
        parser.add_argument("--width", type=int, default=640)
        parser.add_argument("--height", type=int, default=360)
        parser.add_argument("--fps", type=float, default=5.0)
        parser.add_argument("--quality", type=int, default=80, help="JPEG quality, 10-100")
        parser.add_argument("--host", default="127.0.0.1", help="a loopback address")

    def handle(self, *args, **options):
        if not 1 <= options["count"] <= 1000:
            raise CommandError("--count must be between 1 and 1000")
        if not 0.1 <= options["fps"] <= 60:
            raise CommandError("--fps must be between 0.1 and 60")
        if not (16 <= options["width"] <= 4096 and 16 <= options["height"] <= 4096):
            raise CommandError("--width and --height must be between 16 and 4096")
        try:
            simulator = CameraSimulator(
                options["count"], options["base_port"], options["control_port"] or None, host=options["host"],
                width=options["width"], height=options["height"], fps=options["fps"], quality=options["quality"],
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        asyncio.run(self.serve(simulator))

    async def serve(self, simulator):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await simulator.start()
        first, last = simulator.cameras[1], simulator.cameras[len(simulator.cameras)]
        self.stdout.write(f"Serving {len(simulator.cameras)} cameras: {first.url} … {last.url}", ending="\n")
        self.stdout.flush()
        await stop.wait()
        await simulator.stop()
