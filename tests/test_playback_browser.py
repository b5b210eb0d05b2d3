# ruff: noqa: F811 (the fixtures imported below are the tests' arguments)
"""The camera's playback page (its Timeline tab) in Debian's chromium driven by Playwright, against the
real web server: the lanes each server recorded, zoom and keyboard, the links from events, and, with
real agents and a simulated RTSP camera, a failover and a failback played through without a stop but the
gap that was measured."""

import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from playback.tests.test_export import write_mjpeg, write_ts
from playback.timeline import GAP_FRAMES
from recording.models import Segment
from recording.segments import segment_path
from recording.serving import RecordingServer
from redundancy.models import CameraPlacement, Event, EventKind, Placement
from simulation.identity import recorded_stamps
from testbed.waiting import wait_for
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import ARTIFACTS, PASSWORD, browser_page, web  # noqa: F401  (fixtures)
from utilities.ports import free_ports

pytestmark = [pytest.mark.django_db(transaction=True)]
# A moment (epoch ms) as a datetime-local input holds it: the browser's local time.
LOCAL_INPUT = """ms => { const d = new Date(ms), p = n => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:` +
    p(d.getSeconds()); }"""


def log_in(page, site_url, next_path):
    User.objects.filter(username="operator").exists() or User.objects.create_superuser(
        "operator", "operator@example.com", PASSWORD
    )
    page.goto(f"{site_url}/accounts/login/?next={quote(next_path)}")
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


# -- the page as the server renders it (no browser) ------------------------------------------------------------


def test_at_opens_the_hour_around_that_moment(admin_client, site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    recorded(camera, site["b"], 7200, 7190)  # two hours ago: not in the last hour
    assert 'data-server="srv-b"' not in admin_client.get(f"/cameras/{camera.pk}/timeline/").content.decode()
    at = (timezone.now() - timezone.timedelta(seconds=7195)).isoformat()
    page = admin_client.get(f"/cameras/{camera.pk}/timeline/?at={quote(at)}")
    assert page.status_code == 200 and 'data-server="srv-b"' in page.content.decode()
    assert f'data-at="{datetime.fromisoformat(at).isoformat()}"' in page.content.decode()


@pytest.mark.parametrize("at, message", [
    ("yesterday", "“yesterday” is not a date and time (ISO 8601, such as 2026-12-01T14:30:00Z)."),
    ("2026-13-01T10:00:00Z", "“2026-13-01T10:00:00Z” is not a date and time"),
    ("2999-01-01T10:00:00Z", "2999-01-01T10:00:00Z is still to come: nothing is recorded yet."),
])  # fmt: skip
def test_a_moment_that_is_not_one_is_refused_with_a_reason_and_the_last_hour_shown(admin_client, site, make_camera,
                                                                                    at, message):  # fmt: skip
    camera = make_camera(site["a"], site["b"], name="gate")
    recorded(camera, site["a"], 600, 590)
    page = admin_client.get(f"/cameras/{camera.pk}/timeline/?at={quote(at)}")
    assert page.status_code == 400
    assert message in page.content.decode() and 'data-at=""' in page.content.decode()
    assert 'data-server="srv-a"' in page.content.decode()  # the last hour, as without ?at=


def test_an_offset_whose_plus_came_unescaped_still_names_the_moment(admin_client, site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    page = admin_client.get(f"/cameras/{camera.pk}/timeline/?at=2026-12-01T10:00:00+01:00")  # + is a space here
    assert page.status_code == 200 and 'data-at="2026-12-01T09:00:00+00:00"' in page.content.decode()


def test_the_page_lets_media_come_from_blob_urls_only_there(admin_client, site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    policy = admin_client.get(f"/cameras/{camera.pk}/timeline/")["Content-Security-Policy"]
    assert "media-src 'self' blob:" in policy and "unsafe" not in policy
    assert "media-src" not in admin_client.get("/live/")["Content-Security-Policy"]


def test_each_camera_event_links_to_its_video_at_that_moment(admin_client, site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    event = Event.objects.create(
        at=datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC),
        kind=EventKind.FAILOVER_COMPLETED,
        camera=camera,
        server=site["a"],
        to_server=site["b"],
        message="gate records on srv-b",
    )
    Event.objects.create(at=event.at, kind=EventKind.SERVER_DOWN, server=site["a"], message="srv-a is down")
    link = f'href="/cameras/{camera.pk}/timeline/?at=2026-12-01T09%3A30%3A05%2B00%3A00"'
    for path in ("/events/", "/live/"):
        assert admin_client.get(path).content.decode().count(link) == 1, path


@pytest.mark.browser
@pytest.mark.process
def test_the_timeline_shows_each_servers_lane_the_gap_and_events_and_zooms(site, make_camera, web, browser_page):
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
    pressed = "label => document.querySelector('[data-zoom][aria-pressed=true]').textContent === label"
    page.wait_for_function(pressed, arg="10 min")
    page.wait_for_selector("#lanes .timeline[data-server=srv-b] .seg")
    ticks = page.eval_on_selector_all("#lanes .axis .tick", "ticks => ticks.map(t => t.textContent)")
    assert 4 <= len(ticks) <= 11, ticks
    for label in ("10 s", "1 min", "10 min", "24 h"):
        page.click(f"button[data-zoom]:text-is('{label}')")
        page.wait_for_function(pressed, arg=label)
    page.wait_for_selector("#lanes .timeline[data-server=srv-a] .seg")
    shown = page.evaluate("['since', 'until'].map(end => Date.parse(document.getElementById('timeline').dataset[end]))")
    assert shown[1] - shown[0] == 86400e3  # the range shown, for the export's "Use the range shown"
    page.click("#lanes .marks .mark")  # an event plays from its moment
    page.wait_for_function("() => playback.clicks.length === 1")
    assert abs(page.evaluate("playback.clicks[0].at") - at.timestamp() * 1000) < 1
    assert page.evaluate("window.cspViolations") == []


@pytest.mark.browser
@pytest.mark.process
def test_the_keyboard_alone_picks_a_moment_and_plays_it(site, make_camera, web, browser_page):
    camera = make_camera(site["a"], site["b"], name="gate", fps=5)
    recorded(camera, site["a"], 1200, 900)
    page = browser_page
    log_in(page, web, f"/cameras/{camera.pk}/timeline/")
    page.wait_for_selector("#lanes .timeline[data-server=srv-a] .seg")
    assert page.get_attribute("#moment-at", "id") == page.get_attribute("label[for=moment-at]", "for")
    page.focus("#lanes .axis")
    middle = float(page.get_attribute("#lanes .axis", "aria-valuenow"))
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    moved = float(page.get_attribute("#lanes .axis", "aria-valuenow"))
    assert middle - moved == pytest.approx(2 * 3600e3 / 20)  # a twentieth of the hour each
    page.keyboard.press("Enter")
    page.wait_for_function("() => playback.clicks.length === 1")
    assert page.evaluate("playback.clicks[0].at") == moved
    page.focus("#lanes .axis")
    page.keyboard.press("+")
    page.wait_for_function("() => document.querySelector('[data-zoom][aria-pressed=true]').textContent === '10 min'")
    assert page.evaluate("document.activeElement.matches('#lanes .axis')")  # still where the keys were


@pytest.mark.browser
@pytest.mark.process
def test_h265_recordings_say_plainly_where_this_browser_cannot_play_them(site, make_camera, web, browser_page):
    camera = make_camera(site["a"], site["b"], name="gate", fps=5, codec="h265")
    recorded(camera, site["a"], 600, 300)
    page = browser_page
    log_in(page, web, f"/cameras/{camera.pk}/timeline/")
    page.wait_for_selector("#lanes .timeline[data-server=srv-a] .seg")
    page.click("#lanes .timeline[data-server=srv-a] .seg")
    if page.evaluate("MediaSource.isTypeSupported('video/mp4; codecs=\"hvc1.1.6.L93.B0\"')"):
        assert page.is_hidden("#playback-problem") and page.evaluate("playback.clicks.length") == 1
    else:  # Debian's chromium, headless and without a GPU
        problem = page.text_content("#playback-problem")
        assert problem.startswith("This camera records H.265, which this browser cannot play.") and "Export" in problem
        assert page.evaluate("playback.hls === null && playback.clicks.length === 0")


@pytest.mark.browser
@pytest.mark.process
def test_an_events_video_link_opens_the_timeline_at_that_moment(site, make_camera, web, browser_page):
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
    local = page.evaluate(LOCAL_INPUT, at.timestamp() * 1000)
    assert page.input_value("#moment-at") == local
    assert page.get_attribute("[data-zoom='600']", "aria-pressed") == "true"
    assert abs(page.evaluate("window.playback.clicks[0].at") - at.timestamp() * 1000) < 1


# -- playing across a failover ---------------------------------------------------------------------------------

FPS = 10


@pytest.fixture
def served(site, tmp_path):
    """srv-a's and srv-b's recording servers (as their agents run them) on free loopback ports, over their own
    storage; ``record(server, camera, first, count, t0, base_pts)`` leaves a segment of frames ``first`` on (frame n
    taken at t0 + n / FPS) there and in the index, in the camera's codec."""
    started = []
    for name, port in zip(("a", "b"), free_ports(2), strict=True):
        server = site[name]
        server.recordings_path, server.api_port = str(tmp_path / server.name), port
        server.save()
        started.append(RecordingServer(server, server.storage_dir, "127.0.0.1", port))
        started[-1].start()

    def record(server, camera, first, count, t0, base_pts):
        started_at = t0 + first / FPS
        path = segment_path(server.storage_dir, camera.pk, started_at, ".mjpeg" if camera.codec == "mjpeg" else ".ts")
        if camera.codec == "mjpeg":
            write_mjpeg(path, range(first, first + count))
        else:
            write_ts(path, range(first, first + count), camera.codec, base_pts=base_pts)
        return Segment.objects.create(
            camera=camera, server=server, started_at=datetime.fromtimestamp(started_at, UTC),
            ended_at=datetime.fromtimestamp(t0 + (first + count - 1) / FPS, UTC), frame_count=count,
            size_bytes=path.stat().st_size, path=str(path),
        )  # fmt: skip

    yield record
    for recordings in started:
        recordings.stop()


def measured_gaps(camera) -> list[tuple[float, float]]:
    """Where no server recorded the camera, from the index: (start, end) in epoch ms, the end of a segment being
    its last frame's time plus a frame interval; video going on less than half a frame after that is no gap (a
    frame is missing only past it: playback.timeline's rule)."""
    covered = sorted((s.started_at.timestamp(), s.ended_at.timestamp() + 1 / camera.fps)
                     for s in Segment.objects.filter(camera=camera))  # fmt: skip
    gaps, reach = [], covered[0][1]
    for start, end in covered[1:]:
        if start - reach > (GAP_FRAMES - 2) / camera.fps:
            gaps.append((reach * 1000, start * 1000))
        reach = max(reach, end)
    return gaps


def played_through(page, seen, began_at, gaps, sources):
    """The video played from ``began_at`` (epoch ms) on, its currentTime always forward, from ``sources`` in turn,
    past every gap of ``gaps`` (skipped, each said so) and without any other stop: the real time it took is the
    wall time it played less the gaps."""
    playing = [s for s in seen if s["source"]]
    assert abs(playing[0]["wall"] - began_at) < 400, playing[0]
    assert all(b["time"] >= a["time"] for a, b in zip(playing, playing[1:], strict=False)), "it went back"
    assert [s["source"] for i, s in enumerate(playing) if not i or playing[i - 1]["source"] != s["source"]] == sources
    for start, end in gaps:  # currentTime passed each boundary
        assert any(s["wall"] < start for s in playing) and any(s["wall"] > end for s in playing)
    stalls = page.evaluate("playback.stalls")
    assert [s["kind"] for s in stalls] == ["gap"] * len(gaps), stalls
    for stall, (start, end) in zip(stalls, gaps, strict=True):
        assert abs(datetime.fromisoformat(stall["from"]).timestamp() * 1000 - start) < 50, (stall, start)
        assert abs(stall["seconds"] * 1000 - (end - start)) < 100, (stall, end - start)
    said = {s["said"] for s in seen if s["said"]}
    assert len(said) == len(gaps) and all(text.startswith("Skipping ") for text in said), said
    skipped = sum(end - start for start, end in gaps)
    real = playing[-1]["real"] - playing[0]["real"]
    assert abs(real - (playing[-1]["wall"] - playing[0]["wall"] - skipped)) < 700, "it stopped somewhere"


def watch(page, until_wall, timeout=60):
    """What the page plays, looked at every 100 ms until its wall time reaches ``until_wall`` (epoch ms)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(page.evaluate("({wall: playback.wallTime(), source: playback.source(), time: video.currentTime,"
                                  " paused: video.paused, real: performance.now(),"
                                  " said: !skipping.hidden && skipping.textContent})"))  # fmt: skip
        if seen[-1]["wall"] and seen[-1]["wall"] >= until_wall:
            return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"the video did not reach {until_wall}: last seen {seen[-3:]}")


@pytest.mark.browser
@pytest.mark.process
@pytest.mark.parametrize("codec", ["h264", "mjpeg"])
def test_recordings_of_a_failover_and_a_failback_play_through_with_only_the_gap_skipped(
    site, make_camera, served, web, browser_page, codec
):
    """srv-a records 0-6 s and dies; srv-b records from 7.5 s; srv-a is back from 14 s (make before break)."""
    camera = make_camera(site["a"], site["b"], name="gate", codec=codec, fps=FPS)
    t0 = time.time() - 600
    for first in (0, 20, 40):
        served(site["a"], camera, first, 20, t0, base_pts=5000)
    for first in (75, 95, 115, 135):
        served(site["b"], camera, first, 20, t0, base_pts=90)
    for first in (140, 160, 180):
        served(site["a"], camera, first, 20, t0, base_pts=7)
    for kind, moment, server, to in ((EventKind.FAILOVER_COMPLETED, 7.45, "a", "b"),
                                     (EventKind.FAILBACK_COMPLETED, 15.25, "b", "a")):  # fmt: skip
        Event.objects.create(at=datetime.fromtimestamp(t0 + moment, UTC), kind=kind, camera=camera,
                             server=site[server], to_server=site[to], message=f"gate records on srv-{to}")  # fmt: skip
    page = browser_page
    page.add_init_script(LISTEN)
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    start = datetime.fromtimestamp(t0 + 0.5, UTC).isoformat().replace("+00:00", "Z")
    log_in(page, web, f"/cameras/{camera.pk}/timeline/?at={start}")
    seen = watch(page, (t0 + 18) * 1000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"playback-failover-{codec}.png"), full_page=True)
    played_through(page, seen, (t0 + 0.5) * 1000, measured_gaps(camera), ["srv-a", "srv-b", "srv-a"])

    # A click on the lanes plays from the moment under the pointer: 10 s of recordings across them.
    page.click("button[data-zoom='10']")
    page.fill("#moment-at", page.evaluate(LOCAL_INPUT, (t0 + 10) * 1000))
    page.click("#moment button[type=submit]")  # the picker's moment, in the browser's local time
    page.wait_for_function("() => playback.clicks.length === 2 && playback.clicks[1].frame !== null")
    assert abs(page.evaluate("playback.wallTime()") - (t0 + 10) * 1000) < 1500
    page.wait_for_timeout(400)  # the lanes of the new span
    page.locator("#lanes").scroll_into_view_if_needed()  # below the video
    axis = page.locator("#lanes .axis")
    first, last = float(axis.get_attribute("aria-valuemin")), float(axis.get_attribute("aria-valuemax"))
    lane = page.locator("#lanes .timeline[data-server=srv-b]").bounding_box()
    moment = (t0 + 9) * 1000
    page.mouse.click(lane["x"] + (moment - first) / (last - first) * lane["width"], lane["y"] + lane["height"] / 2)
    page.wait_for_function("() => playback.clicks.length === 3 && playback.clicks[2].frame !== null")
    assert abs(page.evaluate("playback.clicks[2].at") - moment) < (last - first) / lane["width"] + 1
    assert abs(page.evaluate("playback.wallTime()") - moment) < 1500 and page.evaluate("playback.source()") == "srv-b"
    assert page.evaluate("window.cspViolations") == [] and errors == []


def lost_by_identity(site, camera) -> list[tuple[int, int]]:
    """The camera's frames no server recorded, from the recorded files (each frame's SEI identity): for each run
    of missing counters, (the capture time of the frame before it, of the frame after it) in ms."""
    frames = {}
    for name in ("a", "b"):
        for stamp in recorded_stamps(site[name].storage_dir, camera.pk):
            frames[stamp.counter] = stamp.captured_ms
    counters = sorted(frames)
    return [(frames[a], frames[b]) for a, b in zip(counters, counters[1:], strict=False) if b - a > 1]


@pytest.mark.browser
@pytest.mark.process
def test_a_camera_whose_primary_was_killed_and_came_back_plays_from_before_the_kill_to_after_the_failback(
    site, tmp_path, simulator, make_camera, agent_process, engine, web, browser_page
):
    for name, port in zip(("a", "b"), free_ports(2), strict=True):
        site[name].recordings_path, site[name].api_port = str(tmp_path / site[name].name), port
        site[name].save()
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    sim = simulator(1, codecs=("h264",), fps=float(FPS), gop_seconds=1.0)
    camera = make_camera(site["a"], site["b"], name="gate", stream_url=sim.url(1), codec="h264", fps=FPS)

    def placement():
        return CameraPlacement.objects.filter(camera=camera).values_list("state", flat=True).first()

    def segments(name, after=0.0):
        return Segment.objects.filter(camera=camera, server=site[name], recorded_by=None,
                                      started_at__gt=datetime.fromtimestamp(after, UTC)).count()  # fmt: skip

    primary = agent_process("srv-a")
    agent_process("srv-b")
    wait_for(lambda: placement() == Placement.ON_PRIMARY and segments("a") >= 3, 40, message="srv-a recording")
    killed_at = time.time()
    primary.kill()  # the primary video server dies
    wait_for(lambda: placement() == Placement.ON_BACKUP, 20, message="the failover")
    wait_for(lambda: segments("b", killed_at) >= 2, 20, message="srv-b recording")
    agent_process("srv-a")  # it comes back; after the hold-down the camera returns
    wait_for(lambda: placement() == Placement.ON_PRIMARY, 40, message="the failback")
    back = Event.objects.filter(camera=camera, kind=EventKind.FAILBACK_COMPLETED).latest("at").at.timestamp()
    wait_for(lambda: segments("a", back + 4) >= 1, 30, message="srv-a recording after the failback")

    page = browser_page
    page.add_init_script(LISTEN)
    begin = killed_at - 4
    log_in(page, web, f"/cameras/{camera.pk}/timeline/?at={datetime.fromtimestamp(begin, UTC):%Y-%m-%dT%H:%M:%S.%fZ}")
    seen = watch(page, (back + 4) * 1000, timeout=90)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playback-failover-agents.png"), full_page=True)
    gaps = [gap for gap in measured_gaps(camera) if gap[1] > begin * 1000 and gap[0] < (back + 4) * 1000]
    # The failover's gap (and the failback's, should it have broken before it made): what the files lack.
    lost = [(a, b) for a, b in lost_by_identity(site, camera) if b > begin * 1000 and a < (back + 4) * 1000]
    assert len(gaps) == len(lost) >= 1, (gaps, lost)
    for (start, end), (before, after) in zip(gaps, lost, strict=True):
        assert abs((end - start) - (after - before - 1000 / FPS)) < 300, (gaps, lost)
    played_through(page, seen, begin * 1000, gaps, ["srv-a", "srv-b", "srv-a"])
    assert page.evaluate("window.cspViolations") == []
