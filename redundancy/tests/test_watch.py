"""The engine's watch on each agent's process: a closed agent is known at once; a lost connection, a server
never reached or one that does not answer is no news."""

import socket
import struct
import threading
import time

import pytest

from recording.serving import RecordingServer
from redundancy.watch import AgentWatch
from testbed.waiting import wait_for
from utilities.ports import free_ports


class FakeAgent:
    """Something listening at an agent's port that answers ``GET /alive`` as the agent does (or stays silent,
    or names another server), with its accepted connections at hand to reset."""

    def __init__(self, port: int, name: str = "srv-a", answers: bool = True):
        self.port, self.name, self.answers = port, name, answers
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self.connections.append(sock)
            if self.answers:
                try:
                    sock.recv(4096)
                    sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{self.name}\n".encode())
                except OSError:
                    pass

    def reset_connections(self) -> None:
        """Each accepted connection ended by a reset (RST), the listener left as it is."""
        for sock in self.connections:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        self.connections = []

    def close(self) -> None:
        """As a process ending: the listener goes, then its connections."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept: a listener closed under it listens on
        except OSError:
            pass
        self.listener.close()
        self._thread.join(timeout=5)
        for sock in self.connections:
            sock.close()


class Seen:
    """What the watch reported, with when."""

    def __init__(self):
        self.gone: list[tuple[str, float]] = []
        self.back: list[tuple[str, float]] = []

    def on_gone(self, name: str) -> None:
        self.gone.append((name, time.monotonic()))

    def on_back(self, name: str) -> None:
        self.back.append((name, time.monotonic()))


@pytest.fixture
def seen():
    return Seen()


@pytest.fixture
def watch(seen):
    running = AgentWatch(seen.on_gone, seen.on_back).start()
    yield running
    running.stop()


@pytest.fixture
def fakes():
    started = []

    def start(*args, **kwargs) -> FakeAgent:
        fake = FakeAgent(*args, **kwargs)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.close()


def test_an_agent_s_recordings_server_closed_is_gone_within_100_ms(watch, seen, make_server, tmp_path):
    server = make_server("srv-a", recordings_path=str(tmp_path / "srv-a"))
    recordings = RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
    recordings.start()
    watch.watch({"srv-a": ("127.0.0.1", server.api_port)})
    wait_for(lambda: "srv-a" in watch.established(), 5, message="the watch connection answered")
    stopping_at = time.monotonic()
    recordings.stop()  # its serving loop ends (polled every 0.2 s), the listener closes, then the watch connections
    wait_for(lambda: seen.gone, 2, interval=0.005, message="srv-a reported gone")
    latency = seen.gone[0][1] - stopping_at
    print(f"\nrecordings server stop() called -> on_gone: {latency * 1000:.1f} ms")
    assert [name for name, _ in seen.gone] == ["srv-a"] and latency < 0.5


def test_a_listener_closed_is_gone_within_100_ms_and_back_when_it_listens_again(watch, seen, fakes):
    port = free_ports(1)[0]
    fake = fakes(port)
    watch.watch({"srv-a": ("127.0.0.1", port)})
    wait_for(lambda: "srv-a" in watch.established(), 5, message="the watch connection answered")
    fake.close()
    closed_at = time.monotonic()
    wait_for(lambda: seen.gone, 2, interval=0.005, message="srv-a reported gone")
    latency = seen.gone[0][1] - closed_at
    print(f"\nlistener closed -> on_gone: {latency * 1000:.1f} ms")
    assert latency < 0.1
    fakes(port)  # the agent started again
    wait_for(lambda: seen.back, 5, message="srv-a reported back")
    assert [name for name, _ in seen.back] == ["srv-a"] and len(seen.gone) == 1
    assert "srv-a" in watch.established()


class LateClock:
    """Monotonic time, and once ``late`` is set, half a second more at every reading: a watch thread on a machine
    so busy that every deadline has passed whenever it looks."""

    def __init__(self):
        self.late, self.extra = False, 0.0

    def __call__(self) -> float:
        if self.late:
            self.extra += 0.5
        return time.monotonic() + self.extra


def test_a_refusal_that_came_in_time_counts_however_late_the_watch_thread_runs(seen, fakes):
    clock = LateClock()
    watch = AgentWatch(seen.on_gone, clock=clock).start()
    try:
        port = free_ports(1)[0]
        fake = fakes(port)
        watch.watch({"srv-a": ("127.0.0.1", port)})
        wait_for(lambda: "srv-a" in watch.established(), 5, message="the watch connection answered")
        clock.late = True
        fake.close()
        wait_for(lambda: seen.gone, 2, message="srv-a reported gone")
    finally:
        watch.stop()


def test_a_connection_reset_while_the_agent_still_listens_is_no_gone(watch, seen, fakes):
    port = free_ports(1)[0]
    fake = fakes(port)
    watch.watch({"srv-a": ("127.0.0.1", port)})
    wait_for(lambda: "srv-a" in watch.established(), 5, message="the watch connection answered")
    for round_ in range(3):
        fake.reset_connections()
        wait_for(lambda: fake.accepted >= round_ + 2 and "srv-a" in watch.established(), 5,  # noqa: B023
                 message="connected again")  # fmt: skip
    assert seen.gone == []


def test_a_dropped_connection_whose_agent_does_not_answer_again_is_no_gone(watch, seen, fakes):
    """A frozen process (its kernel still takes connections) or an unreachable host: the heartbeat decides."""
    port = free_ports(1)[0]
    fake = fakes(port)
    watch.watch({"srv-a": ("127.0.0.1", port)})
    wait_for(lambda: "srv-a" in watch.established(), 5, message="the watch connection answered")
    fake.answers = False
    fake.reset_connections()
    wait_for(lambda: fake.accepted >= 4, 5, message="tried again, with no answer, a few times")
    assert seen.gone == [] and "srv-a" not in watch.established()


def test_a_server_never_reached_is_never_gone(watch, seen, fakes):
    refusing, silent, impostor = free_ports(3)
    quiet = fakes(silent, answers=False)
    other = fakes(impostor, name="srv-x")  # another server's agent at the configured port
    watch.watch({"srv-a": ("127.0.0.1", refusing), "srv-b": ("127.0.0.1", silent), "srv-c": ("127.0.0.1", impostor)})
    wait_for(lambda: quiet.accepted >= 3 and other.accepted >= 3, 10, message="each tried a few times")
    assert watch.established() == frozenset()
    quiet.close()
    other.close()
    wait_for(lambda: watch.attempts("srv-b") >= 5 and watch.attempts("srv-c") >= 5, 10, message="tried on")
    assert watch.attempts("srv-a") >= 5  # refused each time, with a backoff of at most a second
    assert seen.gone == [] and seen.back == []


def test_the_watched_servers_follow_the_configuration(watch, seen, fakes):
    port_a, port_b, port_b2 = free_ports(3)
    fake_a, fake_b = fakes(port_a), fakes(port_b, name="srv-b")
    watch.watch({"srv-a": ("127.0.0.1", port_a)})
    wait_for(lambda: watch.established() == {"srv-a"}, 5, message="srv-a watched")
    watch.watch({"srv-b": ("127.0.0.1", port_b)})
    wait_for(lambda: watch.established() == {"srv-b"}, 5, message="srv-b watched instead")
    (connection,) = fake_a.connections
    connection.settimeout(2)
    assert connection.recv(1) == b""  # srv-a's watch connection closed
    fake_b2 = fakes(port_b2, name="srv-b")
    watch.watch({"srv-b": ("127.0.0.1", port_b2)})  # srv-b moved to another port
    wait_for(lambda: fake_b2.accepted and watch.established() == {"srv-b"}, 5, message="srv-b at its new port")
    (old,) = fake_b.connections
    old.settimeout(2)
    assert old.recv(1) == b""  # its watch connection at the old port closed
    fake_a.close()
    fake_b.close()
    assert seen.gone == []


@pytest.mark.process
@pytest.mark.django_db(transaction=True)
def test_a_killed_agent_process_is_gone_within_100_ms_and_back_when_started_again(site, tmp_path, agent_process,
                                                                                   watch, seen):  # fmt: skip
    server = site["a"]
    server.recordings_path = str(tmp_path / "srv-a")
    server.save()
    watch.watch({"srv-a": (server.address, server.api_port)})
    latencies, resident = [], []
    for round_ in range(3):
        process = agent_process("srv-a")
        wait_for(lambda: "srv-a" in watch.established(), 60, message="the agent's watch connection answered")
        if round_:
            wait_for(lambda: len(seen.back) == round_, 5, message="srv-a reported back")  # noqa: B023
        resident.append(resident_mb(process.pid))
        killed_at = time.monotonic()
        process.kill()
        wait_for(lambda: len(seen.gone) == round_ + 1, 5, interval=0.002, message="srv-a reported gone")  # noqa: B023
        latencies.append(seen.gone[-1][1] - killed_at)
        process.wait(timeout=10)
    # The kernel frees a killed process's memory before it closes its sockets: the larger the agent, the later.
    print("\nSIGKILL -> on_gone: " + ", ".join(f"{latency * 1000:.1f} ms (agent resident: {mb:.0f} MB)"
                                              for latency, mb in zip(latencies, resident, strict=True)))  # fmt: skip
    assert max(latencies) < 0.1
    assert [name for name, _ in seen.gone] == ["srv-a"] * 3


def resident_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):  # noqa: SIM115 (read at once)
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
