"""The camera's playback page (its Timeline tab) in Debian's chromium driven by Playwright, against the
real web server: the lanes each server recorded, zoom and keyboard, the links from events, and, with
real agents and a simulated RTSP camera, a failover and a failback played through without a stop but the
gap that was measured."""

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from recording.models import Segment
from redundancy.models import Event, EventKind
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import ARTIFACTS, PASSWORD, browser_page, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True)]
BROWSER = [pytest.mark.browser, pytest.mark.process]


def log_in(page, site_url, next_path):
    User.objects.filter(username="operator").exists() or User.objects.create_superuser(
        "operator", "operator@example.com", PASSWORD
    )
    page.goto(f"{site_url}/accounts/login/?next={next_path}")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site_url}{next_path.split('?')[0]}*")


def recorded(camera, server, start, end, frames=None):
    """A Segment row (no file: these tests look at the page, not at the video) from ``start`` to ``end`` s ago."""
    now = timezone.now()
    return Segment.objects.create(
        camera=camera, server=server, started_at=now - timezone.timedelta(seconds=start),
        ended_at=now - timezone.timedelta(seconds=end), frame_count=frames or round((start - end) * 5) + 1,
        path=f"/nowhere/{camera.pk}/{server.name}-{start}.ts",
    )  # fmt: skip


@pytest.mark.browser
@pytest.mark.process
def test_the_timeline_shows_each_servers_lane_the_gap_and_events_and_zooms(site, make_camera, web, browser_page):  # noqa: F811
    camera = make_camera(site["a"], site["b"], name="gate", fps=5)
    recorded(camera, site["a"], 1200, 1190)
    recorded(camera, site["a"], 1190, 1180)
    recorded(camera, site["b"], 1150, 900)  # 30 s with nothing recorded before the backup took over
    at = timezone.now() - timezone.timedelta(seconds=1160)
    Event.objects.create(at=at, kind=EventKind.FAILOVER_COMPLETED, camera=camera, server=site["a"],
                         to_server=site["b"], message="gate records on srv-b")  # fmt: skip
    page = browser_page
    page.add_init_script(LISTEN)
    log_in(page, web, f"/cameras/{camera.pk}/timeline/")
    page.wait_for_selector("#lanes .lane-row .timeline[data-server=srv-b] .seg")
    assert page.text_content("#lanes").count("srv-a · primary") == 1
    assert page.locator("#lanes .timeline[data-server=srv-a] .seg").count() == 1  # two segments, one span
    gaps = page.eval_on_selector_all("#lanes .marks .gap", "gaps => gaps.map(g => g.title)")
    found = [title for title in gaps if title.startswith("nothing recorded for 29.8 s from ")]  # 30 s less a frame
    assert len(found) == 1, gaps
    gap = found[0]
    assert gap.endswith(" UTC)"), gap
    assert page.get_attribute("[data-zoom='3600']", "aria-pressed") == "true"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playback-hour.png"), full_page=True)

    # The wheel over a lane zooms in on the moment under the pointer, the buttons to each span.
    box = page.locator("#lanes .timeline[data-server=srv-b] .seg").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -100)
    page.wait_for_function("document.querySelector(\"[data-zoom='600']\").getAttribute('aria-pressed') === 'true'")
    page.wait_for_selector("#lanes .timeline[data-server=srv-b] .seg")
    ticks = page.eval_on_selector_all("#lanes .axis .tick", "ticks => ticks.map(t => t.textContent)")
    assert 4 <= len(ticks) <= 11, ticks
    for label in ("10 s", "1 min", "10 min", "24 h"):
        page.click(f"button[data-zoom]:text-is('{label}')")
        pressed = "label => document.querySelector('[data-zoom][aria-pressed=true]').textContent === label"
        page.wait_for_function(pressed, arg=label)
    page.wait_for_selector("#lanes .timeline[data-server=srv-a] .seg")
    assert page.evaluate("window.cspViolations") == []


@pytest.mark.browser
@pytest.mark.process
def test_an_events_video_link_opens_the_timeline_at_that_moment(site, make_camera, web, browser_page):  # noqa: F811
    camera = make_camera(site["a"], site["b"], name="gate", fps=5)
    at = timezone.now() - timezone.timedelta(minutes=30)
    Event.objects.create(at=at, kind=EventKind.FAILOVER_COMPLETED, camera=camera, server=site["a"],
                         to_server=site["b"], message="gate records on srv-b")  # fmt: skip
    page = browser_page
    log_in(page, web, "/events/")
    page.click("a.video-link")
    page.wait_for_url(f"**/cameras/{camera.pk}/timeline/?at=*")
    page.wait_for_selector("#lanes .marks .mark")
    # The picker holds the moment in the browser's local time; the span shown (10 minutes) is around it.
    local = page.evaluate("ms => { const d = new Date(ms); const p = n => String(n).padStart(2, '0');"
                          " return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:"
                          "${p(d.getMinutes())}:${p(d.getSeconds())}`; }", at.timestamp() * 1000)  # fmt: skip
    assert page.input_value("#moment-at") == local
    assert page.get_attribute("[data-zoom='600']", "aria-pressed") == "true"
    assert abs(page.evaluate("window.playback.clicks[0].at") - at.timestamp() * 1000) < 1
