"""Telling people: every event goes to the live page's Channels group; redundancy starting and
ending goes by mail to the recipients of backups that ask for it (never in constant mode)."""

import logging
from collections import defaultdict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from cameras.modes import RedundancyMode
from servers.models import MailSettings, Server

log = logging.getLogger(__name__)

EVENTS_GROUP = "redundancy-events"
MAILED_KINDS = {"failover_started": "started", "failback_completed": "ended"}


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
    """The multiserver system an event belongs to: live pages show each user only their systems."""
    if event.server_id:
        return event.server.system_id
    if event.camera_id:
        return event.camera.primary_server.system_id
    return None


def announce(events) -> None:
    push(events)
    mail(events)


def push(events) -> None:
    """One message per batch: a whole server failing over is one push, not one per camera."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    try:
        async_to_sync(layer.group_send)(
            EVENTS_GROUP, {"type": "redundancy.events", "events": [event_payload(e) for e in events]}
        )
    except Exception:  # the live page resynchronises from the API; a lost push must not stop the engine
        log.warning("event=push_failed count=%s", len(events), exc_info=True)


def mail(events) -> int:
    """One mail per backup server and per kind of change in this batch (an incident), not per camera."""
    batches: dict[tuple[int, str], list] = defaultdict(list)
    for event in events:
        if event.kind in MAILED_KINDS and event.mode != RedundancyMode.CONSTANT:
            backup_id = event.to_server_id if event.kind == "failover_started" else event.server_id
            if backup_id:
                batches[(backup_id, event.kind)].append(event)
    if not batches:
        return 0
    servers = Server.objects.select_related("redundancy", "system").in_bulk({b for b, _ in batches})
    sent = 0
    for (backup_id, kind), batch in batches.items():
        backup = servers.get(backup_id)
        if backup is None or not backup.redundancy.email_notifications or backup.redundancy.constant_redundancy:
            continue
        mail_settings = MailSettings.objects.filter(system=backup.system).first()
        if mail_settings is None or not mail_settings.is_configured:
            log.warning("server=%s event=mail_not_configured", backup.name)
            continue
        verb = MAILED_KINDS[kind]
        cameras = sorted({e.camera.name for e in batch if e.camera})
        subject = f"Redundancy {verb} on {backup.name}: {len(cameras)} camera(s)"
        lines = [f"{e.at:%Y-%m-%d %H:%M:%S %Z}  {e.message}" for e in batch]
        body = f"Redundancy {verb} on backup server {backup.name} ({backup.system}).\n\n" + "\n".join(lines) + "\n"
        try:
            EmailMessage(subject, body, mail_settings.from_email or settings.DEFAULT_FROM_EMAIL,
                         mail_settings.recipient_list, connection=_connection(mail_settings)).send()  # fmt: skip
            sent += 1
        except Exception as exc:  # a mail server down must not stop the engine
            log.warning("server=%s event=mail_failed error=%s", backup.name, type(exc).__name__)
    return sent


def _connection(mail_settings: MailSettings):
    if mail_settings.smtp_host:
        return get_connection(
            "django.core.mail.backends.smtp.EmailBackend",
            host=mail_settings.smtp_host,
            port=mail_settings.smtp_port,
            username=mail_settings.username or None,
            password=mail_settings.password or None,
            use_tls=mail_settings.use_tls,
            timeout=10,
        )
    return get_connection()
