"""From the engine's decision to the operator's screen, and the live page with hundreds of tiles.

    .venv/bin/python bench/live_latency.py [--cameras 100] [--rounds 10] [--wall 500]

Starts the web app (Daphne) and opens the live page in Debian's chromium (Playwright). The
engine runs in this process against heartbeats and stream reports it writes itself for two
servers, so failovers happen on demand: in each round the primary goes silent, the backup
reports every camera, and the engine's tick decides. Latency per camera = the moment its tile
turns to "backup" in the browser (a MutationObserver) minus the time of the engine's decision
stored in its failover_completed event. The engine publishes the status (``StatusPublisher``) as the engine
worker does. Then it loads a page of ``--wall`` tiles and reports how long the page took to load, to apply the
whole status and to apply a delta that changes every tile. Everything on loopback; results on stdout and in
bench/out/live_latency.json.
"""

import argparse
import json
import statistics
import sys
import threading
import time

from common import OUT, percentile, start, stop
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from cameras.models import Camera  # noqa: E402
from protocol import live  # noqa: E402
from redundancy.engine import Engine  # noqa: E402
from redundancy.models import CameraPlacement, Event, ServerState  # noqa: E402
from redundancy.status import StatusPublisher  # noqa: E402
from servers.models import License, MultiserverSystem, Server  # noqa: E402

PORT = 8098
PASSWORD = "bench-operator-passphrase"
OBSERVER = """
window.tileChanges = {};
new MutationObserver(function (records) {
  for (const record of records) {
    const tile = record.target;
    if (tile.classList && tile.classList.contains("where-backup") && !(tile.id in window.tileChanges)) {
      window.tileChanges[tile.id] = Date.now();
    }
  }
}).observe(document.getElementById("wall"), {attributes: true, subtree: true, attributeFilter: ["class"]});
"""


def build(count: int) -> tuple[Server, Server, list[Camera]]:
    for model in (Event, CameraPlacement, ServerState, Camera, License, Server, MultiserverSystem):
        model.objects.all().delete()
    system = MultiserverSystem.objects.create(name="bench")
    servers = []
    for name in ("srv-a", "srv-b"):
        server = Server.objects.create(system=system, name=name, address="127.0.0.1", max_cameras=count + 10)
        License.objects.create(key=f"BENCH-{name}".upper(), server=server, ip_camera_channels=count)
        server.redundancy.fast_redundancy = True
        server.redundancy.save()
        servers.append(server)
    cameras = Camera.objects.bulk_create(
        Camera(
            name=f"cam-{n:03d}",
            stream_url=f"http://127.0.0.1:9/{n}",
            codec="mjpeg",
            width=320,
            height=180,
            fps=2,
            primary_server=servers[0],
            backup_server=servers[1],
        )  # fmt: skip
        for n in range(1, count + 1)
    )
    return servers[0], servers[1], cameras


def until(page, expression: str, timeout: float) -> None:
    """Poll ``expression`` in the page (its CSP refuses wait_for_function's evaluated strings)."""
    deadline = time.time() + timeout
    while not page.evaluate(expression):
        if time.time() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(50)


def tick(engine: Engine) -> None:
    """A tick on a thread of its own, as in the engine worker: Playwright's loop owns this one."""
    worker = threading.Thread(target=engine.tick)
    worker.start()
    worker.join()


def report(server: str, cameras, state: str) -> None:
    r = live.client()
    live.publish_heartbeat(r, server, {"at": time.time()}, ttl=30)
    live.publish_stream_reports(r, server, {c.pk: {"state": state, "fps": 2.0} for c in cameras}, ttl=30)


def login(page, base: str) -> None:
    page.goto(f"{base}/accounts/login/?next=/live/")
    page.fill("#id_username", "bench-operator")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#connection.ok", timeout=20_000)


def failover_rounds(page, base: str, count: int, rounds: int) -> list[float]:
    primary, backup, cameras = build(count)
    latencies = []
    for _ in range(rounds):
        # A new engine each round: one kept from the last would go on from what it remembers, not from the
        # state wiped here.
        engine = Engine(wake_agent=lambda name: None, publisher=StatusPublisher(live.client()))
        Event.objects.all().delete()
        CameraPlacement.objects.all().delete()
        ServerState.objects.all().delete()
        live.client().delete(live.key("last-seen"))
        report("srv-a", cameras, "streaming")
        report("srv-b", cameras, "connecting")
        tick(engine)
        page.goto(f"{base}/live/")
        page.wait_for_selector("#connection.ok", timeout=20_000)
        page.wait_for_selector(".tile.where-primary", timeout=20_000)
        page.evaluate(OBSERVER)
        silent_from = time.time()
        while time.time() - silent_from < 2.0:  # the primary goes silent; the backup keeps reporting
            report("srv-b", cameras, "connecting")
            tick(engine)
            time.sleep(0.25)
        live.client().delete(live.key("stream-reports", "srv-a"))
        report("srv-b", cameras, "streaming")
        tick(engine)  # the decision: the backup records every camera now
        decided = {e.camera_id: e.at.timestamp() for e in Event.objects.filter(kind="failover_completed")}
        until(page, f"Object.keys(window.tileChanges).length >= {count}", 20)
        changes = page.evaluate("window.tileChanges")
        latencies += [changes[f"tile-{pk}"] / 1000 - at for pk, at in decided.items() if f"tile-{pk}" in changes]
        engine.stop()
    return latencies


def big_wall(page, base: str, count: int) -> dict:
    primary, backup, cameras = build(count)
    report("srv-a", cameras, "streaming")
    report("srv-b", cameras, "connecting")
    engine = Engine(wake_agent=lambda name: None, publisher=StatusPublisher(live.client()))
    tick(engine)
    began = time.time()
    page.goto(f"{base}/live/")
    page.wait_for_selector("#connection.ok", timeout=30_000)
    loaded = time.time() - began
    until(page, "window.liveTimings.some(t => t.type === 'status')", 30)
    whole = [t["ms"] for t in page.evaluate("window.liveTimings") if t["type"] == "status"]
    for _ in range(5):  # five changes of every camera's stream: five deltas of the whole wall
        report("srv-b", cameras, "streaming")
        tick(engine)
        report("srv-b", cameras, "connecting")
        tick(engine)
    page.wait_for_timeout(1000)
    timings = page.evaluate("window.liveTimings")
    deltas = [t["ms"] for t in timings if t["type"] == "delta"] or [0.0]
    return {"tiles": count, "page_ready_s": round(loaded, 2), "status_apply_ms": round(whole[0], 1),
            "delta_apply_median_ms": round(statistics.median(deltas), 1), "deltas": len(deltas),
            "delta_apply_max_ms": round(max(deltas), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--wall", type=int, default=500)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    User.objects.filter(username="bench-operator").delete()
    User.objects.create_superuser("bench-operator", "", PASSWORD)
    web = start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(PORT), "eocortex_web.asgi:application"],
                "web", manage=False)  # fmt: skip
    time.sleep(3)
    base = f"http://127.0.0.1:{PORT}"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium",
                headless=True,
                args=["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"],
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            login(page, base)
            latencies = failover_rounds(page, base, args.cameras, args.rounds)
            wall = big_wall(page, base, args.wall)
            browser.close()
    finally:
        stop(web)
    result = {
        "cameras": args.cameras, "rounds": args.rounds, "samples": len(latencies),
        "decision_to_tile_median_s": round(statistics.median(latencies), 3),
        "decision_to_tile_p95_s": round(percentile(latencies, 0.95), 3),
        "decision_to_tile_max_s": round(max(latencies), 3), "wall": wall,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    OUT.mkdir(exist_ok=True)
    (OUT / "live_latency.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    import os

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API beside the ORM in one thread
    main()
