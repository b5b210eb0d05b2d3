"""Rule 2 of docs/architecture.md, stated once: what a server's licenses must allow for what it does.

``license_problems`` returns the shortfalls as values; the refusals of a backup or a camera
(``cameras/rules.py``), the warnings of a server's Backup section (``cameras/modes.py``) and the
planner (``capacity/licensing.py``) only word them, each for its reader.
"""

from dataclasses import dataclass
from enum import StrEnum

from servers.models import Licensing


class Shortfall(StrEnum):
    NOT_ACTIVE = "not_active"
    IP_CAMERA_CHANNELS = "ip_camera_channels"
    BACKUP_NEEDS_IP_CAMERA = "backup_needs_ip_camera"
    ANALYTICS_CHANNELS = "analytics_channels"


REASONS = {
    Shortfall.NOT_ACTIVE: "configuring redundancy needs active licenses",
    Shortfall.IP_CAMERA_CHANNELS: "cameras a server only backs up use none of its channels",
    Shortfall.BACKUP_NEEDS_IP_CAMERA: "a backup server needs a license for at least one IP camera",
    Shortfall.ANALYTICS_CHANNELS: "a camera's analytics take an analytics channel of its primary server",
}


@dataclass(frozen=True)
class LicenseProblem:
    shortfall: Shortfall
    needed: int = 0
    licensed: int = 0

    @property
    def reason(self) -> str:
        return REASONS[self.shortfall]


def ip_camera_channels_needed(cameras: int, backs_up: int) -> int:
    """A camera takes an IP camera channel of its primary server and none of its backup's; a server
    that backs any camera up still needs a license for one."""
    return max(cameras, 1 if backs_up else 0)


def license_problems(licensing: Licensing, *, cameras: int = 0, analytics: int = 0,
                     backs_up: int = 0) -> list[LicenseProblem]:  # fmt: skip
    """What ``licensing`` lacks for a server that is primary for ``cameras`` cameras (``analytics``
    of them with analytics) and backs up ``backs_up``; empty when it allows all of it."""
    problems = []
    if (cameras or backs_up) and not licensing.active:
        problems.append(LicenseProblem(Shortfall.NOT_ACTIVE))
    licensed = licensing.ip_camera_channels
    if cameras > licensed:
        problems.append(LicenseProblem(Shortfall.IP_CAMERA_CHANNELS, cameras, licensed))
    elif licensing.active and ip_camera_channels_needed(cameras, backs_up) > licensed:
        problems.append(LicenseProblem(Shortfall.BACKUP_NEEDS_IP_CAMERA, 1, licensed))
    if analytics > licensing.analytics_channels:
        problems.append(LicenseProblem(Shortfall.ANALYTICS_CHANNELS, analytics, licensing.analytics_channels))
    return problems
