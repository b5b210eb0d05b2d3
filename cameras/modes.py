"""A camera's effective redundancy mode, computed in one place (rule 5 of docs/architecture.md)."""

from dataclasses import dataclass, field

from django.db import models

from servers.licensing import Shortfall, license_problems


class RedundancyMode(models.TextChoices):
    NONE = "none", "None"
    NORMAL = "normal", "Normal"
    FAST = "fast", "Fast"
    CONSTANT = "constant", "Constant"


@dataclass(frozen=True)
class ModeDecision:
    mode: str
    warnings: list[str] = field(default_factory=list)


def mode_for(backup_constant: bool, backup_fast: bool, primary_fast: bool) -> str:
    """The mode of a camera that has a backup, from the two servers' Backup (redundancy) flags.

    Constant wins over fast: with a permanent second connection there is nothing to detect.
    """
    if backup_constant:
        return RedundancyMode.CONSTANT
    if backup_fast and primary_fast:
        return RedundancyMode.FAST
    return RedundancyMode.NORMAL


def effective_mode(camera) -> ModeDecision:
    """The mode follows the backup server's settings; fast also needs the primary's half.

    Its warnings (a camera's ``redundancy_warnings``, in the API too) are of the settings alone. What the agents
    measure — a connection the camera refuses, a frame rate that drops while two servers read it — changes by
    the second and is stream health's (recording.models words it): the camera page and the Backup section show
    it beside these, the API has it as events (connection_refused, frame_rate_dropped) and in /api/status/."""
    backup = camera.backup_server
    if backup is None:
        return ModeDecision(RedundancyMode.NONE)
    on_backup, primary = backup.redundancy, camera.primary_server
    mode = mode_for(on_backup.constant_redundancy, on_backup.fast_redundancy, primary.redundancy.fast_redundancy)
    if on_backup.fast_redundancy and mode == RedundancyMode.NORMAL:
        return ModeDecision(
            mode,
            [
                f"Fast redundancy is on for backup server {backup.name} but not for primary server "
                f"{primary.name}: camera {camera.name} uses normal redundancy until it is enabled on {primary.name}."
            ],
        )
    return ModeDecision(mode)


def server_warnings(server, backed_up, primary_of, licensing) -> list[str]:
    """Warnings shown beside a server's Backup (redundancy) section.

    ``backed_up`` and ``primary_of`` are the cameras this server backs up and is primary for,
    loaded with their servers' settings.
    """
    settings = server.redundancy
    warnings = []
    if settings.fast_redundancy and not settings.constant_redundancy:
        waiting = sorted({c.primary_server.name for c in backed_up if not c.primary_server.redundancy.fast_redundancy})
        if waiting:
            warnings.append(
                f"Fast redundancy must also be enabled on primary server(s) {', '.join(waiting)}; "
                "until then their cameras backed up here use normal redundancy."
            )
    asking = sorted(
        {
            c.backup_server.name
            for c in primary_of
            if c.backup_server
            and c.backup_server.redundancy.fast_redundancy
            and not c.backup_server.redundancy.constant_redundancy
        }
    )
    if asking and not settings.fast_redundancy:
        warnings.append(
            f"Backup server(s) {', '.join(asking)} have fast redundancy on; enable it here too, "
            f"or the cameras of {server.name} they back up stay in normal mode."
        )
    if any(effective_mode(c).mode == RedundancyMode.FAST for c in [*backed_up, *primary_of]):
        warnings.append(
            "In fast mode a short outage between servers can raise a false alarm; the engine damps flapping."
        )
    if settings.constant_redundancy and settings.fast_redundancy:
        warnings.append(
            f"Constant redundancy wins for the cameras {server.name} backs up; its fast redundancy setting "
            "matters only as a primary server (it cooperates with its cameras' fast backups)."
        )
    if settings.constant_redundancy and backed_up:
        warnings.append(
            f"Constant redundancy doubles the bandwidth taken from each of the {len(backed_up)} camera(s) "
            f"backed up here: {server.name} keeps its own connection to each of them."
        )
    if settings.constant_redundancy and settings.email_notifications:
        warnings.append("No email is sent in constant redundancy mode.")
    for problem in license_problems(licensing, backs_up=len(backed_up)):
        active = problem.shortfall is not Shortfall.NOT_ACTIVE
        lacks = "holds no license for an IP camera" if active else "has no active license"
        warnings.append(f"Rule 2: {server.name} backs up cameras but {lacks}; {problem.reason}.")
    return warnings
