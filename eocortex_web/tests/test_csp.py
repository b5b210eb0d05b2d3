"""The Content-Security-Policy header (django-csp): on pages, API answers and static files."""

import re

import pytest

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: blob:",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


def directives(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy header"
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def test_a_page_carries_the_policy_without_inline_allowances(admin_client, site, make_camera):
    make_camera(site["a"], site["b"])
    response = admin_client.get("/servers/")
    assert response.status_code == 200
    assert directives(response) == POLICY
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("url", ["/api/servers/", "/api/status/"])
def test_an_api_answer_carries_the_policy(api, site, url):
    response = api.get(url)
    assert response.status_code == 200
    assert directives(response) == POLICY


def test_the_login_page_carries_the_policy(client, db):
    assert directives(client.get("/accounts/login/")) == POLICY


def test_only_the_api_docs_get_a_nonce_and_it_is_the_one_in_the_page(admin_client, site):
    response = admin_client.get("/api/docs/")
    policy = directives(response)
    nonce = re.fullmatch(r"'self' 'nonce-([A-Za-z0-9+/=]+)'", policy["script-src"]).group(1)
    assert policy["style-src"] == f"'self' 'nonce-{nonce}'"
    page = response.content.decode()
    assert page.count(f'nonce="{nonce}"') == 2  # the init script and the style, nothing else inline
    assert page.count("<script>") == 0
    other = admin_client.get("/servers/").headers["Content-Security-Policy"]
    assert "nonce" not in other


def test_a_static_file_carries_the_policy(client, db):
    response = client.get("/static/js/forms.js")
    assert response.status_code == 200
    assert directives(response) == POLICY
