"""Fixtures shared by every app's tests: a small multiserver system and logged-in clients."""

import os
import uuid
from datetime import timedelta
from itertools import count

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from rest_framework.test import APIClient

from cameras.models import Camera
from recording import live
from servers.models import License, MultiserverSystem, Server

_serial = count(1)


@pytest.fixture(autouse=True)
def live_namespace(settings):
    """Each test keeps its live state (heartbeats, health, snapshots) under its own Redis prefix."""
    settings.LIVE_KEY_PREFIX = f"test-{uuid.uuid4().hex[:12]}"
    yield settings.LIVE_KEY_PREFIX
    try:
        client = live.client()
        keys = list(client.scan_iter(f"{settings.LIVE_KEY_PREFIX}:*", count=500))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass


@pytest.fixture
def make_system(db):
    def make(name=None):
        return MultiserverSystem.objects.create(name=name or f"system-{next(_serial)}")

    return make


@pytest.fixture
def make_server(db, make_system):
    """A server with an active license unless ``license=False``; redundancy flags set by keyword."""

    def make(name=None, system=None, license=True, channels=16, fast=False, constant=False, email=False, **fields):
        server = Server.objects.create(
            name=name or f"srv-{next(_serial)}",
            system=system or make_system(),
            address=fields.pop("address", "127.0.0.1"),
            **fields,
        )
        if license:
            License.objects.create(
                key=f"LIC-{server.name.upper()}-{next(_serial)}",
                server=server,
                ip_camera_channels=channels,
                analytics_channels=4,
                valid_from=timezone.localdate() - timedelta(days=30),
            )
        if fast or constant or email:
            server.redundancy.fast_redundancy = fast
            server.redundancy.constant_redundancy = constant
            server.redundancy.email_notifications = email
            server.redundancy.save()
        return server

    return make


@pytest.fixture
def make_camera(db):
    def make(primary, backup=None, name=None, **fields):
        number = next(_serial)
        return Camera.objects.create(
            name=name or f"cam-{number}",
            stream_url=fields.pop("stream_url", f"http://127.0.0.1:{18000 + number}/video.mjpg"),
            primary_server=primary,
            backup_server=backup,
            **fields,
        )

    return make


@pytest.fixture
def site(make_system, make_server):
    """One system of three licensed servers, plus a server of another system."""
    system = make_system("Site")
    return {
        "system": system,
        "a": make_server("srv-a", system),
        "b": make_server("srv-b", system),
        "c": make_server("srv-c", system),
        "other": make_server("srv-other", make_system("Other site")),
    }


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser("root", "root@example.com", "a-long-test-passphrase")


@pytest.fixture
def viewer(db):
    """A logged-in operator who may look but not configure."""
    return User.objects.create_user("viewer", "viewer@example.com", "a-long-test-passphrase")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def viewer_api(viewer):
    client = APIClient()
    client.force_authenticate(viewer)
    return client


def grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # a fresh instance: permissions are cached per object


@pytest.fixture
def process_env(settings, transactional_db):
    """Environment for child processes (agents, beat) that must see this test's database and Redis."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "LIVE_KEY_PREFIX": settings.LIVE_KEY_PREFIX,
        "PYTHONUNBUFFERED": "1",
    }
