"""From a click on the camera's timeline to the first frame played (target: under 1 s).

    .venv/bin/python bench/playback.py [--clicks 20] [--record 40] [--width 1280 --height 720 --fps 25 --gop 2]

Records a real site first: the camera simulator's RTSP H.264 camera, the engine (``manage.py run_engine``),
one agent per server (``manage.py run_video_server``, 10 s segments by stream copy), the web app (Daphne),
all on loopback, against a scratch database and Redis prefix. srv-a records ``--record`` seconds, is
killed (SIGKILL), srv-b records as long, srv-a comes back and the camera fails back, and srv-a records
again, so that the moments clicked lie on both servers. Then Debian's chromium (Playwright) opens the
camera's timeline, 10 minutes across, and clicks the lane at ``--clicks`` moments of recorded video,
spread over the whole recording in shuffled order. Each click is timed by the page
(``window.playback.clicks``): from the click's handler to the first frame of that moment presented
(``requestVideoFrameCallback``). A click in a fresh browser (no cache, the playlist loaded for it) is
"cold"; the clicks after it in the same page seek in the playlist loaded. Medians on stdout and in
bench/out/playback.json.
"""

import argparse
import json
import os
import random
import shlex
import signal
import statistics
import sys
import time

from common import OUT, SCRATCH, free_port, percentile, start, stop, wait
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from cameras.models import Camera  # noqa: E402
from protocol import live  # noqa: E402
from recording.models import Segment  # noqa: E402
from redundancy.models import CameraPlacement, Event, Placement, ServerState  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402

WEB_PORT, CAMERA_PORT = 8097, 19601
PASSWORD = "bench-operator-passphrase"
ENGINE_ENV = {"ENGINE_HOLD_DOWN_SECONDS": 5}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]


def build(args) -> Camera:
    for model in (Event, CameraPlacement, ServerState, Segment, Camera, License, Server, MultiserverSystem):
        model.objects.all().delete()
    system = MultiserverSystem.objects.create(name="bench playback")
    servers = []
    for name in ("srv-a", "srv-b"):
        server = Server.objects.create(system=system, name=name, address="127.0.0.1", api_port=free_port(),
                                       recordings_path=str(SCRATCH / name))  # fmt: skip
        License.objects.create(key=f"BENCH-PLAYBACK-{name}".upper(), server=server, ip_camera_channels=4)
        server.redundancy.fast_redundancy = True
        server.redundancy.save()
        servers.append(server)
    User.objects.filter(username="bench-operator").delete()
    User.objects.create_superuser("bench-operator", "", PASSWORD)
    return Camera.objects.create(name="bench-gate", stream_url=f"rtsp://127.0.0.1:{CAMERA_PORT}/stream", codec="h264",
                                 width=args.width, height=args.height, fps=int(args.fps), primary_server=servers[0],
                                 backup_server=servers[1])  # fmt: skip



def placed(camera, state) -> bool:
    return CameraPlacement.objects.filter(camera=camera, state=state).exists()


def record(camera, seconds: float, gop: float) -> dict:
    """srv-a records, dies, srv-b records, srv-a comes back and records again: ``seconds`` each."""
    procs = [
        start(["simulate_cameras", "--count", "1", "--base-port", str(CAMERA_PORT), "--width", str(camera.width),
               "--height", str(camera.height), "--fps", str(camera.fps), "--codecs", "h264",
               "--gop", str(gop)], "sim"),
        start(["run_engine"], "engine", **ENGINE_ENV),
    ]  # fmt: skip
    agents = {name: start(["run_video_server", "--server", name, "--loglevel", "WARNING"], name, **ENGINE_ENV)
              for name in ("srv-a", "srv-b")}  # fmt: skip
    try:
        wait(lambda: placed(camera, Placement.ON_PRIMARY), 60, "srv-a recording")
        time.sleep(seconds)
        agents["srv-a"].kill()
        wait(lambda: placed(camera, Placement.ON_BACKUP), 60, "the failover")
        time.sleep(seconds)
        agents["srv-a"] = start(["run_video_server", "--server", "srv-a", "--loglevel", "WARNING"], "srv-a-again",
                                **ENGINE_ENV)  # fmt: skip
        wait(lambda: placed(camera, Placement.ON_PRIMARY), 60, "the failback")
        time.sleep(seconds + settings.AGENT_SEGMENT_SECONDS)  # and its last segment indexed
    except BaseException:
        for process in [*agents.values(), *procs]:
            stop(process, signal.SIGKILL)
        raise
    # The agents keep serving their recordings for the clicks; the camera and the engine may go.
    for process in procs:
        stop(process)
    return agents


def login(page, base: str, camera: Camera) -> None:
    page.goto(f"{base}/accounts/login/?next=/cameras/{camera.pk}/timeline/")
    page.fill("#id_username", "bench-operator")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#lanes .timeline[data-server] .seg", timeout=20_000)


def show_recording(page) -> None:
    """10 minutes across, ending now: the whole recording in sight."""
    page.click("button[data-zoom='600']")
    page.click("button[data-pan='now']")
    page.wait_for_timeout(600)
    page.wait_for_selector("#lanes .timeline[data-server] .seg", timeout=20_000)


def moments(page, count: int) -> list[float]:
    """``count`` moments of recorded video (epoch ms), 2 s clear of the ends of what the API says was played."""
    sources = page.evaluate("""async () => {
        const url = document.getElementById("timeline").dataset.recordings;
        const answer = await (await fetch(url, {credentials: "same-origin"})).json();
        return answer.sources.map(s => [Date.parse(s.started_at), Date.parse(s.ended_at)]);
    }""")
    spans = [(a + 2000, b - 2000) for a, b in sources if b - a > 5000]
    total = sum(b - a for a, b in spans)
    picked = []
    for share in ((i + 0.5) / count for i in range(count)):
        offset = share * total
        for a, b in spans:
            if offset <= b - a:
                picked.append(a + offset)
                break
            offset -= b - a
    random.Random(14).shuffle(picked)
    return picked


def click_at(page, moment: float) -> float:
    """Click the lane that recorded ``moment``; seconds from the click to its first frame shown."""
    page.locator("#lanes").scroll_into_view_if_needed()  # below the video once it shows
    axis = page.locator("#lanes .axis")
    first, last = float(axis.get_attribute("aria-valuemin")), float(axis.get_attribute("aria-valuemax"))
    track = page.locator("#lanes .timeline[data-server]").first.bounding_box()
    before = page.evaluate("playback.clicks.length")
    page.mouse.click(track["x"] + (moment - first) / (last - first) * track["width"], track["y"] + track["height"] / 2)
    from playwright.sync_api import TimeoutError

    try:  # (a function, not an expression: the page's policy refuses Playwright's eval of one)
        page.wait_for_function("n => playback.clicks.length > n && playback.clicks[n].frame !== null", arg=before,
                               timeout=20_000)  # fmt: skip
    except TimeoutError:
        OUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUT / "playback-timeout.png"), full_page=True)
        state = page.evaluate("""() => ({clicks: playback.clicks, stalls: playback.stalls, since: playback.since,
            until: playback.until, time: video.currentTime, paused: video.paused, ready: video.readyState,
            error: video.error && video.error.message, problem: document.getElementById("playback-problem").textContent,
            buffered: [...Array(video.buffered.length).keys()].map(i => [video.buffered.start(i),
                                                                          video.buffered.end(i)])})""")
        raise SystemExit(f"bench: no frame of {moment} shown 20 s after the click: {json.dumps(state)}") from None
    click = page.evaluate(f"playback.clicks[{before}]")
    return (click["frame"] - click["clicked"]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--record", type=float, default=40.0, help="seconds per part: srv-a, srv-b, srv-a again")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--gop", type=float, default=2.0)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    stale = list(live.client().scan_iter(f"{settings.LIVE_KEY_PREFIX}:*"))
    if stale:
        live.client().delete(*stale)
    camera = build(args)
    agents = record(camera, args.record, args.gop)
    web = start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(WEB_PORT),
                 "eocortex_web.asgi:application"], "web", manage=False)  # fmt: skip
    base = f"http://127.0.0.1:{WEB_PORT}"
    cold, warm = [], []
    from playwright.sync_api import sync_playwright

    try:
        wait(lambda: _answers(base), 30, "the web app")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                 args=CHROMIUM_ARGS)  # fmt: skip
            picked = None
            for group in range(0, args.clicks, 4):  # each fresh browser: one cold click, then three seeks
                context = browser.new_context(viewport={"width": 1400, "height": 1200})
                page = context.new_page()
                login(page, base, camera)
                show_recording(page)
                picked = picked or moments(page, args.clicks)
                for index, moment in enumerate(picked[group : group + 4]):
                    (warm if index else cold).append(click_at(page, moment))
                    page.wait_for_timeout(500)  # as someone watches before clicking again
                context.close()
            browser.close()
    finally:
        stop(web)
        for process in agents.values():
            stop(process)
    every = cold + warm
    result = {
        "camera": f"RTSP H.264 {camera.width}x{camera.height} {camera.fps} fps, a keyframe every {args.gop:g} s",
        "segments": Segment.objects.filter(camera=camera).count(),
        "servers": sorted(set(Segment.objects.filter(camera=camera).values_list("server__name", flat=True))),
        "clicks": len(every),
        "click_to_first_frame_median_s": round(statistics.median(every), 3),
        "click_to_first_frame_p95_s": round(percentile(every, 0.95), 3),
        "click_to_first_frame_max_s": round(max(every), 3),
        "cold_clicks": len(cold), "cold_median_s": round(statistics.median(cold), 3),
        "seek_clicks": len(warm), "seek_median_s": round(statistics.median(warm), 3) if warm else None,
        "target_s": 1.0,
        "load_average_1_5_15": [round(load, 2) for load in os.getloadavg()],  # a shared machine is not an idle one
        "command": ".venv/bin/python bench/playback.py " + shlex.join(sys.argv[1:]),
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    OUT.mkdir(exist_ok=True)
    (OUT / "playback.json").write_text(json.dumps(result, indent=2))


def _answers(base: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(f"{base}/accounts/login/", timeout=1).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API beside the ORM in one thread
    main()
