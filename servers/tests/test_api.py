import pytest

from servers.models import License, Server


def test_server_with_nested_redundancy_settings(api, make_system):
    system = make_system()
    response = api.post(
        "/api/servers/",
        {
            "name": "srv-new",
            "system": system.pk,
            "address": "10.0.0.5",
            "api_port": 8080,
            "max_cameras": 32,
            "redundancy": {"fast_redundancy": True},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["redundancy"] == {
        "email_notifications": False,
        "constant_redundancy": False,
        "fast_redundancy": True,
    }
    server = Server.objects.get(name="srv-new")
    response = api.patch(f"/api/servers/{server.pk}/", {"redundancy": {"constant_redundancy": True}}, format="json")
    assert response.status_code == 200
    server.redundancy.refresh_from_db()
    assert server.redundancy.constant_redundancy and server.redundancy.fast_redundancy


@pytest.mark.parametrize(
    "change, field",
    [
        ({"max_cameras": 0}, "max_cameras"),
        ({"api_port": 0}, "api_port"),
        ({"name": "bad name!"}, "name"),
        ({"address": "not a host!"}, "address"),
        ({"cpu_budget_cores": -1}, "cpu_budget_cores"),
    ],
)
def test_bad_server_figures_change_nothing(api, make_server, change, field):
    server = make_server("srv-keep", max_cameras=10, api_port=8080)
    response = api.patch(f"/api/servers/{server.pk}/", change, format="json")
    assert response.status_code == 400 and field in response.json()
    server.refresh_from_db()
    assert (server.name, server.max_cameras, server.api_port) == ("srv-keep", 10, 8080)


def test_server_cannot_leave_system_through_api(api, site, make_camera, make_system):
    make_camera(site["a"], site["b"])
    response = api.patch(f"/api/servers/{site['b'].pk}/", {"system": make_system().pk}, format="json")
    assert response.status_code == 400 and "Rule 1" in str(response.json()["system"])
    site["b"].refresh_from_db()
    assert site["b"].system == site["system"]


def test_deleting_a_server_in_use_is_a_conflict(api, site, make_camera):
    make_camera(site["a"], site["b"], name="porch")
    response = api.delete(f"/api/servers/{site['b'].pk}/")
    assert response.status_code == 409 and "porch" in response.json()["detail"]
    assert Server.objects.filter(pk=site["b"].pk).exists()


def test_license_dates_are_checked(api, make_server):
    server = make_server(license=False)
    response = api.post(
        "/api/licenses/",
        {
            "key": "NEW-0001",
            "server": server.pk,
            "ip_camera_channels": 4,
            "valid_from": "2026-06-01",
            "valid_until": "2026-05-01",
        },
        format="json",
    )
    assert response.status_code == 400 and "cannot end before it starts" in str(response.json())
    assert not License.objects.filter(key="NEW-0001").exists()


def test_license_shows_whether_active(api, make_server):
    make_server()
    (lic,) = api.get("/api/licenses/").json()["results"]
    assert lic["is_active"] is True


def test_viewer_cannot_change_servers(viewer_api, make_server):
    server = make_server()
    assert viewer_api.get(f"/api/servers/{server.pk}/").status_code == 200
    assert viewer_api.patch(f"/api/servers/{server.pk}/", {"max_cameras": 5}, format="json").status_code == 403


def test_openapi_schema_and_docs(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/cameras/assign-backup/" in text and "redundancy_mode" in text
    docs = api.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_merge_back_is_on_by_default_and_can_be_turned_off(api, make_server):
    server = make_server()
    assert api.get(f"/api/servers/{server.pk}/").json()["merge_back"] is True
    assert api.patch(f"/api/servers/{server.pk}/", {"merge_back": False}, format="json").status_code == 200
    server.refresh_from_db()
    assert server.merge_back is False
