"""The configuration the engine and the live status judge by, read in a few queries of plain values.

No model instances and no credentials: a 10,000-camera site is read in tens of milliseconds, and
only when it changed. Every save or delete of what it is made of bumps a version in Redis
(``bump``, connected to the models' signals in ``apps.py``); a reader keeps its copy while the
version stays the same (``Cache``).
"""

import logging
from dataclasses import dataclass, field

import redis
from django.db import transaction

from cameras.modes import RedundancyMode, mode_for
from protocol import live

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerConf:
    pk: int
    name: str
    system_id: int
    system: str  # the multiserver system's name
    address: str
    api_port: int
    max_cameras: int | None
    fast: bool  # its Backup (redundancy) settings
    constant: bool
    mails: bool  # mail when redundancy starts and ends on it


@dataclass(frozen=True, slots=True)
class CameraConf:
    pk: int
    name: str
    enabled: bool
    mode: str  # the effective redundancy mode (cameras.modes)
    priority: str
    fps: int
    primary_id: int
    backup_id: int | None
    system_id: int  # its primary's system


@dataclass
class SiteConfig:
    version: int | None
    servers: dict[int, ServerConf] = field(default_factory=dict)
    cameras: dict[int, CameraConf] = field(default_factory=dict)
    by_name: dict[str, ServerConf] = field(default_factory=dict)

    def systems(self) -> set[int]:
        return {server.system_id for server in self.servers.values()}

    def within(self, systems) -> "SiteConfig":
        """The part of the configuration that belongs to ``systems`` (a camera to its primary's)."""
        systems = set(systems)
        servers = {pk: s for pk, s in self.servers.items() if s.system_id in systems}
        cameras = {pk: c for pk, c in self.cameras.items() if c.system_id in systems}
        return SiteConfig(self.version, servers, cameras, {s.name: s for s in servers.values()})


def load(version: int | None = None) -> SiteConfig:
    """The whole configuration now (two queries)."""
    from cameras.models import Camera
    from servers.models import Server

    servers = {}
    for row in Server.objects.values_list(
        "pk", "name", "system_id", "system__name", "address", "api_port", "max_cameras",
        "redundancy__fast_redundancy", "redundancy__constant_redundancy", "redundancy__email_notifications",
    ):  # fmt: skip
        pk, name, system_id, system, address, api_port, max_cameras, fast, constant, mails = row
        servers[pk] = ServerConf(pk, name, system_id, system, address, api_port, max_cameras, bool(fast),
                                 bool(constant), bool(mails))  # fmt: skip
    cameras = {}
    for pk, name, enabled, priority, fps, primary_id, backup_id in Camera.objects.values_list(
        "pk", "name", "enabled", "failover_priority", "fps", "primary_server_id", "backup_server_id"
    ):
        primary, backup = servers[primary_id], servers.get(backup_id)
        mode = RedundancyMode.NONE if backup is None else mode_for(backup.constant, backup.fast, primary.fast)
        cameras[pk] = CameraConf(pk, name, enabled, mode, priority, fps, primary_id, backup_id, primary.system_id)
    return SiteConfig(version, servers, cameras, {s.name: s for s in servers.values()})


def bump(**_) -> None:
    """The configuration changed: readers load it again (after the change is committed)."""

    def tell():
        try:
            live.bump_config_version(live.client())
        except redis.RedisError:  # readers also reload when they cannot tell (see Cache.get)
            log.warning("event=config_version_not_bumped reason=redis_unreachable")

    transaction.on_commit(tell)


class Cache:
    """The configuration, loaded again only when its version in Redis moves."""

    def __init__(self):
        self.config: SiteConfig | None = None

    def get(self, version: int | None) -> tuple[SiteConfig, bool]:
        """The configuration for ``version`` (as read from Redis this pass: 0 until the first change), and whether
        it was loaded again. None loads it again in any case."""
        if self.config is not None and version is not None and self.config.version == version:
            return self.config, False
        self.config = load(version)
        return self.config, True
