import signal

from django.core.management.base import BaseCommand

from redundancy.runner import EngineLoop


class Command(BaseCommand):
    help = (
        "Run a redundancy engine worker: it takes its share of the multiserver systems by lease and decides "
        "failover and failback for them, woken by what happens and passing at least every ENGINE_TICK_SECONDS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--worker", default=None,
                            help="this worker's name in the leases and the logs (default: a random one)")

    def handle(self, *args, **options):
        loop = EngineLoop(worker=options["worker"])

        def stop(signum, frame):
            loop.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        loop.run()
