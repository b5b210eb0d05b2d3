"""The target policy: stream URLs and SMTP hosts cannot be aimed at this machine or at link-local
addresses (cloud metadata), SMTP only at mail ports, recordings only under their root."""

import pytest
from django.core.exceptions import ValidationError

from cameras.models import Camera
from servers.models import MailSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy(settings, tmp_path):
    settings.DENY_LOCAL_TARGETS = True
    settings.RECORDINGS_ROOT = str(tmp_path / "recordings")
    return settings


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/", "rtsp://169.254.169.254/latest/meta-data", "http://localhost:8000/x",
    "rtsp://[::1]:554/s", "http://0.0.0.0/", "rtsp://[::ffff:127.0.0.1]/s", "http://LOCALHOST./v",
    "rtsp://224.0.0.1/s",
])  # fmt: skip
def test_streams_on_this_machine_or_link_local_are_refused(policy, api, site, url):
    response = api.post("/api/cameras/", {"name": "probe", "stream_url": url, "codec": "h264",
                                          "primary_server": site["a"].pk}, format="json")  # fmt: skip
    assert response.status_code == 400 and "stream_url" in response.json(), response.content
    assert not Camera.objects.filter(name="probe").exists()


@pytest.mark.parametrize("url", ["rtsp://10.20.30.40:554/main", "http://192.168.1.64/video.mjpg",
                                 "rtsp://cam-17.site.example/stream"])  # fmt: skip
def test_cameras_on_the_sites_networks_are_allowed(policy, api, site, url):
    response = api.post("/api/cameras/", {"name": "lan", "stream_url": url, "codec": "h264",
                                          "primary_server": site["a"].pk}, format="json")  # fmt: skip
    assert response.status_code == 201, response.content


def test_development_allows_the_demos_loopback_cameras(settings, api, site):
    settings.DENY_LOCAL_TARGETS = False
    response = api.post("/api/cameras/", {"name": "demo", "stream_url": "http://127.0.0.1:8601/video.mjpg",
                                          "codec": "mjpeg", "primary_server": site["a"].pk}, format="json")  # fmt: skip
    assert response.status_code == 201


@pytest.mark.parametrize("host, port, field", [("127.0.0.1", 587, "smtp_host"), ("169.254.169.254", 25, "smtp_host"),
                                               ("smtp.example.com", 6379, "smtp_port")])  # fmt: skip
def test_mail_settings_refuse_local_hosts_and_other_ports(policy, admin_client, site, host, port, field):
    response = admin_client.post(f"/servers/systems/{site['system'].pk}/mail/", {
        "smtp_host": host, "smtp_port": port, "use_tls": "on", "recipients": "ops@example.com",
        "from_email": "vms@example.com"})  # fmt: skip
    assert response.status_code == 400
    words = "SMTP goes to a mail port" if field == "smtp_port" else "The SMTP host may not be"
    assert words in response.content.decode()
    assert not MailSettings.objects.filter(system=site["system"], smtp_host=host).exists()


def test_mail_settings_accept_a_mail_server(policy, admin_client, site):
    response = admin_client.post(f"/servers/systems/{site['system'].pk}/mail/", {
        "smtp_host": "smtp.example.com", "smtp_port": 587, "use_tls": "on", "recipients": "ops@example.com",
        "from_email": "vms@example.com"})  # fmt: skip
    assert response.status_code in (200, 302)
    assert MailSettings.objects.get(system=site["system"]).smtp_host == "smtp.example.com"


def test_recordings_stay_under_their_root(policy, site):
    """The admin (the only place that sets it) runs the model's validation."""
    root, server = policy.RECORDINGS_ROOT, site["a"]
    for outside in ("/etc", f"{root}/../elsewhere", "/"):
        server.recordings_path = outside
        with pytest.raises(ValidationError, match="Recordings must be kept under"):
            server.full_clean()
    server.recordings_path = f"{root}/srv-a"
    server.full_clean()
    server.recordings_path = ""
    assert str(server.storage_dir) == f"{root}/srv-a", "the default lies under the root too"
