from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from cameras.models import Camera
from testbed.permissions import grant


@pytest.fixture
def cameras(site, make_camera):
    return [make_camera(site["a"], site["b"]), make_camera(site["a"]), make_camera(site["b"], site["c"])]


def test_nothing_is_readable_anonymously(db):
    assert APIClient().get("/api/cameras/").status_code == 401
    assert APIClient().get("/api/schema/").status_code == 401


def test_camera_list_shows_servers_and_mode_never_credentials(api, site, make_camera):
    make_camera(site["a"], site["b"], name="gate", username="planted-user", password="planted-Camera-pw")
    body = api.get("/api/cameras/").json()
    (gate,) = body["results"]
    assert gate["primary_server"] == site["a"].pk and gate["backup_server"] == site["b"].pk
    assert gate["redundancy_mode"] == "normal" and gate["has_credentials"] is True
    assert "password" not in gate and "username" not in gate
    assert "planted" not in str(body)


@pytest.mark.parametrize("rows", [3, 30])
def test_camera_list_query_count_is_constant(api, site, make_camera, django_assert_num_queries, rows):
    for _ in range(rows):
        make_camera(site["a"], site["b"])
    with django_assert_num_queries(2):  # count for pagination, one joined select
        assert len(api.get("/api/cameras/").json()["results"]) == rows


@pytest.mark.parametrize("rows", [2, 20])
def test_server_and_license_lists_query_count_is_constant(api, make_server, django_assert_num_queries, rows):
    for _ in range(rows):
        make_server()
    with django_assert_num_queries(2):
        assert len(api.get("/api/servers/").json()["results"]) == rows
    with django_assert_num_queries(2):
        assert len(api.get("/api/licenses/").json()["results"]) == rows


def test_create_camera_with_write_only_password(api, site):
    response = api.post(
        "/api/cameras/",
        {
            "name": "lobby",
            "stream_url": "rtsp://127.0.0.1:8554/lobby",
            "primary_server": site["a"].pk,
            "backup_server": site["c"].pk,
            "password": "planted-Camera-pw",
            "analytics": ["motion_detection"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert "planted-Camera-pw" not in response.content.decode()
    assert Camera.objects.get(name="lobby").password == "planted-Camera-pw"


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"backup_server": "SELF"}, "backup_server", "Rule 1"),
        ({"backup_server": "OTHER"}, "backup_server", "same system"),
        ({"stream_url": "ftp://127.0.0.1/x"}, "stream_url", "rtsp, http or https"),
        ({"name": "x" * 101}, "name", "no more than 100"),
        ({"analytics": ["telepathy"]}, "analytics", "not a valid choice"),
        ({"primary_server": 999999}, "primary_server", "does not exist"),
    ],
)
def test_bad_camera_updates_change_nothing(api, site, make_camera, change, field, message):
    camera = make_camera(site["a"], site["b"], name="yard")
    value = {"SELF": site["a"].pk, "OTHER": site["other"].pk}.get(change.get("backup_server"))
    if value:
        change = {"backup_server": value}
    response = api.patch(f"/api/cameras/{camera.pk}/", change, format="json")
    assert response.status_code == 400
    assert message in str(response.json()[field])
    camera.refresh_from_db()
    assert (camera.name, camera.backup_server, camera.stream_url) == ("yard", site["b"], camera.stream_url)
    assert camera.stream_url.startswith("http://127.0.0.1")


def test_unknown_camera_is_404(api, db):
    assert api.get("/api/cameras/424242/").status_code == 404
    assert api.patch("/api/cameras/424242/", {"name": "x"}, format="json").status_code == 404


def test_assign_backup_applies_all(api, site, cameras):
    response = api.post(
        "/api/cameras/assign-backup/",
        {
            "assignments": [
                {"camera": cameras[0].pk, "backup_server": site["c"].pk},
                {"camera": cameras[1].pk, "backup_server": site["b"].pk},
                {"camera": cameras[2].pk, "backup_server": None},
            ]
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    by_id = {c["id"]: c for c in response.json()}
    assert by_id[cameras[0].pk]["backup_server"] == site["c"].pk
    assert by_id[cameras[1].pk]["redundancy_mode"] == "normal"
    assert by_id[cameras[2].pk]["redundancy_mode"] == "none"
    assert Camera.objects.get(pk=cameras[2].pk).backup_server is None


def test_assign_backup_refuses_all_with_per_item_errors(api, site, cameras):
    response = api.post(
        "/api/cameras/assign-backup/",
        {
            "assignments": [
                {"camera": cameras[1].pk, "backup_server": site["c"].pk},
                {"camera": cameras[0].pk, "backup_server": site["a"].pk},
                {"camera": cameras[2].pk, "backup_server": site["other"].pk},
                {"camera": 999999, "backup_server": None},
            ]
        },
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["assignments"]
    assert errors[0] == {}
    assert "Rule 1" in errors[1]["backup_server"][0] and "primary server" in errors[1]["backup_server"][0]
    assert "srv-other" in errors[2]["backup_server"][0]
    assert errors[3]["backup_server"] == ["Camera 999999 does not exist."]
    assert Camera.objects.get(pk=cameras[1].pk).backup_server is None


@pytest.mark.parametrize("body", [{}, {"assignments": []}, {"assignments": [{"camera": "x"}]}, {"assignments": "all"}])
def test_assign_backup_rejects_malformed_bodies(api, cameras, body):
    assert api.post("/api/cameras/assign-backup/", body, format="json").status_code == 400
    assert Camera.objects.filter(backup_server__isnull=False).count() == 2


def test_viewer_may_read_but_not_assign(viewer, site, cameras):
    client = APIClient()
    client.force_authenticate(viewer)
    assert client.get("/api/cameras/").status_code == 200
    body = {"assignments": [{"camera": cameras[1].pk, "backup_server": site["c"].pk}]}
    assert client.post("/api/cameras/assign-backup/", body, format="json").status_code == 403
    client.force_authenticate(grant(viewer, "change_camera"))
    assert client.post("/api/cameras/assign-backup/", body, format="json").status_code == 200


def test_token_authentication(viewer, cameras):
    call_command("drf_create_token", viewer.username, stdout=StringIO())
    token = viewer.auth_token.key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/cameras/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/cameras/").status_code == 401


def test_assign_backup_refuses_unlicensed_backup(api, site, make_server, cameras):
    unlicensed = make_server("srv-nolic", site["system"], license=False)
    body = {"assignments": [{"camera": cameras[1].pk, "backup_server": unlicensed.pk}]}
    response = api.post("/api/cameras/assign-backup/", body, format="json")
    assert response.status_code == 400
    assert (
        "Rule 2: backup server srv-nolic has no active license" in response.json()["assignments"][0]["backup_server"][0]
    )
    assert Camera.objects.get(pk=cameras[1].pk).backup_server is None


def test_new_camera_needs_a_free_channel_on_its_primary(api, site, make_server, make_camera):
    one_channel = make_server("srv-1ch", site["system"], channels=1)
    make_camera(one_channel)
    response = api.post(
        "/api/cameras/",
        {"name": "overflow", "stream_url": "rtsp://127.0.0.1/overflow", "primary_server": one_channel.pk},
        format="json",
    )
    assert response.status_code == 400
    assert "licensed for 1 IP camera channel(s) and all are in use" in str(response.json()["primary_server"])
    assert not Camera.objects.filter(name="overflow").exists()
