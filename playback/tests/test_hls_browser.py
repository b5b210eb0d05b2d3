"""The playlist played by hls.js in Debian's chromium, against the real web server and the agents' recordings
servers: across a cut inside a segment, another server, a gap and a new connection, the frame on screen at
``currentTime`` is the camera's frame of the wall time ``since + currentTime`` (read from its pixel stamp),
and the player stops nowhere but at the gap."""

import shutil
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection

from playback.tests.test_hls import FPS, at, iso, record, serve  # noqa: F401 (a fixture)
from redundancy.models import Event, EventKind
from tests.test_live_browser import CHROMIUM, PASSWORD, web  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.process]

# Each frame shown: its media time and the counter of its pixel stamp (simulation.stamp: 32 x 3 cells of 8 px).
WATCH = """([url, start]) => new Promise((resolve) => {
  const video = document.createElement("video");
  video.muted = true;
  document.body.prepend(video);
  const canvas = document.createElement("canvas");
  const shown = [], waits = [], errors = [];
  function counter() {
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0);
    const pixels = context.getImageData(0, 0, 256, 24).data;
    let value = 0;
    for (let bit = 0; bit < 32; bit++) {
      const i = (4 * 256 + bit * 8 + 4) * 4;  // the middle of the cell, first row
      value = value * 2 + ((pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3 > 127 ? 1 : 0);
    }
    return value;
  }
  function frame(now, metadata) {
    shown.push([metadata.mediaTime, counter()]);
    video.requestVideoFrameCallback(frame);
  }
  video.requestVideoFrameCallback(frame);
  video.addEventListener("waiting", () => waits.push([video.currentTime, performance.now()]));
  video.addEventListener("playing", () => waits.length && waits[waits.length - 1].length === 2 &&
    waits[waits.length - 1].push(performance.now()));
  const loaded = [];
  function state() {
    const buffered = [];
    for (let i = 0; i < video.buffered.length; i++) buffered.push([video.buffered.start(i), video.buffered.end(i)]);
    return { shown, waits, errors, loaded, buffered, end: video.currentTime, ready: video.readyState,
      supported: MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001e"') };
  }
  setTimeout(() => resolve(state()), 60000);  // 24 s of video
  video.addEventListener("ended", () => resolve(state()));
  const hls = new Hls({ enableWorker: false, startPosition: start });
  hls.on(Hls.Events.ERROR, (event, data) => {
    errors.push([data.details, data.fatal]);
    if (data.fatal) resolve(state());
  });
  hls.on(Hls.Events.FRAG_BUFFERED, (event, data) => loaded.push([data.frag.sn, data.frag.cc, data.frag.start,
    data.frag.duration]));
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play();
})"""


def play(site_url: str, camera, since: float, until: float, monkeypatch) -> dict:
    """What chromium showed of the camera's playlist from ``since`` to ``until``, played from its start."""
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is needed for the browser tests: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's event loop in this thread
    with sync_playwright() as playwright:
        connection.close()
        options = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=options)
        try:
            page = browser.new_context(bypass_csp=True).new_page()  # the policy is the page's test, not this one
            page.goto(f"{site_url}/accounts/login/?next=/cameras/{camera.pk}/timeline/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_function("window.Hls !== undefined")
            url = f"/cameras/{camera.pk}/playback.m3u8?since={iso(since)}&until={iso(until)}"
            return page.evaluate(WATCH, [url, -1])  # -1: where the playlist says (EXT-X-START)
        finally:
            browser.close()
            connection.close()


def in_wall_time(played: dict, since: float) -> list[int]:
    """The counters of the frames shown, each checked to be the frame of the wall time it was shown at."""
    assert not [details for details, fatal in played["errors"] if fatal], played["errors"]
    assert {details for details, _ in played["errors"]} <= {"fragGap", "bufferStalledError", "bufferSeekOverHole"}
    shown = played["shown"]
    late = [(media, counter) for media, counter in shown if abs((since + media - at(counter)) * FPS) > 1.01]
    assert late == [], f"each frame shown at its wall time less since: {late[:5]} {played['waits']}"
    counters = [counter for _, counter in shown]
    assert counters == sorted(counters), "never back in time"
    return counters


def test_hls_js_plays_the_playlist_in_wall_time_through_a_cut_a_server_change_and_a_gap(
    recorded_site,
    make_camera,
    serve,  # noqa: F811
    web,  # noqa: F811
    monkeypatch,
):
    a, b = recorded_site["a"], recorded_site["b"]
    camera = make_camera(a, b, fps=FPS, codec="h264")
    record(camera, a, range(0, 50)), record(camera, a, range(50, 100))
    record(camera, b, range(60, 110), 9000), record(camera, b, range(110, 160), 9000)  # constant mode; then b dies
    record(camera, a, range(175, 225), 20000), record(camera, a, range(225, 250), 20000)  # a is back
    for moment, server, other in ((77, b, a), (175, a, b)):
        Event.objects.create(at=datetime.fromtimestamp(at(moment), UTC), kind=EventKind.FAILOVER_COMPLETED,
                             camera=camera, server=other, to_server=server, message="moved")  # fmt: skip
    serve(a, b)
    since, until = at(12), at(250)
    played = play(web, camera, since, until, monkeypatch)
    counters = in_wall_time(played, since)
    report = {name: value for name, value in played.items() if name != "shown"}
    assert counters[0] == 15 and counters[-1] == 249, "from the first keyframe of the range to its end"
    assert not [c for c in counters if 160 <= c < 175], "nothing in the gap"
    assert len(set(counters)) >= 0.8 * (250 - 15 - 15), "the frames are shown (some may be dropped by a busy machine)"
    assert played["end"] == pytest.approx(until - since, abs=0.15)
    # The stops after the start: only at the gap, and short (hls.js skips a GAP fragment's hole).
    stops = [stop for stop in played["waits"] if stop[0] > 0.5]
    assert all(at(160) - 0.5 <= since + stop[0] <= at(175) + 0.5 for stop in stops), report
    assert sum(stop[-1] - stop[1] for stop in stops) < 1000, report


def test_hls_js_plays_transcoded_mjpeg_in_wall_time(recorded_site, make_camera, serve, web, monkeypatch):  # noqa: F811
    a = recorded_site["a"]
    camera = make_camera(a, fps=FPS, codec="mjpeg")
    record(camera, a, range(0, 50)), record(camera, a, range(50, 100)), record(camera, a, range(100, 150))
    serve(a)
    since, until = at(12), at(150)
    played = play(web, camera, since, until, monkeypatch)
    counters = in_wall_time(played, since)
    report = {name: value for name, value in played.items() if name != "shown"}
    assert (counters[0], counters[-1]) == (12, 149), report
    assert len(set(counters)) >= 0.8 * (150 - 12), report
    assert played["end"] == pytest.approx(until - since, abs=0.15), report
    assert [stop for stop in played["waits"] if stop[0] > 0.5] == [], f"no stop between the fragments: {report}"
