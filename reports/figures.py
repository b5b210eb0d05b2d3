"""A report's figures, pure: per camera, over a period, how often it failed over, how long it recorded on its
backup and how much of its video was lost; per server, the totals of its cameras.

Times are seconds since the epoch. What goes in is what happened, as the reader (``reports.reading``) found it:
the engine's moves (the events that change which server records the camera), the camera's enabled history
(from the audit log) and the holes in its recording (``playback.timeline``'s gaps over the index). Nothing here
reads a clock or the database.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

# The events that change where a camera records: it records on its backup from a completed failover until a
# completed failback, or until nobody records it (the backup lost it too).
FAILOVER = "failover_completed"
FAILBACK = "failback_completed"
UNPROTECTED = "camera_unprotected"
MOVES = (FAILOVER, FAILBACK, UNPROTECTED)

Interval = tuple[float, float]


@dataclass(frozen=True)
class Move:
    at: float
    kind: str  # one of MOVES
    server: int | None  # the server it leaves (the primary for a failover)
    to_server: int | None  # the server it goes to (the backup for a failover)


@dataclass(frozen=True)
class CameraHistory:
    """What happened to one camera, as read for the period ``since`` → ``until``."""

    camera_id: int
    name: str
    primary: str
    backup: str
    primary_id: int
    moves: tuple[Move, ...]  # in time order; the first may be the last move before the period
    enabled_at_start: bool  # enabled (and existing) when the period starts
    enabled_changes: tuple[tuple[float, bool], ...] = ()  # (when, enabled after it), in time order
    gaps: tuple[Interval, ...] = ()  # where no server recorded it, within the period


@dataclass(frozen=True)
class CameraFigures:
    camera_id: int
    name: str
    primary: str
    backup: str
    primary_id: int
    failovers: int
    on_backup_seconds: float
    lost_seconds: float
    # (primary, backup) of each failover in the period; seconds recorded by each backup server
    failover_pairs: tuple[tuple[int | None, int | None], ...] = ()
    backup_seconds: dict[int, float] = field(default_factory=dict)


@dataclass
class ServerFigures:
    server_id: int
    name: str
    system: str
    cameras: int = 0  # its own cameras (it is their primary)
    failovers_away: int = 0  # times a camera left it for its backup
    takeovers: int = 0  # times it took a camera over as backup
    on_backup_seconds: float = 0.0  # its cameras' time on their backups
    carried_seconds: float = 0.0  # time it recorded other servers' cameras as their backup
    lost_seconds: float = 0.0  # its cameras' video lost


def clip(intervals: Iterable[Interval], since: float, until: float) -> list[Interval]:
    clipped = ((max(start, since), min(end, until)) for start, end in intervals)
    return [(start, end) for start, end in clipped if end > start]


def total(intervals: Iterable[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def overlap(first: Iterable[Interval], second: Iterable[Interval]) -> float:
    """Seconds in both sets of intervals (each set sorted and without overlaps of its own)."""
    second = list(second)
    return sum(total(clip(second, start, end)) for start, end in first)


def on_backup(moves: Iterable[Move], since: float, until: float) -> list[tuple[float, float, int | None]]:
    """(from, to, backup server) of each stretch within the period the camera recorded on its backup."""
    stretches, started, backup = [], None, None
    for move in moves:
        if move.kind == FAILOVER and started is None:
            started, backup = move.at, move.to_server
        elif move.kind in (FAILBACK, UNPROTECTED) and started is not None:
            stretches.append((started, move.at, backup))
            started = None
    if started is not None:
        stretches.append((started, until, backup))
    return [(max(start, since), min(end, until), server) for start, end, server in stretches
            if min(end, until) > max(start, since)]  # fmt: skip


def enabled(at_start: bool, changes: Iterable[tuple[float, bool]], since: float, until: float) -> list[Interval]:
    """The stretches of the period the camera existed and was enabled."""
    stretches, started = [], since if at_start else None
    for at, now_enabled in changes:
        if now_enabled and started is None:
            started = at
        elif not now_enabled and started is not None:
            stretches.append((started, at))
            started = None
    if started is not None:
        stretches.append((started, until))
    return clip(stretches, since, until)


def camera_figures(history: CameraHistory, since: float, until: float) -> CameraFigures:
    failovers = [move for move in history.moves if move.kind == FAILOVER and since <= move.at < until]
    watched = enabled(history.enabled_at_start, history.enabled_changes, since, until)
    # A disabled camera is on no server (the engine takes it off without a failback): not on its backup then.
    stretches = [(server, overlap([(start, end)], watched)) for start, end, server in on_backup(history.moves, since,
                                                                                                  until)]  # fmt: skip
    backup_seconds: dict[int, float] = {}
    for server, seconds in stretches:
        if server is not None and seconds:
            backup_seconds[server] = backup_seconds.get(server, 0.0) + seconds
    return CameraFigures(
        history.camera_id, history.name, history.primary, history.backup, history.primary_id,
        failovers=len(failovers),
        on_backup_seconds=sum(seconds for _, seconds in stretches),
        lost_seconds=overlap(clip(history.gaps, since, until), watched),
        failover_pairs=tuple((move.server, move.to_server) for move in failovers),
        backup_seconds=backup_seconds,
    )  # fmt: skip


def server_totals(servers: Iterable[tuple[int, str, str]], cameras: Iterable[CameraFigures]) -> list[ServerFigures]:
    """One row per server ((id, name, system) of each), with the totals of its cameras; a failover is counted
    away from the server that was primary then and as a takeover by the backup that took it."""
    rows = {pk: ServerFigures(pk, name, system) for pk, name, system in servers}
    for camera in cameras:
        if own := rows.get(camera.primary_id):
            own.cameras += 1
            own.on_backup_seconds += camera.on_backup_seconds
            own.lost_seconds += camera.lost_seconds
        for primary, backup in camera.failover_pairs:
            if primary in rows:
                rows[primary].failovers_away += 1
            if backup in rows:
                rows[backup].takeovers += 1
        for backup, seconds in camera.backup_seconds.items():
            if backup in rows:
                rows[backup].carried_seconds += seconds
    return list(rows.values())


def duration(seconds: float) -> str:
    """Seconds as h:mm:ss (hours past 24 stay hours: a month on backup reads 720:00:00)."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
