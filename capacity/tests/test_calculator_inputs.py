"""The calculator's inputs: the Capacity page and GET /api/capacity/estimate/ accept and refuse the same values."""

import pytest
from django.urls import reverse

VALID = {"codec": "h264", "width": 1920, "height": 1080, "fps": 25, "quality": "medium", "retention_hours": 72}

# (field, largest accepted, smallest accepted)
BOUNDS = [
    ("retention_hours", 87_600, 1),
    ("width", 8192, 16),
    ("height", 8192, 16),
    ("fps", 120, 1),
    ("expected_bitrate_kbps", 1_000_000, 1),
]


def _page(client, params):
    response = client.get(reverse("capacity:calculator"), params)
    return response.status_code, response.content.decode()


def _api(api, params):
    response = api.get("/api/capacity/estimate/", params)
    return response.status_code, response.json()


def test_page_refuses_a_retention_of_a_million_years(admin_client, db):
    status, html = _page(admin_client, VALID | {"retention_hours": 999_999_999})
    assert status == 400
    assert "GB for the retention period" not in html
    assert "Retention (hours) cannot be more than 87,600." in html


@pytest.mark.parametrize(("field", "largest", "smallest"), BOUNDS)
def test_page_and_api_share_each_bound_and_its_message(admin_client, api, db, field, largest, smallest):
    for accepted in (largest, smallest):
        assert _page(admin_client, VALID | {field: accepted})[0] == 200
        assert _api(api, VALID | {field: accepted})[0] == 200
    for refused in (largest + 1, smallest - 1):
        page_status, html = _page(admin_client, VALID | {field: refused})
        api_status, body = _api(api, VALID | {field: refused})
        assert (page_status, api_status) == (400, 400)
        assert field in body
        # The same words on both: the API's message is on the page too.
        assert body[field][0] in html, (body[field][0], field)


def test_page_and_api_both_refuse_a_module_given_twice(admin_client, api, db):
    twice = VALID | {"analytics": ["motion_detection", "motion_detection"]}
    page_status, html = _page(admin_client, twice)
    api_status, body = _api(api, twice)
    assert (page_status, api_status) == (400, 400)
    assert body["analytics"][0] in html


def test_api_estimate_for_the_largest_retention_matches_the_page(admin_client, api, db):
    params = VALID | {"retention_hours": 87_600}
    status, body = _api(api, params)
    assert status == 200
    page_status, html = _page(admin_client, params)
    assert page_status == 200
    assert f"{body['storage_gb_for_retention']:,.1f}".replace(",", "") in html.replace(",", "")
