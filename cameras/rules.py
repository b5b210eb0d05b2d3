"""The rules a backup assignment must keep (rules 1 and 2 of docs/architecture.md), checked in one place.

Camera.clean(), the assignment service, the configurator pages, the admin and the API all
call ``backup_problems``; each message names the rule and the objects involved.
"""

from datetime import date

from django.utils import timezone

from servers.licensing import REASONS, Shortfall, license_problems


def backup_problems(camera_name: str, primary, backup, today: date | None = None, licensing_of=None) -> list[str]:
    """Why ``backup`` cannot back up a camera recorded by ``primary``; empty when it can.

    Reads licenses through ``server.licenses.all()``, so a prefetch serves many calls; a caller
    judging many pairs may pass ``licensing_of(server)`` returning each server's Licensing once.
    """
    if backup is None:
        return []
    if backup.pk == primary.pk:
        return [
            f"Rule 1: server {backup.name} is the primary server of camera {camera_name} and cannot also be its backup."
        ]
    if backup.system_id != primary.system_id:
        return [
            f"Rule 1: backup server {backup.name} is in multiserver system {backup.system}, but camera "
            f"{camera_name}'s primary server {primary.name} is in {primary.system}; "
            "the backup must be in the same system."
        ]
    today = today or timezone.localdate()
    licensing_of = licensing_of or (lambda server: server.licensing(today))
    problems = []
    # The primary's channels are channel_problems' to judge, when a camera takes one; here only redundancy's need.
    if any(p.shortfall is Shortfall.NOT_ACTIVE for p in license_problems(licensing_of(primary), cameras=1)):
        problems.append(
            f"Rule 2: primary server {primary.name} of camera {camera_name} has no active license; "
            f"{REASONS[Shortfall.NOT_ACTIVE]}."
        )
    for problem in license_problems(licensing_of(backup), backs_up=1):
        if problem.shortfall is Shortfall.NOT_ACTIVE:
            problems.append(f"Rule 2: backup server {backup.name} has no active license; {problem.reason}.")
        else:
            problems.append(f"Rule 2: backup server {backup.name} holds no license for an IP camera; {problem.reason}.")
    return problems


def valid_backups(camera_name: str, primary, candidates, today: date | None = None) -> list:
    """The servers among ``candidates`` that may back up the camera: what a drop-down offers."""
    today = today or timezone.localdate()
    return [server for server in candidates if not backup_problems(camera_name, primary, server, today)]


def channel_problems(camera, stored=None, today: date | None = None) -> dict[str, list[str]]:
    """Rule 2: a camera takes an IP camera channel of its primary server (never of its backup), and
    enabled analytics take an analytics channel there. Checked when the camera takes a new channel,
    so an existing camera stays editable after a license lapses (the licenses page shows that)."""
    primary = camera.primary_server
    moved = stored is None or stored.primary_server_id != camera.primary_server_id
    analytics_added = bool(camera.analytics) and (moved or not stored.analytics)
    if not moved and not analytics_added:
        return {}
    licensing = primary.licensing(today or timezone.localdate())
    others = primary.primary_cameras.exclude(pk=camera.pk)
    cameras = others.count() + 1 if moved else 0
    analytics = others.exclude(analytics=[]).count() + 1 if analytics_added else 0
    problems = {}
    for problem in license_problems(licensing, cameras=cameras, analytics=analytics):
        if problem.shortfall is Shortfall.NOT_ACTIVE:
            problems["primary_server"] = [
                f"Rule 2: primary server {primary.name} has no active license; camera {camera.name} needs an "
                "IP camera channel of one."
            ]
        elif problem.shortfall is Shortfall.IP_CAMERA_CHANNELS and "primary_server" not in problems:
            problems["primary_server"] = [
                f"Rule 2: primary server {primary.name} is licensed for {problem.licensed} IP camera "
                f"channel(s) and all are in use; camera {camera.name} needs one more. {problem.reason.capitalize()}."
            ]
        elif problem.shortfall is Shortfall.ANALYTICS_CHANNELS:
            problems["analytics"] = [
                f"Rule 2: primary server {primary.name} is licensed for {problem.licensed} analytics "
                f"channel(s) and all are in use; camera {camera.name} needs one for its analytics."
            ]
    return problems
