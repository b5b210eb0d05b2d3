"""GET /api/capacity/, the calculator and backup proposals through the API."""

import pytest

from cameras.models import Camera
from testbed.permissions import grant


def test_capacity_lists_the_same_figures_as_the_page(api, loaded):
    response = api.get("/api/capacity/")
    assert response.status_code == 200
    servers = {s["name"]: s for s in response.json()["servers"]}
    a = servers["srv-a"]
    assert a["normal"]["figures"]["mbps"] == pytest.approx(8)
    assert a["worst"]["failed"] == ["srv-b"]
    assert a["worst"]["figures"]["mbps"] == pytest.approx(12)
    assert a["worst"]["over"] == ["mbps"]
    assert a["capacity"]["mbps"] == 10 and a["capacity"]["cores"] is None
    assert a["peak"] == pytest.approx(1.2)
    assert a["licenses"]["camera_channels_used"] == 4
    assert any("Backs up more than it can take" in w["text"] for w in a["warnings"])
    assert servers["srv-b"]["worst"]["moved"] == 4
    assert a["worst_pair"] is None
    assert response.json()["tightest"] == {
        "server": "srv-a", "resource": "mbps", "load": pytest.approx(12), "capacity": 10, "failed": ["srv-b"],
        "fits": False, "short_now": [], "short_after_failure": ["srv-a"],
        "text": "Does not fit: srv-a, inbound Mbit/s: 12 of 10 (120 %) after srv-b fails.",
    }  # fmt: skip


def test_capacity_filters_and_pairs(api, loaded):
    response = api.get("/api/capacity/", {"system": loaded["system"].pk, "pairs": "true"})
    names = [s["name"] for s in response.json()["servers"]]
    assert names == ["srv-a", "srv-b", "srv-c"]
    assert response.json()["pairs"] is True


def test_capacity_refuses_an_unknown_system(api, loaded):
    response = api.get("/api/capacity/", {"system": 9999})
    assert response.status_code == 400
    assert "system" in response.json()


def test_estimate(api, db):
    query = {"codec": "h264", "width": 1920, "height": 1080, "fps": 25, "analytics": ["motion_detection"],
             "retention_hours": 24}  # fmt: skip
    response = api.get("/api/capacity/estimate/", query)
    assert response.status_code == 200
    body = response.json()
    assert body["stream_kbps"] == pytest.approx(3628.8)
    assert body["stream_source"] == "estimated"
    assert set(body["analytics_cores"]) == {"motion_detection"}
    assert body["storage_gb_for_retention"] == pytest.approx(body["storage_gb_per_day"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"codec": "vp9", "width": 1920, "height": 1080, "fps": 25}, "codec"),
        ({"codec": "h264", "width": 0, "height": 1080, "fps": 25}, "width"),
        ({"codec": "h264", "width": 1920, "height": 1080, "fps": -1}, "fps"),
        ({"codec": "h264", "width": 1920, "height": 1080}, "fps"),
        ({"codec": "h264", "width": 1920, "height": 1080, "fps": 25, "quality": "best"}, "quality"),
        ({"codec": "h264", "width": 1920, "height": 1080, "fps": 25, "retention_hours": 0}, "retention_hours"),
        ({"codec": "h264", "width": 1920, "height": 1080, "fps": 25, "analytics": ["faces"]}, "analytics"),
    ],
)
def test_estimate_refuses_bad_input(api, db, params, field):
    response = api.get("/api/capacity/estimate/", params)
    assert response.status_code == 400
    assert field in response.json()


def test_proposal_then_assign_through_the_bulk_endpoint(api, loaded):
    response = api.post("/api/capacity/proposal/", {"scope": "unassigned"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["applied"] is False
    assert [c["camera"] for c in body["changes"]] == ["c-cam"]
    assert Camera.objects.get(name="c-cam").backup_server is None
    stored = api.post("/api/cameras/assign-backup/", {"assignments": body["assignments"]}, format="json")
    assert stored.status_code == 200, stored.json()
    assert Camera.objects.get(name="c-cam").backup_server_id == body["changes"][0]["proposed_backup_id"]


def test_proposal_applied_at_once(api, loaded):
    response = api.post("/api/capacity/proposal/", {"scope": "all", "apply": True}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["applied"] is True and body["peak_after"] < body["peak_before"]
    assert not Camera.objects.filter(backup_server__isnull=True).exists()


def test_proposal_needs_the_right_to_change_cameras(viewer_api, viewer, loaded):
    assert viewer_api.get("/api/capacity/").status_code == 200
    assert viewer_api.post("/api/capacity/proposal/", {"scope": "all"}, format="json").status_code == 403
    viewer_api.force_authenticate(grant(viewer, "change_camera"))
    assert viewer_api.post("/api/capacity/proposal/", {"scope": "all"}, format="json").status_code == 200


def test_proposal_refuses_an_unknown_scope(api, loaded):
    response = api.post("/api/capacity/proposal/", {"scope": "everything", "apply": True}, format="json")
    assert response.status_code == 400 and "scope" in response.json()
    assert Camera.objects.filter(backup_server__isnull=True).count() == 1


def test_server_api_gives_clear_capacity_messages(api, loaded):
    server = loaded["a"]
    response = api.patch(f"/api/servers/{server.pk}/", {"max_inbound_mbps": 0, "storage_gb": -1}, format="json")
    assert response.status_code == 400
    assert response.json()["max_inbound_mbps"] == [
        "Max inbound Mbit/s must be at least 1; leave it empty if it is not known yet "
        "(the planner then says it is not checked)."
    ]
    assert "Storage (GB) must be at least 1" in response.json()["storage_gb"][0]
    server.refresh_from_db()
    assert server.max_inbound_mbps == 10 and server.storage_gb is None


def test_anonymous_gets_nothing(client, loaded):
    assert client.get("/api/capacity/").status_code in (401, 403)
