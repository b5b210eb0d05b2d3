from datetime import date

from django.utils import timezone

from protocol import live
from redundancy.models import ServerState, ServerStatus
from servers.models import License
from utilities.ports import free_port


def test_server_list_groups_by_system(admin_client, site, make_camera):
    make_camera(site["a"], site["b"])
    page = admin_client.get("/servers/").content.decode()
    assert "Site" in page and "Other site" in page and "srv-a" in page and "General settings" in page


def _health_cell(page, server):
    return page.split(f'data-server="{server}"')[1].split("</tr>")[0].split('class="health"')[1].split("</td>")[0]


def test_the_servers_page_shows_each_servers_health(admin_client, site, redis_client):
    live.publish_heartbeat(redis_client, "srv-a", {}, ttl=5)
    live.publish_heartbeat(redis_client, "srv-b", {"storage_error": "disk full"}, ttl=5)
    ServerState.objects.create(server=site["a"], status=ServerStatus.UP, status_since=timezone.now())
    ServerState.objects.create(server=site["b"], status=ServerStatus.DRAINING, status_since=timezone.now(),
                               storage_error="disk full")
    page = admin_client.get("/servers/").content.decode()
    a, b, c = (_health_cell(page, name) for name in ("srv-a", "srv-b", "srv-c"))
    assert "Up" in a and "heard 0." in a and "storage OK" in a
    assert "Draining" in b and "heard 0." in b and "Storage: disk full" in b and "storage OK" not in b
    assert "Unknown" in c and "never heard" in c and "storage OK" not in c
    assert "cannot be read" not in page


def test_the_servers_page_says_when_the_live_state_cannot_be_read(admin_client, site, settings):
    ServerState.objects.create(server=site["a"], status=ServerStatus.UP, status_since=timezone.now())
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    page = admin_client.get("/servers/").content.decode()
    assert "live state cannot be read now" in page
    a = _health_cell(page, "srv-a")
    assert "Up" in a and "heartbeat not known now" in a and "storage OK" not in a


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
