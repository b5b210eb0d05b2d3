"""Celery wiring of the video-server agent: its queue, its tasks, and the bootstep that runs it.

The agent itself is plain code (``recording.agent``); this module only connects it to a
worker that consumes the server's own queue.
"""

import logging

from celery import bootsteps, shared_task
from django.conf import settings

from recording.agent import VideoServerAgent

log = logging.getLogger(__name__)

_running: VideoServerAgent | None = None


def queue_for(server_name: str) -> str:
    """A server's agent's queue, within its site's namespace (``LIVE_KEY_PREFIX``): two sites (or test runs) on one
    broker never take each other's notices for servers of the same name."""
    return f"video-server.{settings.LIVE_KEY_PREFIX}.{server_name}"


@shared_task(name="recording.reconcile", ignore_result=True)
def reconcile() -> None:
    """Sent to a server's queue when its desired cameras changed: reconcile now."""
    if _running is not None:
        _running.request_reconcile()


def wake_agent(server_name: str) -> None:
    """Wake a server's agent to reconcile now (its desired set changed); its heartbeat and its periodic sweep cover
    a lost one."""
    reconcile.apply_async(queue=queue_for(server_name), expires=30)


class AgentStep(bootsteps.StartStopStep):
    """Runs the agent beside the worker's consumer; a warm shutdown (SIGTERM) is a graceful leave."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, video_server=None, server_lease=None, **kwargs):
        super().__init__(worker, **kwargs)
        self.server_name = video_server
        self.lease = server_lease  # claimed by the command before the worker started
        self.agent = None

    def include_if(self, worker):
        return self.server_name is not None

    def start(self, worker):
        global _running
        self.agent = VideoServerAgent(
            self.server_name,
            heartbeat_interval=settings.AGENT_HEARTBEAT_SECONDS,
            sweep_interval=settings.AGENT_SWEEP_SECONDS,
            open_timeout=settings.AGENT_OPEN_TIMEOUT_SECONDS,
            read_timeout=settings.AGENT_READ_TIMEOUT_SECONDS,
            segment_seconds=settings.AGENT_SEGMENT_SECONDS,
            lease=self.lease,
        )
        self.agent.start()
        _running = self.agent

    def stop(self, worker):
        global _running
        if self.agent is not None:
            self.agent.leave(settings.AGENT_HANDOVER_TIMEOUT_SECONDS)
            self.agent = _running = None
