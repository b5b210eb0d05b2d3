"""A backup's readiness checks as events: one when a backup can no longer open a camera it backs up, one
when it can again (one per episode, as a frame rate drop is). The agents store the checks
(``recording.readiness``); this receives each one stored, in the same transaction. And the report: every
camera with a backup, with the last check of it by that backup."""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from cameras.models import Camera
from recording.models import BackupCheck
from redundancy.models import Event, EventKind
from redundancy.notifications import push

log = logging.getLogger(__name__)


def backup_check_event(check, was_ok, **_) -> Event | None:
    """The event of a check whose result changed episode: failed after passing (or never checked), or passed
    after failing; None when the episode goes on."""
    if check.ok is False and was_ok is not False:
        kind = EventKind.BACKUP_CHECK_FAILED
        text = (f"{check.server.name} cannot open {check.camera.name}, which it backs up: {check.detail}; "
                "a failover would not record it")  # fmt: skip
    elif check.ok and was_ok is False:
        kind = EventKind.BACKUP_CHECK_PASSED
        text = f"{check.server.name} can open {check.camera.name} again, which it backs up"
    else:
        return None
    log.log(logging.WARNING if check.ok is False else logging.INFO, "camera=%s server=%s event=%s detail=%r",
            check.camera_id, check.server.name, kind, check.detail)  # fmt: skip
    event = Event.objects.create(at=check.checked_at or timezone.now(), kind=kind, camera=check.camera,
                                 server=check.server, message=text[:500])  # fmt: skip
    transaction.on_commit(lambda: push([event]))  # the live page hears it; a lost push costs nothing stored
    return event


@dataclass(frozen=True)
class ReadinessRow:
    """One camera with a backup in the report: its backup and the last check of it by that backup (None: never)."""

    camera: Camera
    check: BackupCheck | None

    @property
    def server(self):
        return self.camera.backup_server

    @property
    def result(self) -> str:
        return self.check.result if self.check else "never checked"

    @property
    def ok(self) -> bool | None:
        return self.check.ok if self.check else None


def readiness_report(cameras) -> list[ReadinessRow]:
    """Every camera of ``cameras`` that has a backup, with its last check by that backup; failed ones first."""
    backed_up = list(cameras.filter(backup_server__isnull=False).select_related("backup_server", "primary_server"))
    checks = {check.camera_id: check for check in BackupCheck.objects.current().filter(camera__in=backed_up)}
    rows = [ReadinessRow(camera, checks.get(camera.pk)) for camera in backed_up]
    order = {False: 0, None: 1, True: 2}
    return sorted(rows, key=lambda row: (order[row.ok], row.camera.name))


def last_checks(camera_ids) -> dict[int, BackupCheck]:
    """The last check of each of these cameras by its backup as it is now."""
    return {c.camera_id: c for c in BackupCheck.objects.current().filter(camera_id__in=camera_ids)
            .select_related("camera", "server")}  # fmt: skip
