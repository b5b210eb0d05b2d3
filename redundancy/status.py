"""The state of the whole system now: every server's health and every camera's placement.

Stored placements and statuses come from the engine; heartbeat ages and stream reports are
read live from Redis, so the answer is at most a heartbeat old. Without Redis the stored
part is still given, with ``live`` false.
"""

import time
from collections import Counter

import redis
from django.db.models import Count

from cameras.models import Camera
from recording import live
from redundancy.decisions import CameraView, Windows, active_server, ingesting_servers
from redundancy.models import CameraPlacement, Placement, ServerState
from redundancy.observation import Observation, observe
from servers.models import Server


def current_status(redis_client=None, clock=time.time, systems: set[int] | None = None) -> dict:
    """Every server's health and every camera's placement; ``systems`` limits it to those systems."""
    now = clock()
    r = redis_client or live.client()
    servers = Server.objects.select_related("system").annotate(own=Count("primary_cameras"))
    cameras = Camera.objects.with_servers()
    if systems is not None:
        servers = servers.filter(system__in=systems)
        cameras = cameras.filter(primary_server__system__in=systems)
    servers, cameras = list(servers), list(cameras)
    states = {s.pk: s for s in ServerState.objects.all()}
    names = [s.name for s in servers]
    try:
        seen, reachable = observe(r, names, now), True
    except redis.RedisError:
        seen, reachable = Observation(now, {}, set(), {}), False
    placements = {p.pk: p for p in CameraPlacement.objects.all()}
    away = Counter(
        camera.primary_server_id for camera in cameras
        if camera.pk in placements and placements[camera.pk].state in (Placement.TO_BACKUP, Placement.ON_BACKUP)
    )  # fmt: skip
    views = {}
    server_rows = []
    for server in servers:
        state = states.get(server.pk)
        views[server.pk] = view = seen.server_view(server, state)
        age = view.heartbeat_age
        server_rows.append({
            "id": server.pk, "name": server.name, "system": server.system.name,
            "status": state.status if state else "unknown",
            "status_since": state.status_since.isoformat() if state else None,
            "heartbeat_age": round(age, 2) if age is not None else None,
            "draining": view.draining, "leaving": view.leaving,
            "hold_down_seconds": view.hold_down, "ingesting": len(view.streams), "own_cameras": server.own,
            "max_cameras": server.max_cameras,
            "storage_error": state.storage_error if state else "",
            # Own cameras on (or moving to) their backups: what "Fail back now" would return.
            "cameras_away": away[server.pk],
        })  # fmt: skip
    windows = Windows.from_settings()
    camera_rows = []
    for camera in cameras:
        placement = placements.get(camera.pk)
        state = placement.state if placement else Placement.ON_PRIMARY
        view = CameraView(
            pk=camera.pk, name=camera.name, mode=camera.redundancy_mode, priority=camera.failover_priority,
            primary=views[camera.primary_server_id], backup=views.get(camera.backup_server_id),
            placement=state, in_placement_for=0,
        )  # fmt: skip
        active_view = active_server(view) if camera.enabled else None
        active = active_view.pk if active_view else None
        recording_on = _recording_on(camera, view)
        reporter = {"primary": camera.primary_server, "both": camera.primary_server,
                    "backup": camera.backup_server}.get(recording_on)  # fmt: skip
        report = seen.health.get(reporter.name, {}).get(camera.pk, {}) if reporter else {}
        camera_rows.append({
            "id": camera.pk, "name": camera.name, "enabled": camera.enabled, "mode": view.mode,
            "recording_on": recording_on, "fps": report.get("fps", 0.0),
            "primary_server": camera.primary_server_id, "backup_server": camera.backup_server_id,
            "placement": state, "since": placement.since.isoformat() if placement else None,
            "reason": placement.reason if placement else "",
            "active_server": active,
            "ingesting_servers": sorted(ingesting_servers(view, windows)) if camera.enabled else [],
            "streams": {str(pk): v.streams[camera.pk] for pk, v in views.items() if camera.pk in v.streams},
        })  # fmt: skip
    return {"at": now, "live": reachable, "servers": server_rows, "cameras": camera_rows}


def _recording_on(camera, view: CameraView) -> str:
    """Where the camera's frames are being recorded now, from the servers' own stream reports."""
    on_primary = view.primary.streaming(camera.pk)
    on_backup = view.backup is not None and view.backup.streaming(camera.pk)
    if on_primary and on_backup:
        return "both"
    return "primary" if on_primary else "backup" if on_backup else "nobody"
