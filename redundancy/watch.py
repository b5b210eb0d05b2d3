"""Each agent's process watched through one open connection: a killed agent is known within milliseconds.

``AgentWatch`` holds one ``GET /alive`` connection (``recording.serving``) to each agent it is given, all on
one thread (a selector over non-blocking sockets). When a connection it had established ends (EOF, reset),
it connects again at once, for at most ``PROBE_SECONDS``:

- refused: nothing listens at the agent's port any more, its process ended → ``on_gone(name)``;
- answered by the agent: the connection alone was lost → nothing reported;
- no answer in time: unknown (a host frozen or unreachable closes nothing) → nothing reported: the
  heartbeat's silence decides.

A server never connected is never reported gone. Servers that refuse or do not answer are tried again with
a backoff of at most ``BACKOFF_MAX``; when a gone server's agent answers again → ``on_back(name)``. The
callbacks run on the watch thread and must be cheap (set a flag, wake a loop).
"""

import errno
import ipaddress
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from recording.serving import ALIVE, ALIVE_KEEPALIVE

log = logging.getLogger(__name__)

PROBE_SECONDS = 0.3  # the connection again after a drop: refused within this means the process is gone
CONNECT_SECONDS = 1.0  # an ordinary attempt: the connection and the agent's answer
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 1.0
SILENT_FOR = 5 * ALIVE_KEEPALIVE  # an established connection without a keep-alive this long is opened anew
ANSWER_LIMIT = 4096  # bytes of an answer's head and first line: more is not an agent's answer


@dataclass
class _Watched:
    name: str
    address: tuple[str, int]
    sock: socket.socket | None = None
    phase: str = "idle"  # idle (waiting for its next attempt), connecting, answering, established
    due: float = 0.0  # the next attempt (idle) or the attempt's deadline (connecting, answering)
    heard_at: float = 0.0  # established: the last bytes read
    probe_until: float | None = None  # set while connecting again right after a drop
    backoff: float = BACKOFF_FIRST
    attempts: int = 0  # connections tried, answered or not
    established_once: bool = False
    gone: bool = False  # reported gone, not back yet
    answer: bytearray = field(default_factory=bytearray)


class AgentWatch:
    def __init__(
        self,
        on_gone: Callable[[str], None],
        on_back: Callable[[str], None] | None = None,
        *,
        probe_seconds: float = PROBE_SECONDS,
        connect_seconds: float = CONNECT_SECONDS,
        backoff_max: float = BACKOFF_MAX,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.on_gone = on_gone
        self.on_back = on_back
        self.probe_seconds = probe_seconds
        self.connect_seconds = connect_seconds
        self.backoff_max = backoff_max
        self.clock = clock
        self._selector = selectors.DefaultSelector()
        self._waker, self._wake_end = socket.socketpair()
        self._waker.setblocking(False)
        self._wake_end.setblocking(False)
        self._selector.register(self._wake_end, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._wanted: dict[str, tuple[str, int]] | None = None  # handed over by watch(), taken by the thread
        self._stopping = False
        self._servers: dict[str, _Watched] = {}
        self._established: frozenset[str] = frozenset()
        self._thread = threading.Thread(target=self._run, name="agent-watch", daemon=True)

    # -- the caller's side ---------------------------------------------------------------------

    def start(self) -> "AgentWatch":
        self._thread.start()
        return self

    def watch(self, servers: dict[str, tuple[str, int]]) -> None:
        """Watch exactly these agents (name → (address, API port)): new ones are connected, removed ones closed,
        one whose address changed is watched anew."""
        with self._lock:
            self._wanted = {name: (str(host), int(port)) for name, (host, port) in servers.items()}
        self._wake()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for watched in self._servers.values():
            self._close(watched)
        self._servers.clear()
        self._selector.close()
        self._waker.close()
        self._wake_end.close()

    def established(self) -> frozenset[str]:
        """The servers whose watch connection is open and answered now (for status and tests)."""
        return self._established

    def attempts(self, name: str) -> int:
        """How many connections were tried to this server's agent (0 when it is not watched)."""
        watched = self._servers.get(name)
        return watched.attempts if watched is not None else 0

    def _wake(self) -> None:
        try:
            self._waker.send(b"x")
        except OSError:
            pass  # already woken (the buffer is full) or stopped

    # -- the watch thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                wanted, self._wanted = self._wanted, None
            if wanted is not None:
                self._follow(wanted)
            self._established = frozenset(n for n, w in self._servers.items() if w.phase == "established")
            timeout = None
            if self._servers:
                timeout = max(0.0, min(self._deadline(w) for w in self._servers.values()) - self.clock())
            for key, events in self._selector.select(timeout):
                if key.data is None:
                    self._drain_waker()
                    continue
                watched = key.data
                if watched.sock is not key.fileobj:
                    continue  # closed meanwhile
                try:
                    self._ready(watched, events)
                except Exception:
                    log.exception("server=%s event=agent_watch_error", watched.name)
                    self._close(watched)
                    self._retry_later(watched)
            # Deadlines only after what is ready was read: a refusal that came in time counts, however late this
            # thread runs (a busy machine).
            self._due(self.clock())

    def _drain_waker(self) -> None:
        try:
            while self._wake_end.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _follow(self, wanted: dict[str, tuple[str, int]]) -> None:
        for name in list(self._servers):
            if name not in wanted or wanted[name] != self._servers[name].address:
                self._close(self._servers.pop(name))
        for name, address in wanted.items():
            if name not in self._servers:
                self._servers[name] = watched = _Watched(name, address)
                self._connect(watched, self.clock() + self.connect_seconds)

    def _deadline(self, watched: _Watched) -> float:
        if watched.phase == "established":
            return watched.heard_at + SILENT_FOR
        return watched.due

    def _due(self, now: float) -> None:
        """Attempts whose time came, and deadlines passed."""
        for watched in list(self._servers.values()):
            if watched.phase == "idle" and now >= watched.due:
                self._connect(watched, now + self.connect_seconds)
            elif watched.phase in ("connecting", "answering") and now >= watched.due:
                if self._late_result(watched):
                    continue
                self._close(watched)
                if watched.probe_until is not None:
                    watched.probe_until = None
                    log.warning("server=%s event=agent_watch_unknown reason=no_answer", watched.name)
                self._retry_later(watched)
            elif watched.phase == "established" and now >= watched.heard_at + SILENT_FOR:
                log.warning("server=%s event=agent_watch_silent for=%.1fs", watched.name, now - watched.heard_at)
                self._close(watched)
                self._connect(watched, now + self.connect_seconds)

    def _late_result(self, watched: _Watched) -> bool:
        """A result that came in time but was not read yet (this thread ran late): taken now, if there is one."""
        sock = watched.sock
        if watched.phase == "connecting":
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._failed(watched, code)
            return bool(code)
        self._ready(watched, selectors.EVENT_READ)
        return watched.sock is not sock or watched.phase != "answering"

    def _connect(self, watched: _Watched, deadline: float) -> None:
        try:
            family, address = _socket_address(*watched.address)
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # a name that does not resolve: as if nobody answered
            log.warning("server=%s event=agent_watch_no_address error=%s", watched.name, exc.strerror or exc)
            self._retry_later(watched)
            return
        sock.setblocking(False)
        watched.sock, watched.phase, watched.due = sock, "connecting", deadline
        watched.attempts += 1
        watched.answer.clear()
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._failed(watched, code)
            return
        self._selector.register(sock, selectors.EVENT_WRITE, watched)

    def _ready(self, watched: _Watched, events: int) -> None:
        sock = watched.sock
        if watched.phase == "connecting":
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._failed(watched, code)
                return
            host = watched.address[0]
            sock.send(f"GET {ALIVE} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            watched.phase = "answering"
            self._selector.modify(sock, selectors.EVENT_READ, watched)
            return
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:  # reset
            data = b""
        if not data:
            self._ended(watched)
        elif watched.phase == "established":
            watched.heard_at = self.clock()
        else:
            watched.answer += data
            self._answered(watched)

    def _answered(self, watched: _Watched) -> None:
        """The agent's answer so far: its status line, its headers, the line that names it."""
        answer = bytes(watched.answer)
        if len(answer) > ANSWER_LIMIT:
            self._refused_answer(watched, "answer_too_long")
            return
        head, separator, body = answer.partition(b"\r\n\r\n")
        if not separator:
            return
        status = head.split(b"\r\n", 1)[0].split()
        if len(status) < 2 or status[1] != b"200":
            self._refused_answer(watched, "status_" + (status[1].decode(errors="replace") if len(status) > 1 else "-"))
            return
        if b"\n" not in body:
            return
        named = body.split(b"\n", 1)[0].decode(errors="replace").strip()
        if named != watched.name:
            self._refused_answer(watched, f"another_server:{named[:40]}")
            return
        was_probe, came_back = watched.probe_until is not None, watched.gone
        watched.phase, watched.heard_at, watched.probe_until = "established", self.clock(), None
        watched.backoff, watched.established_once, watched.gone = BACKOFF_FIRST, True, False
        watched.answer.clear()
        if was_probe:
            log.info("server=%s event=agent_watch_glitch", watched.name)  # the connection was lost, not the agent
        else:
            log.info("server=%s event=agent_watch_connected", watched.name)
        if came_back and self.on_back is not None:
            self._call(self.on_back, watched.name)

    def _refused_answer(self, watched: _Watched, reason: str) -> None:
        """Something answers at the address, but not this server's agent (or it has no room for us)."""
        log.warning("server=%s event=agent_watch_refused reason=%s", watched.name, reason)
        self._close(watched)
        watched.probe_until = None
        self._retry_later(watched)

    def _ended(self, watched: _Watched) -> None:
        """The connection closed (EOF or reset)."""
        now = self.clock()
        was_established = watched.phase == "established"
        self._close(watched)
        if was_established:
            log.info("server=%s event=agent_watch_closed", watched.name)
            watched.probe_until = now + self.probe_seconds
            self._connect(watched, watched.probe_until)
        elif watched.probe_until is not None and now < watched.probe_until:
            # Closed before the answer, right after a drop: the agent's listener may be closing as its process
            # ends (a connection taken into its backlog is reset then): try again within the probe.
            self._connect(watched, watched.probe_until)
        else:
            self._retry_later(watched)

    def _failed(self, watched: _Watched, code: int) -> None:
        """The connection could not be made."""
        self._close(watched)
        probing, watched.probe_until = watched.probe_until is not None, None
        if code == errno.ECONNREFUSED and probing and watched.established_once and not watched.gone:
            watched.gone = True
            log.warning("server=%s event=agent_gone", watched.name)
            self._call(self.on_gone, watched.name)
        elif probing:
            log.warning("server=%s event=agent_watch_unknown reason=%s", watched.name, errno.errorcode.get(code, code))
        self._retry_later(watched)

    def _retry_later(self, watched: _Watched) -> None:
        watched.phase, watched.due = "idle", self.clock() + watched.backoff
        watched.backoff = min(watched.backoff * 2, self.backoff_max)

    def _close(self, watched: _Watched) -> None:
        sock, watched.sock = watched.sock, None
        if sock is None:
            return
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def _call(self, callback: Callable[[str], None], name: str) -> None:
        try:
            callback(name)
        except Exception:
            log.exception("server=%s event=agent_watch_callback_failed", name)


def _socket_address(host: str, port: int) -> tuple[int, tuple]:
    """The family and address to connect to; an IP address as it is, a host name resolved (IPv4 first)."""
    bare = host.strip("[]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        return infos[0][0], infos[0][4]
    return (socket.AF_INET6, (bare, port)) if ip.version == 6 else (socket.AF_INET, (bare, port))
