"""What the redundancy engine remembers between ticks: where each camera records, each
server's health history, and every transition as an event."""

import logging
import time

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from accounts import audit
from accounts.models import AuditAction
from accounts.querysets import RestrictedQuerySet
from cameras.models import Camera
from recording.models import backup_check_recorded
from servers.models import MultiserverSystem, Server

log = logging.getLogger(__name__)


class ServerStatus(models.TextChoices):
    UP = "up", "Up"
    SUSPECT = "suspect", "Suspect"  # silent past the fast window, not yet past the normal one
    DOWN = "down", "Down"
    LEAVING = "leaving", "Leaving"  # announced a planned shutdown
    DRAINING = "draining", "Draining"  # an operator is moving its cameras away
    UNKNOWN = "unknown", "Unknown"  # never heard of


class ServerState(models.Model):
    server = models.OneToOneField(Server, on_delete=models.CASCADE, primary_key=True, related_name="state")
    status = models.CharField(max_length=10, choices=ServerStatus.choices, default=ServerStatus.UNKNOWN)
    status_since = models.DateTimeField()
    draining = models.BooleanField(default=False, help_text="Set by an operator: move its cameras to their backups.")
    healthy_since = models.DateTimeField(null=True, blank=True)
    failures = models.JSONField(default=list, help_text="Recent times (epoch seconds) it went down: flap damping.")
    storage_error = models.CharField(
        max_length=200, blank=True, help_text="Why the server cannot write its recordings, as its agent reports."
    )

    def __str__(self):
        return f"{self.server}: {self.status}"

    @property
    def hold_down_seconds(self) -> float:
        """How long it must stay healthy now before its cameras return: of its recent failures and the
        settings, as the engine reckons it (``decisions.Damping.hold_down_after``)."""
        from redundancy.decisions import Damping  # decisions reads this module's choices

        return Damping.from_settings().hold_down_after(self.failures, time.time())


class DecidingTerm(models.Model):
    """The term of the engine worker that decides for a multiserver system. Each worker that takes the system's
    lease begins a term with the next token (``redundancy.fencing``); the engine stores a decision only under the
    system's current term, so a worker that lost its lease or paused past it cannot write afterwards."""

    system = models.OneToOneField(MultiserverSystem, on_delete=models.CASCADE, primary_key=True,
                                  related_name="deciding_term")  # fmt: skip
    token = models.PositiveBigIntegerField(default=0)
    worker = models.CharField(max_length=64, blank=True)
    since = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.system}: term {self.token} ({self.worker})"


class Placement(models.TextChoices):
    ON_PRIMARY = "on_primary", "On primary"
    TO_BACKUP = "to_backup", "Moving to backup"
    ON_BACKUP = "on_backup", "On backup"
    TO_PRIMARY = "to_primary", "Returning to primary"
    NOBODY = "nobody", "Recorded by nobody"


class CameraPlacement(models.Model):
    camera = models.OneToOneField(Camera, on_delete=models.CASCADE, primary_key=True, related_name="placement")
    state = models.CharField(max_length=12, choices=Placement.choices, default=Placement.ON_PRIMARY)
    since = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    fail_back_requested = models.BooleanField(default=False, help_text="An operator asked to skip the hold-down.")

    def __str__(self):
        return f"{self.camera}: {self.get_state_display()}"


class EventKind(models.TextChoices):
    SERVER_DOWN = "server_down", "Server down"
    SERVER_UP = "server_up", "Server up"
    SERVER_LEAVING = "server_leaving", "Server announced a shutdown"
    FAILOVER_STARTED = "failover_started", "Failover started"
    FAILOVER_COMPLETED = "failover_completed", "Failover completed"
    FAILBACK_STARTED = "failback_started", "Failback started"
    FAILBACK_COMPLETED = "failback_completed", "Failback completed"
    CAMERA_LOST = "camera_lost", "Camera lost"
    CAMERA_RESTORED = "camera_restored", "Camera restored"
    CAMERA_UNPROTECTED = "camera_unprotected", "Camera not recorded"
    FLAP_DAMPED = "flap_damped", "Flapping damped"
    DRAIN_STARTED = "drain_started", "Drain started"
    DRAIN_ENDED = "drain_ended", "Drain ended"
    STORAGE_FAILED = "storage_failed", "Storage failed"
    STORAGE_RESTORED = "storage_restored", "Storage restored"
    AGENT_CONFLICT = "agent_conflict", "Two agents for one server"
    CONNECTION_REFUSED = "connection_refused", "Camera refused a server's connection"
    FRAME_RATE_DROPPED = "frame_rate_dropped", "Camera lowered its frame rate for a second server"
    BACKUP_CHECK_FAILED = "backup_check_failed", "Backup cannot open a camera it backs up"
    BACKUP_CHECK_PASSED = "backup_check_passed", "Backup can open a camera again"


class MailState(models.TextChoices):
    """An event's way through the mail outbox; empty for events nobody is mailed about."""

    NONE = "", "Not mailed"
    PENDING = "pending", "To be mailed"
    SENT = "sent", "Mailed"
    SKIPPED = "skipped", "Not mailed: mail settings incomplete"
    FAILED = "failed", "Mail failed"


class Event(models.Model):
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    camera = models.ForeignKey(Camera, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    server = models.ForeignKey(Server, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    to_server = models.ForeignKey(Server, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    mode = models.CharField(max_length=10, blank=True)
    message = models.CharField(max_length=500)
    # The outbox: the engine marks what is to be mailed, the mail worker sends it and marks it here.
    mail_state = models.CharField(max_length=8, choices=MailState.choices, default=MailState.NONE, blank=True)
    mail_attempts = models.PositiveSmallIntegerField(default=0)
    mail_due = models.DateTimeField(null=True, blank=True, help_text="When the mail worker may next try it.")
    mailed_at = models.DateTimeField(null=True, blank=True)
    mail_error = models.CharField(max_length=200, blank=True)
    # An operator's word that they have seen it; the first one counts.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                        related_name="+")  # fmt: skip
    acknowledged_by_username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    acknowledgement_note = models.CharField(max_length=500, blank=True)

    # An event concerns the systems of its server, its target server and its camera.
    system_paths = ("server__system", "to_server__system", "camera__primary_server__system")
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["camera", "at"]),
            models.Index(fields=["kind", "at"]),
            models.Index(fields=["mail_state", "mail_due"]),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.get_kind_display()}: {self.message}"

    def acknowledge(self, user, note: str = "", now=None) -> bool:
        """Record that ``user`` has seen this event, audited; False when someone already had (the first
        acknowledgement stays). The event is read again either way."""
        now = now or timezone.now()
        with transaction.atomic():
            # One conditional UPDATE: of two operators acknowledging at once, exactly one wins.
            won = Event.objects.filter(pk=self.pk, acknowledged_at__isnull=True).update(
                acknowledged_at=now, acknowledged_by=user, acknowledged_by_username=user.get_username(),
                acknowledgement_note=note,
            )  # fmt: skip
            if won:
                audit.record(AuditAction.ACKNOWLEDGED, self, {"acknowledged_at": None},
                             {"acknowledged_at": now.isoformat(), "note": note}, user=user)  # fmt: skip
                log.info("camera=%s server=%s to_server=%s event=event_acknowledged incident=%s kind=%s user=%s",
                         self.camera_id or "-", self.server.name if self.server_id else "-",
                         self.to_server.name if self.to_server_id else "-", self.pk, self.kind,
                         user.get_username())  # fmt: skip
        self.refresh_from_db(fields=["acknowledged_at", "acknowledged_by", "acknowledged_by_username",
                                     "acknowledgement_note"])  # fmt: skip
        return bool(won)


def _backup_check_recorded(sender, **kwargs):
    from redundancy.readiness import backup_check_event

    backup_check_event(**kwargs)


# An agent's readiness check stored (recording.readiness): an episode that starts or ends is an event.
backup_check_recorded.connect(_backup_check_recorded, dispatch_uid="redundancy-backup-check-events")
