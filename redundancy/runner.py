"""The engine's own loop (``manage.py run_engine``): a pass whenever something happened, and on time.

A pass runs when it is woken (a message on the engine's wake-up channel: an agent's stream states
changed, a shutdown announced, an operator's drain or fail-back; or the agent watch saw an agent's
process end), when a server's heartbeat is about to pass a window that changes a decision, and at
least every ``ENGINE_TICK_SECONDS`` (the backstop: a frozen host closes nothing and says nothing).
Passes never overlap; wake-ups that arrive during a pass make one more pass after it. The periodic
tasks are sent by a thread of the loop (``redundancy.schedule``), from one worker at a time. Each pass is
measured (``redundancy.metrics``); with a metrics port, the worker's metrics and health are served on it.
"""

import logging
import threading
import time

import redis
from django.conf import settings
from django.db import close_old_connections, connection

from protocol import connections, live
from redundancy.engine import Engine, TickResult
from redundancy.metrics import EngineMetrics, MetricsServer
from redundancy.schedule import Schedule
from redundancy.status import StatusPublisher
from redundancy.watch import AgentWatch

log = logging.getLogger(__name__)

DEADLINE_SLACK = 0.02  # seconds after a window passes that the pass runs: the heartbeat is then surely late
SHORTEST_WAIT = 0.01


class EngineLoop:
    def __init__(self, engine: Engine | None = None, tick_seconds: float | None = None, watch_agents: bool = True,
                 worker: str | None = None, schedule: bool = True, metrics_port: int = 0,
                 metrics_address: str | None = None):  # fmt: skip
        """``metrics_port``: where the worker's metrics and health are served (0: nowhere; ``run_engine`` gives
        ``ENGINE_METRICS_PORT``), on ``metrics_address`` (None: ``ENGINE_METRICS_ADDRESS``)."""
        self.engine = engine or Engine(publisher=StatusPublisher(live.client()), worker=worker)
        self.schedule = Schedule(self.engine.redis, self.engine.leases.worker) if schedule else None
        self.tick_seconds = settings.ENGINE_TICK_SECONDS if tick_seconds is None else tick_seconds
        self.woken = threading.Event()
        self.stopping = threading.Event()
        self.watch = AgentWatch(on_gone=self._agent_gone, on_back=self._agent_back) if watch_agents else None
        self._listener = threading.Thread(target=self._listen, name="engine-wake", daemon=True)
        self._keeper = threading.Thread(target=self._keep_leases, name="engine-leases", daemon=True)
        self._watched: dict[str, tuple[str, int]] = {}
        self.passes = 0
        self.metrics = EngineMetrics(self.engine.leases.worker, self.tick_seconds)
        address = settings.ENGINE_METRICS_ADDRESS if metrics_address is None else metrics_address
        self.metrics_server = MetricsServer(self.metrics, address, metrics_port) if metrics_port else None

    def _agent_gone(self, name: str) -> None:
        log.warning("server=%s event=agent_process_ended", name)
        self.engine.agent_gone(name)
        self.woken.set()

    def _agent_back(self, name: str) -> None:
        self.engine.agent_back(name)
        self.woken.set()

    def _listen(self) -> None:
        """Wake-ups from Redis's pub/sub channel; a lost subscription is made again (missed ones cost latency)."""
        while not self.stopping.is_set():
            try:
                subscriber = connections.redis_client(socket_connect_timeout=1.0, socket_keepalive=True,
                                                      health_check_interval=10)  # fmt: skip
                with subscriber.pubsub(ignore_subscribe_messages=True) as channel:
                    channel.subscribe(live.key("engine-wake"))
                    self.woken.set()  # whatever happened while unsubscribed
                    while not self.stopping.is_set():
                        if channel.get_message(timeout=1.0) is not None:
                            self.woken.set()
            except redis.RedisError:
                self.stopping.wait(0.5)

    def _keep_leases(self) -> None:
        """Renew the leases three times a lease, whatever the passes do: a long pass keeps them; a frozen or
        killed process does not, and loses them after the lease."""
        leases = self.engine.leases
        while not self.stopping.wait(leases.ttl / 3):
            try:
                leases.renew()
            except redis.RedisError:
                pass  # the next pass finds out

    def run(self) -> None:
        if self.watch is not None:
            self.watch.start()
        self._listener.start()
        self._keeper.start()
        if self.schedule is not None:
            self.schedule.start()
        if self.metrics_server is not None:
            self.metrics_server.start()
        log.info("event=engine_started worker=%s tick=%.2fs", self.engine.leases.worker, self.tick_seconds)
        try:
            while not self.stopping.is_set():
                self.woken.clear()
                started = time.monotonic()
                try:
                    result = self.engine.tick()
                except Exception:  # a bug must not stop failovers for good: log it, pass again at the backstop
                    log.exception("event=tick_failed")
                    result = TickResult(ran=False, abandoned="failed")
                self.passes += 1
                try:
                    self.metrics.observe(result, time.monotonic() - started, self.engine)
                except Exception:  # the figures must never cost a decision
                    log.exception("event=metrics_failed")
                close_old_connections()
                self._follow_agents()
                wait = self.tick_seconds - (time.monotonic() - started)
                if result.ran:
                    now = self.engine.last_now
                    due = self.engine.next_deadline(now) if now is not None else None
                    if due is not None:
                        wait = min(wait, due + DEADLINE_SLACK - (time.monotonic() - started))
                ends = self.engine.leases.others_end_in  # another worker's lease ends: take it if it is not renewed
                if ends is not None:
                    wait = min(wait, ends + DEADLINE_SLACK - (time.monotonic() - started))
                self.woken.wait(max(SHORTEST_WAIT, wait))
        finally:
            self.stopping.set()
            self._keeper.join(timeout=5)  # before the leases are given back: it would renew this worker's presence
            if self.schedule is not None:
                self.schedule.stop()
            if self.watch is not None:
                self.watch.stop()
            self.engine.stop()
            if self.metrics_server is not None:
                self.metrics_server.stop()
            connection.close()  # this thread's
            log.info("event=engine_stopped worker=%s", self.engine.leases.worker)

    def _follow_agents(self) -> None:
        """Watch the agent of every server of the site, not only of the systems this worker decides for: a worker
        that takes a system over (its worker killed, frozen, or a Redis failover that outlived the leases) knows
        at once which of its agents ended meanwhile. The configuration may have changed."""
        if self.watch is None:
            return
        config = self.engine.cache.config
        wanted = {} if config is None else {s.name: (s.address, s.api_port) for s in config.servers.values()}
        if wanted != self._watched:
            self._watched = wanted
            self.watch.watch(wanted)

    def stop(self) -> None:
        self.stopping.set()
        self.woken.set()
