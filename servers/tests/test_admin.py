import pytest

from servers.models import RedundancySettings, Server


@pytest.mark.parametrize("model", ["multiserversystem", "server", "license", "redundancysettings", "mailsettings"])
def test_admin_pages_render(admin_client, site, model):
    assert admin_client.get(f"/admin/servers/{model}/").status_code == 200
    assert admin_client.get(f"/admin/servers/{model}/add/").status_code == 200


def test_admin_filters(admin_client, site):
    assert admin_client.get("/admin/servers/license/?status=inactive").status_code == 200
    assert admin_client.get("/admin/servers/server/?redundancy__fast_redundancy__exact=1").status_code == 200


def test_admin_adds_server_with_redundancy_inline(admin_client, site):
    data = {
        "system": site["system"].pk,
        "name": "srv-admin",
        "address": "127.0.0.1",
        "api_port": 8080,
        "retention_hours": 48,
        "redundancy-TOTAL_FORMS": 1,
        "redundancy-INITIAL_FORMS": 0,
        "redundancy-MIN_NUM_FORMS": 1,
        "redundancy-MAX_NUM_FORMS": 1,
        "redundancy-0-fast_redundancy": "on",
        "licenses-TOTAL_FORMS": 1,
        "licenses-INITIAL_FORMS": 0,
        "licenses-MIN_NUM_FORMS": 0,
        "licenses-MAX_NUM_FORMS": 1000,
        "licenses-0-key": "ADMIN-LIC-1",
        "licenses-0-ip_camera_channels": 4,
        "licenses-0-analytics_channels": 0,
        "licenses-0-valid_from": "2026-01-01",
    }
    response = admin_client.post("/admin/servers/server/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    server = Server.objects.get(name="srv-admin")
    assert RedundancySettings.objects.get(server=server).fast_redundancy
    assert server.licensing().ip_camera_channels == 4


def test_admin_never_shows_the_smtp_password(admin_client, site):
    from servers.models import MailSettings

    MailSettings.objects.create(system=site["system"], smtp_host="smtp.example.com", password="planted-SMTP-pw")
    for url in (f"/admin/servers/multiserversystem/{site['system'].pk}/change/",
                f"/admin/servers/mailsettings/{site['system'].pk}/change/"):  # fmt: skip
        assert "planted-SMTP-pw" not in admin_client.get(url).content.decode()
