"""License composition of a server against what it is configured to do (rule 2)."""

from dataclasses import dataclass
from datetime import date

from servers.models import Licensing


@dataclass(frozen=True)
class PlanWarning:
    level: str  # "error": over a limit or breaking a rule; "warning": a risk; "info": not checked
    text: str


@dataclass(frozen=True)
class LicenseUse:
    camera_channels: int  # cameras whose primary server it is (backed-up cameras use none)
    analytics_channels: int  # of those, cameras with analytics enabled
    backs_up: int
    licensing: Licensing

    @property
    def camera_channels_needed(self) -> int:
        """A backup-only server still needs a license for one IP camera."""
        return max(self.camera_channels, 1 if self.backs_up else 0)


def license_warnings(server, use: LicenseUse, today: date) -> list:
    name, lic = server.name, use.licensing
    warnings = []
    licenses = list(server.licenses.all())
    for license in licenses:
        if license.valid_until and license.valid_until < today:
            text = f"License {license.key} of {name} expired on {license.valid_until:%Y-%m-%d}."
            warnings.append(PlanWarning("warning", text))
        elif license.valid_from > today:
            warnings.append(
                PlanWarning("info", f"License {license.key} of {name} starts on {license.valid_from:%Y-%m-%d}.")
            )
    configured = use.camera_channels or use.backs_up
    if configured and not lic.active:
        warnings.append(
            PlanWarning(
                "error",
                f"Rule 2: {name} has no active license; its cameras and backups need one "
                "(configuring redundancy needs active licenses).",
            )
        )
    if use.camera_channels > lic.ip_camera_channels:
        warnings.append(
            PlanWarning(
                "error",
                f"Rule 2: {name} is primary for {use.camera_channels} camera(s) but licensed for "
                f"{lic.ip_camera_channels} IP camera channel(s).",
            )
        )
    if use.backs_up and not use.camera_channels and lic.active and lic.ip_camera_channels < 1:
        warnings.append(
            PlanWarning(
                "error",
                f"Rule 2: {name} only backs up cameras, but holds no license for an IP camera; "
                "a backup server needs a license for at least one IP camera.",
            )
        )
    if use.analytics_channels > lic.analytics_channels:
        warnings.append(
            PlanWarning(
                "error",
                f"Rule 2: {use.analytics_channels} of {name}'s camera(s) run analytics, but it is licensed for "
                f"{lic.analytics_channels} analytics channel(s).",
            )
        )
    return warnings
