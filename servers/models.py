"""Video servers, the multiserver systems they form, their licenses and settings."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    RegexValidator,
    validate_email,
    validate_ipv46_address,
)
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.querysets import RestrictedQuerySet
from utilities.encryption import EncryptedTextField
from utilities.targets import local_target_problem, mail_port_problem, recordings_path_problem

server_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
    "Use letters, digits, '.', '_' or '-', starting with a letter or digit (at most 63 characters).",
)
_host_name = RegexValidator(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def host_validator(value: str) -> None:
    """A host name, an IPv4 address or an IPv6 address (bare or in brackets)."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        validate_ipv46_address(bare)
        return
    except ValidationError:
        pass
    try:
        _host_name(value)
        if value.rsplit(".", 1)[-1].isdigit() and "." in value:
            raise ValidationError("numeric top-level label")  # looks like a broken IPv4 address
    except ValidationError:
        raise ValidationError("Enter a host name or an IP address.", code="invalid") from None


MAX_RETENTION_HOURS = 24 * 3650
# Three minutes: short enough for a test site or a soak, whose cameras would fill the disk in an hour.
MIN_RETENTION_HOURS = 0.05

# The planner's capacity figures: (label, smallest, largest). Zero or a negative figure is a
# mistake, not "unlimited"; an unknown figure is left empty.
CAPACITY_FIGURES = {
    "max_inbound_mbps": ("Max inbound Mbit/s", 1, 100_000),
    "cpu_budget_cores": ("The CPU budget", Decimal("0.1"), Decimal("1024")),
    "storage_gb": ("Storage (GB)", 1, 10_000_000),
    "max_cameras": ("Max cameras", 1, 100_000),
}


def capacity_messages(field: str) -> dict[str, str]:
    label, smallest, largest = CAPACITY_FIGURES[field]
    return {
        "min_value": f"{label} must be at least {smallest}; leave it empty if it is not known yet "
        "(the planner then says it is not checked).",
        "max_value": f"{label} cannot be more than {largest:,}.",
    }


def capacity_validators(field: str) -> list:
    _, smallest, largest = CAPACITY_FIGURES[field]
    messages = capacity_messages(field)
    return [MinValueValidator(smallest, messages["min_value"]), MaxValueValidator(largest, messages["max_value"])]


class MultiserverSystem(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, max_length=1000)

    system_paths = ("pk",)
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class Licensing:
    """What a server's active licenses allow on one day."""

    active: bool
    ip_camera_channels: int
    analytics_channels: int


class ServerQuerySet(RestrictedQuerySet):
    def with_settings(self):
        """Everything the backup rules and the Backup section read of a server without further queries."""
        return self.select_related("system", "redundancy").prefetch_related("licenses")


class Server(models.Model):
    system = models.ForeignKey(MultiserverSystem, on_delete=models.PROTECT, related_name="servers")
    name = models.CharField(max_length=63, unique=True, validators=[server_name_validator])
    address = models.CharField(max_length=253, validators=[host_validator], help_text="Host name or IP address.")
    api_port = models.PositiveIntegerField(
        "API port",
        default=8080,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="Where the server's agent serves its recordings (HTTP, signed requests only), its metrics and health "
        "checks, at its address.",
    )
    # Capacity figures for the planner; empty means "not yet measured" and the planner says so.
    max_inbound_mbps = models.PositiveIntegerField(
        "max inbound Mbit/s", null=True, blank=True, validators=capacity_validators("max_inbound_mbps")
    )
    cpu_budget_cores = models.DecimalField(
        "CPU budget (cores)",
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
        validators=capacity_validators("cpu_budget_cores"),
    )
    storage_gb = models.PositiveIntegerField(
        "storage (GB)", null=True, blank=True, validators=capacity_validators("storage_gb")
    )
    max_cameras = models.PositiveIntegerField(null=True, blank=True, validators=capacity_validators("max_cameras"))
    recordings_path = models.CharField(
        max_length=500,
        blank=True,
        help_text="Directory on the video server for segments and snapshots; empty for recordings/<server> "
        "under the site's data directory.",
    )
    retention_hours = models.FloatField(
        "retention (hours)",
        default=72,
        validators=[MinValueValidator(MIN_RETENTION_HOURS), MaxValueValidator(MAX_RETENTION_HOURS)],
        help_text="Recorded segments older than this are deleted by housekeeping (0.1 is six minutes).",
    )
    merge_back = models.BooleanField(
        "merge back recordings after failback",
        default=True,
        help_text="Once a camera is back on this server, copy in what its backup recorded meanwhile, so that this "
        "server holds the camera's whole archive.",
    )

    system_paths = ("system",)
    objects = ServerQuerySet.as_manager()

    class Meta:
        ordering = ["system__name", "name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        adding = self._state.adding
        super().save(*args, **kwargs)
        if adding:
            RedundancySettings.objects.get_or_create(server=self)

    def clean(self):
        super().clean()
        problem = recordings_path_problem(self.recordings_path)
        if problem:
            raise ValidationError({"recordings_path": problem})
        if self.pk is None or self.system_id is None:
            return
        stored = Server.objects.filter(pk=self.pk).values_list("system_id", flat=True).first()
        if stored is None or stored == self.system_id:
            return
        # Rule 1: moving a server must not leave a camera with its two servers in different systems.
        partners = (
            Server.objects.filter(Q(primary_cameras__backup_server=self) | Q(backup_cameras__primary_server=self))
            .exclude(pk=self.pk)
            .distinct()
            .values_list("name", flat=True)
        )
        if partners:
            raise ValidationError(
                {
                    "system": f"Rule 1: server {self.name} cannot leave its multiserver system while it shares "
                    f"cameras with {', '.join(sorted(partners))} as primary or backup; "
                    "remove those backup assignments first."
                }
            )

    @property
    def storage_dir(self) -> Path:
        if self.recordings_path:
            return Path(self.recordings_path)
        return Path(settings.RECORDINGS_ROOT or settings.VAR_DIR / "recordings") / self.name

    def licensing(self, today: date | None = None) -> Licensing:
        """Sum of the active licenses; reads ``self.licenses.all()`` so a prefetch serves it."""
        today = today or timezone.localdate()
        active = [lic for lic in self.licenses.all() if lic.is_active(today)]
        return Licensing(
            active=bool(active),
            ip_camera_channels=sum(lic.ip_camera_channels for lic in active),
            analytics_channels=sum(lic.analytics_channels for lic in active),
        )


class LicenseQuerySet(RestrictedQuerySet):
    def active(self, today: date | None = None):
        today = today or timezone.localdate()
        return self.filter(Q(valid_until__isnull=True) | Q(valid_until__gte=today), valid_from__lte=today)


class License(models.Model):
    key = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9-]{3,63}$", "Use 4 to 64 letters, digits and '-'.")],
    )
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="licenses")
    ip_camera_channels = models.PositiveIntegerField("IP camera channels", validators=[MaxValueValidator(100_000)])
    analytics_channels = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(100_000)])
    valid_from = models.DateField(default=timezone.localdate)
    valid_until = models.DateField(null=True, blank=True, help_text="Last valid day; empty for a perpetual license.")

    system_paths = ("server__system",)
    objects = LicenseQuerySet.as_manager()

    class Meta:
        ordering = ["server__name", "valid_from", "key"]

    def __str__(self):
        return f"{self.key} ({self.server})"

    def clean(self):
        super().clean()
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValidationError({"valid_until": "The license cannot end before it starts."})

    def is_active(self, today: date | None = None) -> bool:
        today = today or timezone.localdate()
        return self.valid_from <= today and (self.valid_until is None or today <= self.valid_until)

    is_active.boolean = True


class RedundancySettings(models.Model):
    """The *Backup (redundancy)* section of a server: applies to every camera it backs up."""

    server = models.OneToOneField(Server, on_delete=models.CASCADE, primary_key=True, related_name="redundancy")
    email_notifications = models.BooleanField(
        "sending email notifications", default=False, help_text="Mail the recipients when redundancy starts and ends."
    )
    constant_redundancy = models.BooleanField(
        default=False, help_text="Keep a second connection to each backed-up camera and record it all the time."
    )
    fast_redundancy = models.BooleanField(
        default=False,
        help_text="Detect failures in seconds. Needed on both the backup and the camera's primary server.",
    )

    class Meta:
        verbose_name = "backup (redundancy) settings"
        verbose_name_plural = "backup (redundancy) settings"

    def __str__(self):
        return f"Backup (redundancy) of {self.server}"


def validate_recipients(value: str) -> None:
    for address in split_recipients(value):
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"{address!r} is not an email address.") from None


def split_recipients(value: str) -> list[str]:
    return [part.strip() for part in value.replace(";", ",").replace("\n", ",").split(",") if part.strip()]


class MailSettings(models.Model):
    """How a multiserver system sends its redundancy notifications."""

    system = models.OneToOneField(
        MultiserverSystem, on_delete=models.CASCADE, primary_key=True, related_name="mail_settings"
    )
    smtp_host = models.CharField("SMTP host", max_length=253, blank=True, validators=[host_validator])
    smtp_port = models.PositiveIntegerField(
        "SMTP port", default=587, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    use_tls = models.BooleanField("use STARTTLS", default=True)
    username = models.CharField(max_length=254, blank=True)
    password = EncryptedTextField(blank=True)
    from_email = models.EmailField("from address", blank=True)
    recipients = models.TextField(
        max_length=2000,
        blank=True,
        validators=[validate_recipients],
        help_text="Addresses that receive the notifications, separated by commas or new lines.",
    )

    class Meta:
        verbose_name = "mail settings"
        verbose_name_plural = "mail settings"

    def __str__(self):
        return f"Mail settings of {self.system}"

    def clean(self):
        super().clean()
        problems = {"smtp_host": local_target_problem(self.smtp_host, "The SMTP host"),
                    "smtp_port": mail_port_problem(self.smtp_port) if self.smtp_host else ""}  # fmt: skip
        problems = {field: problem for field, problem in problems.items() if problem}
        if problems:
            raise ValidationError(problems)

    @property
    def recipient_list(self) -> list[str]:
        return split_recipients(self.recipients)

    def connection(self):
        """The mail connection these settings give: the system's own SMTP server, or the site's mail
        (EMAIL_URL); every SMTP path has a timeout."""
        if self.smtp_host:
            return get_connection(
                "django.core.mail.backends.smtp.EmailBackend",
                host=self.smtp_host,
                port=self.smtp_port,
                username=self.username or None,
                password=self.password or None,
                use_tls=self.use_tls,
                timeout=settings.EMAIL_TIMEOUT,
            )
        return get_connection(timeout=settings.EMAIL_TIMEOUT)

    @property
    def is_configured(self) -> bool:
        """Mail can go out: somebody to tell, and a way to send (own SMTP host or the environment's)."""
        has_transport = bool(self.smtp_host) or settings.EMAIL_FROM_ENVIRONMENT
        return bool(self.recipient_list) and has_transport
