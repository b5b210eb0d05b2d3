"""Load a demo multiserver system: three servers, one per redundancy mode, and nine cameras.

Six cameras have a backup server (two in each mode); the three MJPEG ones, the heaviest, were left without
one, as cameras added to a running site often are: the Capacity page's proposal has them to place, spread so
that no single failure piles them onto one server (each demo server records at most eight cameras).

The cameras' streams are served by the camera simulator on ports 8601-8609 (the Procfile's
``cameras``): RTSP H.264, RTSP H.265 and MJPEG in turn, the RTSP ones with their ONVIF
media service on the simulator's control port (a server that takes one over asks it for a
keyframe). Running the command again changes nothing, but for a demo loaded by an earlier
version, whose streams and ONVIF addresses it brings to what the simulator serves now. A
superuser ``admin`` is created when missing; its random password is written to
``<VAR_DIR>/demo-admin-password`` (mode 0600) and never printed.
"""

import os
import secrets
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from cameras.models import AnalyticsModule, Camera, Codec, FailoverPriority
from cameras.services import BackupAssignment, assign_backups
from servers.models import License, MultiserverSystem, Server

SYSTEM_NAME = "Demo site"
ADMIN_USERNAME = "admin"
PASSWORD_FILE = "demo-admin-password"

# name: (API port, fast redundancy, constant redundancy)
SERVERS = {
    "srv-a": (8081, False, False),  # normal
    "srv-b": (8082, True, False),  # fast
    "srv-c": (8083, True, True),  # constant (wins over fast)
}
# Small demo boxes: eight cameras each is what makes the worst case worth planning.
CAPACITY = {"max_inbound_mbps": 1000, "cpu_budget_cores": Decimal("8"), "storage_gb": 4000, "max_cameras": 8}

# camera number: (primary, backup, the mode the backup's settings must give it)
CAMERAS = {
    1: ("srv-a", "srv-c", "constant"),
    2: ("srv-a", "srv-c", "constant"),
    3: ("srv-a", None, "none"),  # the proposal's to place
    4: ("srv-b", "srv-a", "normal"),
    5: ("srv-b", "srv-a", "normal"),
    6: ("srv-b", None, "none"),
    7: ("srv-c", "srv-b", "fast"),
    8: ("srv-c", "srv-b", "fast"),
    9: ("srv-c", None, "none"),
}
WITH_ANALYTICS = {1, 4, 7}
PRIORITY = {1: FailoverPriority.HIGH, 7: FailoverPriority.HIGH, 9: FailoverPriority.LOW}
SIMULATOR_BASE_PORT = 8600
DEMO_CODECS = (Codec.H264, Codec.H265, Codec.MJPEG)  # the simulator's --codecs, cycled over the cameras
EXPECTED_KBPS = {Codec.H264: 100, Codec.H265: 80, Codec.MJPEG: 1500}  # 640x360 at 5 fps


def demo_onvif(number: int) -> str:
    """Demo camera ``number``'s ONVIF media service, on the simulator's control port (RTSP cameras only)."""
    return f"http://127.0.0.1:{SIMULATOR_BASE_PORT}/onvif/{number}/media_service"


def demo_stream(number: int) -> tuple[str, str]:
    """The stream URL and codec of demo camera ``number``, as the simulator serves it."""
    codec = DEMO_CODECS[(number - 1) % len(DEMO_CODECS)]
    port = SIMULATOR_BASE_PORT + number
    return (f"http://127.0.0.1:{port}/video.mjpg" if codec == Codec.MJPEG else f"rtsp://127.0.0.1:{port}/stream"), codec


def camera_name(number: int) -> str:
    return f"cam-{number:02d}"


class Command(BaseCommand):
    help = "Load a demo multiserver system with servers in normal, fast and constant mode and nine cameras."

    def handle(self, *args, **options):
        with transaction.atomic():
            if MultiserverSystem.objects.filter(name=SYSTEM_NAME).exists():
                if self.update_streams():
                    self.stdout.write(f"The demo ({SYSTEM_NAME!r}) is already there; its cameras' streams now "
                                      f"follow the simulator (RTSP H.264 and H.265 with their ONVIF addresses, "
                                      f"and MJPEG).")  # fmt: skip
                else:
                    self.stdout.write(f"The demo ({SYSTEM_NAME!r}) is already there; nothing changed.")
            else:
                self.refuse_name_clashes()
                servers = self.create_servers(MultiserverSystem.objects.create(name=SYSTEM_NAME))
                self.create_cameras(servers)
                self.stdout.write(
                    self.style.SUCCESS(f"Loaded {SYSTEM_NAME!r}: {len(servers)} servers, {len(CAMERAS)} cameras.")
                )
            self.ensure_admin()

    def refuse_name_clashes(self):
        """Server and camera names are unique site-wide; an operator's own objects are never taken over."""
        servers = Server.objects.filter(name__in=SERVERS).values_list("name", flat=True)
        cameras = Camera.objects.filter(name__in=[camera_name(n) for n in CAMERAS]).values_list("name", flat=True)
        clashes = sorted([*servers, *cameras])
        if clashes:
            raise CommandError(
                f"Cannot load the demo: these names are already taken outside {SYSTEM_NAME!r}: {', '.join(clashes)}."
            )

    def create_servers(self, system) -> dict[str, Server]:
        licensed_since = date(timezone.localdate().year, 1, 1)
        servers = {}
        for name, (api_port, fast, constant) in SERVERS.items():
            server = Server(system=system, name=name, address="127.0.0.1", api_port=api_port, **CAPACITY)
            server.full_clean()
            server.save()
            license = License(
                key=f"DEMO-{name.upper()}-0001",
                server=server,
                ip_camera_channels=16,
                analytics_channels=4,
                valid_from=licensed_since,
                valid_until=None,
            )
            license.full_clean()
            license.save()
            server.redundancy.fast_redundancy = fast
            server.redundancy.constant_redundancy = constant
            server.redundancy.save()
            servers[name] = server
        return servers

    def update_streams(self) -> int:
        """A demo camera still on the simulator's MJPEG URL of an earlier version follows the simulator now,
        and an RTSP one without its ONVIF address gets it."""
        updated = 0
        for number in CAMERAS:
            url, codec = demo_stream(number)
            if codec != Codec.MJPEG:
                updated += Camera.objects.filter(
                    name=camera_name(number), primary_server__system__name=SYSTEM_NAME, stream_url=url, onvif_url=""
                ).update(onvif_url=demo_onvif(number))
            old = f"http://127.0.0.1:{SIMULATOR_BASE_PORT + number}/video.mjpg"
            updated += (
                Camera.objects.filter(
                    name=camera_name(number), primary_server__system__name=SYSTEM_NAME, stream_url=old
                )
                .exclude(stream_url=url)
                .update(stream_url=url, codec=codec, expected_bitrate_kbps=EXPECTED_KBPS[codec],
                        onvif_url=demo_onvif(number) if codec != Codec.MJPEG else "")  # fmt: skip
            )
        return updated

    def create_cameras(self, servers: dict[str, Server]) -> None:
        assignments = []
        for number, (primary, backup, _mode) in CAMERAS.items():
            url, codec = demo_stream(number)
            camera = Camera(
                name=camera_name(number),
                stream_url=url,
                onvif_url=demo_onvif(number) if codec != Codec.MJPEG else "",
                codec=codec,
                width=640,
                height=360,
                fps=5,
                expected_bitrate_kbps=EXPECTED_KBPS[codec],
                primary_server=servers[primary],
                failover_priority=PRIORITY.get(number, FailoverPriority.NORMAL),
                analytics=[AnalyticsModule.MOTION_DETECTION.value] if number in WITH_ANALYTICS else [],
            )
            camera.full_clean()
            camera.save()
            if backup is not None:
                assignments.append(BackupAssignment(camera.pk, servers[backup].pk))
        # Backups go through the service that enforces the rules, like every page and the API.
        assign_backups(assignments)

        stored = Camera.objects.with_servers().filter(primary_server__in=servers.values())
        by_name = {camera.name: camera for camera in stored}
        wrong = [
            f"{camera_name(n)} is {by_name[camera_name(n)].redundancy_mode}, expected {mode}"
            for n, (_primary, _backup, mode) in CAMERAS.items()
            if by_name[camera_name(n)].redundancy_mode != mode
        ]
        if wrong:
            raise CommandError(f"The demo's redundancy modes came out wrong: {'; '.join(wrong)}.")

    def ensure_admin(self) -> None:
        path = Path(settings.VAR_DIR) / PASSWORD_FILE
        shown = display_path(path)
        User = get_user_model()
        if User.objects.filter(username=ADMIN_USERNAME).exists():
            if path.exists():
                self.stdout.write(f"Log in as {ADMIN_USERNAME}; the password is in {shown}")
            else:
                self.stdout.write(f"User {ADMIN_USERNAME} already exists; its password was left unchanged.")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(ADMIN_USERNAME, "", password)
        write_secret(path, password + "\n")
        self.stdout.write(self.style.SUCCESS(f"Log in as {ADMIN_USERNAME}; the password is in {shown}"))


def write_secret(path: Path, text: str) -> None:
    """Readable by the owner only, also when the file was there before with a looser mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def display_path(path: Path) -> str:
    """``var/demo-admin-password`` for the default VAR_DIR; the full path elsewhere."""
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(path)
