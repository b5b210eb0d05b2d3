"""A camera's sub stream URL is held to the rules of its stream URL, on the Connection tab and in the API alike."""

import pytest

from cameras.models import Camera
from cameras.tests.test_views import connection_data

BAD_SUB_STREAMS = [
    ("ftp://127.0.0.1/sub", "Stream URLs must use rtsp, http or https, not 'ftp'."),
    ("rtsp://", "Enter a valid stream URL, such as rtsp://host:554/stream."),
    ("rtsp://127.0.0.1/" + "x" * 600, "500 characters"),
    ("rtsp://127.0.0.1/sub?pwd=", "The stream URL carries credentials in its parameters (pwd)"),
]


@pytest.fixture
def gate(site, make_camera):
    return make_camera(site["a"], site["b"], name="gate", stream_url="rtsp://127.0.0.1:8554/main",
                       sub_stream_url="rtsp://127.0.0.1:8554/sub")  # fmt: skip


@pytest.mark.parametrize(("url", "message"), BAD_SUB_STREAMS)
def test_a_bad_sub_stream_url_is_refused_on_the_connection_tab_and_nothing_changes(admin_client, gate, url, message):
    before = Camera.objects.values().get(pk=gate.pk)
    response = admin_client.post(f"/cameras/{gate.pk}/", connection_data(gate, sub_stream_url=url, fps=12))
    assert response.status_code == 400
    page = response.content.decode().replace("&#x27;", "'")
    assert message in page.split('name="sub_stream_url"')[1], "the message stands by the sub stream field"
    assert Camera.objects.values().get(pk=gate.pk) == before


@pytest.mark.parametrize(("url", "message"), BAD_SUB_STREAMS)
def test_a_bad_sub_stream_url_is_refused_by_the_api_and_nothing_changes(api, gate, url, message):
    before = Camera.objects.values().get(pk=gate.pk)
    response = api.patch(f"/api/cameras/{gate.pk}/", {"sub_stream_url": url, "fps": 12}, format="json")
    assert response.status_code == 400
    assert any(message in text for text in response.json()["sub_stream_url"])
    assert Camera.objects.values().get(pk=gate.pk) == before


def test_a_sub_stream_is_set_and_cleared(api, gate):
    response = api.patch(f"/api/cameras/{gate.pk}/", {"sub_stream_url": "http://127.0.0.1:8080/sub.mjpg"},
                         format="json")  # fmt: skip
    assert response.status_code == 200 and response.json()["sub_stream_url"] == "http://127.0.0.1:8080/sub.mjpg"
    assert api.patch(f"/api/cameras/{gate.pk}/", {"sub_stream_url": ""}, format="json").status_code == 200
    gate.refresh_from_db()
    assert gate.sub_stream_url == ""


@pytest.mark.parametrize("field", ["sub_stream_url", "onvif_url"])
@pytest.mark.parametrize(
    "typed", ["{scheme}://viewer:s3cret-Word@127.0.0.1:8554/x", "{scheme}://127.0.0.1/x?pwd=s3cret-Word"]
)
def test_credentials_typed_into_another_address_are_refused_and_never_shown_back(admin_client, gate, field, typed):
    before = Camera.objects.values().get(pk=gate.pk)
    url = typed.format(scheme="http" if field == "onvif_url" else "rtsp")
    response = admin_client.post(f"/cameras/{gate.pk}/", connection_data(gate, **{field: url}))
    assert response.status_code == 400
    page = response.content.decode()
    assert "s3cret-Word" not in page
    assert "they were taken out and not stored" in page.split(f'name="{field}"')[1]
    assert Camera.objects.values().get(pk=gate.pk) == before
