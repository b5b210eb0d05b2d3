"""The video-server agent against the real simulator, Redis and OpenCV, run in threads."""

import threading
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from protocol import live
from recording.models import AnalyticsEvent, Segment, StreamHealth
from simulation.identity import stamps_in
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def counters(camera) -> list[int]:
    """The stamped frame counters of everything recorded for a camera, segment by segment in time order."""
    result = []
    for segment in Segment.objects.filter(camera=camera).order_by("started_at"):
        result.extend(stamp.counter for stamp in stamps_in(Path(segment.path)))
    return result


def test_agent_records_contiguous_frames_into_segments(recorded_site, simulator, agents, make_camera):
    sim = simulator(2)
    cameras = [make_camera(recorded_site["a"], stream_url=sim.url(n), codec="mjpeg") for n in (1, 2)]
    agent = agents("srv-a", segment_seconds=1.0)
    wait_for(lambda: all(Segment.objects.filter(camera=c).count() >= 3 for c in cameras), 20, message="segments")
    agent.stop()
    for camera in cameras:
        seen = counters(camera)
        assert len(seen) >= 10
        assert seen == list(range(seen[0], seen[0] + len(seen))), "frames missing or repeated"
        segments = list(Segment.objects.filter(camera=camera).order_by("started_at"))
        assert sum(s.frame_count for s in segments) == len(seen)
        assert all(s.server == recorded_site["a"] and s.size_bytes > 0 for s in segments)


def test_agent_publishes_heartbeat_health_and_snapshots(recorded_site, simulator, agents, make_camera, redis_client):
    sim = simulator(1)
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    agents("srv-a")
    report = wait_for(
        lambda: live.read_stream_reports(redis_client, "srv-a").get(camera.pk, {}).get("fps", 0) > 3 and
        live.read_stream_reports(redis_client, "srv-a")[camera.pk], message="stream report",
    )  # fmt: skip
    assert report["state"] == "streaming" and report["bitrate_kbps"] > 10
    heartbeat = live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]
    assert heartbeat["cameras"] == 1 and heartbeat["streaming"] == 1
    snapshot = wait_for(lambda: live.read_snapshot(redis_client, camera.pk), 5, message="a snapshot")
    assert snapshot["server"] == "srv-a" and snapshot["jpeg"].startswith(b"\xff\xd8")
    # Stream health reaches the database too, every few seconds.
    wait_for(lambda: StreamHealth.objects.filter(camera=camera, server=recorded_site["a"], state="streaming").exists(),
             12, message="stream health in the database")  # fmt: skip


@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
@pytest.mark.parametrize("fault", ["stalled", "stopped", "garbage"])
def test_lost_camera_is_reported_within_read_timeout_and_recovers(
    recorded_site, simulator, agents, make_camera, redis_client, fault, codec
):
    sim = simulator(1, **({} if codec == "mjpeg" else {"codecs": (codec,), "gop_seconds": 1.0}))
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec=codec)
    agent = agents("srv-a", read_timeout=1.0)

    def state():
        return live.read_stream_reports(redis_client, "srv-a").get(camera.pk, {}).get("state")

    wait_for(lambda: state() == "streaming", message="streaming")
    sim.set_state(1, fault)
    started = time.monotonic()
    wait_for(lambda: state() == "lost", timeout=agent.read_timeout + 2.0, message="lost within the read timeout")
    assert time.monotonic() - started <= agent.read_timeout + 2.0
    sim.set_state(1, "streaming")
    wait_for(lambda: state() == "streaming", timeout=15, message="recovered")


@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_analytics_run_on_the_primary_only(recorded_site, simulator, agents, make_camera, redis_client, codec):
    sim = simulator(1, **({} if codec == "mjpeg" else {"codecs": (codec,), "gop_seconds": 1.0}))
    camera = make_camera(
        recorded_site["a"], recorded_site["b"], stream_url=sim.url(1), codec=codec, analytics=["motion_detection"]
    )
    # The backup records the camera too (as after a failover) but must not analyse it.
    live.write_desired(redis_client, "srv-b", [camera.pk])
    backup = agents("srv-b")
    primary = agents("srv-a")
    wait_for(lambda: AnalyticsEvent.objects.filter(camera=camera, server=recorded_site["a"]).exists(), 20,
             message="a motion event on the primary")  # fmt: skip
    wait_for(lambda: Segment.objects.filter(camera=camera, server=recorded_site["b"]).exists(), 20,
             message="the backup recording")  # fmt: skip
    assert [d.module for d in primary.pipelines[camera.pk].detectors] == ["motion_detection"]
    assert backup.pipelines[camera.pk].detectors == []
    assert not AnalyticsEvent.objects.filter(server=recorded_site["b"]).exists()


def test_dead_cameras_do_not_delay_the_heartbeat(recorded_site, simulator, agents, make_camera, redis_client):
    sim = simulator(3)
    healthy = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    make_camera(recorded_site["a"], stream_url=sim.url(2), codec="mjpeg")
    make_camera(recorded_site["a"], stream_url=sim.url(3), codec="mjpeg")
    sim.set_state(2, "stalled")
    sim.set_state(3, "garbage")
    agents("srv-a", heartbeat_interval=0.25, open_timeout=3.0, read_timeout=3.0)
    beats, deadline = [], time.monotonic() + 4
    while time.monotonic() < deadline:
        heard = live.read_last_seen(redis_client).get("srv-a")
        if heard is not None and (not beats or heard != beats[-1]):
            beats.append(heard)
        time.sleep(0.02)
    gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
    # A heartbeat waiting on a camera would show a gap of at least the 3 s open timeout.
    assert len(beats) >= 8 and max(gaps) < 1.5
    reports = live.read_stream_reports(redis_client, "srv-a")
    assert reports[healthy.pk]["state"] == "streaming"


def test_agent_follows_the_desired_set(recorded_site, simulator, agents, make_camera, redis_client):
    sim = simulator(2)
    own = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    other = make_camera(recorded_site["b"], recorded_site["a"], stream_url=sim.url(2), codec="mjpeg")
    agent = agents("srv-a")
    wait_for(lambda: set(agent.workers) == {own.pk}, message="the baseline: own cameras only")
    live.write_desired(redis_client, "srv-a", [own.pk, other.pk])
    agent.request_reconcile()
    wait_for(lambda: set(agent.workers) == {own.pk, other.pk}, message="the backed-up camera added")
    live.write_desired(redis_client, "srv-a", [other.pk])
    agent.request_reconcile()
    wait_for(lambda: set(agent.workers) == {other.pk}, message="the own camera released")


def test_agent_refuses_the_word_of_an_earlier_engine_term(recorded_site, simulator, agents, make_camera, redis_client):
    sim = simulator(2)
    own = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    other = make_camera(recorded_site["b"], recorded_site["a"], stream_url=sim.url(2), codec="mjpeg")
    agent = agents("srv-a")
    system = recorded_site["system"].pk
    live.write_desired_fenced(redis_client, system, 5, {"srv-a": {own.pk, other.pk}})
    assert agent.desired_camera_ids() == {own.pk, other.pk}
    # A worker of term 4, paused past its lease, writes after the worker of term 5 (Redis lost the fence in a
    # failover, say): the agent keeps term 5's word.
    redis_client.delete(live.key("system-term", system))
    assert live.write_desired_fenced(redis_client, system, 4, {"srv-a": {own.pk}}) == 1
    assert agent.desired_camera_ids() == {own.pk, other.pk}
    live.write_desired_fenced(redis_client, system, 6, {"srv-a": {own.pk}})
    assert agent.desired_camera_ids() == {own.pk}
    assert live.write_desired_fenced(redis_client, system, 5, {"srv-a": set()}) == 0  # refused by Redis itself
    assert live.read_desired(redis_client, "srv-a") == {own.pk}


def test_agent_keeps_recording_without_redis(recorded_site, simulator, make_camera, agents):
    sim = simulator(1)
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    # Nothing listens there; retried as the agent's own client is (live.client()).
    dead = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.5, socket_connect_timeout=0.5,
                       retry=Retry(NoBackoff(), 1))  # fmt: skip
    agent = agents("srv-a", redis_client=dead, segment_seconds=1.0)
    wait_for(lambda: Segment.objects.filter(camera=camera).count() >= 2, 30, message="segments without Redis")
    assert set(agent.workers) == {camera.pk}


def test_constant_mode_backup_ingests_without_being_asked(recorded_site, simulator, agents, make_camera):
    sim = simulator(1)
    recorded_site["b"].redundancy.constant_redundancy = True
    recorded_site["b"].redundancy.save()
    camera = make_camera(recorded_site["a"], recorded_site["b"], stream_url=sim.url(1), codec="mjpeg")
    backup = agents("srv-b")
    wait_for(lambda: set(backup.workers) == {camera.pk}, message="the constant-mode second connection")


def test_housekeeping_deletes_segments_past_retention(recorded_site, simulator, agents, make_camera):
    sim = simulator(1)
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    agent = agents("srv-a", segment_seconds=0.5)
    wait_for(lambda: Segment.objects.filter(camera=camera).count() >= 2, 15, message="segments")
    agent.stop()
    old = Segment.objects.filter(camera=camera).order_by("started_at").first()
    Segment.objects.filter(pk=old.pk).update(
        started_at=old.started_at.replace(year=old.started_at.year - 1),
        ended_at=old.ended_at.replace(year=old.ended_at.year - 1),
    )
    assert agent.housekeeping() == 1
    assert not Segment.objects.filter(pk=old.pk).exists()
    assert not Path(old.path).exists()


def test_a_retention_of_minutes_is_swept_while_the_agent_records(recorded_site, simulator, agents, make_camera):
    """Three minutes of retention (a test site, a soak): the agent deletes as it records, without being asked."""
    sim = simulator(1)
    server = recorded_site["a"]
    server.retention_hours = 0.05
    server.full_clean()
    server.save()
    camera = make_camera(server, stream_url=sim.url(1), codec="mjpeg")
    ahead = [0.0]
    agents("srv-a", segment_seconds=0.5, sweep_interval=0.2, clock=lambda: time.time() + ahead[0])
    wait_for(lambda: Segment.objects.filter(camera=camera).count() >= 3, 15, message="segments")
    first = list(Segment.objects.filter(camera=camera).values_list("path", flat=True))
    ahead[0] = 200.0  # three minutes and 20 s later, by the agent's clock: a sweep is due and they are past retention
    wait_for(lambda: not Segment.objects.filter(path__in=first).exists(), 10, message="the expired segments gone")
    assert not any(Path(path).exists() for path in first)
    wait_for(lambda: Segment.objects.filter(camera=camera).exists(), 10, message="recording goes on")


def test_retention_under_three_minutes_is_refused():
    from django.core.exceptions import ValidationError

    from servers.models import Server

    with pytest.raises(ValidationError, match="greater than or equal to 0.05"):
        Server(name="srv-x", retention_hours=0.01).clean_fields(exclude=["system"])


def test_a_full_disk_is_reported_and_recording_resumes_when_it_frees(recorded_site, simulator, agents, make_camera,
                                                                     redis_client, monkeypatch):  # fmt: skip
    import errno

    from recording import segments

    sim = simulator(1)
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    disk_full = threading.Event()
    real_write = segments.SegmentWriter.write

    def write(self, jpeg, at):
        if disk_full.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, jpeg, at)

    monkeypatch.setattr(segments.SegmentWriter, "write", write)
    agent = agents("srv-a")
    wait_for(lambda: Segment.objects.filter(camera=camera).exists(), 20, message="a first segment")
    disk_full.set()

    def reported():
        heartbeat = live.read_heartbeats(redis_client, ["srv-a"])["srv-a"] or {}
        report = live.read_stream_reports(redis_client, "srv-a").get(camera.pk, {})
        return heartbeat.get("storage_error") and report.get("state") == "lost" and (heartbeat, report)

    heartbeat, report = wait_for(reported, 10, message="the storage error in the heartbeat and the stream report")
    assert heartbeat["storage_error"] == "No space left on device"
    assert report["reason"] == "storage: No space left on device"
    assert all(thread.is_alive() for thread in agent._threads), "no crash"
    disk_full.clear()
    wait_for(lambda: (live.read_heartbeats(redis_client, ["srv-a"])["srv-a"] or {}).get("storage_error") is None
             and live.read_stream_reports(redis_client, "srv-a")[camera.pk]["state"] == "streaming", 15,
             message="recording again once the disk has room")  # fmt: skip
    written = Segment.objects.filter(camera=camera).count()
    wait_for(lambda: Segment.objects.filter(camera=camera).count() > written, 15, message="new segments")


def test_agent_follows_a_new_desired_set_within_a_beat_without_the_engine_s_notice(
    recorded_site, simulator, agents, make_camera, redis_client
):
    """The engine's notice goes through Celery, whose workers take seconds to reconnect after a Redis failover;
    each heartbeat also looks at the desired set, so the agent follows it within a beat, not at its sweep."""
    import time

    sim = simulator(2)
    own = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    other = make_camera(recorded_site["b"], recorded_site["a"], stream_url=sim.url(2), codec="mjpeg")
    agent = agents("srv-a", sweep_interval=60.0)  # its own sweep would come a minute later
    wait_for(lambda: set(agent.workers) == {own.pk}, message="the baseline: own cameras only")
    written = time.monotonic()
    live.write_desired_fenced(redis_client, recorded_site["system"].pk, 1, {"srv-a": {own.pk, other.pk}})
    wait_for(lambda: set(agent.workers) == {own.pk, other.pk}, 5, message="the backed-up camera added")
    took = time.monotonic() - written
    assert took < 2.0, took  # a beat is 0.25 s here
