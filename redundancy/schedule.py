"""The periodic tasks (``settings.PERIODIC_TASKS``: the mail sweep, the expiry of exports), sent by the engine.

No beat process: Celery beat is one more single point of failure, and its highly available variants hold
their lock for minutes. Every engine worker runs a ``Schedule`` thread; the one holding the schedule's
lease (``schedule-lease``, renewed every ``interval``, free after ``ttl``) sends the tasks that are due.
When each task was last sent is kept in Redis (``schedule-sent``, by Redis's clock), so a worker that
takes the lease over goes on with the same rhythm instead of sending everything again at once. A send that
fails (the broker away) is logged and tried again at the next round.
"""

import logging
import threading

import redis
from celery import current_app
from django.conf import settings

from protocol import live
from redundancy.leases import RELEASE

log = logging.getLogger(__name__)

# KEYS[1] the lease, KEYS[2] the hash of last sends; ARGV[1] this worker, ARGV[2] the lease in ms, then pairs of
# (task name, period in seconds). Takes or renews the lease unless another worker holds it, and marks sent the
# tasks whose period has passed; returns them (nothing when another worker holds the lease).
_ROUND = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return {}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = {}
for i = 3, #ARGV, 2 do
  local last = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  if now - last >= tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[2], ARGV[i], string.format('%.6f', now))
    due[#due + 1] = ARGV[i]
  end
end
return due
"""

class Schedule:
    def __init__(self, redis_client: redis.Redis, worker: str, tasks: dict | None = None, ttl: float | None = None,
                 interval: float = 1.0, send=None):  # fmt: skip
        """``tasks``: name → {"task", "schedule" (seconds), "options" (for send_task)}; ``send(task, **options)``
        sends one (the Celery app's ``send_task`` unless given)."""
        self.redis = redis_client
        self.worker = worker
        self.tasks = settings.PERIODIC_TASKS if tasks is None else tasks
        self.ttl = settings.ENGINE_LEASE_SECONDS if ttl is None else ttl
        self.interval = interval
        self._send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedule", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            self.redis.eval(RELEASE, 1, live.key("schedule-lease"), self.worker)  # the next worker takes it now
        except redis.RedisError:
            pass  # it expires

    def round(self) -> list[str]:
        """Renew or take the lease and send what is due; returns the names of the tasks sent."""
        periods = [part for name, entry in self.tasks.items() for part in (name, float(entry["schedule"]))]
        due = self.redis.eval(_ROUND, 2, live.key("schedule-lease"), live.key("schedule-sent"), self.worker,
                              int(self.ttl * 1000), *periods)  # fmt: skip
        sent = []
        for name in (n.decode() for n in due):
            entry = self.tasks[name]
            try:
                self.send(entry["task"], **entry.get("options", {}))
            except Exception as exc:  # the broker away: the next round after the period tries again
                log.warning("event=periodic_task_not_sent task=%s error=%s", name, type(exc).__name__)
                continue
            sent.append(name)
        return sent

    def send(self, task: str, **options) -> None:
        if self._send is not None:
            self._send(task, **options)
            return
        current_app.send_task(task, retry=False, **options)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except redis.RedisError:
                pass  # no lease without Redis; the next round tries again
            except Exception:
                log.exception("event=schedule_round_failed")
            self._stop.wait(self.interval)
