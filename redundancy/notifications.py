"""Telling people: every event goes to the live page's Channels group; redundancy starting and
ending goes by mail to the recipients of backups that ask for it (never in constant mode).

Mail leaves through an outbox: the engine marks the events to mail (``wants_mail``) as it stores
them, and the mail worker (``send_pending_mail``, a Celery task on its own queue) sends them.
A hung mail server holds up that worker, never a failover decision.
"""

import logging
import time
from collections import defaultdict
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from celery import current_app
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import Q

from cameras.modes import RedundancyMode
from redundancy.models import Event, MailState
from servers.models import MailSettings, Server

log = logging.getLogger(__name__)


def events_group() -> str:
    """The live pages' Channels group, one per site (its live-state prefix) on a shared Redis."""
    return f"redundancy-events.{settings.LIVE_KEY_PREFIX}"


MAILED_KINDS = {"failover_started": "started", "failback_completed": "ended"}
MAIL_ATTEMPTS = 8  # over about half an hour, then the event says the mail failed and why
MAIL_FIRST_WAIT = 15.0  # seconds
MAIL_LONGEST_WAIT = 600.0
MAIL_CLAIM_SECONDS = 300.0  # a worker that died with a batch claimed leaves it to another after this


def event_payload(event) -> dict:
    return {
        "id": event.pk,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "camera": event.camera_id,
        "server": event.server_id,
        "to_server": event.to_server_id,
        "mode": event.mode,
        "message": event.message,
        "system": _system_of(event),
    }


def _system_of(event) -> int | None:
    """The multiserver system an event belongs to: live pages show each user only their systems. The engine
    names it as it makes the event (``system_id``), sparing a query per event."""
    if getattr(event, "system_id", None) is not None:
        return event.system_id
    if event.server_id:
        return event.server.system_id
    if event.camera_id:
        return event.camera.primary_server.system_id
    return None


def wake_mailer() -> None:
    """A notice to the mail worker; the periodic sweep of the outbox is the backstop for a lost one."""
    try:
        current_app.send_task("redundancy.send_mail", queue=settings.MAIL_QUEUE, expires=60)
    except Exception:  # the sweep sends it a few seconds later
        log.warning("event=mail_wake_failed", exc_info=True)


def push(events) -> None:
    """One message per batch: a whole server failing over is one push, not one per camera."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    try:
        async_to_sync(layer.group_send)(
            events_group(), {"type": "redundancy.events", "events": [event_payload(e) for e in events]}
        )
    except Exception:  # the live page resynchronises from the API; a lost push must not stop the engine
        log.warning("event=push_failed count=%s", len(events), exc_info=True)


def wants_mail(event, servers: dict) -> bool:
    """Redundancy starting or ending on a backup whose settings ask for mail (never in constant mode);
    ``servers``: server id → ``redundancy.config.ServerConf``."""
    if event.kind not in MAILED_KINDS or event.mode == RedundancyMode.CONSTANT:
        return False
    backup = servers.get(_backup_of(event))
    return backup is not None and backup.mails and not backup.constant


def _backup_of(event) -> int | None:
    return event.to_server_id if event.kind == "failover_started" else event.server_id


def retry_after(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 15 s, 30 s, 1 min… up to 10 min."""
    return min(MAIL_LONGEST_WAIT, MAIL_FIRST_WAIT * 2 ** (attempts - 1))


def send_pending_mail(now: float | None = None) -> int:
    """Send the outbox's due mail: one per backup server and kind of change (an incident), not
    per camera. Each batch is claimed before it is sent, so two workers never send it twice; a
    failure is retried with backoff, ``MAIL_ATTEMPTS`` times in all. Returns the mails sent."""
    now = time.time() if now is None else now
    due = Event.objects.filter(mail_state=MailState.PENDING).filter(
        Q(mail_due__isnull=True) | Q(mail_due__lte=_when(now))
    )
    batches: dict[tuple[int, str], list[Event]] = defaultdict(list)
    for event in due.select_related("camera").order_by("at", "id"):
        batches[(_backup_of(event), event.kind)].append(event)
    if not batches:
        return 0
    servers = Server.objects.select_related("redundancy", "system").in_bulk({b for b, _ in batches if b})
    sent = 0
    for (backup_id, kind), batch in batches.items():
        ids = [event.pk for event in batch]
        claimed = due.filter(pk__in=ids).update(mail_due=_when(now + MAIL_CLAIM_SECONDS))
        if claimed != len(ids):
            continue  # another worker has (part of) it
        backup = servers.get(backup_id)
        mail_settings = MailSettings.objects.filter(system=backup.system).first() if backup else None
        if mail_settings is None or not mail_settings.is_configured:
            log.warning("server=%s event=mail_not_configured", backup.name if backup else backup_id)
            Event.objects.filter(pk__in=ids).update(mail_state=MailState.SKIPPED, mail_due=None)
            continue
        attempts = max(event.mail_attempts for event in batch) + 1
        try:
            _send(backup, kind, batch, mail_settings)
        except Exception as exc:  # a mail server down or hung: try again later, then give up
            error = f"{type(exc).__name__}: {exc}"[:200]
            gave_up = attempts >= MAIL_ATTEMPTS
            log.warning("server=%s event=mail_failed attempt=%s gave_up=%s error=%s incidents=%s", backup.name,
                        attempts, gave_up, type(exc).__name__, ",".join(str(pk) for pk in ids))  # fmt: skip
            Event.objects.filter(pk__in=ids).update(
                mail_state=MailState.FAILED if gave_up else MailState.PENDING, mail_attempts=attempts,
                mail_error=error, mail_due=None if gave_up else _when(now + retry_after(attempts)),
            )  # fmt: skip
            continue
        Event.objects.filter(pk__in=ids).update(
            mail_state=MailState.SENT, mail_attempts=attempts, mailed_at=_when(time.time()), mail_due=None,
            mail_error="",
        )  # fmt: skip
        log.info("server=%s event=mail_sent kind=%s cameras=%s incidents=%s", backup.name, kind, len(batch),
                 ",".join(str(pk) for pk in ids))  # fmt: skip
        sent += 1
    return sent


def _send(backup, kind, batch, mail_settings) -> None:
    verb = MAILED_KINDS[kind]
    cameras = sorted({e.camera.name for e in batch if e.camera})
    subject = f"Redundancy {verb} on {backup.name}: {len(cameras)} camera(s)"
    lines = [f"{e.at:%Y-%m-%d %H:%M:%S %Z}  {e.message}" for e in batch]
    body = f"Redundancy {verb} on backup server {backup.name} ({backup.system}).\n\n" + "\n".join(lines) + "\n"
    EmailMessage(subject, body, mail_settings.from_email or settings.DEFAULT_FROM_EMAIL,
                 mail_settings.recipient_list, connection=mail_settings.connection()).send()  # fmt: skip


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
