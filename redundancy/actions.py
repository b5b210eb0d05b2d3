"""What operators do by hand: drain a server for maintenance, and fail its cameras back now."""

import logging

from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.models import AuditAction
from protocol import live
from redundancy import config, notifications
from redundancy.models import CameraPlacement, Event, EventKind, Placement, ServerState

log = logging.getLogger(__name__)


def _state(server) -> ServerState:
    state, _ = ServerState.objects.get_or_create(server=server, defaults={"status_since": timezone.now()})
    return state


def _tick_soon(*events) -> None:
    """Let the engine read the operator's change and act on it now, and show the action live."""
    config.bump()  # the engine reads drains and fail-backs with the configuration
    transaction.on_commit(lambda: live.wake_engine(live.client(), "operator"))
    if events:
        transaction.on_commit(lambda: notifications.push(events))


@transaction.atomic
def drain(server, user=None) -> Event | None:
    """Move the server's cameras to their backups, each only once its backup records it."""
    state = _state(server)
    if state.draining:
        return None
    state.draining = True
    state.save(update_fields=["draining"])
    audit.record(AuditAction.DRAIN, server, {"draining": False}, {"draining": True}, user=user)
    who = f" by {user}" if user else ""
    event = Event.objects.create(at=timezone.now(), kind=EventKind.DRAIN_STARTED, server=server,
                                 message=f"{server.name} is being drained for maintenance{who}")  # fmt: skip
    _tick_soon(event)
    log.info("server=%s event=drain_started incident=%s user=%s", server.name, event.pk, user or "-")
    return event


@transaction.atomic
def fail_back(server, user=None) -> int:
    """End a drain and return the server's cameras now, without waiting for the hold-down.

    Still make-before-break: each camera returns once the server records it again."""
    state = _state(server)
    who = f" by {user}" if user else ""
    events = []
    if state.draining:
        state.draining = False
        state.save(update_fields=["draining"])
        events.append(Event.objects.create(at=timezone.now(), kind=EventKind.DRAIN_ENDED, server=server,
                                           message=f"{server.name} is back in service{who}"))  # fmt: skip
    count = CameraPlacement.objects.filter(
        camera__primary_server=server, state__in=[Placement.ON_BACKUP, Placement.TO_BACKUP]
    ).update(fail_back_requested=True)
    was_draining = bool(events)
    audit.record(AuditAction.FAIL_BACK, server, {"draining": was_draining}, {"draining": False,
                 "cameras_returning": count}, user=user)  # fmt: skip
    _tick_soon(*events)
    log.info("server=%s event=fail_back_requested cameras=%s incident=%s user=%s", server.name, count,
             events[0].pk if events else "-", user or "-")  # fmt: skip
    return count
