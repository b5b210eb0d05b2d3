"""Ordinary bad input is a clear 400 (or a working page), never a server error: integers past
64 bits in filters, ids and bodies, huge page limits, JSON nested thousands deep."""

import json

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"  # past 64 bits
BIGINT_PAST = 9223372036854775808  # one past the largest id a database keeps


@pytest.fixture
def api(admin_user):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(admin_user)
    return client


def _integer_parameters():
    """Every operation of the API schema with an integer parameter in its path or query."""
    for path, operations in SchemaGenerator().get_schema(request=None, public=True)["paths"].items():
        for method, operation in operations.items():
            if method != "get":
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("schema", {}).get("type") == "integer" and parameter["in"] in ("query", "path"):
                    yield path, parameter["in"], parameter["name"]


@pytest.mark.parametrize("path, where, name", list(_integer_parameters()))
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, str(BIGINT_PAST)])
def test_api_integer_parameters_past_64_bits_are_no_server_error(api, site, path, where, name, value):
    url = path.replace("{" + name + "}", value) if where == "path" else f"{path}?{name}={value}"
    url = url.replace("{id}", "1").replace("{pk}", "1")
    response = api.get("/api" + url.removeprefix("/api") if url.startswith("/api") else url)
    assert response.status_code < 500, (url, response.content[:300])
    assert response.status_code in (200, 400, 404), (url, response.status_code)


@pytest.mark.parametrize("url", [
    f"/events/?camera={HUGE}", f"/events/?server={HUGE}", f"/events/?page={HUGE}", f"/cameras/?server={HUGE}",
    f"/servers/settings/cameras/?system={HUGE}", f"/servers/settings/cameras/?server={HUGE}",
    f"/capacity/?system={HUGE}", f"/capacity/?server={HUGE}", f"/cameras/{HUGE}/", f"/servers/{HUGE}/",
])  # fmt: skip
def test_pages_with_ids_past_64_bits_answer_without_a_server_error(admin_client, site, url):
    admin_client.raise_request_exception = False
    assert admin_client.get(url).status_code in (200, 400, 404), url


def test_assignments_with_ids_past_64_bits_are_refused(api, site, make_camera):
    camera = make_camera(site["a"])
    body = {"assignments": [{"camera": BIGINT_PAST, "backup_server": site["b"].pk},
                            {"camera": camera.pk, "backup_server": BIGINT_PAST}]}  # fmt: skip
    response = api.post("/api/cameras/assign-backup/", body, format="json")
    assert response.status_code == 400, response.content
    assert "camera" in json.dumps(response.json()) and "backup_server" in json.dumps(response.json())
    camera.refresh_from_db()
    assert camera.backup_server is None


def test_json_nested_thousands_deep_is_a_clear_400(api, site):
    deep = "[" * 5000 + "]" * 5000
    response = api.post("/api/cameras/", deep, content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_admin_adds_a_camera(admin_client, site):
    assert admin_client.get("/admin/cameras/camera/add/").status_code == 200
    response = admin_client.post("/admin/cameras/camera/add/", {
        "name": "from-admin", "enabled": "on", "failover_priority": "normal", "stream_url": "rtsp://127.0.0.1/x",
        "codec": "h264", "width": 1280, "height": 720, "fps": 10, "quality": "medium", "primary_server": site["a"].pk,
        "backup_server": "", "username": "", "password": "",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
