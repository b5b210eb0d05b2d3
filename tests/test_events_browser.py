"""The Events page in a real browser: times shown in the browser's local time (Tokyo's) with UTC in the tooltip, a
range typed in local time, the CSV of what the filters keep; an operator acknowledging an event in place; an
administrator's configuration changes beside the transitions."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from accounts.roles import ADMINISTRATORS, OPERATORS
from redundancy.models import Event, EventKind
from testbed.accessibility import axe_violations
from testbed.browser import screenshot, sign_in
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


def test_an_operator_acknowledges_an_event_without_a_reload(site, web, browser_page):  # noqa: F811
    event = Event.objects.create(at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC), kind=EventKind.SERVER_DOWN,
                                 server=site["a"], message="srv-a is down")  # fmt: skip
    olga = User.objects.create_user("olga", "olga@example.com", PASSWORD)
    olga.groups.add(Group.objects.get(name=OPERATORS))
    page = browser_page
    page.context.new_cdp_session(page).send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    page.add_init_script(LISTEN)
    sign_in(page, web, "olga", PASSWORD, "/events/")
    page.wait_for_selector("text=srv-a is down")
    page.evaluate("window.stillTheSamePage = true")
    cell = page.locator(f"#acknowledgement-{event.pk}")
    cell.get_by_label("Note on acknowledging").fill("rack 3 power cut, electrician called")
    cell.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector(f"#acknowledgement-{event.pk}:has-text('Acknowledged by olga')")
    assert page.evaluate("window.stillTheSamePage") is True, "acknowledged without a reload"
    event.refresh_from_db()
    assert event.acknowledged_by_username == "olga"
    local = event.acknowledged_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M:%S")
    shown = page.locator(f"#acknowledgement-{event.pk} time")
    assert shown.text_content() == local  # in the browser's time, UTC in the tooltip
    assert shown.get_attribute("title") == f"UTC {event.acknowledged_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    assert "rack 3 power cut, electrician called" in cell.text_content()
    assert axe_violations(page) == [], "the acknowledgement swapped in passes axe-core"
    page.check("input[name=unacknowledged]")  # submits the filter
    page.wait_for_url("**unacknowledged=1**")
    assert "No unacknowledged events." in page.text_content("table")
    assert page.evaluate("window.cspViolations") == []


def test_an_administrator_sees_a_configuration_change_beside_the_transitions(
    site, make_camera, web, browser_page,  # noqa: F811
):
    gate = make_camera(site["a"], site["b"], name="gate")
    Event.objects.create(at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC), kind=EventKind.SERVER_DOWN, server=site["a"],
                         message="srv-a is down")  # fmt: skip
    Event.objects.create(at=datetime(2026, 11, 30, 10, 0, tzinfo=UTC), kind=EventKind.FAILBACK_COMPLETED,
                         camera=gate, server=site["b"], to_server=site["a"], message="gate back on srv-a")  # fmt: skip
    adam = User.objects.create_user("adam", "adam@example.com", PASSWORD)
    adam.groups.add(Group.objects.get(name=ADMINISTRATORS))
    api = APIClient()
    api.force_authenticate(adam)
    assert api.patch(f"/api/cameras/{gate.pk}/", {"backup_server": site["c"].pk, "password": "cam-secret-9"},
                     format="json").status_code == 200  # fmt: skip
    AuditEntry.objects.filter(object_type="cameras.camera", action="changed").update(
        at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    page = browser_page
    page.add_init_script(LISTEN)
    sign_in(page, web, "adam", PASSWORD, "/events/?until=2026-12-01T00:00")
    page.wait_for_selector("text=srv-a is down")
    assert "adam changed camera gate" not in page.text_content("table")
    page.get_by_label("Include configuration changes").check()  # submits the filter
    page.wait_for_url("**changes=1**")
    rows = [row.inner_text() for row in page.locator("tbody tr").all()]
    assert len(rows) == 3, rows
    assert "gate back on srv-a" in rows[0] and "srv-a is down" in rows[2]
    assert "Configuration change" in rows[1] and "adam changed camera gate" in rows[1]
    assert "Backup server: srv-b → srv-c" in rows[1] and "Password: (none) → (new secret)" in rows[1]
    assert "cam-secret-9" not in page.content()
    screenshot(page, "events-changes")
    assert axe_violations(page) == [], "the changes beside the events pass axe-core"
    assert page.evaluate("window.cspViolations") == []
