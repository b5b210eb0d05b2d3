"""Every refused form says so at its top, naming each field in error (templates/_form_errors.html).

A refusal far down a long form (the Backup server at the foot of a camera's Connection tab, a
1366x768 screen) must not go unseen: the summary comes before the form's first field.
"""

import html as html_lib
import re

import pytest
from django.urls import reverse

from cameras.models import Camera
from servers.models import License, MailSettings, Server


def summary(page: str) -> str:
    """The text of the form's error summary; fails when there is none."""
    found = re.search(r'<div class="form-errors" role="alert">(.*?)</div>', page, re.S)
    assert found, "no error summary with role=alert"
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def summary_before(page: str, first_field: str) -> str:
    """The summary, which must come before the form's first field (the top, not the foot)."""
    text = summary(page)
    assert page.index('class="form-errors"') < page.index(f'name="{first_field}"'), "the summary is not at the top"
    return text


@pytest.fixture
def gate(site, make_camera):
    return make_camera(site["a"], site["b"], name="gate")


def _connection(camera, **changes):
    return {"stream_url": camera.stream_url, "codec": camera.codec, "width": camera.width, "height": camera.height,
            "fps": camera.fps, "quality": "medium", "expected_bitrate_kbps": "",
            "primary_server": camera.primary_server_id, "backup_server": camera.backup_server_id or "",
            "username": "", "password": ""} | changes  # fmt: skip


def test_connection_tab_names_a_refused_backup_server_at_the_top(admin_client, site, gate):
    before = Camera.objects.values().get(pk=gate.pk)
    response = admin_client.post(f"/cameras/{gate.pk}/", _connection(gate, backup_server=site["a"].pk))
    assert response.status_code == 400
    text = summary_before(response.content.decode(), "stream_url")
    assert text.startswith("This form was not saved:")
    assert re.search(r"Backup server — [^—]*cannot also be its backup", text), text
    assert "Stream URL" not in text  # only the fields in error are named
    assert Camera.objects.values().get(pk=gate.pk) == before


def test_connection_tab_names_every_field_in_error(admin_client, site, gate):
    response = admin_client.post(f"/cameras/{gate.pk}/", _connection(gate, fps=0, backup_server=site["other"].pk))
    text = summary_before(response.content.decode(), "stream_url")
    assert "Frames per second — " in text and "Backup server — " in text


def test_general_tab_names_the_refused_name(admin_client, gate):
    before = Camera.objects.values().get(pk=gate.pk)
    response = admin_client.post(f"/cameras/{gate.pk}/general/", {"name": "", "failover_priority": "high"})
    assert response.status_code == 400
    assert "Name — This field is required." in summary_before(response.content.decode(), "name")
    assert Camera.objects.values().get(pk=gate.pk) == before


def test_add_camera_names_the_missing_fields(admin_client, site):
    response = admin_client.post("/cameras/new/", {"name": "lobby", "failover_priority": "normal", "codec": "h264",
                                                   "width": 1280, "height": 720, "fps": 15, "quality": "high",
                                                   "primary_server": site["a"].pk})  # fmt: skip
    assert response.status_code == 400
    assert "Stream URL — This field is required." in summary_before(response.content.decode(), "name")
    assert not Camera.objects.filter(name="lobby").exists()


def test_mail_settings_name_the_refused_port_and_the_form_wide_problem(admin_client, site):
    url = reverse("servers:mail-settings", args=[site["system"].pk])
    response = admin_client.post(url, {"smtp_host": "mail.example.com", "smtp_port": "99999", "from_email": "x",
                                       "recipients": "ops@example.com"})  # fmt: skip
    assert response.status_code == 400
    text = summary_before(response.content.decode(), "smtp_host")
    assert "SMTP port — " in text and "From address — Enter a valid email address." in text
    nobody = admin_client.post(url, {"smtp_host": "mail.example.com", "smtp_port": "25", "recipients": ""})
    assert nobody.status_code == 400
    assert "Notifications need at least one recipient" in summary_before(nobody.content.decode(), "smtp_host")
    assert not MailSettings.objects.filter(system=site["system"]).exists()


def test_refused_mail_settings_swap_in_with_their_summary(admin_client, site):
    url = reverse("servers:mail-settings", args=[site["system"].pk])
    response = admin_client.post(url, {"smtp_host": "", "recipients": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400  # base.html swaps a 400, so the summary is shown
    assert "This form was not saved:" in summary(response.content.decode())


def test_license_form_names_the_refused_dates(admin_client, site):
    data = {"key": "NEW-LIC-1", "server": site["a"].pk, "ip_camera_channels": 8, "analytics_channels": 0,
            "valid_from": "2026-05-01", "valid_until": "2026-04-01"}  # fmt: skip
    response = admin_client.post("/servers/licenses/", data)
    assert response.status_code == 400
    text = summary_before(response.content.decode(), "key")
    assert "cannot end before it starts" in text
    assert not License.objects.filter(key="NEW-LIC-1").exists()


def test_capacity_figures_name_the_refused_figure(admin_client, site):
    before = Server.objects.values().get(pk=site["a"].pk)
    response = admin_client.post(reverse("capacity:server", args=[site["a"].pk]),
                                 {"max_inbound_mbps": "0", "retention_hours": "72"})  # fmt: skip
    assert response.status_code == 400
    text = summary_before(response.content.decode(), "max_inbound_mbps")
    assert "Max inbound Mbit/s — Max inbound Mbit/s must be at least 1" in text
    assert Server.objects.values().get(pk=site["a"].pk) == before


def test_calculator_names_the_refused_inputs(admin_client, db):
    response = admin_client.get(reverse("capacity:calculator"), {"codec": "h264", "width": 1920, "height": 1080,
                                                                 "fps": 25, "quality": "medium",
                                                                 "retention_hours": 999_999_999})  # fmt: skip
    assert response.status_code == 400
    text = summary_before(response.content.decode(), "codec")
    assert text.startswith("Nothing was estimated:")
    assert "Retention (hours) — Retention (hours) cannot be more than 87,600." in text


def test_proposal_form_names_the_refused_scope(admin_client, site):
    response = admin_client.post(reverse("capacity:proposal"), {"scope": "everything", "system": ""})
    assert response.status_code == 400
    assert "Scope — " in summary_before(response.content.decode(), "scope")
