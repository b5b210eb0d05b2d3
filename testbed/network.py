"""Network namespaces joined by a bridge, made for one test and removed after it, with faults on their paths.

Every host is a namespace with one veth into the bridge and one address on the bed's /24; the bridge's own
address (``.1``) is the machine's side, where the relays to the control plane listen. A namespace has no
route but the bed's network, so nothing it sends can leave the machine. Faults are nftables rules inside a
host's namespace, rebuilt atomically at each change: a cut drops every packet of a path both ways (TCP stalls,
as behind a failed switch; nothing is refused), a loss drops that share of them at random.
"""

import fcntl
import logging
import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

BED_NETWORK = "10.213.0.0/16"  # every bed's addresses: a /24 of it, 10.213.N.0/24, N chosen free at creation
NETWORK = "10.213.{}.{}"
LOCKS = Path("/tmp")


def unavailable() -> str:
    """Why no test bed can be made on this machine, or ''."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root; here: sudo make test)"
    missing = [tool for tool, package in (("ip", "iproute2"), ("nft", "nftables")) if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install iproute2 nftables (make test does, as root)"
    return ""


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=20)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass(frozen=True)
class Fault:
    """Packets between a host and ``peer`` (one port of it, or all) dropped: all of them, or ``percent``."""

    peer: str
    port: int | None = None
    percent: int = 100

    def rules(self) -> list[str]:
        share = f" numgen random mod 100 < {self.percent}" if self.percent < 100 else ""
        out_port = f" tcp dport {self.port}" if self.port else ""
        in_port = f" tcp sport {self.port}" if self.port else ""
        return [f"add rule inet testbed output ip daddr {self.peer}{out_port}{share} drop",
                f"add rule inet testbed input ip saddr {self.peer}{in_port}{share} drop"]  # fmt: skip


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    faults: list[Fault] = field(default_factory=list)

    def command(self, args: list[str]) -> list[str]:
        """``args`` run inside this host's namespace (``ip netns exec`` execs them: the pid is theirs)."""
        return ["ip", "netns", "exec", self.namespace, *args]


class Network:
    """The bridge and its hosts. ``close()`` removes every namespace and link it made and releases its /24."""

    def __init__(self):
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        self.number, self._lock = self._claim()
        self.prefix = f"tb{self.number}"
        self.bridge = f"{self.prefix}br"
        self.gateway = NETWORK.format(self.number, 1)
        self.hosts: dict[str, Host] = {}
        self._remove_leftovers()
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")

    def _claim(self):
        """A /24 no interface of this machine uses and no other bed holds (a lock file for the bed's life)."""
        used = set(re.findall(r"inet 10\.213\.(\d+)\.", run("ip", "-4", "-o", "addr")))
        for number in random.sample(range(2, 250), 40):
            if str(number) in used:
                continue
            lock = open(LOCKS / f"testbed-10.213.{number}.lock", "w")  # noqa: SIM115 (held until close)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            return number, lock
        raise RuntimeError("no free 10.213.N.0/24 for a test bed")

    def _remove_leftovers(self) -> None:
        """What a bed of this number left when its test was killed (its lock is ours now)."""
        for line in run("ip", "netns", "list").splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith(f"{self.prefix}-"):
                run("ip", "netns", "delete", name)
        if Path(f"/sys/class/net/{self.bridge}").exists():
            run("ip", "link", "delete", self.bridge)

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        host = Host(name, f"{self.prefix}-{name}", NETWORK.format(self.number, 10 + index))
        outside, inside = f"{self.prefix}h{index}", f"{self.prefix}n{index}"
        run("ip", "netns", "add", host.namespace)
        self.hosts[name] = host
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", inside, "netns", host.namespace)
        run("ip", "link", "set", outside, "master", self.bridge, "up")
        run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inside)
        run("ip", "-n", host.namespace, "link", "set", inside, "up")
        run("ip", "-n", host.namespace, "link", "set", "lo", "up")
        self._apply(host)
        return host

    # -- faults ------------------------------------------------------------------------------------------------

    def cut(self, host: Host, peer: str, port: int | None = None) -> Fault:
        """Every packet between ``host`` and ``peer`` (or that port of it) dropped, both ways."""
        return self._add(host, Fault(peer, port))

    def lose(self, host: Host, percent: int, peer: str, port: int | None = None) -> Fault:
        if not 0 < percent < 100:
            raise ValueError("a loss is between 1 and 99 percent")
        return self._add(host, Fault(peer, port, percent))

    def restore(self, host: Host, fault: Fault | None = None) -> None:
        """One fault of ``host`` gone, or all of them."""
        host.faults = [f for f in host.faults if fault is not None and f != fault]
        self._apply(host)

    def _add(self, host: Host, fault: Fault) -> Fault:
        host.faults.append(fault)
        self._apply(host)
        return fault

    def _apply(self, host: Host) -> None:
        script = ["add table inet testbed", "delete table inet testbed", "add table inet testbed",
                  "add chain inet testbed output { type filter hook output priority 0 ; policy accept ; }",
                  "add chain inet testbed input { type filter hook input priority 0 ; policy accept ; }"]  # fmt: skip
        for fault in host.faults:
            script += fault.rules()
        run("ip", "netns", "exec", host.namespace, "nft", "-f", "-", stdin="\n".join(script) + "\n")
        log.info("host=%s event=testbed_faults faults=%s", host.name, [vars(f) for f in host.faults])

    def close(self) -> None:
        """Every namespace and link removed (stop the processes in them first: a namespace with a process in it
        lives on unnamed)."""
        for host in self.hosts.values():
            try:
                run("ip", "netns", "delete", host.namespace)
            except RuntimeError as exc:
                log.warning("event=testbed_namespace_left namespace=%s error=%s", host.namespace, exc)
        self.hosts.clear()
        if Path(f"/sys/class/net/{self.bridge}").exists():
            run("ip", "link", "delete", self.bridge)
        self._lock.close()
