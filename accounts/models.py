"""Who changed what: one entry per configuration change or manual action."""

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"
    DRAIN = "drain", "Drain started"
    FAIL_BACK = "fail_back", "Fail back now"
    ACKNOWLEDGED = "acknowledged", "Event acknowledged"


class AuditEntry(models.Model):
    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="audit_entries")  # fmt: skip
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=12, choices=AuditAction.choices)
    object_type = models.CharField(max_length=100, help_text="app_label.model")
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or 'system'} {self.action} {self.object_repr}"


class SystemAccess(models.Model):
    """Limits a user to the multiserver systems listed for them: pages, API and live updates show
    only those systems' servers, cameras and events, and actions on anything else are refused.
    A user with no entry works across the whole site, as do superusers."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="system_access")
    # PROTECT: deleting a user's last system must not leave them, without a limit, with the whole site.
    system = models.ForeignKey("servers.MultiserverSystem", on_delete=models.PROTECT, related_name="user_access")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "system"], name="one_access_per_user_and_system")]
        verbose_name_plural = "system access"

    def __str__(self):
        return f"{self.user} → {self.system}"
