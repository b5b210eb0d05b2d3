"""The live status page in a real browser (Debian's chromium driven by Playwright), against the
real web server, agents, simulator, Redis and an engine: an operator watches a failover happen,
then drains a server and fails it back from the page, without ever reloading it."""

import shutil
import signal
import subprocess
import sys
import time

import pytest
from django.contrib.auth.models import User
from django.db import connection

from testbed.processes import ROOT
from testbed.waiting import wait_for
from utilities.ports import free_ports

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a-long-test-passphrase"
KEPT_OPEN_SECONDS = 65  # longer than many of the channel layer's 5 s blocking waits


@pytest.fixture
def web(process_env):
    port = free_ports(1)[0]
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "eocortex_web.asgi:application"],
        cwd=ROOT, env=process_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answers():
        import urllib.request

        try:
            return urllib.request.urlopen(f"{url}/accounts/login/", timeout=1).status == 200
        except OSError:
            return False

    wait_for(answers, 30, message="the web server")
    yield url
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is needed for the browser tests: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright runs an event loop in this thread, so Django keeps the test's database connection per
        # context (asgiref's Local), apart from the thread's own: one left open here outlived its test and
        # was reused, dead, by the next browser test (on PostgreSQL, after the fault tests cut connections).
        connection.close()
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())  # the operator confirms drain and fail back
        try:
            yield page
        finally:
            browser.close()
            connection.close()


def test_operator_watches_a_failover_then_drains_and_fails_back(
    site, tmp_path, simulator, make_camera, agent_process, engine, web, browser_page
):
    for name in ("a", "b"):
        site[name].recordings_path = str(tmp_path / site[name].name)
        site[name].save()
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    sim = simulator(2)
    cameras = [make_camera(site["a"], site["b"], name=f"gate-{n}", stream_url=sim.url(n), codec="mjpeg")
               for n in (1, 2)]  # fmt: skip
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    primary, _backup = agent_process("srv-a"), agent_process("srv-b")
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(f"{web}/accounts/login/?next=/live/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#connection.ok", timeout=15_000)
    opened_at = time.monotonic()
    tiles = [f"#tile-{camera.pk}" for camera in cameras]
    for tile in tiles:
        page.wait_for_selector(f"{tile}.where-primary", timeout=30_000)
    page.evaluate("window.stillTheSamePage = true")
    page.screenshot(path=str(ARTIFACTS / "live-before-failover.png"), full_page=True)

    primary.kill()  # the primary video server dies
    for tile in tiles:
        page.wait_for_selector(f"{tile}.where-backup", timeout=30_000)
    page.wait_for_selector("#feed li:has-text('records on srv-b')", timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True, "the page must update without a reload"
    assert page.text_content(f"#server-{site['a'].pk} [data-field=status]") == "down"
    # Its age goes on on the page though nothing is sent while it stays silent.
    age = f"#server-{site['a'].pk} [data-field=age]"
    silent_for = float(page.text_content(age).split()[0])
    wait_for(lambda: float(page.text_content(age).split()[0]) >= silent_for + 2, 10, message="its age going on")
    page.screenshot(path=str(ARTIFACTS / "live-after-failover.png"), full_page=True)

    agent_process("srv-a")  # it comes back; after the hold-down its cameras return
    for tile in tiles:
        page.wait_for_selector(f"{tile}.where-primary", timeout=40_000)

    page.click(f"#server-{site['a'].pk} button:has-text('Drain')")
    page.wait_for_selector("#feed li:has-text('being drained')", timeout=15_000)
    for tile in tiles:
        page.wait_for_selector(f"{tile}.where-backup", timeout=30_000)
    page.click(f"#server-{site['a'].pk} button:has-text('Fail back now')")
    for tile in tiles:
        page.wait_for_selector(f"{tile}.where-primary", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "live-after-failback.png"), full_page=True)

    # The page stayed on one socket all along: it was never closed under it, however long it was open.
    page.wait_for_timeout(max(0.0, KEPT_OPEN_SECONDS - (time.monotonic() - opened_at)) * 1000)
    connection = page.evaluate("window.liveConnection")
    assert connection == {"opened": 1, "closed": 0, "reconnects": 0, "closeCodes": []}
    assert page.text_content("#connection") == "live"
