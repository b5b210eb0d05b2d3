"""The camera simulator inside a test's process: a ``CameraSimulator`` on an event loop thread of its own,
driven synchronously (the ``simulator`` fixture starts and closes them)."""

import asyncio
import threading

from simulation.simulator import CameraSimulator
from utilities.ports import free_port_block


class RunningSimulator:
    """A CameraSimulator on its own event loop thread, driven synchronously from a test."""

    def __init__(self, count: int, **options):
        self.simulator = CameraSimulator(count, free_port_block(count), None, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.simulator.start())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

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
