"""The Capacity page, the calculator, proposals and capacity figures through the browser's requests."""

import pytest
from django.urls import reverse

from cameras.models import Camera
from servers.models import Server
from testbed.permissions import grant


def test_page_shows_each_server_with_normal_and_worst_case(admin_client, loaded):
    response = admin_client.get(reverse("capacity:page"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-server="srv-a"' in html
    # srv-a: own 8 Mbit/s; if srv-b fails, b-cam's 4 Mbit/s arrive: 12 of 10.
    assert "Backs up more than it can take: if srv-b fails, 1 camera(s) move here" in html
    assert "1 of srv-c&#x27;s camera(s) have no backup server" in html
    assert "How the figures are estimated" in html and "Kush gauge" in html


def test_page_filters_by_system_and_shows_pairs(admin_client, loaded):
    response = admin_client.get(reverse("capacity:page"), {"system": loaded["other"].system_id, "pairs": "1"})
    html = response.content.decode()
    assert 'data-server="srv-other"' in html and 'data-server="srv-a"' not in html
    assert "Worst two failures" in html


def test_chart_swaps_dimension(admin_client, loaded):
    response = admin_client.get(reverse("capacity:page"), {"dimension": "cameras"}, HTTP_HX_REQUEST="true",
                                HTTP_HX_TARGET="capacity-chart")  # fmt: skip
    html = response.content.decode()
    assert html.startswith('<div id="capacity-chart">')
    assert 'aria-label="cameras per server' in html


def test_calculator_estimates_and_refuses_bad_input(admin_client, db):
    url = reverse("capacity:calculator")
    ok = admin_client.get(url, {"codec": "h264", "width": 1920, "height": 1080, "fps": 25, "quality": "medium",
                                "retention_hours": 24, "analytics": ["motion_detection"]})  # fmt: skip
    assert ok.status_code == 200
    assert "3629 kbit/s (estimated" in ok.content.decode()
    bad = admin_client.get(url, {"codec": "vp9", "width": 0, "height": 1080, "fps": 500, "quality": "medium",
                                 "retention_hours": 0})  # fmt: skip
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "Select a valid choice. vp9 is not one of the available choices." in html
    assert "Width must be at least 16." in html
    assert "Frames per second cannot be more than 120." in html
    assert "Retention (hours) must be at least 1." in html


def test_proposal_is_a_diff_and_apply_stores_it(admin_client, loaded):
    response = admin_client.post(reverse("capacity:proposal"), {"scope": "unassigned", "system": ""})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-camera="c-cam"' in html and "<del>" not in html
    camera = Camera.objects.get(name="c-cam")
    assert camera.backup_server is None
    assigned = {key: value for key, value in _hidden_inputs(html)}
    applied = admin_client.post(reverse("capacity:apply"), assigned)
    assert applied.status_code == 200
    assert "the backup server of 1 camera(s) changed" in applied.content.decode()
    camera.refresh_from_db()
    assert camera.backup_server is not None


def test_apply_refuses_a_rule_break_and_stores_nothing(admin_client, loaded):
    camera = Camera.objects.get(name="c-cam")
    response = admin_client.post(reverse("capacity:apply"), {f"assign-{camera.pk}": loaded["other"].pk})
    assert response.status_code == 400
    assert "Rule 1" in response.content.decode()
    camera.refresh_from_db()
    assert camera.backup_server is None


def test_operators_without_camera_rights_cannot_propose(client, viewer, loaded):
    client.force_login(viewer)
    assert client.get(reverse("capacity:page")).status_code == 200
    assert client.post(reverse("capacity:proposal"), {"scope": "all"}).status_code == 403
    camera = Camera.objects.get(name="c-cam")
    assert client.post(reverse("capacity:apply"), {f"assign-{camera.pk}": loaded["a"].pk}).status_code == 403
    client.force_login(grant(viewer, "change_camera"))
    assert client.post(reverse("capacity:proposal"), {"scope": "all"}).status_code == 200


def test_server_page_shows_bitrates_side_by_side(admin_client, loaded):
    response = admin_client.get(reverse("capacity:server", args=[loaded["a"].pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-camera="a-cam-0"' in html and 'data-camera="b-cam"' in html  # own and backed up
    assert "configured" in html


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_inbound_mbps", "0", "Max inbound Mbit/s must be at least 1; leave it empty if it is not known yet"),
        ("storage_gb", "-5", "Storage (GB) must be at least 1"),
        ("cpu_budget_cores", "0", "The CPU budget must be at least 0.1"),
        ("max_cameras", "lots", "Enter a whole number."),
    ],
)
def test_invalid_capacity_figures_get_clear_messages_and_change_nothing(admin_client, loaded, field, value, message):
    server = loaded["a"]
    data = {"max_inbound_mbps": "10", "cpu_budget_cores": "", "storage_gb": "", "max_cameras": "",
            "retention_hours": "72", field: value}  # fmt: skip
    response = admin_client.post(reverse("capacity:server", args=[server.pk]), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    server.refresh_from_db()
    assert (server.max_inbound_mbps, server.storage_gb, server.max_cameras) == (10, None, None)


def test_capacity_figures_are_saved_by_those_who_may_change_servers(client, viewer, loaded):
    server = loaded["a"]
    url = reverse("capacity:server", args=[server.pk])
    data = {"max_inbound_mbps": "500", "cpu_budget_cores": "8", "storage_gb": "4000", "max_cameras": "64",
            "retention_hours": "168"}  # fmt: skip
    client.force_login(viewer)
    assert client.post(url, data).status_code == 403
    client.force_login(grant(viewer, "change_server"))
    response = client.post(url, data)
    assert response.status_code == 200 and "saved" in response.content.decode()
    server = Server.objects.get(pk=server.pk)
    assert (server.max_inbound_mbps, server.max_cameras, server.retention_hours) == (500, 64, 168)


def _hidden_inputs(html: str):
    import re

    return re.findall(r'<input type="hidden" name="(assign-\d+)" value="(\d+)">', html)
