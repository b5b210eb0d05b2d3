"""What open live pages cost the web tier on a large site while nothing happens.

    .venv/bin/python bench/live_sockets.py [--servers 200] [--cameras 10000] [--sockets 100] [--quiet 30]

Builds the site bench/planner.py builds (one multiserver system), writes a heartbeat for every server
and a stream report for every camera (streaming, at its fps), and publishes the status as the engine
does: rows from ``redundancy.status``'s builders, written by a ``StatusPublisher``. Then starts the web
app (Daphne) and, while this process goes on heartbeating every 0.5 s and publishing every second as a
quiet engine would (nothing changes), measures over ``--quiet`` seconds the web process's CPU (from
/proc) with no socket open, then with ``--sockets`` live sockets open (aiohttp clients), and the bytes
each socket received; then the same with one server silent (published once as silent; the page counts
its age on). Also times what one socket cost each second before (``current_status``), and reading the
published status (what a socket's first message and the API cost). Results on stdout and in
bench/out/live_sockets.json.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
import urllib.request
from types import SimpleNamespace

from common import OUT, start, stop
from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402
from planner import build

from protocol import live  # noqa: E402
from redundancy import config as site_config  # noqa: E402
from redundancy.decisions import Windows  # noqa: E402
from redundancy.models import CameraPlacement, ServerState  # noqa: E402
from redundancy.observation import observe  # noqa: E402
from redundancy.status import StatusPublisher, current_status, published_status, server_row, status_rows  # noqa: E402

PORT = 8097
TICK = os.sysconf("SC_CLK_TCK")


def report_everything(r, config, silent: set[str]) -> None:
    with r.pipeline(transaction=False) as pipe:
        for server in config.servers.values():
            if server.name not in silent:
                pipe.hset(live.key("last-seen"), server.name, repr(live.redis_time(r)))
                pipe.set(live.key("heartbeat", server.name), "{}", px=30_000)
        pipe.execute()


def stream_reports(r, config) -> None:
    by_server: dict[str, dict[int, dict]] = {}
    for camera in config.cameras.values():
        by_server.setdefault(config.servers[camera.primary_id].name, {})[camera.pk] = {
            "state": "streaming", "fps": float(camera.fps), "since": time.time() - 60}  # fmt: skip
    for name, reports in by_server.items():
        live.publish_stream_reports(r, name, reports, ttl=3600)


class QuietEngine:
    """Heartbeats every 0.5 s and a pass every second that publishes the server rows again (cameras stay
    as first published: nothing happens to them in a quiet period)."""

    def __init__(self, r, config):
        self.r, self.config, self.silent = r, config, set()
        self.publisher = StatusPublisher(r)
        self.windows = Windows.from_settings()
        self.states = {state.pk: state for state in ServerState.objects.all()}
        self.system = next(iter(config.systems()))
        self.published: list[int | None] = []
        self._stop = threading.Event()
        self.pass_seconds: list[float] = []

    def full(self) -> tuple[float, float]:
        began = time.perf_counter()
        seen = observe(self.r, list(self.config.by_name), live.redis_time(self.r))
        views = {pk: seen.server_view(s, self.states.get(pk)) for pk, s in self.config.servers.items()}
        placements = {
            pk: SimpleNamespace(state=state, since=since.timestamp(), reason=reason)
            for pk, state, since, reason in CameraPlacement.objects.values_list("camera_id", "state", "since",
                                                                                "reason")
        }  # fmt: skip
        servers, cameras = status_rows(self.config, self.states, views, placements, seen.reports, seen.last_seen,
                                       self.windows)  # fmt: skip
        built = time.perf_counter() - began
        began = time.perf_counter()
        self.publisher.publish(self.system, live.redis_time(self.r), servers, cameras, full=True)
        return built, time.perf_counter() - began

    def quiet_pass(self) -> None:
        began = time.perf_counter()
        now = live.redis_time(self.r)
        last_seen = live.read_last_seen(self.r)
        rows = {}
        own = {pk: 0 for pk in self.config.servers}
        for camera in self.config.cameras.values():
            own[camera.primary_id] += 1
        for pk, server in self.config.servers.items():
            heard = last_seen.get(server.name)
            view = SimpleNamespace(heartbeat_age=None if heard is None else max(0.0, now - heard), draining=False,
                                   leaving=False, hold_down=0.0, streams=range(own[pk]))  # fmt: skip
            rows[pk] = server_row(server, self.states.get(pk), view, own[pk], 0, heard, self.windows)
        self.published.append(self.publisher.publish(self.system, now, rows, {}))
        self.pass_seconds.append(time.perf_counter() - began)

    def run(self) -> None:
        beat = 0
        while not self._stop.wait(0.5):
            report_everything(self.r, self.config, self.silent)
            beat += 1
            if beat % 2 == 0:
                self.quiet_pass()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure_cpu(pid: int, seconds: float) -> float:
    """Share of one core the process used over ``seconds``."""
    before, began = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - began)


class Sockets:
    """``count`` live sockets in a loop of their own, counting the bytes each receives."""

    def __init__(self, count: int, cookie: str):
        self.count, self.cookie = count, cookie
        self.received = [0] * count
        self.messages: list[list[str]] = [[] for _ in range(count)]
        self.first: list[float] = []
        self.opened = threading.Event()
        self.loop = asyncio.new_event_loop()
        self._closing = None

    def start(self) -> None:
        def run():
            try:
                self.loop.run_until_complete(self._main())
            except BaseException as exc:
                self.failure = exc
                self.opened.set()

        self.failure = None
        threading.Thread(target=run, daemon=True).start()
        if not self.opened.wait(900) or self.failure is not None:
            raise RuntimeError(f"the sockets did not open: {self.failure!r}")

    def reset(self) -> None:
        self.received = [0] * self.count
        self.messages = [[] for _ in range(self.count)]

    async def _main(self) -> None:
        import aiohttp

        self._closing = asyncio.Event()
        headers = {"Origin": f"http://127.0.0.1:{PORT}", "Cookie": f"sessionid={self.cookie}"}
        async with aiohttp.ClientSession() as session:
            gate = asyncio.Semaphore(5)  # each opening reads and sends the whole status

            async def one(n: int) -> None:
                async with gate:
                    began = time.perf_counter()
                    socket = await session.ws_connect(f"http://127.0.0.1:{PORT}/ws/live/", headers=headers,
                                                      max_msg_size=0, autoping=True)  # fmt: skip
                    first = await socket.receive()
                    self.first.append(time.perf_counter() - began)
                    assert json.loads(first.data)["type"] == "status", first.data[:200]
                    self.first_size = len(first.data)
                tasks.append(socket)
                async for message in socket:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        self.received[n] += len(message.data.encode())
                        self.messages[n].append(json.loads(message.data)["type"])

            tasks: list = []
            readers = [asyncio.create_task(one(n)) for n in range(self.count)]
            while len(tasks) < self.count:
                for reader in readers:
                    if reader.done():
                        reader.result()  # a socket refused or closed: stop here, loudly
                await asyncio.sleep(0.1)
            self.opened.set()
            await self._closing.wait()
            for socket in tasks:
                await socket.close()
            for reader in readers:
                reader.cancel()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._closing.set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--cameras", type=int, default=10_000)
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--quiet", type=float, default=30.0, help="seconds measured in each quiet period")
    args = parser.parse_args()
    build(args.servers, args.cameras, 1)
    r = live.client()
    config = site_config.load()
    stream_reports(r, config)
    report_everything(r, config, set())
    engine = QuietEngine(r, config)
    cpu = time.process_time()
    built, published = engine.full()
    full_cpu = time.process_time() - cpu
    began, cpu = time.perf_counter(), time.process_time()
    computed = current_status(r)
    computed_seconds, computed_cpu = time.perf_counter() - began, time.process_time() - cpu
    began, cpu = time.perf_counter(), time.process_time()
    status = published_status(r, None)
    read_seconds, read_cpu = time.perf_counter() - began, time.process_time() - cpu
    assert status is not None
    result = {
        "servers": args.servers, "cameras": args.cameras, "sockets": args.sockets, "quiet_seconds": args.quiet,
        "status_json_mb": round(len(json.dumps(computed)) / 1e6, 2),
        "current_status_s": round(computed_seconds, 3), "current_status_cpu_s": round(computed_cpu, 3),
        "rows_built_s": round(built, 3), "first_publish_s": round(published, 3),
        "rows_built_and_published_cpu_s": round(full_cpu, 3),
        "published_status_read_s": round(read_seconds, 3), "published_status_read_cpu_s": round(read_cpu, 3),
    }  # fmt: skip
    print(json.dumps(result, indent=2), flush=True)

    User.objects.filter(username="bench-operator").delete()
    user = User.objects.create_superuser("bench-operator", "", "bench-operator-passphrase")
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    web = start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(PORT), "eocortex_web.asgi:application"],
                "web", manage=False, LIVE_SOCKETS_PER_USER=args.sockets + 10)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/accounts/login/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        engine.start()
        time.sleep(3)
        idle = measure_cpu(web.pid, args.quiet)
        sockets = Sockets(args.sockets, cookie)
        opened = time.perf_counter()
        sockets.start()
        opened = time.perf_counter() - opened
        time.sleep(5)  # the openings' work done
        opening_bytes = sum(sockets.received) / len(sockets.received) + sockets.first_size
        sockets.reset()
        began = time.monotonic()
        busy = measure_cpu(web.pid, args.quiet)
        quiet_bytes = sum(sockets.received) / len(sockets.received) / (time.monotonic() - began)
        kinds = sorted({kind for messages in sockets.messages for kind in messages})

        silent_name = next(iter(config.by_name))
        engine.silent.add(silent_name)  # its agent stops heartbeating: in 1.5 s it is published once as silent
        time.sleep(4)
        sockets.reset()
        began = time.monotonic()
        silent_busy = measure_cpu(web.pid, args.quiet)
        silent_bytes = sum(sockets.received) / len(sockets.received) / (time.monotonic() - began)
        silent_kinds = sorted({kind for messages in sockets.messages for kind in messages})
        sockets.close()
        engine.stop()
    finally:
        stop(web)
    result.update({
        "sockets_opened_s": round(opened, 1), "opening_mb_per_socket": round(opening_bytes / 1e6, 2),
        "first_message_median_s": round(statistics.median(sockets.first), 2),
        "web_cpu_idle_core": round(idle, 4), "web_cpu_with_sockets_core": round(busy, 4),
        "added_cpu_core": round(busy - idle, 4), "bytes_per_socket_per_quiet_second": round(quiet_bytes, 1),
        "messages_in_quiet_period": kinds,
        "added_cpu_core_one_server_silent": round(silent_busy - idle, 4),
        "bytes_per_socket_per_second_one_server_silent": round(silent_bytes, 1),
        "messages_with_one_server_silent": silent_kinds,
        "engine_quiet_pass_median_ms": round(statistics.median(engine.pass_seconds) * 1000, 1),
        "engine_quiet_passes_that_published": sum(v is not None for v in engine.published),
        "load_average": os.getloadavg(),
    })  # fmt: skip
    print(json.dumps(result, indent=2))
    OUT.mkdir(exist_ok=True)
    (OUT / "live_sockets.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
