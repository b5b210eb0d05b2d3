"""The agent's metrics as Prometheus scrapes them: real agents recording the simulator's cameras, real Redis,
``GET /metrics`` over HTTP on each agent's own port."""

import logging

import pytest
import requests
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from protocol import live
from recording.models import Segment
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition: (name, its labels) -> value."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}  # fmt: skip


def scrape(server) -> dict[tuple[str, frozenset], float]:
    answer = requests.get(f"http://{server.address}:{server.api_port}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST
    return parse(answer.text)


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_a_scrape_shows_a_camera_recorded_and_its_counts_growing(recorded_site, simulator, agents, make_camera):
    sim = simulator(1)
    server = recorded_site["a"]
    camera = make_camera(server, stream_url=sim.url(1), codec="mjpeg")
    agent = agents("srv-a", segment_seconds=1.0)
    cam = str(camera.pk)

    def frames():
        return value(scrape(server), "eocortex_agent_frames_written_total", server="srv-a", camera=cam) or 0

    first = wait_for(lambda: frames() > 3 and frames(), 15, message="frames written")
    samples = scrape(server)
    assert value(samples, "eocortex_agent_cameras_ingested", server="srv-a") == 1
    assert value(samples, "eocortex_agent_camera_state", server="srv-a", camera=cam, state="streaming") == 1
    assert value(samples, "eocortex_agent_camera_state", server="srv-a", camera=cam, state="lost") == 0
    assert value(samples, "eocortex_agent_camera_state", server="srv-a", camera=cam, state="connecting") == 0
    written = value(samples, "eocortex_agent_written_bytes_total", server="srv-a", camera=cam)
    assert written > 1000
    assert value(samples, "eocortex_agent_reconnects_total", server="srv-a", camera=cam) == 0
    assert value(samples, "eocortex_agent_storage_errors_total", server="srv-a", camera=cam) == 0
    assert value(samples, "eocortex_agent_storage_free_bytes", server="srv-a") > 0
    assert 0 < value(samples, "eocortex_agent_takeover_open_seconds", server="srv-a", camera=cam) < 5
    keyframe = value(samples, "eocortex_agent_takeover_first_keyframe_seconds", server="srv-a", camera=cam)
    assert 0 < keyframe < 5
    assert value(samples, "eocortex_agent_stream_open_duration_seconds_count", server="srv-a") == 1
    assert value(samples, "eocortex_agent_stream_first_keyframe_duration_seconds_count", server="srv-a") == 1
    wait_for(lambda: (value(scrape(server), "eocortex_agent_camera_frames_per_second", server="srv-a", camera=cam)
                      or 0) > 3, 10, message="the frame rate")  # fmt: skip
    rate = value(scrape(server), "eocortex_agent_camera_bitrate_bits_per_second", server="srv-a", camera=cam)
    assert rate > 10_000  # bits, not kilobits
    wait_for(lambda: frames() > first + 5, 10, message="more frames written")
    again = scrape(server)
    assert value(again, "eocortex_agent_written_bytes_total", server="srv-a", camera=cam) > written
    assert all(("server", "srv-a") in labels for name, labels in again if name.startswith("eocortex_agent_"))
    agent.stop()
    # Every frame counted went into a segment of the index, and none other.
    counted = parse(agent.metrics.exposition().decode())
    indexed = Segment.objects.filter(camera=camera)
    frames_written = value(counted, "eocortex_agent_frames_written_total", server="srv-a", camera=cam)
    assert frames_written == sum(segment.frame_count for segment in indexed)
    assert value(counted, "eocortex_agent_written_bytes_total", server="srv-a", camera=cam) == sum(
        segment.size_bytes for segment in indexed
    )


def test_a_camera_stopped_and_started_again_keeps_counting(recorded_site, simulator, agents, make_camera,
                                                           redis_client):  # fmt: skip
    sim = simulator(1)
    server = recorded_site["a"]
    camera = make_camera(server, stream_url=sim.url(1), codec="mjpeg")
    system = recorded_site["system"].pk
    agent = agents("srv-a")
    cam = str(camera.pk)

    def frames():
        return value(scrape(server), "eocortex_agent_frames_written_total", server="srv-a", camera=cam) or 0

    wait_for(lambda: frames() > 3, 15, message="frames written")
    live.write_desired_fenced(redis_client, system, 1, {"srv-a": set()})
    wait_for(lambda: not agent.workers, 5, message="the camera stopped")
    stopped = scrape(server)
    assert value(stopped, "eocortex_agent_cameras_ingested", server="srv-a") == 0
    assert value(stopped, "eocortex_agent_camera_state", server="srv-a", camera=cam, state="streaming") is None
    before = value(stopped, "eocortex_agent_frames_written_total", server="srv-a", camera=cam)
    assert before > 3, "a camera no longer ingested keeps its counts"
    live.write_desired_fenced(redis_client, system, 1, {"srv-a": {camera.pk}}, seq=1)
    wait_for(lambda: frames() > before + 3, 15, message="counting on from where it was")
    samples = scrape(server)
    # Taken again (as a backup takes a camera over a second time) is no reconnect; its open is counted.
    assert value(samples, "eocortex_agent_reconnects_total", server="srv-a", camera=cam) == 0
    assert value(samples, "eocortex_agent_stream_open_duration_seconds_count", server="srv-a") == 2
    sim.set_state(1, "streaming")  # the camera drops its viewers: the same ingest connects again
    wait_for(lambda: value(scrape(server), "eocortex_agent_reconnects_total", server="srv-a", camera=cam) == 1, 15,
             message="the reconnection counted")  # fmt: skip


def test_each_agent_has_its_own_metrics(recorded_site, agents):
    agents("srv-a", heartbeat_interval=0.1)
    agents("srv-b", heartbeat_interval=0.1)

    def beaten(server, name):
        samples = scrape(server)
        sent = value(samples, "eocortex_agent_heartbeat_send_duration_seconds_count", server=name) or 0
        return sent >= 3 and samples

    for name in ("srv-a", "srv-b"):
        server = recorded_site[name[-1]]
        samples = wait_for(lambda: beaten(server, name), 10, message="heartbeats sent")  # noqa: B023 (waited at once)
        servers = {dict(labels).get("server") for sample, labels in samples if sample.startswith("eocortex_agent_")}
        assert servers == {name}
        assert value(samples, "eocortex_agent_cameras_ingested", server=name) == 0
        assert value(samples, "eocortex_agent_heartbeat_send_duration_seconds_sum", server=name) < 1.0


def test_a_takeover_is_logged_with_its_incident(recorded_site, simulator, agents, make_camera, redis_client, caplog):
    caplog.set_level(logging.INFO, logger="recording.cameraset")
    sim = simulator(2, codecs=("h264",), gop_seconds=1.0)
    moved = make_camera(recorded_site["a"], recorded_site["b"], stream_url=sim.url(1), codec="h264")
    own = make_camera(recorded_site["b"], stream_url=sim.url(2), codec="h264")
    live.write_desired_fenced(redis_client, recorded_site["system"].pk, 1, {"srv-b": {moved.pk, own.pk}},
                              incidents={moved.pk: 99})  # fmt: skip
    agents("srv-b")

    def lines(event):
        return [r.getMessage() for r in caplog.records if f"event={event}" in r.getMessage()]

    wait_for(lambda: len(lines("takeover_recording")) == 2, 15, message="both cameras recorded")
    assert lines("takeover_started") == [f"camera={moved.pk} server=srv-b event=takeover_started incident=99"]
    recorded = {line.split()[0]: line for line in lines("takeover_recording")}
    taken = recorded[f"camera={moved.pk}"].split()
    assert taken[:4] == [f"camera={moved.pk}", "server=srv-b", "event=takeover_recording", "incident=99"]
    open_seconds, first = (float(part.split("=")[1]) for part in taken[4:])
    assert [part.split("=")[0] for part in taken[4:]] == ["open_seconds", "first_keyframe_seconds"]
    assert 0 < open_seconds <= first < 5
    assert "incident=" not in recorded[f"camera={own.pk}"]
