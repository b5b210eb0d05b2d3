"""The Capacity page in a real browser, at a laptop's 1366x768, on the demo site as `make run` loads it: the
headline names the tightest server and resource, the chart opens on it, and applying the proposal shows the
new state in place (htmx swaps, no navigation)."""

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from accounts.models import AuditEntry
from cameras.models import Camera
from testbed.accessibility import axe_violations
from testbed.browser import screenshot, sign_in
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]


def test_a_newcomer_reads_the_headline_and_applies_the_demos_proposal_in_place(
    web, browser_page, tmp_path, settings  # noqa: F811
):
    settings.VAR_DIR = tmp_path  # the demo's admin password file
    call_command("load_demo", stdout=StringIO())
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    errors, navigations = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.add_init_script(LISTEN)
    sign_in(page, web, "operator", PASSWORD, "/capacity/")
    page.wait_for_url(f"{web}/capacity/")

    headline = page.locator("#capacity-headline")
    assert headline.inner_text().strip() == ("Fits: the tightest is srv-a, cameras: 5 of 8 (62 %) after srv-b fails. "
                                             "A proposal below changes 3 backup(s).")  # fmt: skip
    assert headline.is_visible() and headline.bounding_box()["y"] < 768  # read without scrolling
    # The chart opens on the headline's resource, its bars placed by forms.js.
    assert page.inner_text("#capacity-chart nav a.active") == "cameras"
    assert "5 of 8" in page.inner_text("#capacity-chart .bar-row[data-server=srv-a] .bar-figures")
    assert page.eval_on_selector("#capacity-chart .bar-row[data-server=srv-a] .bar.worst", "b => b.style.width")
    screenshot(page, "capacity-headline")

    # The demo left its three MJPEG cameras without backup: the proposal is there, as a diff.
    proposed = page.locator("[data-testid=proposal] tr.changed")
    assert proposed.count() == 3
    assert page.inner_text("tr.changed[data-camera=cam-06] ins") == "srv-a"
    assert "3 · 2" in page.inner_text("tr[data-server=srv-a] td:nth-child(2)")
    assert page.locator("#capacity-servers li:has-text('have no backup server')").count() == 3

    page.evaluate("window.stillTheSamePage = true")
    before = len(navigations)
    page.click("button:has-text('Apply the proposal')")
    page.wait_for_selector("[data-testid=applied]", timeout=15_000)
    assert "the backup server of 3 camera(s) changed" in page.inner_text("[data-testid=applied]")
    page.wait_for_function(
        "() => document.querySelector('#capacity-headline').textContent.includes('6 of 8')", timeout=15_000
    )
    assert headline.inner_text().strip() == "Fits: the tightest is srv-a, cameras: 6 of 8 (75 %) after srv-b fails."
    assert "3 · 4" in page.inner_text("tr[data-server=srv-a] td:nth-child(2)")  # cam-06 and cam-09 added
    assert page.locator("#capacity-servers li:has-text('have no backup server')").count() == 0
    assert "6 of 8" in page.inner_text("#capacity-chart .bar-row[data-server=srv-a] .bar-figures")
    page.wait_for_function(
        "() => document.querySelector('#capacity-chart .bar-row[data-server=srv-a] .bar.worst').style.width !== ''",
        timeout=15_000,
    )
    assert page.locator("[data-testid=nothing-to-change]").is_visible()  # the proposal for the new state
    assert page.evaluate("window.stillTheSamePage") is True, "swapped by htmx, not reloaded"
    assert len(navigations) == before

    # The swapped-in chart works as the first did: another resource's tab, in place.
    page.click("#capacity-chart nav a:has-text('storage GB')")
    page.wait_for_selector("#capacity-chart[data-dimension=storage_gb] nav a.active:has-text('storage GB')")
    assert "of 4000" in page.inner_text("#capacity-chart .bar-row[data-server=srv-a] .bar-figures")
    assert len(navigations) == before

    demo = Camera.objects.filter(primary_server__system__name="Demo site")
    assert dict(demo.filter(name__in=["cam-03", "cam-06", "cam-09"]).values_list("name", "backup_server__name")) == {
        "cam-03": "srv-b", "cam-06": "srv-a", "cam-09": "srv-a"
    }  # fmt: skip
    assert AuditEntry.objects.filter(object_type="cameras.camera", action="changed", username="operator").count() == 3
    assert axe_violations(page) == [], "the state Apply swapped in passes axe-core"
    assert page.evaluate("window.cspViolations") == [] and errors == []
