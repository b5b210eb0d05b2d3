"""Deployment checks and login throttling."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def manage(args: list[str], env: dict, tmp_path) -> subprocess.CompletedProcess:
    ours = ("SECRET_KEY", "CREDENTIALS_KEYS", "DJANGO_ENV", "SECURE_", "DEBUG", "ALLOWED_HOSTS")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**clean, "VAR_DIR": str(tmp_path), **env})  # fmt: skip


PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "a-production-key-" + "x7Q2pL9vR4mN8sT1wY6zB3cF5hJ0kD" * 2,
    "ALLOWED_HOSTS": "vms.example.com",
}


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = manage(["check", "--deploy", "--fail-level", "WARNING"],
                    {**PRODUCTION, "CREDENTIALS_KEYS": Fernet.generate_key().decode()}, tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_flags_a_development_site(tmp_path):
    result = manage(["check", "--deploy", "--fail-level", "WARNING"], {}, tmp_path)
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG is on


def test_production_needs_the_credentials_keys(tmp_path):
    result = manage(["check"], PRODUCTION, tmp_path)
    assert result.returncode != 0
    assert "CREDENTIALS_KEYS must be set in the environment when DJANGO_ENV=production" in result.stderr


@pytest.mark.django_db
def test_login_is_locked_after_five_wrong_passwords(client, admin_user, settings):
    url = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(url, {"username": "root", "password": "wrong-guess"})
        assert response.status_code == 200 and "did not match" in response.content.decode()
    assert client.post(url, {"username": "root", "password": "wrong-guess"}).status_code == 429
    locked = client.post(url, {"username": "root", "password": "a-long-test-passphrase"})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another user name from the same address is not locked out.
    other = client.post(url, {"username": "nobody", "password": "wrong-guess"})
    assert other.status_code == 200


@pytest.mark.django_db
def test_a_good_login_resets_the_failure_count(client, admin_user, settings):
    url = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(url, {"username": "root", "password": "wrong-guess"})
    assert client.post(url, {"username": "root", "password": "a-long-test-passphrase"}).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(url, {"username": "root", "password": "wrong-guess"})
    assert client.post(url, {"username": "root", "password": "a-long-test-passphrase"}).status_code == 302
