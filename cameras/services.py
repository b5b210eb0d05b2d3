"""Changing which server backs up which camera: one path for pages, admin and API."""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts import audit
from cameras.models import Camera
from cameras.rules import backup_problems
from servers.models import Server

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupAssignment:
    camera_id: int
    backup_server_id: int | None


class BackupAssignmentError(Exception):
    """Nothing was stored; ``errors`` maps each refused item's position to its messages."""

    def __init__(self, errors: dict[int, list[str]]):
        self.errors = errors
        super().__init__("; ".join(message for messages in errors.values() for message in messages))


def assign_backups(assignments: list[BackupAssignment], today=None, cameras=None, servers=None) -> list[Camera]:
    """Apply every assignment or none of them; returns the cameras whose backup changed.

    ``cameras`` and ``servers`` narrow what may be changed and chosen (a user's systems): others do
    not exist here, and no message names them."""
    today = today or timezone.localdate()
    camera_ids = {a.camera_id for a in assignments}
    server_ids = {a.backup_server_id for a in assignments if a.backup_server_id is not None}
    with transaction.atomic():
        cameras = (
            (cameras if cameras is not None else Camera.objects.all())
            .select_for_update(of=("self",))
            .select_related("primary_server__system")
            .prefetch_related("primary_server__licenses")
            .in_bulk(camera_ids)
        )
        servers = (
            (servers if servers is not None else Server.objects.all())
            .select_related("system")
            .prefetch_related("licenses")
            .in_bulk(server_ids)
        )
        errors: dict[int, list[str]] = {}
        seen: set[int] = set()
        changed = []
        previous: dict[int, int | None] = {}
        for index, item in enumerate(assignments):
            camera = cameras.get(item.camera_id)
            if camera is None:
                errors[index] = [f"Camera {item.camera_id} does not exist."]
                continue
            if item.camera_id in seen:
                errors[index] = [f"Camera {camera.name} is listed more than once."]
                continue
            seen.add(item.camera_id)
            if camera.backup_server_id == item.backup_server_id:
                continue  # unchanged: stays as it is, like an unchanged camera saved through its form
            backup = None
            if item.backup_server_id is not None:
                backup = servers.get(item.backup_server_id)
                if backup is None:
                    errors[index] = [f"Server {item.backup_server_id} does not exist."]
                    continue
            problems = backup_problems(camera.name, camera.primary_server, backup, today)
            if problems:
                errors[index] = problems
            else:
                previous[camera.pk] = camera.backup_server_id
                camera.backup_server = backup
                changed.append(camera)
        if errors:
            raise BackupAssignmentError(errors)
        Camera.objects.bulk_update(changed, ["backup_server"])
        if changed:
            from redundancy import config

            config.bump()  # bulk_update sends no signal: the engine reads the new backups at its next pass
        audit.record_changes(
            (camera, {"backup_server_id": previous[camera.pk]}, {"backup_server_id": camera.backup_server_id})
            for camera in changed
        )
        # Logged once stored: an outer transaction may still roll the assignment back.
        transaction.on_commit(lambda: _log_assignments(changed))
    return changed


def _log_assignments(cameras: list[Camera]) -> None:
    for camera in cameras:
        log.info(
            "camera=%s primary=%s backup=%s event=backup_assigned",
            camera.pk,
            camera.primary_server.name,
            camera.backup_server.name if camera.backup_server else "-",
        )
