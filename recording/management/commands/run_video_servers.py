import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from servers.models import Server

MANAGE = Path(settings.BASE_DIR) / "manage.py"


class Command(BaseCommand):
    help = (
        "Run one video-server agent per server on this machine, each in its own process, and restart an "
        "agent that dies (as a service manager would): one video server failing never stops the others."
    )

    def add_arguments(self, parser):
        parser.add_argument("--server", action="append", help="a server name (repeat); default: every server")
        parser.add_argument("--restart-after", type=float, default=10.0, help="seconds before a dead agent restarts")

    def handle(self, *args, server=None, restart_after=10.0, **options):
        names = server or list(Server.objects.values_list("name", flat=True))
        unknown = sorted(set(names) - set(Server.objects.filter(name__in=names).values_list("name", flat=True)))
        if unknown or not names:
            raise CommandError(f"No video server named {', '.join(unknown)}." if unknown else "No video servers.")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        agents = {name: self.start(name) for name in names}
        died_at: dict[str, float] = {}
        while not stopping:
            for name, process in agents.items():
                if process.poll() is None:
                    continue
                if name not in died_at:
                    died_at[name] = time.monotonic()
                    self.stderr.write(f"server={name} event=agent_exited returncode={process.returncode} "
                                      f"restart_in={restart_after:g}s")  # fmt: skip
                elif time.monotonic() - died_at[name] >= restart_after:
                    del died_at[name]
                    agents[name] = self.start(name)
            time.sleep(0.2)
        for process in agents.values():  # a graceful stop each: they hand their cameras over first
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + settings.AGENT_HANDOVER_TIMEOUT_SECONDS + 15
        for process in agents.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()

    def start(self, name: str) -> subprocess.Popen:
        self.stdout.write(f"server={name} event=agent_starting")
        self.stdout.flush()
        return subprocess.Popen([sys.executable, str(MANAGE), "run_video_server", "--server", name])
