"""The engine's passes as seen from outside, for tests and benchmarks of faults: ``engine-last-pass`` (the time
of the last pass of a worker that decides, by Redis's clock) sampled every 20 ms."""

import threading

import redis

from protocol import live


class PassClock(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.seen: set[float] = set()
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(0.02):
            try:
                value = live.client().get(live.key("engine-last-pass"))
            except redis.RedisError:
                continue  # Redis away: no pass can be recorded either
            if value:
                self.seen.add(float(value))

    def longest_gap(self, since: float, until: float) -> float | None:
        """The longest time without a pass from the last one before ``since`` to the first one after ``until``
        (Redis's clock); None when fewer than two passes were seen."""
        passes = sorted(self.seen)
        window = [t for t in passes if t <= since][-1:] + [t for t in passes if since < t < until]
        window += [t for t in passes if t >= until][:1]
        return max((b - a for a, b in zip(window, window[1:], strict=False)), default=None)

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)
