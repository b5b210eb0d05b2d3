"""The Reports page in a real browser set to Tokyo's time: a period typed in local time, the table and the chart
per camera and per server, and the CSV of the same rows."""

import csv
import io

import pytest
from django.contrib.auth.models import User

from accounts.models import AuditEntry
from redundancy.models import EventKind
from reports.tests.test_views import T0, move, record
from testbed.browser import screenshot, sign_in
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]


def test_a_report_for_a_local_period_with_its_chart_and_csv(site, make_camera, web, browser_page):  # noqa: F811
    a, b, c = site["a"], site["b"], site["c"]
    gate = make_camera(a, b, name="gate", fps=10)
    lobby = make_camera(a, c, name="lobby", fps=10)
    yard = make_camera(b, c, name="yard", fps=10)
    AuditEntry.objects.filter(object_type="cameras.camera").update(at=T0.replace(day=1))
    # gate: srv-a stops at 00:10, srv-b takes over 20 s later, it returns at 00:30.
    record(gate, a, -60, 600)
    record(gate, b, 620, 1800)
    record(gate, a, 1800, 3700)
    move(gate, EventKind.FAILOVER_COMPLETED, 620, a, b)
    move(gate, EventKind.FAILBACK_COMPLETED, 1800, b, a)
    # lobby: the same outage of srv-a, srv-c takes it over after 45 s and keeps it.
    record(lobby, a, -60, 600)
    record(lobby, c, 645, 3700)
    move(lobby, EventKind.FAILOVER_COMPLETED, 645, a, c)
    # yard: on srv-b throughout, but for 5 minutes the camera sent nothing.
    record(yard, b, -60, 1200)
    record(yard, b, 1500, 3700)
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    page.context.new_cdp_session(page).send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    page.add_init_script(LISTEN)
    sign_in(page, web, "admin", PASSWORD, "/events/")
    page.click("nav >> text=Reports")
    page.wait_for_url("**/reports/")
    # 09:00 → 10:00 in Tokyo: 00:00 → 01:00 UTC on 2 November.
    page.fill("input[name=since]", "2026-11-02T09:00")
    page.fill("input[name=until]", "2026-11-02T10:00")
    page.click("button:has-text('Show report')")
    page.wait_for_url("**zone=Asia%2FTokyo**")
    assert page.text_content("p.period").startswith("From 2026-11-02 09:00 until 2026-11-02 10:00")
    cells = {name: page.locator(f"tr[data-camera='{name}'] td").all_text_contents()
             for name in ("gate", "lobby", "yard")}  # fmt: skip
    assert cells["gate"][3:] == ["1", "0:19:40", "0:00:20"]
    assert cells["lobby"][3:] == ["1", "0:49:15", "0:00:45"]
    assert cells["yard"][3:] == ["0", "0:00:00", "0:05:00"]
    # The chart: the longest figure (lobby on backup) fills its track; yard's lost bar is a tenth of it.
    chart = page.locator(".report-chart")
    assert chart.locator(".bar-row").count() == 3
    full = chart.locator("[data-row='lobby'] .bar.on-backup").bounding_box()["width"]
    track = chart.locator("[data-row='lobby'] .bar-track").bounding_box()["width"]
    assert abs(full - track) < 1
    yard_lost = chart.locator("[data-row='yard'] .bar.lost").bounding_box()["width"]
    assert abs(yard_lost - track * 300 / 2955) < 1
    screenshot(page, "report")
    with page.expect_download() as download:
        page.click("text=Download CSV")
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0][0] == "camera" and [row[0] for row in rows[1:]] == ["gate", "lobby", "yard"]
    assert rows[1][3:] == ["1", "1180.0", "0:19:40", "20.0", "0:00:20"]
    # Per server: srv-a's cameras failed over twice; srv-b and srv-c each took one over.
    page.click("text=Per server")
    page.wait_for_url("**by=server**")
    servers = {name: page.locator(f"tr[data-server='{name}'] td").all_text_contents()
               for name in ("srv-a", "srv-b", "srv-c")}  # fmt: skip
    assert servers["srv-a"][2:] == ["2", "2", "0", "1:08:55", "0:00:00", "0:01:05"]
    assert servers["srv-b"][2:5] == ["1", "0", "1"] and servers["srv-c"][4] == "1"
    with page.expect_download() as download:
        page.click("text=Download CSV")
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0][:4] == ["server", "system", "cameras", "failovers away"]
    assert [row[0] for row in rows[1:]] == ["srv-a", "srv-b", "srv-c", "srv-other"]  # a user of the whole site
    # A period that ends before it starts is refused in words and shows no figures.
    page.fill("input[name=until]", "2026-11-02T08:00")
    page.click("button:has-text('Show report')")
    page.wait_for_url("**until=2026-11-02T08%3A00**")
    assert "Until must come after since." in page.text_content("[role=alert]")
    assert page.locator("tr[data-server]").count() == 0
    assert page.evaluate("window.cspViolations") == []
