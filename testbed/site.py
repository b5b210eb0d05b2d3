"""A site on the test bed: the cameras on a host of their own, each video server's agent on its own host.

The control plane stays on the machine's side of the bridge: Redis and the database on loopback, reached by
each server through relays of its own on the bridge's address (so its link can be delayed, jittered or cut
alone); the engine runs where the test runs and watches the agents at their hosts' addresses. An SQLite
database is a file, reached directly (a namespace separates the network only).
"""

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from testbed.network import Host, Network
from testbed.processes import ROOT
from testbed.relay import Relay

log = logging.getLogger(__name__)

CAMERA_PORT = 9001  # camera n on CAMERA_PORT + n - 1 at the cameras' host
CONTROL_PORT = 9000
API_PORT = 8700  # every server's agent serves its recordings here, at its own host's address
AGENT_TIMINGS = {"AGENT_HEARTBEAT_SECONDS": "0.25", "AGENT_SEGMENT_SECONDS": "2", "AGENT_READ_TIMEOUT_SECONDS": "1",
                 "AGENT_SWEEP_SECONDS": "1"}  # fmt: skip


def _via(url: str, relay: Relay) -> str:
    """``url`` with its host and port replaced by the relay's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    address = f"{relay.address[0]}:{relay.address[1]}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{address}" if len(netloc) == 2 else address))


def _target(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


class BedSite:
    """Hosts for the cameras and for each server, the processes on them, and the faults between them."""

    def __init__(self, env: dict[str, str], log_dir: Path, agent_timings: dict[str, str] = AGENT_TIMINGS):
        self.env = env  # the test's process environment: its DATABASE_URL, REDIS_URL and key prefix
        self.log_dir = log_dir
        self.agent_timings = agent_timings  # the tests' short ones; {} for the product's own
        self.network = Network()
        try:
            self.cameras = self.network.add_host("cams")
        except Exception:
            self.network.close()
            raise
        self.servers: dict[str, Host] = {}
        self.relays: dict[tuple[str, str], Relay] = {}
        self.processes: list[tuple[subprocess.Popen, object]] = []

    # -- hosts -------------------------------------------------------------------------------------------------

    def place(self, server) -> Host:
        """A host for ``server`` (a ``servers.Server``), its address and API port stored on it."""
        host = self.servers[server.name] = self.network.add_host(server.name)
        server.address, server.api_port = host.address, API_PORT
        server.save(update_fields=["address", "api_port"])
        for service, url, port in (("redis", self.env["REDIS_URL"], 6379), ("db", self.env["DATABASE_URL"], 5432)):
            if service == "db" and url.startswith("sqlite"):
                continue
            self.relays[server.name, service] = Relay((self.network.gateway, 0), _target(url, port))
        return host

    def link(self, name: str, service: str = "redis") -> Relay:
        """The relay between server ``name`` and ``service`` ("redis" or "db"): ``.set_link(delay, jitter)``."""
        return self.relays[name, service]

    # -- processes ---------------------------------------------------------------------------------------------

    def _start(self, host: Host, args: list[str], env: dict[str, str], label: str) -> subprocess.Popen:
        out = open(self.log_dir / f"{label}.log", "ab")  # noqa: SIM115 (closed in close())
        process = subprocess.Popen(host.command(args), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append((process, out))
        return process

    def start_cameras(self, count: int, fps: float = 10.0, width: int = 320, height: int = 180,
                      codecs: str = "mjpeg", **options) -> None:  # fmt: skip
        """The camera simulator on the cameras' host; returns once camera ``count`` answers."""
        args = [sys.executable, "manage.py", "simulate_cameras", "--count", str(count), "--fps", str(fps),
                "--width", str(width), "--height", str(height), "--codecs", codecs, "--host", self.cameras.address,
                "--base-port", str(CAMERA_PORT), "--control-port", str(CONTROL_PORT)]  # fmt: skip
        for option, value in options.items():
            args += [f"--{option.replace('_', '-')}", str(value)]
        process = self._start(self.cameras, args, {**self.env, "PYTHONUNBUFFERED": "1"}, "cameras")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the camera simulator ended ({process.returncode}): see cameras.log")
            try:
                with urllib.request.urlopen(self.camera_url(count), timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the camera simulator did not answer within 60 s")

    def camera_url(self, number: int, codec: str = "mjpeg") -> str:
        port = CAMERA_PORT + number - 1
        if codec == "mjpeg":
            return f"http://{self.cameras.address}:{port}/video.mjpg"
        return f"rtsp://{self.cameras.address}:{port}/stream"

    def set_camera_state(self, number: int, state: str) -> None:
        url = f"http://{self.cameras.address}:{CONTROL_PORT}/cameras/{number}/{state}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=5) as answer:
            json.loads(answer.read() or b"{}")

    def start_agent(self, name: str, clock_offset: float = 0.0, **settings) -> subprocess.Popen:
        """Server ``name``'s agent on its host, reaching Redis (and PostgreSQL) through its relays; with
        ``clock_offset`` its wall clock runs that many seconds ahead (libfaketime)."""
        host, env = self.servers[name], {**self.env, **self.agent_timings, "PYTHONUNBUFFERED": "1"}
        env["REDIS_URL"] = _via(env["REDIS_URL"], self.link(name))
        if (name, "db") in self.relays:
            env["DATABASE_URL"] = _via(env["DATABASE_URL"], self.link(name, "db"))
        env.update({k: str(v) for k, v in settings.items()})
        args = [sys.executable, "manage.py", "run_video_server", "--server", name]
        if clock_offset:
            if not shutil.which("faketime"):
                raise RuntimeError("a host's clock moves with libfaketime: apt-get install faketime")
            # The wall clock alone: timeouts and intervals keep the real monotonic clock.
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
            args = ["faketime", "-f", f"{clock_offset:+g}s", *args]
        return self._start(host, args, env, name)

    # -- faults ------------------------------------------------------------------------------------------------

    def isolate(self, name: str):
        """Server ``name`` cut off from the control plane (Redis, database, engine, web), its cameras still in
        reach; returns the fault, for ``restore``."""
        return self.network.cut(self.servers[name], self.network.gateway)

    def cut_camera(self, name: str, number: int):
        """Server ``name``'s path to camera ``number`` cut; the other servers still reach it."""
        return self.network.cut(self.servers[name], self.cameras.address, CAMERA_PORT + number - 1)

    def lose(self, name: str, percent: int, service: str = "redis"):
        """``percent`` of the packets between server ``name`` and ``service``'s relay dropped."""
        return self.network.lose(self.servers[name], percent, self.network.gateway, self.link(name, service).address[1])

    def restore(self, name: str, fault=None) -> None:
        self.network.restore(self.servers[name], fault)

    def close(self) -> None:
        for process, out in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(timeout=10)
            out.close()
        for relay in self.relays.values():
            relay.close()
        self.network.close()
