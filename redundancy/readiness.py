"""A backup's readiness checks as events: one when a backup can no longer open a camera it backs up, one
when it can again (one per episode, as a frame rate drop is). The agents store the checks
(``recording.readiness``); this receives each one stored, in the same transaction."""

import logging

from django.db import transaction
from django.utils import timezone

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
