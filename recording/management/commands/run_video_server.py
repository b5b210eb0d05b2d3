import socket

from celery import current_app as app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from protocol import live
from recording.lease import ServerClaimed, ServerLease, ttl_for
from recording.memory import keep_heap_flat
from recording.tasks import AgentStep, queue_for
from servers.models import Server


class Command(BaseCommand):
    help = (
        "Run one video server's agent: a Celery worker on the server's own queue that heartbeats, "
        "ingests and records its cameras, and runs analytics for the cameras it is primary for."
    )

    def add_arguments(self, parser):
        parser.add_argument("--server", required=True, help="the video server's name")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, server, loglevel, **options):
        keep_heap_flat()  # before any ingest thread allocates
        if not Server.objects.filter(name=server).exists():
            known = ", ".join(Server.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No video server named {server!r}. Known servers: {known}.")
        # One agent per video server: refuse while another live agent holds the server's name.
        lease = ServerLease(live.client(), server, ttl_for(settings.AGENT_HEARTBEAT_SECONDS))
        try:
            lease.acquire()
        except ServerClaimed as exc:
            raise CommandError(str(exc)) from None
        app.steps["worker"].add(AgentStep)
        worker = app.Worker(
            hostname=f"{server}@{socket.gethostname()}",
            queues=[queue_for(server)],
            pool="solo",
            concurrency=1,
            loglevel=loglevel,
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
            video_server=server,
            server_lease=lease,
        )
        worker.start()
        raise SystemExit(worker.exitcode or 0)
