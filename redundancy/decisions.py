"""The engine's decisions as pure functions of what it sees: testable without Redis, Celery or sleep.

A camera moves between placements (see ``Placement``). Which servers ingest it follows from
its placement (``ingesting_servers``): a primary that is up keeps trying its own cameras, so
every failback is make-before-break; a backup takes a camera on before the primary lets go
wherever the primary is still there (a planned shutdown, a drain, a lost stream).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cameras.models import FailoverPriority
from cameras.modes import RedundancyMode
from redundancy.models import Placement, ServerStatus

# How long a camera may wait for its backup's first frames while its primary has it again.
HANDOVER_GIVE_UP_SECONDS = 15.0


@dataclass(frozen=True)
class Windows:
    """Seconds of heartbeat silence after which a server counts as down, per mode."""

    normal: float = 30.0
    fast: float = 1.5

    @classmethod
    def from_settings(cls) -> "Windows":
        from django.conf import settings

        return cls(normal=settings.ENGINE_NORMAL_WINDOW_SECONDS, fast=settings.ENGINE_FAST_WINDOW_SECONDS)

    def for_mode(self, mode: str) -> float:
        """Only fast mode acts on a short silence; constant mode and cameras without backup wait like normal."""
        return self.fast if mode == RedundancyMode.FAST else self.normal

    def for_server(self, modes: Iterable[str]) -> float:
        """A server is down once it is down for one of the cameras it records or backs up: the
        shortest window among their modes (a camera judges its primary and backup by its mode's)."""
        return min((self.for_mode(mode) for mode in modes), default=self.normal)


class Elapsed(Mapping):
    """Seconds since each moment of ``since`` (camera id → epoch seconds), read at ``now``: a server's streaming
    times without building a dict of them every pass."""

    __slots__ = ("since", "now")

    def __init__(self, since: Mapping[int, float], now: float):
        self.since, self.now = since, now

    def __getitem__(self, camera: int) -> float:
        return self.now - self.since[camera]

    def __iter__(self):
        return iter(self.since)

    def __len__(self) -> int:
        return len(self.since)


@dataclass
class ServerView:
    """What the engine knows of one server in this tick."""

    pk: int
    name: str
    heartbeat_age: float | None  # seconds since its last heartbeat; None if never heard
    leaving: bool = False
    draining: bool = False
    healthy_for: float = 0.0  # seconds it has been up without a break
    hold_down: float = 0.0  # seconds it must stay healthy before cameras return
    max_cameras: int | None = None
    streams: dict[int, str] = field(default_factory=dict)  # camera id → stream state it reports
    # camera id → seconds streaming without a break (a dict, or an Elapsed)
    streaming_for: Mapping[int, float] = field(default_factory=dict)
    # Set to the fast window when its agent's process is known to have ended after its last heartbeat (its
    # connections closed and its port refuses): windows up to this count it down at once. Fast mode moves its
    # cameras now; normal mode still waits its window, which rides out a restart.
    gone_under: float = 0.0

    def alive(self, window: float) -> bool:
        return self.heartbeat_age is not None and self.heartbeat_age <= window and window > self.gone_under

    def available(self, window: float) -> bool:
        """Alive, and nobody is taking it out of service."""
        return self.alive(window) and not self.leaving and not self.draining

    def streaming(self, camera_id: int) -> bool:
        return self.streams.get(camera_id) == "streaming"


@dataclass(frozen=True)
class CameraView:
    pk: int
    name: str
    mode: str
    priority: str
    primary: ServerView
    backup: ServerView | None
    placement: str
    in_placement_for: float  # seconds
    fail_back_now: bool = False  # an operator asked for failback without the hold-down


@dataclass(frozen=True)
class Decision:
    placement: str
    reason: str = ""
    # Event kinds this decision emits, in order.
    events: tuple[str, ...] = ()


def server_status(
    heartbeat_age: float | None, leaving: bool, draining: bool, down_window: float, windows: Windows,
    gone_under: float = 0.0,
) -> str:  # fmt: skip
    """What the status page, the events and the failure count say of a server; ``down_window``
    comes from ``Windows.for_server`` so that it agrees with the decisions of its cameras, and
    ``gone_under`` is its view's (a process known to have ended)."""
    if heartbeat_age is None:
        return ServerStatus.UNKNOWN
    if heartbeat_age > down_window or down_window <= gone_under:
        return ServerStatus.DOWN
    if leaving:
        return ServerStatus.LEAVING
    if draining:
        return ServerStatus.DRAINING
    if heartbeat_age > windows.fast:
        return ServerStatus.SUSPECT
    return ServerStatus.UP


def active_server(camera: CameraView) -> ServerView | None:
    """The server whose recording of the camera counts now."""
    if camera.placement == Placement.NOBODY:
        return None
    return camera.backup if camera.placement in (Placement.ON_BACKUP, Placement.TO_PRIMARY) else camera.primary


def why_leave_primary(camera: CameraView, windows: Windows) -> str:
    """Why the camera should leave its primary now, or ''."""
    primary, window = camera.primary, windows.for_mode(camera.mode)
    if not primary.alive(window):
        return f"primary {primary.name} is down"
    if primary.leaving:
        return f"primary {primary.name} is shutting down"
    if primary.draining:
        return f"primary {primary.name} is being drained"
    if camera.mode == RedundancyMode.FAST and primary.streams.get(camera.pk) == "lost":
        return f"primary {primary.name} lost the camera's stream"
    return ""


def decide(camera: CameraView, windows: Windows, backup_has_room: bool = True) -> Decision:
    """The camera's next placement. Level-triggered: the same views give the same answer."""
    if camera.mode == RedundancyMode.CONSTANT:
        return _decide_constant(camera, windows)
    primary, backup, state = camera.primary, camera.backup, camera.placement
    window = windows.for_mode(camera.mode)
    primary_ok = primary.available(window)
    can_move = (
        backup is not None
        and camera.priority != FailoverPriority.NEVER
        and backup.available(window)
        and camera.mode != RedundancyMode.NONE
    )

    if _unheard(camera):
        return Decision(state)  # a server it depends on was never heard from (starting up, Redis emptied)
    if state == Placement.ON_PRIMARY:
        reason = why_leave_primary(camera, windows)
        if not reason:
            return Decision(state)
        if can_move and backup_has_room:
            return Decision(Placement.TO_BACKUP, reason, ("failover_started",))
        if not primary.alive(window):
            return Decision(Placement.NOBODY, _nobody_reason(camera, window, backup_has_room), ("camera_unprotected",))
        return Decision(state)  # the primary still records it; nowhere better to go

    if state == Placement.TO_BACKUP:
        if backup is not None and backup.alive(window) and backup.streaming(camera.pk):
            why = why_leave_primary(camera, windows)  # kept in the reason: why it is on the backup
            return Decision(Placement.ON_BACKUP, f"backup {backup.name} records it" + (f": {why}" if why else ""),
                            ("failover_completed",))  # fmt: skip
        if backup is None or not backup.available(window):
            if primary_ok:
                return Decision(Placement.ON_PRIMARY, "the backup is gone; the primary keeps it")
            return Decision(Placement.NOBODY, _nobody_reason(camera, window, True), ("camera_unprotected",))
        if primary_ok and primary.streaming(camera.pk) and camera.in_placement_for >= HANDOVER_GIVE_UP_SECONDS:
            return Decision(Placement.ON_PRIMARY, f"backup {backup.name} cannot read the camera; the primary can")
        return Decision(state)

    if state == Placement.ON_BACKUP:
        backup_lost = backup is None or not backup.available(window)
        # Both the server and the camera's own stream must have held: a flaky link damps too. A stream the
        # primary reports lost has not held at all; one it does not report yet is judged by its health.
        stream_lost = primary.streams.get(camera.pk) == "lost"
        stream_held = primary.streaming_for.get(camera.pk, primary.healthy_for)
        held = not stream_lost and min(primary.healthy_for, stream_held) >= primary.hold_down
        waited = held or camera.fail_back_now
        if primary_ok and (backup_lost or waited):
            if primary.streaming(camera.pk):
                return Decision(Placement.ON_PRIMARY, f"primary {primary.name} records it again",
                                ("failback_started", "failback_completed"))  # fmt: skip
            return Decision(Placement.TO_PRIMARY, f"primary {primary.name} is back", ("failback_started",))
        if backup_lost:
            return Decision(Placement.NOBODY, _nobody_reason(camera, window, True), ("camera_unprotected",))
        return Decision(state)

    if state == Placement.TO_PRIMARY:
        if primary_ok and primary.streaming(camera.pk):
            return Decision(Placement.ON_PRIMARY, f"primary {primary.name} records it again", ("failback_completed",))
        if not primary_ok:
            if backup is not None and backup.available(window):
                return Decision(Placement.ON_BACKUP, f"primary {primary.name} is unavailable again")
            return Decision(Placement.NOBODY, _nobody_reason(camera, window, True), ("camera_unprotected",))
        return Decision(state)

    # NOBODY: whoever can take it first.
    if primary_ok:
        return Decision(Placement.ON_PRIMARY, f"primary {primary.name} is back", ("camera_restored",))
    if can_move and backup_has_room and why_leave_primary(camera, windows):
        return Decision(Placement.TO_BACKUP, why_leave_primary(camera, windows), ("failover_started",))
    return Decision(state)


def _decide_constant(camera: CameraView, windows: Windows) -> Decision:
    """Both servers record all the time; only which connection is the active one changes."""
    primary, backup, state = camera.primary, camera.backup, camera.placement
    window = windows.for_mode(camera.mode)
    if _unheard(camera):
        return Decision(state)  # never heard from yet (starting up, Redis emptied)
    if primary.available(window) and primary.streaming(camera.pk):
        target = Placement.ON_PRIMARY
    elif backup is not None and backup.alive(window) and backup.streaming(camera.pk):
        target = Placement.ON_BACKUP
    elif primary.alive(window):
        target = Placement.ON_PRIMARY
    else:
        target = Placement.NOBODY
    if target == state:
        return Decision(state)
    if target == Placement.ON_BACKUP:
        return Decision(target, why_leave_primary(camera, windows) or "the primary has no picture",
                        ("failover_completed",))  # fmt: skip
    if target == Placement.ON_PRIMARY:
        kind = "failback_completed" if state in (Placement.ON_BACKUP, Placement.TO_BACKUP) else "camera_restored"
        return Decision(target, f"primary {primary.name} records it", (kind,))
    return Decision(target, _nobody_reason(camera, window, True), ("camera_unprotected",))


def _unheard(camera: CameraView) -> bool:
    """The server whose word the camera's placement waits for has never been heard from: no decision."""
    if camera.primary.heartbeat_age is None and camera.placement in (Placement.ON_PRIMARY, Placement.TO_PRIMARY):
        return True
    backup = camera.backup
    return backup is not None and backup.heartbeat_age is None and camera.placement in (
        Placement.TO_BACKUP, Placement.ON_BACKUP,
    )  # fmt: skip


def _nobody_reason(camera: CameraView, window: float, backup_has_room: bool) -> str:
    backup = camera.backup
    if backup is None or camera.mode == RedundancyMode.NONE:
        return f"primary {camera.primary.name} is down and the camera has no backup server"
    if camera.priority == FailoverPriority.NEVER:
        return f"primary {camera.primary.name} is down and the camera's failover priority is 'never'"
    if not backup_has_room:
        return f"backup {backup.name} is full (max cameras reached)"
    if not backup.alive(window):
        return f"primary {camera.primary.name} and backup {backup.name} are both down"
    return f"backup {backup.name} is unavailable"


def ingests(primary: int, backup: int | None, mode: str, placement: str = Placement.ON_PRIMARY,
            handing_over: bool = False) -> set[int]:  # fmt: skip
    """Who ingests a camera, stated once: the ids among ``primary`` and ``backup`` that record it in
    ``placement`` (by default at rest: nothing failed). A primary keeps trying its own cameras
    unless it is handing them over (``handing_over``: leaving or draining) or has handed them over;
    a backup records them while it takes them, holds them and gives them back, and in constant
    mode always (rule 5: a second connection). The engine's desired sets, the agents' baseline and
    the planner's loads all read it."""
    servers = set()
    if not handing_over or placement in (Placement.ON_PRIMARY, Placement.TO_BACKUP, Placement.NOBODY):
        servers.add(primary)
    if backup is not None and (
        mode == RedundancyMode.CONSTANT or placement in (Placement.TO_BACKUP, Placement.ON_BACKUP, Placement.TO_PRIMARY)
    ):
        servers.add(backup)
    return servers


def ingesting_servers(camera: CameraView) -> set[int]:
    """The servers that should ingest the camera now."""
    primary, backup = camera.primary, camera.backup
    return ingests(primary.pk, backup.pk if backup else None, camera.mode, camera.placement,
                   handing_over=primary.leaving or primary.draining)  # fmt: skip


PRIORITY_ORDER = {FailoverPriority.HIGH: 0, FailoverPriority.NORMAL: 1, FailoverPriority.LOW: 2,
                  FailoverPriority.NEVER: 3}  # fmt: skip


def hold_down_for(failures_in_last_hour: int, base: float, longest: float) -> float:
    """Exponential flap damping: each failure within the hour doubles the wait before failback."""
    return min(longest, base * 2 ** max(0, failures_in_last_hour - 1))


FAILURE_MEMORY = 3600.0  # seconds of failures that count towards flap damping


@dataclass(frozen=True)
class Damping:
    """How long a server that failed must stay healthy before its cameras return."""

    base: float = 10.0
    longest: float = 1800.0

    @classmethod
    def from_settings(cls) -> "Damping":
        from django.conf import settings

        return cls(base=settings.ENGINE_HOLD_DOWN_SECONDS, longest=settings.ENGINE_LONGEST_HOLD_DOWN_SECONDS)

    def hold_down(self, failures: int) -> float:
        return hold_down_for(failures, self.base, self.longest)

    def hold_down_after(self, failures: Iterable[float], now: float) -> float:
        """The hold-down at ``now`` of a server that failed at ``failures`` (epoch seconds): derived, never
        stored, so a change of the settings applies at once. Never below the base, even for a server that never
        failed: a camera that left it for a lost stream returns only once that stream has held this long."""
        return self.hold_down(len(recent_failures(failures, now)))


def recent_failures(failures: Iterable[float], now: float) -> tuple[float, ...]:
    """Those that count towards flap damping at ``now``."""
    return tuple(t for t in failures if now - t < FAILURE_MEMORY)


@dataclass(frozen=True)
class ServerRecord:
    """What the engine remembers of a server between passes (stored as its ServerState)."""

    status: str = ServerStatus.UNKNOWN
    status_since: float = 0.0
    healthy_since: float | None = None
    failures: tuple[float, ...] = ()  # when it went down unplanned, within FAILURE_MEMORY (the hold-down's source)


@dataclass(frozen=True)
class ServerJudgement:
    record: ServerRecord
    # Event kinds, in order: server_down (with ``planned``), server_leaving, server_up, flap_damped.
    events: tuple[str, ...] = ()
    planned: bool = False  # a server_down after an announced shutdown


def judge_server(record: ServerRecord, view: ServerView, down_window: float, windows: Windows, damping: Damping,
                 now: float) -> ServerJudgement:  # fmt: skip
    """A server's next status, health streak and flap damping, from what it was and what is seen now."""
    status = server_status(view.heartbeat_age, view.leaving, view.draining, down_window, windows, view.gone_under)
    failures = recent_failures(record.failures, now)
    healthy = status in (ServerStatus.UP, ServerStatus.DRAINING)
    healthy_since = (record.healthy_since if record.healthy_since is not None else now) if healthy else None
    events, planned = (), False
    if status != record.status:
        previous, events = record.status, ()
        if status == ServerStatus.DOWN:
            planned = previous == ServerStatus.LEAVING
            events = ("server_down",)
            if not planned:
                failures += (now,)
                if len(failures) > 1 and damping.hold_down(len(failures)) > damping.hold_down(len(failures) - 1):
                    events += ("flap_damped",)
        elif status == ServerStatus.LEAVING:
            events = ("server_leaving",)
        elif status == ServerStatus.UP and previous in (ServerStatus.DOWN, ServerStatus.UNKNOWN):
            events = ("server_up",)
    since = now if status != record.status else record.status_since
    return ServerJudgement(ServerRecord(status, since, healthy_since, failures), events, planned)


def settled(placement: str, mode: str, primary_steady: bool, primary_stream: str | None) -> bool:
    """A camera whose next decision is surely to stay where it is, whatever the clock says: on its primary,
    which is heard within the shortest window and not leaving, draining or gone, and whose stream of it is
    not lost (in constant mode: streams). The engine decides only the others each pass; ``decide`` agrees
    (tested over every combination in test_decisions)."""
    if placement != Placement.ON_PRIMARY or not primary_steady or primary_stream == "lost":
        return False
    return mode != RedundancyMode.CONSTANT or primary_stream == "streaming"


def steady(server: ServerView, windows: Windows) -> bool:
    """Heard within the shortest window, not leaving, draining or gone: its own cameras stay where they are."""
    shortest = min(windows.fast, windows.normal)
    return server.available(shortest) and server.gone_under == 0.0
