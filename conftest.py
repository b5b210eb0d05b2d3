"""Fixtures shared by every app's tests: a small multiserver system and logged-in clients, agents, the engine,
the simulator, the test bed. Fixtures only: the helpers tests import (``wait_for``, ``procfile_command``,
``grant``...) live in ``testbed``."""

import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from itertools import count

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from cameras.models import Camera
from protocol import live
from servers.models import License, MultiserverSystem, Server
from testbed.processes import ROOT
from testbed.simulator import RunningSimulator
from utilities.ports import free_ports

_serial = count(1)

# These machines are shared: a property test is judged by what it finds, not by how fast examples come.
hypothesis_settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("shared-machine")


@pytest.fixture(autouse=True)
def live_namespace(settings):
    """Each test keeps its live state (heartbeats, health, snapshots) and its cache (the API's rate
    counts among it) under its own Redis prefix."""
    settings.LIVE_KEY_PREFIX = f"test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": settings.LIVE_KEY_PREFIX}}
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
    """A server with an active license unless ``license=False``; redundancy flags set by keyword; a free port of
    its own on loopback for its agent's recordings."""

    def make(name=None, system=None, license=True, channels=16, fast=False, constant=False, email=False, **fields):
        server = Server.objects.create(
            name=name or f"srv-{next(_serial)}",
            system=system or make_system(),
            address=fields.pop("address", "127.0.0.1"),
            # Each its own port for its agent's recordings: agents of one test run side by side on loopback.
            api_port=fields.pop("api_port", None) or free_ports(1)[0],
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
def recorded_site(site, tmp_path):
    """The shared site with each server recording under this test's own directory."""
    for name in ("a", "b", "c", "other"):
        site[name].recordings_path = str(tmp_path / site[name].name)
        site[name].save()
    return site


@pytest.fixture
def agents(settings):
    """Start agents in this process (threads), with short timings; all are stopped after the test."""
    from recording.agent import VideoServerAgent

    started = []

    def start(name, **options):
        timings = {"heartbeat_interval": 0.25, "sweep_interval": 0.5, "open_timeout": 1.0, "read_timeout": 1.0,
                   "segment_seconds": 2.0}  # fmt: skip
        agent = VideoServerAgent(name, **{**timings, **options})
        agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser("root", "root@example.com", "a-long-test-passphrase")


@pytest.fixture
def viewer(db):
    """A logged-in user who may look at everything (every view permission) and do nothing else."""
    from accounts.roles import DOMAIN_APPS

    user = User.objects.create_user("viewer", "viewer@example.com", "a-long-test-passphrase")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label__in=DOMAIN_APPS, codename__startswith="view_")
    )
    return User.objects.get(pk=user.pk)


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
        "ENGINE_METRICS_PORT": "0",  # an engine's metrics only where a test asks for them (run_engine --metrics-port)
    }


# -- real processes: the camera simulator, agents -------------------------------------------


@pytest.fixture
def simulator():
    running = []

    def start(count=3, width=320, height=180, fps=5.0, **options):
        """``codecs=("h264",)`` and the RTSP options (gop_seconds, max_viewers...) make RTSP cameras."""
        sim = RunningSimulator(count, width=width, height=height, fps=fps, **options)
        running.append(sim)
        return sim

    yield start
    for sim in running:
        sim.close()


@pytest.fixture
def redis_client():
    return live.client()


@pytest.fixture
def agent_process(process_env, tmp_path):
    """Start ``manage.py run_video_server`` processes with short timings; all are killed after the test."""
    started = []

    def start(name, **settings):
        env = {**process_env, "AGENT_HEARTBEAT_SECONDS": "0.25", "AGENT_SEGMENT_SECONDS": "2",
               "AGENT_READ_TIMEOUT_SECONDS": "1", "AGENT_SWEEP_SECONDS": "1",
               **{k: str(v) for k, v in settings.items()}}  # fmt: skip
        log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 (closed below)
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_video_server", "--server", name],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def bed(process_env, tmp_path):
    """A site on the test bed (``testbed.site.BedSite``): hosts of their own for the cameras and for each server
    placed on it, faults as calls; every process, namespace and link removed after the test."""
    from testbed.network import unavailable
    from testbed.site import BedSite

    reason = unavailable()
    if reason:
        pytest.skip(f"no test bed here: {reason}")
    site = BedSite(process_env, tmp_path)
    yield site
    site.close()


@pytest.fixture
def engine(settings, transactional_db):
    """The engine's loop (as ``run_engine`` runs it: woken by events, the agents watched, the status published)
    in a background thread, passing at least every 0.25 s, until the test ends."""
    from django.db import connection

    from protocol import live
    from redundancy.engine import Engine
    from redundancy.notifications import send_pending_mail
    from redundancy.runner import EngineLoop
    from redundancy.status import StatusPublisher

    settings.ENGINE_NORMAL_WINDOW_SECONDS = 4.0
    settings.ENGINE_HOLD_DOWN_SECONDS = 2.0
    stop, mail_due = threading.Event(), threading.Event()
    instance = Engine(wake_mailer=mail_due.set, publisher=StatusPublisher(live.client()))
    runner = EngineLoop(instance, tick_seconds=0.25, schedule=False)  # no periodic tasks sent from tests

    def loop():
        try:
            runner.run()
        finally:
            connection.close()

    def mailer():  # the mail worker, woken by the engine as the real one is
        while not stop.is_set():
            if mail_due.wait(0.25):
                mail_due.clear()
                send_pending_mail()
        connection.close()

    threads = [threading.Thread(target=loop, daemon=True), threading.Thread(target=mailer, daemon=True)]
    for thread in threads:
        thread.start()
    yield instance
    stop.set()
    runner.stop()
    for thread in threads:
        thread.join(timeout=10)


# -- Redis under Sentinel (testbed/sentinel.py) ----------------------------------------------------


@pytest.fixture
def sentinel_redis(request, tmp_path):
    """A master, a replica and three Sentinels of this test's own on loopback (down-after 2 s), all stopped after
    the test; see ``testbed.sentinel.SentinelRedis`` for the faults it offers. Its options by indirect
    parametrization: ``@pytest.mark.parametrize("sentinel_redis", [{"password": "..."}], indirect=True)``."""
    from testbed.sentinel import SentinelRedis

    deployment = SentinelRedis(tmp_path / "sentinel-redis", **getattr(request, "param", {}))
    yield deployment
    deployment.close()


@pytest.fixture
def sentinel_settings(settings, sentinel_redis):
    """This test's settings pointed at ``sentinel_redis``: REDIS_URL (its database), the Sentinels and the master's
    name, and what settings.py derives from them (Celery's broker, the Channels layer, the cache)."""
    from eocortex_web import redis_settings

    settings.REDIS_URL = sentinel_redis.env()["REDIS_URL"]
    settings.REDIS_SENTINELS = sentinel_redis.sentinels
    settings.REDIS_SENTINEL_MASTER = sentinel_redis.master_name
    settings.REDIS_SENTINEL_PASSWORD = sentinel_redis.password
    deployment = (settings.REDIS_URL, settings.REDIS_SENTINELS, settings.REDIS_SENTINEL_MASTER,
                  settings.REDIS_SENTINEL_PASSWORD)  # fmt: skip
    settings.CELERY_BROKER_URL = redis_settings.broker_url(settings.REDIS_URL, settings.REDIS_SENTINELS)
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = redis_settings.broker_transport_options(
        settings.CELERY_BROKER_URL, settings.REDIS_SENTINEL_MASTER, settings.REDIS_SENTINEL_PASSWORD
    )
    layer = settings.CHANNEL_LAYERS["default"]
    host = redis_settings.channel_layer_host(*deployment)
    settings.CHANNEL_LAYERS = {"default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [host]}}}
    settings.CACHES = {"default": {**redis_settings.cache(*deployment), "KEY_PREFIX": settings.LIVE_KEY_PREFIX}}
    return settings
