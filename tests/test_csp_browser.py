"""The Content-Security-Policy in a real browser: every page (htmx, the live page's socket, the
Swagger UI) works under it without a single violation or console message, and the behaviour moved
out of inline handlers into static/js/forms.js still works."""

from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from redundancy.models import Event, EventKind
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]

LISTEN = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`);
});
"""


def test_every_page_works_under_the_policy(site, make_camera, web, browser_page):  # noqa: F811
    camera = make_camera(site["a"], site["b"], name="gate")
    Event.objects.create(
        at=timezone.now(),
        kind=EventKind.FAILOVER_COMPLETED,
        server=site["a"],
        camera=camera,
        message="gate moved to srv-b",
    )
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    page = browser_page
    messages, violations, headers = [], [], {}

    def console(message):
        # Allowed, as no policy matter: the live page asks for a snapshot nobody has recorded yet (404),
        # which it shows as missing (no recorder runs here), and the admin, which names no icon, makes
        # the browser ask for /favicon.ico (404).
        where = message.location.get("url", "")
        missing = {f"/live/snapshot/{camera.pk}.jpg", "/favicon.ico"}
        if message.text.startswith("Failed to load resource") and urlsplit(where).path in missing:
            return
        messages.append(f"{page.url}: {message.type}: {message.text} ({where})")

    page.on("console", console)
    page.on("pageerror", lambda error: messages.append(f"{page.url}: page error: {error}"))
    page.add_init_script(LISTEN)

    def visit(path, wait_for=None):
        response = page.goto(f"{web}{path}")
        assert response.status == 200, path
        headers[path] = response.headers.get("content-security-policy")
        page.wait_for_load_state("networkidle")
        if wait_for:
            page.wait_for_selector(wait_for, timeout=15_000)
        violations.extend(f"{path}: {v}" for v in page.evaluate("window.cspViolations"))

    page.goto(f"{web}/accounts/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web}/servers/")

    for path in ["/servers/", "/cameras/", f"/cameras/{camera.pk}/", f"/cameras/{camera.pk}/general/",
                 f"/cameras/{camera.pk}/timeline/", "/servers/settings/cameras/", f"/servers/{site['a'].pk}/",
                 "/servers/licenses/", "/events/"]:  # fmt: skip
        visit(path)

    # The capacity page: its chart is placed by forms.js from data- attributes, also once htmx swaps it.
    visit("/capacity/", wait_for="#capacity-chart .bar-row")
    assert page.eval_on_selector("#capacity-chart .bar.normal", "bar => bar.style.width").endswith("%")
    other = page.eval_on_selector("#capacity-chart nav a:not(.active)", "link => link.textContent")
    page.click("#capacity-chart nav a:not(.active)")
    # The swap is done when the link clicked is the active one (a link was active before it, too).
    page.wait_for_function("text => document.querySelector('#capacity-chart nav a.active')?.textContent === text",
                           arg=other, timeout=15_000)  # fmt: skip
    page.wait_for_load_state("networkidle")
    # forms.js places the new bars on htmx:load, which comes once the swapped chart has settled.
    page.wait_for_function("() => document.querySelector('#capacity-chart .bar.normal').style.width.endsWith('%')",
                           timeout=15_000)  # fmt: skip
    assert page.eval_on_selector("#capacity-chart .bar.normal", "bar => bar.style.width").endswith("%")
    violations.extend(f"/capacity/ after a swap: {v}" for v in page.evaluate("window.cspViolations"))

    # Check all, then a refused confirmation keeps the form from being sent.
    visit("/servers/settings/cameras/")
    page.check("[data-check-all]")
    assert page.eval_on_selector_all("input[name=selected]", "boxes => boxes.length > 0 && boxes.every(b => b.checked)")
    page.uncheck("[data-check-all]")
    assert page.eval_on_selector_all("input[name=selected]", "boxes => boxes.every(b => !b.checked)")
    visit(f"/servers/{site['a'].pk}/")
    # (window.confirm answers "no" here: the fixture's dialog handler would accept a real dialog)
    page.evaluate("window.confirm = (question) => { window.asked = question; return false; }")
    page.click("button:has-text('Drain for maintenance')")
    page.wait_for_timeout(300)
    assert page.evaluate("window.asked").startswith("Drain srv-a?")
    assert page.url == f"{web}/servers/{site['a'].pk}/"

    # A select submits its filter form on change.
    visit("/events/")
    page.select_option("select[name=kind]", index=1)
    page.wait_for_url("**/events/?*kind=*")

    visit("/admin/")
    visit(f"/admin/cameras/camera/{camera.pk}/change/")
    visit("/live/", wait_for="#connection.ok")  # the websocket, under connect-src 'self'
    visit("/api/docs/", wait_for=".swagger-ui .opblock")  # the init script, under its nonce

    assert violations == []
    assert messages == []
    for path, header in headers.items():
        assert header and "default-src 'self'" in header and "frame-ancestors 'none'" in header, path
        assert "unsafe-inline" not in header and "unsafe-eval" not in header, path
