import signal

from django.core.management.base import BaseCommand

from redundancy.runner import EngineLoop


class Command(BaseCommand):
    help = (
        "Run a redundancy engine worker: it takes its share of the multiserver systems by lease and decides "
        "failover and failback for them, woken by what happens and passing at least every ENGINE_TICK_SECONDS."
    )

    def handle(self, *args, **options):
        loop = EngineLoop()

        def stop(signum, frame):
            loop.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        loop.run()
