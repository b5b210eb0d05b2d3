"""Waiting in tests on something observable (a Redis key, a database row, a segment's frames, the engine's
passes), bounded in time, rather than sleeping a guessed while."""

import time


def wait_for(condition, timeout=10.0, interval=0.05, message="condition"):
    """Poll ``condition`` until it returns something truthy, and return that; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def wait_for_engine_passes(spanning: float, timeout: float = 30.0) -> None:
    """Until the engine (a worker that decides) has passed ``spanning`` seconds after the first pass seen, by its
    clock (``engine-last-pass``): time that passed with decisions made, not only on the wall."""
    from protocol import live

    first = []

    def passed():
        value = live.client().get(live.key("engine-last-pass"))
        if value is None:
            return False
        first[:] = first or [float(value)]
        return float(value) - first[0] >= spanning

    wait_for(passed, timeout, interval=0.02, message=f"engine passes over {spanning} s")
