"""The settings a fresh machine runs with, and the real Redis behind Channels and Celery."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from eocortex_web.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def run_settings(env: dict, tmp_path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "CREDENTIALS_KEYS", "DJANGO_ENV")}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=ROOT,
        env={**clean, "VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "eocortex_web.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = run_settings({"DJANGO_ENV": "production"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in the environment when DJANGO_ENV=production" in result.stderr


def test_development_generates_its_secrets_under_var(tmp_path):
    result = run_settings({}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "credentials.key").exists()


@pytest.mark.timeout(30)
def test_channel_layer_round_trip_through_redis():
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer"
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "probe", "token": "roundtrip"})
    assert async_to_sync(layer.receive)(channel) == {"type": "probe", "token": "roundtrip"}


@pytest.mark.timeout(30)
def test_celery_broker_is_the_configured_redis():
    assert celery_app.conf.broker_url == settings.CELERY_BROKER_URL
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=2)
        queue = f"probe-{uuid.uuid4().hex}"
        with connection.SimpleQueue(queue) as probe:
            probe.put({"hello": "redis"})
            assert probe.get(timeout=5).payload == {"hello": "redis"}
