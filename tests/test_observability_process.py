"""Issue 20 end to end: a running site (the web tier under Daphne, an engine worker, two agents, the simulator's
cameras) scraped as Prometheus would, through a failover. Every tier's /metrics answers and the metrics named in
the issue move as srv-a's agent is killed and srv-b takes its cameras; the health endpoints say ready; one
incident's event id is followed through the engine's and srv-b's JSON log lines; the Grafana dashboard in docs/
asks only for metrics that are served; and a camera's password, user name and stream URL planted in the site
appear on no metrics or health page."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from protocol import live
from redundancy.models import CameraPlacement, Event, EventKind, Placement
from testbed.processes import ROOT, procfile_command, stop_process
from testbed.waiting import wait_for
from utilities.ports import free_ports

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]

PASSWORD = "Planted-Cam3ra-Secret"  # the camera's password, planted to be looked for
USERNAME = "planted-viewer"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """The samples of a metrics page: (name, sorted labels) → value."""
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200, (url, answer.status_code)
    assert answer.headers["Content-Type"].startswith("text/plain"), answer.headers["Content-Type"]
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


def names(samples) -> set[str]:
    return {name for name, _ in samples}


def json_lines(path: Path) -> list[dict]:
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                pass
    return lines


@pytest.fixture
def running_site(make_system, make_server, make_camera, simulator, agent_process, process_env, tmp_path):
    system = make_system("Site")
    servers = {name: make_server(name, system, fast=True, recordings_path=str(tmp_path / name))
               for name in ("srv-a", "srv-b")}  # fmt: skip
    sim = simulator(count=2, fps=10.0)
    cameras = [make_camera(servers["srv-a"], servers["srv-b"], name=f"gate-{n}", stream_url=sim.url(n), fps=10)
               for n in (1, 2)]  # fmt: skip
    cameras[0].username, cameras[0].password = USERNAME, PASSWORD
    cameras[0].save()
    env = {**process_env, "LOG_FORMAT": "json"}
    web_port, engine_port = free_ports(2)
    processes, logs = [], {}

    def start(name, command):
        logs[name] = tmp_path / f"{name}.log"
        with logs[name].open("ab") as log:
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        return processes[-1]

    agents = {name: agent_process(name, LOG_FORMAT="json") for name in servers}
    for name in servers:
        logs[name] = tmp_path / f"{name}.log"  # the agent_process fixture's
    start("engine", [*procfile_command("engine"), "--worker", "engine-1", "--metrics-port", str(engine_port)])
    start("web", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(web_port),
                  "eocortex_web.asgi:application"])  # fmt: skip
    urls = {
        "web": f"http://127.0.0.1:{web_port}",
        "engine": f"http://127.0.0.1:{engine_port}",
        **{name: f"http://127.0.0.1:{server.api_port}" for name, server in servers.items()},
    }
    yield {"servers": servers, "cameras": cameras, "agents": agents, "urls": urls, "logs": logs, "sim": sim}
    for process in processes:
        stop_process(process, grace=15)


def answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def streaming_on(server, cameras) -> bool:
    reports = live.read_stream_reports(live.client(), server)
    return all(reports.get(camera.pk, {}).get("state") == "streaming" for camera in cameras)


def placements(cameras) -> set[str]:
    return set(CameraPlacement.objects.filter(camera__in=cameras).values_list("state", flat=True))


def test_every_tier_is_scraped_through_a_failover_and_no_page_shows_a_camera_secret(running_site):
    urls, cameras = running_site["urls"], running_site["cameras"]
    pages: dict[str, str] = {}  # every metrics and health body read, to be searched for the planted secrets

    def read(url):
        body = requests.get(url, timeout=5).text
        pages[url] = body
        return body

    for tier, url in urls.items():
        wait_for(lambda url=url: answers(f"{url}/health/ready"), 60, message=f"{tier} ready")
    wait_for(lambda: streaming_on("srv-a", cameras), 60, message="srv-a records both cameras")
    wait_for(lambda: placements(cameras) == {Placement.ON_PRIMARY}, 30, message="both cameras placed on srv-a")
    wait_for(lambda: value(scrape(f"{urls['engine']}/metrics"), "eocortex_engine_cameras", placement="on_primary")
             == 2, 30, message="the engine's metrics counting both cameras on their primary")  # fmt: skip
    requests.get(f"{urls['web']}/accounts/login/", timeout=5)  # a page seen by the web tier's request metrics

    before = {tier: scrape(f"{url}/metrics") for tier, url in urls.items()}
    for tier, url in urls.items():
        read(f"{url}/metrics")
        for health in ("live", "ready"):
            answer = requests.get(f"{url}/health/{health}", timeout=5)
            pages[answer.url] = answer.text
            assert answer.status_code == 200, (tier, health, answer.text)
            if health == "ready":
                assert answer.json()["ready"] is True, (tier, answer.text)
    engine, web, a, b = before["engine"], before["web"], before["srv-a"], before["srv-b"]
    assert value(engine, "eocortex_engine_servers", status="up") == 2
    assert value(engine, "eocortex_engine_decisions_total", kind="failover_started") == 0
    assert value(engine, "eocortex_engine_lease_held", worker="engine-1") == 1
    assert value(engine, "eocortex_engine_tick_duration_seconds_count") > 0
    assert value(a, "eocortex_agent_cameras_ingested") == 2 and value(b, "eocortex_agent_cameras_ingested") == 0
    for camera in cameras:
        assert value(a, "eocortex_agent_camera_state", camera=str(camera.pk), state="streaming") == 1
        assert value(a, "eocortex_agent_camera_frames_per_second", camera=str(camera.pk)) > 0
    assert value(web, "django_http_responses_total_by_status_total", status="200") > 0
    assert "eocortex_web_live_sockets" in names(web)

    # The agent writes: its counters grow between two scrapes.
    written = value(a, "eocortex_agent_frames_written_total")
    wait_for(lambda: value(scrape(f"{urls['srv-a']}/metrics"), "eocortex_agent_frames_written_total") > written, 15,
             message="srv-a's frames written growing")  # fmt: skip

    running_site["agents"]["srv-a"].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: placements(cameras) == {Placement.ON_BACKUP} and streaming_on("srv-b", cameras), 30,
             interval=0.05, message="both cameras on srv-b and streaming there")  # fmt: skip
    failover = time.monotonic() - killed

    def after_failover():
        engine = scrape(f"{urls['engine']}/metrics")
        backup = scrape(f"{urls['srv-b']}/metrics")
        done = (value(engine, "eocortex_engine_cameras", placement="on_backup") == 2
                and value(backup, "eocortex_agent_frames_written_total") > 0)  # fmt: skip
        return (engine, backup) if done else None

    engine, b = wait_for(after_failover, 20, message="the metrics of the failover")
    assert value(engine, "eocortex_engine_decisions_total", kind="failover_started") == 2
    assert value(engine, "eocortex_engine_decisions_total", kind="server_down") == 1
    assert value(engine, "eocortex_engine_servers", status="down") == 1
    assert value(engine, "eocortex_engine_cameras", placement="on_primary") == 0
    assert value(engine, "eocortex_engine_tick_duration_seconds_count") > value(
        before["engine"], "eocortex_engine_tick_duration_seconds_count")
    assert value(b, "eocortex_agent_cameras_ingested") == 2
    for camera in cameras:
        assert value(b, "eocortex_agent_camera_state", camera=str(camera.pk), state="streaming") == 1
        assert value(b, "eocortex_agent_written_bytes_total", camera=str(camera.pk)) > 0
        assert 0 < value(b, "eocortex_agent_takeover_first_keyframe_seconds", camera=str(camera.pk)) < 30
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{urls['srv-a']}/metrics", timeout=2)  # its process is gone, and its port with it
    for tier in ("web", "engine", "srv-b"):
        read(f"{urls[tier]}/metrics")
        pages[f"{urls[tier]}/health/ready"] = requests.get(f"{urls[tier]}/health/ready", timeout=5).text
    lost = scrape(f"{urls['web']}/metrics")
    assert {str(camera.pk) for camera in cameras} <= {dict(labels).get("camera") for name, labels in lost
                                                      if name == "eocortex_video_lost_seconds"}  # fmt: skip

    # One incident followed by its event id: the engine's line and srv-b's takeover line of the same camera.
    camera = cameras[0]
    started = Event.objects.get(kind=EventKind.FAILOVER_STARTED, camera=camera)
    logs = running_site["logs"]

    def carried(log, **fields):
        return [line for line in json_lines(logs[log]) if line.get("incident") == started.pk
                and all(line.get(key) == wanted for key, wanted in fields.items())]  # fmt: skip

    assert carried("engine", camera=camera.pk, event="failover_started"), logs["engine"].read_text()[-3000:]
    assert wait_for(lambda: carried("srv-b", camera=camera.pk, server="srv-b"), 10,
                    message="srv-b's takeover line with the incident's id")  # fmt: skip

    # The dashboard asks for nothing that is not served.
    scraped_now = {key: sample for tier in ("web", "engine", "srv-b")
                   for key, sample in scrape(f"{urls[tier]}/metrics").items()}  # fmt: skip
    served = names(scraped_now) | names(before["srv-a"])
    dashboard = json.loads(DASHBOARD.read_text())
    asked = {name for panel in dashboard["panels"] for target in panel.get("targets", ())
             for name in re.findall(r"\b((?:eocortex|django)_[a-z_]+)", target["expr"])}  # fmt: skip
    assert asked, "the dashboard queries no metric"
    assert asked <= served, sorted(asked - served)
    # And each label it selects on is one those metrics have, with the value it asks for where it asks for one.
    every = {**before["srv-a"], **scraped_now}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            for name, matchers in re.findall(r"\b((?:eocortex|django)_[a-z_]+)\{([^}]*)\}", target["expr"]):
                for label, operator, wanted in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
                    values = {dict(labels).get(label) for (found, labels) in every if found == name}
                    assert values - {None}, f"{name} has no label {label}: {target['expr']}"
                    if operator == "=":
                        assert wanted in values, f"{name}{{{label}={wanted!r}}} is not served: {target['expr']}"

    secrets = [PASSWORD, USERNAME, camera.stream_url, re.sub(r"^\w+://", "", camera.stream_url).split("/")[0]]
    for url, body in pages.items():
        for secret in secrets:
            assert secret not in body, f"{secret!r} on {url}"
    print(f"\nfailover: srv-a killed -> both cameras streaming on srv-b after {failover:.2f} s; "
          f"{len(pages)} metrics and health pages read, no camera secret on any")
