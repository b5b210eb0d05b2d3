"""The Events page in a real browser set to Tokyo's time: times shown in the browser's local time with
UTC in the tooltip, a range typed in local time, and the CSV of what the filters keep."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User

from redundancy.models import Event, EventKind
from testbed.browser import sign_in
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]


def test_events_in_local_time_a_local_range_and_the_csv(site, web, browser_page):  # noqa: F811
    Event.objects.create(at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC), kind=EventKind.SERVER_DOWN, server=site["a"],
                         message="srv-a is down")  # fmt: skip
    Event.objects.create(at=datetime(2026, 11, 30, 11, 0, tzinfo=UTC), kind=EventKind.SERVER_DOWN,
                         server=site["b"], message="srv-b is down")  # fmt: skip
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    page = browser_page
    page.context.new_cdp_session(page).send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    page.add_init_script(LISTEN)
    sign_in(page, web, "admin", PASSWORD, "/events/")
    shown = page.locator("time[datetime='2026-11-30T11:00:00.000Z']")
    assert shown.text_content() == "2026-11-30 20:00:00"  # Tokyo is UTC+9
    assert shown.get_attribute("title") == "UTC 2026-11-30 11:00:00"
    page.fill("input[name=since]", "2026-11-30T19:00")  # 10:00 UTC
    page.click("button:has-text('Filter')")
    page.wait_for_url("**since=2026-11-30T19%3A00**")
    assert "zone=Asia%2FTokyo" in page.url
    table = page.text_content("table")
    assert "srv-b is down" in table and "srv-a is down" not in table
    with page.expect_download() as download:
        page.click("text=Download CSV")
    rows = download.value.path().read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("2026-11-30T11:00:00.000+00:00,Server down")
    assert page.evaluate("window.cspViolations") == []
