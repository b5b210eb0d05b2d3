"""A server's licenses in the plan: their dates, and rule 2's shortfalls (``servers/licensing.py``) worded."""

from dataclasses import dataclass
from datetime import date

from servers.licensing import LicenseProblem, Shortfall, ip_camera_channels_needed, license_problems
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
        return ip_camera_channels_needed(self.camera_channels, self.backs_up)


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
    for problem in license_problems(lic, cameras=use.camera_channels, analytics=use.analytics_channels,
                                    backs_up=use.backs_up):  # fmt: skip
        warnings.append(PlanWarning("error", _worded(problem, name)))
    return warnings


def _worded(problem: LicenseProblem, name: str) -> str:
    match problem.shortfall:
        case Shortfall.NOT_ACTIVE:
            return f"Rule 2: {name} has no active license; its cameras and backups need one ({problem.reason})."
        case Shortfall.IP_CAMERA_CHANNELS:
            return (f"Rule 2: {name} is primary for {problem.needed} camera(s) but licensed for "
                    f"{problem.licensed} IP camera channel(s).")  # fmt: skip
        case Shortfall.BACKUP_NEEDS_IP_CAMERA:
            return f"Rule 2: {name} only backs up cameras, but holds no license for an IP camera; {problem.reason}."
        case Shortfall.ANALYTICS_CHANNELS:
            return (f"Rule 2: {problem.needed} of {name}'s camera(s) run analytics, but it is licensed for "
                    f"{problem.licensed} analytics channel(s).")  # fmt: skip
