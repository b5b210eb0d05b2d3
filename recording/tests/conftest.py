"""Fixtures for the agent's tests: a real camera simulator on loopback and agents in threads."""

import asyncio
import socket
import threading
import time

import pytest

from cameras.simulator import CameraSimulator
from recording import live
from recording.agent import VideoServerAgent


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class RunningSimulator:
    """A CameraSimulator on its own event loop thread, driven synchronously from a test."""

    def __init__(self, count: int, **options):
        # Consecutive free ports: ask for a block and check it.
        for _ in range(20):
            base = free_ports(1)[0]
            if base + count < 65000 and all(_port_free(base + i) for i in range(count)):
                break
        self.simulator = CameraSimulator(count, base, None, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.simulator.start())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def url(self, number: int) -> str:
        return self.simulator.cameras[number].url

    def set_state(self, number: int, state: str) -> None:
        self.call(self.simulator.cameras[number].set_state(state))

    def close(self) -> None:
        self.call(self.simulator.stop())
        self.call(_cancel_other_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


async def _cancel_other_tasks() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture
def simulator():
    running = []

    def start(count=3, width=320, height=180, fps=5.0):
        sim = RunningSimulator(count, width=width, height=height, fps=fps)
        running.append(sim)
        return sim

    yield start
    for sim in running:
        sim.close()


@pytest.fixture
def agents(settings):
    """Start agents in this process (threads), with short timings; all are stopped after the test."""
    started = []

    def start(name, **options):
        timings = {"heartbeat_interval": 0.25, "sweep_interval": 0.5, "open_timeout": 1.0, "read_timeout": 1.0,
                   "segment_seconds": 2.0}  # fmt: skip
        agent = VideoServerAgent(name, **{**timings, **options})
        agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def wait_for(condition, timeout=10.0, interval=0.05, message="condition"):
    """Poll ``condition`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def redis_client():
    return live.client()
