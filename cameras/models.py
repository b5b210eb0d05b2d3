"""IP cameras: where their video comes from and which servers record it."""

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import F, Q

from accounts.querysets import RestrictedQuerySet
from cameras.modes import effective_mode
from cameras.rules import backup_problems, channel_problems
from servers.models import Server
from utilities.encryption import EncryptedTextField
from utilities.targets import local_target_problem

STREAM_SCHEMES = ("rtsp", "http", "https")


def validate_stream_url(value: str) -> None:
    scheme = urlsplit(value).scheme.lower()
    if scheme not in STREAM_SCHEMES:
        raise ValidationError(
            f"Stream URLs must use rtsp, http or https, not {scheme or 'no scheme'!r}.", code="scheme"
        )
    URLValidator(schemes=list(STREAM_SCHEMES), message="Enter a valid stream URL, such as rtsp://host:554/stream.")(
        value
    )
    named = credential_parameters(value)
    if named:
        raise ValidationError(
            f"The stream URL carries credentials in its parameters ({', '.join(named)}): put them in the user "
            "name and password fields instead.",
            code="credentials",
        )
    parts = urlsplit(value)
    problem = local_target_problem(parts.hostname or "", "A camera's stream")
    if problem:
        raise ValidationError(problem, code="target")
    if parts.username or parts.password:
        # Credentials in the URL would be shown wherever the URL is; they belong in the encrypted fields.
        raise ValidationError(
            "Put the camera's user name and password in their own fields, not in the stream URL.", code="credentials"
        )


def validate_onvif_url(value: str) -> None:
    """A camera's ONVIF media service: an http(s) address, held to the rules of a stream URL."""
    scheme = urlsplit(value).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationError(
            f"ONVIF addresses use http or https, not {scheme or 'no scheme'!r}: for example "
            "http://camera/onvif/media_service.",
            code="scheme",
        )
    validate_stream_url(value)


# Query and RTSP parameters (``?pwd=…``, ``;password=…``) that carry a camera's credentials.
CREDENTIAL_PARAMETERS = {"user", "username", "usr", "login", "pass", "passwd", "password", "pwd", "psw", "auth",
                         "authorization", "token", "access_token", "apikey", "api_key"}  # fmt: skip
_PARAMETER = re.compile(r"(?:^|[?&;/])([^=?&;/]+)=([^&;#]*)")


def credential_parameters(url: str) -> list[str]:
    """The names of the parameters of a stream URL that carry credentials, as written."""
    return [name for name, _ in _parameters(url) if unquote(name).lower() in CREDENTIAL_PARAMETERS]


def without_credential_parameters(url: str) -> str:
    """The URL with the values of its credential parameters blanked: safe to show back."""

    def blank(match):
        if unquote(match.group(1)).lower() not in CREDENTIAL_PARAMETERS:
            return match.group(0)
        return match.group(0)[: match.start(2) - match.start(0)]

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    tail = _PARAMETER.sub(blank, parts.path + ("?" + parts.query if parts.query else ""))
    path, _, query = tail.partition("?")
    return urlunsplit(parts._replace(path=path, query=query))


def _parameters(url: str) -> list[tuple[str, str]]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    return _PARAMETER.findall(parts.path + ("?" + parts.query if parts.query else ""))


def take_credentials(url: str) -> tuple[str, str, str]:
    """A stream URL pasted with ``user:password@``: the URL without them, and the user name and
    password it carried (decoded). Operators paste such URLs all the time; the credentials then
    go to the encrypted fields and the URL is stored, shown and logged without them."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:  # not a URL: the validator says so
        return url, "", ""
    if not (username or password):
        return url, "", ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)), unquote(username or ""), unquote(password or "")


def stream_address(url: str) -> tuple[str, str, int | None]:
    """Where a stream URL leads: scheme, host and port (the scheme's own when none is written). The stored user
    name and password go only to the address they were given for."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


DEFAULT_PORTS = {"rtsp": 554, "http": 80, "https": 443}
# The addresses the agents send a camera's user name and password to, and how a page names each.
CREDENTIAL_ADDRESSES = {"stream_url": "the stream's address", "sub_stream_url": "the sub stream's address",
                        "onvif_url": "the ONVIF address"}  # fmt: skip


def credentials_moved(stored, urls: dict[str, str]) -> list[str]:
    """Of ``urls`` (a stored camera's addresses as they would be stored), those that would take its stored
    user name and password to a place they were not given for: the stream to another scheme, host or port;
    the sub stream or the ONVIF address to another host than the stored stream's, unless it is where it was."""
    if not stored.pk:
        return []
    moved = []
    for field, url in urls.items():
        if not url or field not in CREDENTIAL_ADDRESSES:
            continue
        was = getattr(stored, field) or ""
        if field == "stream_url":
            elsewhere = stream_address(url) != stream_address(was)
        else:
            elsewhere = stream_address(url) != stream_address(was) and (
                stream_address(url)[1] != stream_address(stored.stream_url)[1])  # fmt: skip
        if elsewhere:
            moved.append(field)
    return moved


class Codec(models.TextChoices):
    H264 = "h264", "H.264"
    H265 = "h265", "H.265"
    MJPEG = "mjpeg", "MJPEG"


class RtspTransport(models.TextChoices):
    TCP = "tcp", "TCP (interleaved)"
    UDP = "udp", "UDP"


class StreamQuality(models.TextChoices):
    """How hard the camera's encoder is pushed; the capacity planner's bitrate estimate scales with it."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class FailoverPriority(models.TextChoices):
    HIGH = "high", "High"
    NORMAL = "normal", "Normal"
    LOW = "low", "Low"
    NEVER = "never", "Never moved"


class AnalyticsModule(models.TextChoices):
    MOTION_DETECTION = "motion_detection", "Motion detection"
    TAMPER_DETECTION = "tamper_detection", "Tampering detection"


def validate_analytics(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Analytics must be a list of module names.")
    unknown = sorted(set(value) - set(AnalyticsModule.values))
    if unknown:
        raise ValidationError(
            f"Unknown analytics module(s): {', '.join(unknown)}. Known: {', '.join(AnalyticsModule.values)}."
        )
    if len(set(value)) != len(value):
        raise ValidationError("Each analytics module may be enabled once.")


class CameraQuerySet(RestrictedQuerySet):
    def with_servers(self):
        """Everything needed to show a camera's servers and effective mode without further queries."""
        return self.select_related(
            "primary_server__system",
            "primary_server__redundancy",
            "backup_server__system",
            "backup_server__redundancy",
        )


class Camera(models.Model):
    name = models.CharField(max_length=100, unique=True)
    stream_url = models.CharField(
        "stream URL",
        max_length=500,
        validators=[validate_stream_url],
        help_text="rtsp://, http:// or https:// address of the stream.",
    )
    sub_stream_url = models.CharField(
        "sub stream URL",
        max_length=500,
        blank=True,
        validators=[validate_stream_url],
        help_text="The camera's second, low-resolution stream: snapshots and analytics read it, the "
        "recording keeps the main stream. Empty to take pictures from the main stream.",
    )
    onvif_url = models.CharField(
        "ONVIF media service URL",
        max_length=500,
        blank=True,
        validators=[validate_onvif_url],
        help_text="Where the camera answers ONVIF media requests (http://camera/onvif/media_service). When "
        "set, a server that connects asks the camera for a keyframe at once (SetSynchronizationPoint) "
        "instead of waiting up to a whole keyframe interval.",
    )
    username = EncryptedTextField(blank=True, max_length=128)
    password = EncryptedTextField(blank=True, max_length=128)
    codec = models.CharField(max_length=8, choices=Codec.choices, default=Codec.H264)
    rtsp_transport = models.CharField(
        "RTSP transport", max_length=3, choices=RtspTransport.choices, default=RtspTransport.TCP,
        help_text="How an rtsp:// stream is carried: TCP inside the RTSP connection (passes firewalls, "
        "loses nothing) or UDP (as some cameras ask).",
    )  # fmt: skip
    width = models.PositiveIntegerField(default=1920, validators=[MinValueValidator(16), MaxValueValidator(8192)])
    height = models.PositiveIntegerField(default=1080, validators=[MinValueValidator(16), MaxValueValidator(8192)])
    fps = models.PositiveIntegerField(
        "frames per second", default=25, validators=[MinValueValidator(1), MaxValueValidator(120)]
    )
    quality = models.CharField(
        max_length=8,
        choices=StreamQuality.choices,
        default=StreamQuality.MEDIUM,
        help_text="Encoder quality; used to estimate the bitrate when none is configured or measured.",
    )
    expected_bitrate_kbps = models.PositiveIntegerField(
        "expected bitrate (kbit/s)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
    )
    primary_server = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="primary_cameras")
    backup_server = models.ForeignKey(
        Server, on_delete=models.PROTECT, null=True, blank=True, related_name="backup_cameras"
    )
    failover_priority = models.CharField(
        max_length=8, choices=FailoverPriority.choices, default=FailoverPriority.NORMAL
    )
    analytics = models.JSONField(
        "analytics modules",
        default=list,
        blank=True,
        validators=[validate_analytics],
        help_text="Run on the primary server only, never on the backup.",
    )
    enabled = models.BooleanField(default=True)

    system_paths = ("primary_server__system",)
    objects = CameraQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(backup_server=F("primary_server")), name="camera_backup_is_not_primary"
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        if self.primary_server_id is None:
            return
        stored = (
            Camera.objects.filter(pk=self.pk).only("primary_server", "backup_server", "analytics").first()
            if self.pk
            else None
        )
        problems = channel_problems(self, stored)
        reassigned = stored is None or (stored.primary_server_id, stored.backup_server_id) != (
            self.primary_server_id,
            self.backup_server_id,
        )
        # An unchanged assignment stays editable when a license lapses; the pages warn about it instead.
        backup = reassigned and backup_problems(self.name or "this camera", self.primary_server, self.backup_server)
        if backup:
            problems["backup_server"] = backup
        if problems:
            raise ValidationError(problems)

    def assignment_problems(self) -> list[str]:
        """Rules the stored backup assignment breaks today (a license lapsed since it was made, say)."""
        return backup_problems(self.name, self.primary_server, self.backup_server)

    @property
    def redundancy_mode(self) -> str:
        return effective_mode(self).mode

    @property
    def redundancy_warnings(self) -> list[str]:
        return effective_mode(self).warnings

    @property
    def has_credentials(self) -> bool:
        return bool(self.username or self.password)

    def analytics_on(self, server: Server) -> list[str]:
        """Rule 3: analytics modules run on the camera's primary server only, never on its backup."""
        return list(self.analytics) if server.pk == self.primary_server_id else []

    @property
    def analytics_labels(self) -> list[str]:
        return [AnalyticsModule(module).label for module in self.analytics if module in AnalyticsModule.values]

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"
