"""The state of the whole system: every server's health and every camera's placement.

Rows come from two pure functions, ``server_row`` and ``camera_row``, over the configuration as plain
values (``redundancy.config``) and what is seen of the servers. The engine publishes them per
multiserver system (``StatusPublisher``): a snapshot in Redis, and a versioned delta of the rows that
changed to the live pages listening on that system. ``/api/status/``, the live page and its socket
read the snapshots (``published_status``); ``current_status`` computes the same status on the spot
from the database and Redis, the reference and the fallback while nothing is published.

Nothing in a published row moves with every heartbeat: a server's age is published as when it was
last heard (``last_heard``, Redis's clock) once it is silent past the fast window, and readers compute
``heartbeat_age`` when they read; a camera's fps is published again only when it moved by 1 fps or
10 %. A quiet site publishes nothing.

Its keys (``status:<system id>``, ``status-watched``) are declared with every other in ``protocol.live``;
a snapshot expires ``STATUS_TTL`` after the engine's last publish or renewal, so a system whose engine
died is computed again, not shown frozen.

Channels groups: ``redundancy-status.<prefix>.<system id>`` (``status_group``), the system's deltas.
"""

import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

import redis
from asgiref.sync import async_to_sync
from django.conf import settings

from protocol import live
from redundancy import config as site_config
from redundancy.config import CameraConf, ServerConf, SiteConfig
from redundancy.decisions import CameraView, ServerView, Windows, active_server, ingesting_servers
from redundancy.models import CameraPlacement, Placement, ServerState
from redundancy.observation import Observation, observe

log = logging.getLogger(__name__)

STATUS_TTL = 60.0  # seconds a snapshot outlives its engine's last publish or renewal
STATUS_RENEW_EVERY = 20.0  # seconds; a quiet system's snapshot is renewed this often
WATCHED_TTL = 180.0  # seconds; live sockets renew the mark every minute
DELTA_MAX_ROWS = 500  # a larger change is announced without its rows: sockets read the snapshot instead
AWAY = (Placement.TO_BACKUP, Placement.ON_BACKUP)


def status_group(system_id: int) -> str:
    """The Channels group of a system's deltas, one per site (its live-state prefix) on a shared Redis."""
    return f"redundancy-status.{settings.LIVE_KEY_PREFIX}.{system_id}"


# -- rows ---------------------------------------------------------------------------------------


def server_row(server: ServerConf, state: ServerState | None, view: ServerView, own_cameras: int,
               cameras_away: int, last_heard: float | None = None, windows: Windows | None = None) -> dict:  # fmt: skip
    """A server's row. ``state``: its stored ServerState (or the engine's record of it: ``status``,
    ``status_since``), or None; ``last_heard``: its last heartbeat by Redis's clock (the last-seen hash),
    published only once it is silent past the fast window, so that a heartbeating server's row stays still."""
    windows = windows or Windows.from_settings()
    silent = view.heartbeat_age is not None and view.heartbeat_age > windows.fast
    return {
        "id": server.pk, "name": server.name, "system": server.system, "system_id": server.system_id,
        "status": state.status if state else "unknown",
        "status_since": _iso(state.status_since) if state else None,
        "last_heard": last_heard if silent else None,
        "draining": view.draining, "leaving": view.leaving, "hold_down_seconds": view.hold_down,
        "ingesting": len(view.streams), "own_cameras": own_cameras, "max_cameras": server.max_cameras,
        "storage_error": getattr(state, "storage_error", "") or "",
        # Own cameras on (or moving to) their backups: what "Fail back now" would return.
        "cameras_away": cameras_away,
    }  # fmt: skip


def camera_row(camera: CameraConf, placement, view: CameraView, windows: Windows,
               reports: dict[str, dict[int, dict]], config: SiteConfig) -> dict:  # fmt: skip
    """A camera's row. ``placement``: ``.state``, ``.since`` (epoch seconds or None), ``.reason``, or None
    (on its primary); ``reports``: server name → camera id → stream report."""
    state = placement.state if placement else Placement.ON_PRIMARY
    recording_on = _recording_on(camera.pk, view)
    reporter = {"primary": camera.primary_id, "both": camera.primary_id, "backup": camera.backup_id}.get(recording_on)
    reporter = config.servers.get(reporter) if reporter else None
    report = reports.get(reporter.name, {}).get(camera.pk, {}) if reporter else {}
    active = active_server(view) if camera.enabled else None
    on = (view.primary,) if view.backup is None else (view.primary, view.backup)
    since = placement.since if placement else None
    return {
        "id": camera.pk, "name": camera.name, "enabled": camera.enabled, "mode": camera.mode,
        "recording_on": recording_on, "fps": round(float(report.get("fps") or 0.0), 1),
        "primary_server": camera.primary_id, "backup_server": camera.backup_id,
        "placement": state, "since": _iso(since) if since is not None else None,
        "reason": placement.reason if placement else "",
        "active_server": active.pk if active else None,
        "ingesting_servers": sorted(ingesting_servers(view)) if camera.enabled else [],
        "streams": {str(server.pk): server.streams[camera.pk] for server in on if camera.pk in server.streams},
    }  # fmt: skip


def status_rows(config: SiteConfig, states: dict, views: dict[int, ServerView], placements: dict,
                reports: dict[str, dict[int, dict]], last_seen: dict[str, float], windows: Windows,
                ) -> tuple[dict[int, dict], dict[int, dict]]:  # fmt: skip
    """Every row of ``config``: (server id → row, camera id → row). ``states``: server id → stored state;
    ``views``: server id → what is seen of it; ``placements``: camera id → placement (see ``camera_row``)."""
    own = Counter(camera.primary_id for camera in config.cameras.values())
    away = Counter(
        camera.primary_id for camera in config.cameras.values()
        if camera.pk in placements and placements[camera.pk].state in AWAY
    )  # fmt: skip
    servers = {
        pk: server_row(server, states.get(pk), views[pk], own[pk], away[pk], last_seen.get(server.name), windows)
        for pk, server in config.servers.items()
    }
    cameras = {}
    for pk, camera in config.cameras.items():
        placement = placements.get(pk)
        view = CameraView(
            pk=pk, name=camera.name, mode=camera.mode, priority=camera.priority, primary=views[camera.primary_id],
            backup=views.get(camera.backup_id) if camera.backup_id else None,
            placement=placement.state if placement else Placement.ON_PRIMARY, in_placement_for=0,
        )  # fmt: skip
        cameras[pk] = camera_row(camera, placement, view, windows, reports, config)
    return servers, cameras


def _recording_on(camera_id: int, view: CameraView) -> str:
    """Where the camera's frames are being recorded now, from the servers' own stream reports."""
    on_primary = view.primary.streaming(camera_id)
    on_backup = view.backup is not None and view.backup.streaming(camera_id)
    if on_primary and on_backup:
        return "both"
    return "primary" if on_primary else "backup" if on_backup else "nobody"


def _iso(moment) -> str:
    if isinstance(moment, datetime):
        return moment.isoformat()
    return datetime.fromtimestamp(moment, UTC).isoformat()


# -- computed on the spot -----------------------------------------------------------------------


def current_status(redis_client=None, clock=time.time, systems: set[int] | None = None) -> dict:
    """Every server's health and every camera's placement, computed now from the database and Redis;
    ``systems`` limits it to those systems. Without Redis the stored part is given, with ``live`` false."""
    now = clock()
    r = redis_client or live.client()
    config = site_config.load()
    if systems is not None:
        config = config.within(systems)
    states = {state.pk: state for state in ServerState.objects.filter(server__in=list(config.servers))}
    placements = {
        pk: SimpleNamespace(state=state, since=since.timestamp(), reason=reason)
        for pk, state, since, reason in CameraPlacement.objects.values_list("camera_id", "state", "since", "reason")
        if pk in config.cameras
    }  # fmt: skip
    try:
        seen, reachable = observe(r, [s.name for s in config.servers.values()], now), True
    except redis.RedisError:
        seen, reachable = Observation(now, {}, set(), {}), False
    views = {pk: seen.server_view(server, states.get(pk)) for pk, server in config.servers.items()}
    windows = Windows.from_settings()
    servers, cameras = status_rows(config, states, views, placements, seen.reports, seen.last_seen, windows)
    for row in servers.values():
        age = views[row["id"]].heartbeat_age
        row["heartbeat_age"] = round(age, 2) if age is not None else None
    return {"at": now, "live": reachable, "servers": _ordered_servers(servers.values()),
            "cameras": _ordered_cameras(cameras.values()), "versions": {}}  # fmt: skip


def servers_health(systems: set[int] | None, redis_client=None) -> tuple[dict[int, dict], bool]:
    """Each server's row now, by id (its status, draining, heartbeat age by Redis's clock, storage
    error), and whether the live state could be read at all."""
    r = redis_client or live.client()
    try:
        now = live.redis_time(r)
    except redis.RedisError:
        now = time.time()
    status = current_status(r, clock=lambda: now, systems=systems)
    return {row["id"]: row for row in status["servers"]}, status["live"]


def _ordered_servers(rows) -> list[dict]:
    return sorted(rows, key=lambda row: (row["system"], row["name"], row["id"]))


def _ordered_cameras(rows) -> list[dict]:
    return sorted(rows, key=lambda row: (row["name"], row["id"]))


# -- published ----------------------------------------------------------------------------------


def systems_with_servers() -> set[int]:
    """The systems a status can hold rows of (a system without servers has no snapshot to wait for)."""
    from servers.models import Server

    return set(Server.objects.order_by().values_list("system_id", flat=True).distinct())


def published_status(redis_client, systems: set[int] | None, known: set[int] | None = None) -> dict | None:
    """The published snapshots of ``systems`` (None: every system) merged in the status's shape, with each
    server's ``heartbeat_age`` computed now from the last-seen hash, both by Redis's clock; None when one of
    them has no snapshot. ``known``: the systems that have servers, when the caller has them at hand.
    Raises redis.RedisError."""
    known = systems_with_servers() if known is None else known
    wanted = sorted(known if systems is None else known & set(systems))
    with redis_client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.hgetall(live.key("last-seen"))
        for system_id in wanted:
            pipe.hgetall(live.key("status", system_id))
        (seconds, micros), seen, *snapshots = pipe.execute()
    now = seconds + micros / 1e6
    seen = {name.decode(): float(at) for name, at in seen.items()}
    servers, cameras, versions = [], [], {}
    for system_id, snapshot in zip(wanted, snapshots, strict=True):
        if b"version" not in snapshot:
            return None
        versions[str(system_id)] = int(snapshot.pop(b"version"))
        snapshot.pop(b"at", None)
        for field, value in snapshot.items():
            (servers if field.startswith(b"s:") else cameras).append(json.loads(value))
    for row in servers:
        heard = seen.get(row["name"])
        row["heartbeat_age"] = None if heard is None else round(max(0.0, now - heard), 2)
    return {"at": now, "live": True, "servers": _ordered_servers(servers), "cameras": _ordered_cameras(cameras),
            "versions": versions}  # fmt: skip


def read_status(redis_client, systems: set[int] | None) -> dict:
    """The published status of ``systems``, or the status computed now when some of it is not published
    (no engine leads that system yet, or Redis cannot be read)."""
    try:
        status = published_status(redis_client, systems)
    except redis.RedisError:
        status = None
    return status if status is not None else current_status(redis_client, systems=systems)


def _steady_fps(last: dict, row: dict) -> dict:
    """The row with the fps last published unless it moved by at least 1 fps or 10 % of it."""
    before, now = last.get("fps"), row.get("fps")
    if before is None or now is None or abs(now - before) >= min(1.0, 0.1 * before):
        return row
    return {**row, "fps": before}


class _Published:
    def __init__(self, version: int):
        self.version = version
        self.servers: dict[int, dict] = {}
        self.cameras: dict[int, dict] = {}
        self.renewed = float("-inf")


class StatusPublisher:
    """The engine's side: per system it leads, the rows last published, kept in memory. ``publish`` writes
    and sends only what differs from them. The snapshot key's expiry is renewed by ``publish``, at most
    every ``STATUS_RENEW_EVERY`` seconds when nothing changed: call it every pass for every system led,
    changed rows or none."""

    def __init__(self, redis_client, channel_layer=None, clock=time.monotonic):
        self.redis = redis_client
        self._layer = channel_layer
        self.clock = clock
        self._systems: dict[int, _Published] = {}

    def version(self, system_id: int) -> int | None:
        known = self._systems.get(system_id)
        return known.version if known else None

    def publish(self, system_id: int, at: float, servers: dict[int, dict], cameras: dict[int, dict],
                full: bool = False, removed_servers=(), removed_cameras=()) -> int | None:  # fmt: skip
        """Publish the rows of ``system_id`` that may have changed (with ``full``: all its rows; rows not
        given are then removed). The first publish of a system (or after ``forget``) must be full. Returns the
        new version, or None when nothing differed. Raises redis.RedisError (nothing is then taken as
        published: the next call sends it again)."""
        key = live.key("status", system_id)
        known = self._systems.get(system_id)
        first = known is None
        if first:
            if not full:
                raise ValueError(f"system {system_id}: the first publish must be full")
            known = _Published(self._first_version(key))
        servers_changed = {pk: row for pk, row in servers.items() if known.servers.get(pk) != row}
        cameras_changed = {}
        for pk, row in cameras.items():
            last = known.cameras.get(pk)
            if last is not None:
                row = _steady_fps(last, row)
            if last != row:
                cameras_changed[pk] = row
        servers_gone = (set(removed_servers) | (set(known.servers) - set(servers) if full else set())) & set(
            known.servers
        )
        cameras_gone = (set(removed_cameras) | (set(known.cameras) - set(cameras) if full else set())) & set(
            known.cameras
        )
        changed = servers_changed or cameras_changed or servers_gone or cameras_gone
        now = self.clock()
        if not changed and not first:
            if now - known.renewed >= STATUS_RENEW_EVERY:
                self.redis.pexpire(key, int(STATUS_TTL * 1000))
                known.renewed = now
            return None
        version = known.version + 1
        mapping = {"version": version, "at": repr(float(at))}
        mapping.update({f"s:{pk}": _dumps(row) for pk, row in servers_changed.items()})
        mapping.update({f"c:{pk}": _dumps(row) for pk, row in cameras_changed.items()})
        with self.redis.pipeline(transaction=True) as pipe:
            if first:
                pipe.delete(key)  # what an engine before this one left
            gone = [f"s:{pk}" for pk in servers_gone] + [f"c:{pk}" for pk in cameras_gone]
            if gone:
                pipe.hdel(key, *gone)
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, int(STATUS_TTL * 1000))
            pipe.exists(live.key("status-watched"))
            watched = pipe.execute()[-1]
        known.version, known.renewed = version, now
        known.servers.update(servers_changed)
        known.cameras.update(cameras_changed)
        for pk in servers_gone:
            del known.servers[pk]
        for pk in cameras_gone:
            del known.cameras[pk]
        self._systems[system_id] = known
        if watched:
            self._send(system_id, version, at, servers_changed, cameras_changed, servers_gone, cameras_gone)
        return version

    def forget(self, system_id: int) -> None:
        """This engine no longer leads the system: its next leader publishes it (from the version stored),
        or its snapshot expires."""
        self._systems.pop(system_id, None)

    def _first_version(self, key: str) -> int:
        """Versions go on from the snapshot another engine left; without one they start from Redis's clock in
        milliseconds, so that a page's version is never met again by a different status."""
        stored = self.redis.hget(key, "version")
        return int(stored) if stored is not None else int(live.redis_time(self.redis) * 1000)

    def _send(self, system_id, version, at, servers, cameras, servers_gone, cameras_gone) -> None:
        from channels.layers import get_channel_layer

        layer = self._layer or get_channel_layer()
        if layer is None:
            return
        message = {"type": "status.delta", "system": system_id, "version": version, "at": at}
        if len(servers) + len(cameras) > DELTA_MAX_ROWS:
            message["resync"] = True
        else:
            message.update(servers=list(servers.values()), cameras=list(cameras.values()),
                           removed_servers=sorted(servers_gone), removed_cameras=sorted(cameras_gone))  # fmt: skip
        try:
            async_to_sync(layer.group_send)(status_group(system_id), message)
        except Exception:  # a page that misses a version reads the snapshot; a lost delta must not stop the engine
            log.warning("system=%s event=status_delta_failed version=%s", system_id, version, exc_info=True)


def mark_watched(redis_client) -> None:
    """A live socket is open: the publisher sends deltas (raises redis.RedisError)."""
    redis_client.set(live.key("status-watched"), "1", px=int(WATCHED_TTL * 1000))


def _dumps(row: dict) -> str:
    return json.dumps(row, separators=(",", ":"))
