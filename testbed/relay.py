"""A TCP relay on the bed's bridge to a service on loopback, with a delay and a jitter of its own.

The kernel here has no netem, so a slow, jittery link is made by the relay in its path: each chunk read is
written on after ``delay`` plus a random part of ``jitter`` seconds, never before the chunk before it (TCP keeps
order: a late chunk holds back those behind it, as a retransmission does). Both directions are delayed alike.
One relay per link (a video server's path to Redis, say), so each link has its own.
"""

import asyncio
import logging
import random
import threading
import time

log = logging.getLogger(__name__)

CHUNK = 65536


class Relay:
    """``listen`` (host, port; port 0 for any) relayed to ``target`` (host, port) on a thread of its own."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.target = target
        self.delay = 0.0
        self.jitter = 0.0
        self._random = random.Random()
        self._loop = asyncio.new_event_loop()
        self._connections: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, *listen, reuse_address=True))
        self.address = self._server.sockets[0].getsockname()[:2]

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=20)

    def set_link(self, delay: float = 0.0, jitter: float = 0.0) -> None:
        """From now on each chunk waits ``delay`` plus up to ``jitter`` seconds (uniform)."""
        if delay < 0 or jitter < 0:
            raise ValueError("delay and jitter are seconds, not negative")
        self.delay, self.jitter = delay, jitter

    def _wait(self) -> float:
        return self.delay + (self._random.uniform(0, self.jitter) if self.jitter else 0.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._connections |= {writer, up_writer}
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._connections.discard(w)
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver():
            while (item := await queue.get()) is not None:
                at, data = item
                if (pause := at - time.monotonic()) > 0:
                    await asyncio.sleep(pause)
                writer.write(data)
                await writer.drain()
            writer.write_eof() if writer.can_write_eof() else None

        sender = asyncio.ensure_future(deliver())
        last = 0.0
        try:
            while data := await reader.read(CHUNK):
                last = max(last, time.monotonic() + self._wait())
                queue.put_nowait((last, data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait(None)
            try:
                await sender
            except (ConnectionError, OSError):
                pass

    def close(self) -> None:
        async def stop():
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
