from datetime import date

from servers.models import License


def test_server_list_groups_by_system(admin_client, site, make_camera):
    make_camera(site["a"], site["b"])
    page = admin_client.get("/servers/").content.decode()
    assert "Site" in page and "Other site" in page and "srv-a" in page and "General settings" in page


def test_licenses_page_counts_only_own_cameras(admin_client, site, make_camera):
    make_camera(site["a"], site["b"])
    make_camera(site["a"], site["b"])
    page = admin_client.get("/servers/licenses/").content.decode()
    row_a = page.split(">srv-a<")[1].split("</tr>")[0]
    row_b = page.split(">srv-b<")[1].split("</tr>")[0]
    assert "2 / 16" in row_a and "0 / 16" in row_b


def test_add_license_and_refuse_bad_dates(admin_client, site):
    bad = admin_client.post(
        "/servers/licenses/",
        {
            "key": "NEW-LIC-1",
            "server": site["a"].pk,
            "ip_camera_channels": 8,
            "analytics_channels": 0,
            "valid_from": "2026-05-01",
            "valid_until": "2026-04-01",
        },
    )
    assert "cannot end before it starts" in bad.content.decode()
    assert not License.objects.filter(key="NEW-LIC-1").exists()
    good = admin_client.post(
        "/servers/licenses/",
        {
            "key": "NEW-LIC-1",
            "server": site["a"].pk,
            "ip_camera_channels": 8,
            "analytics_channels": 0,
            "valid_from": "2026-01-01",
            "valid_until": "",
        },
    )
    assert good.status_code == 302
    assert License.objects.get(key="NEW-LIC-1").valid_from == date(2026, 1, 1)


def test_viewer_cannot_add_license(client, viewer, site):
    client.force_login(viewer)
    client.post(
        "/servers/licenses/",
        {
            "key": "NEW-LIC-2",
            "server": site["a"].pk,
            "ip_camera_channels": 8,
            "analytics_channels": 0,
            "valid_from": "2026-01-01",
        },
    )
    assert not License.objects.filter(key="NEW-LIC-2").exists()


def test_unknown_url_is_404(admin_client):
    response = admin_client.get("/no/such/page/")
    assert response.status_code == 404
