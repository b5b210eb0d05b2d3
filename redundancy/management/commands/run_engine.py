import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from redundancy.runner import EngineLoop


class Command(BaseCommand):
    help = (
        "Run a redundancy engine worker: it takes its share of the multiserver systems by lease and decides "
        "failover and failback for them, woken by what happens and passing at least every ENGINE_TICK_SECONDS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--worker", default=None,
                            help="this worker's name in the leases and the logs (default: a random one)")  # fmt: skip
        parser.add_argument("--metrics-port", type=int, default=None,
                            help="serve this worker's metrics and health on this port (default: ENGINE_METRICS_PORT; "
                                 "0: none); each worker of one host needs its own")  # fmt: skip
        parser.add_argument("--metrics-address", default=None,
                            help="the address to serve them on (default: ENGINE_METRICS_ADDRESS)")  # fmt: skip

    def handle(self, *args, **options):
        port = settings.ENGINE_METRICS_PORT if options["metrics_port"] is None else options["metrics_port"]
        if not 0 <= port <= 65535:
            raise CommandError(f"--metrics-port must be a port number from 0 (none) to 65535, not {port}")
        loop = EngineLoop(worker=options["worker"], metrics_port=port, metrics_address=options["metrics_address"])

        def stop(signum, frame):
            loop.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        loop.run()
