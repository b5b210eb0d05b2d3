"""Failover, handover and failback with real agent processes, the real simulator and Redis.

The engine ticks in a thread of the test (as beat would have it tick in a worker); agents
are ``manage.py run_video_server`` processes, killed with SIGKILL, stopped with SIGTERM or
paused with SIGSTOP. Recordings are checked frame by frame from the stamps in the frames.
"""

import signal
import threading
import time

import pytest
from django.core import mail

from recording.models import AnalyticsEvent, Segment
from redundancy import actions
from redundancy.decisions import Damping
from redundancy.models import CameraPlacement, Event, Placement, ServerState
from servers.models import MailSettings
from simulation.identity import recorded_stamps
from testbed.waiting import wait_for

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pair(site, tmp_path, simulator, make_camera):
    """srv-a records camera 'gate' (motion analytics on) with srv-b as its backup."""

    def build(mode="fast", cameras=1, codec="mjpeg"):
        for name in ("a", "b"):
            server = site[name]
            server.recordings_path = str(tmp_path / server.name)
            server.save()
            server.redundancy.fast_redundancy = mode == "fast"
            server.redundancy.constant_redundancy = mode == "constant" and name == "b"
            server.redundancy.save()
        rtsp = {} if codec == "mjpeg" else {"codecs": (codec,), "gop_seconds": 1.0}
        sim = simulator(cameras, fps=5.0, **rtsp)
        made = [
            make_camera(
                site["a"],
                site["b"],
                name=f"gate{n}",
                stream_url=sim.url(n),
                codec=codec,
                analytics=["motion_detection"],
            )  # fmt: skip
            for n in range(1, cameras + 1)
        ]
        return sim, made

    return build


def frames_by_server(camera) -> dict[str, list[int]]:
    """Every stamped frame counter each server recorded for the camera, read from its files on disk
    (a killed agent's last segment is not indexed until it starts again)."""
    result: dict[str, list[int]] = {}
    for server in (camera.primary_server, camera.backup_server):
        for stamp in recorded_stamps(server.storage_dir, camera.pk):
            result.setdefault(server.name, []).append(stamp.counter)
    return result


def missing_between(counters: list[int]) -> list[int]:
    seen = sorted(set(counters))
    return sorted(set(range(seen[0], seen[-1] + 1)) - set(seen))


def placement(camera):
    record = CameraPlacement.objects.filter(camera=camera).first()
    return record.state if record else None


def streaming(agent_name, camera, redis_client):
    from protocol import live

    return live.read_stream_reports(redis_client, agent_name).get(camera.pk, {}).get("state") == "streaming"


def stop_gracefully(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 0


@pytest.mark.parametrize("mode,codec", [("fast", "mjpeg"), ("normal", "mjpeg"), ("fast", "h264")])
def test_sigkill_failover(mode, codec, pair, agent_process, engine, redis_client):
    sim, (camera,) = pair(mode, codec=codec)
    primary, backup = agent_process("srv-a"), agent_process("srv-b")
    wait_for(lambda: streaming("srv-a", camera, redis_client), 30, message="the primary streaming")
    wait_for(lambda: AnalyticsEvent.objects.filter(camera=camera, server__name="srv-a").exists(), 20,
             message="motion analytics on the primary")  # fmt: skip
    primary.kill()
    wait_for(lambda: placement(camera) == Placement.ON_BACKUP, 30, message="the camera on its backup")
    wait_for(lambda: streaming("srv-b", camera, redis_client), 10, message="the backup streaming")
    stop_gracefully(backup)
    frames = frames_by_server(camera)
    assert frames["srv-b"] and max(frames["srv-b"]) > max(frames["srv-a"]), "the backup recorded on"
    kinds = list(Event.objects.filter(camera=camera).order_by("at", "id").values_list("kind", flat=True))
    assert kinds[:2] == ["failover_started", "failover_completed"]
    assert Event.objects.get(kind="server_down", server__name="srv-a")
    # Rule 3: the backup records the camera but never analyses it.
    assert not AnalyticsEvent.objects.filter(server__name="srv-b").exists()


@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_constant_mode_loses_no_frame_when_the_primary_dies(codec, pair, agent_process, engine, redis_client):
    sim, (camera,) = pair("constant", codec=codec)
    primary, backup = agent_process("srv-a"), agent_process("srv-b")
    wait_for(lambda: streaming("srv-a", camera, redis_client) and streaming("srv-b", camera, redis_client), 30,
             message="both connections streaming")  # fmt: skip
    primary.kill()
    wait_for(lambda: placement(camera) == Placement.ON_BACKUP, 30, message="the backup connection active")
    wait_for(lambda: Segment.objects.filter(camera=camera, server__name="srv-b").count() >= 3, 30, message="segments")
    stop_gracefully(backup)
    frames = frames_by_server(camera)
    assert missing_between(frames["srv-b"]) == [] and max(frames["srv-b"]) > max(frames["srv-a"])
    assert not Event.objects.filter(kind="failover_started").exists()  # nothing moved: the active one switched


@pytest.mark.parametrize("how,codec", [("graceful stop", "mjpeg"), ("drain", "mjpeg"), ("graceful stop", "h264"),
                                       ("drain", "h265")])  # fmt: skip
def test_planned_handover_misses_no_frame(how, codec, pair, agent_process, engine, redis_client, site):
    sim, cameras = pair("fast", cameras=2, codec=codec)
    primary, backup = agent_process("srv-a"), agent_process("srv-b")
    wait_for(lambda: all(streaming("srv-a", c, redis_client) for c in cameras), 30, message="the primary streaming")
    if how == "drain":
        actions.drain(site["a"])
    else:
        primary.send_signal(signal.SIGTERM)
    wait_for(lambda: all(placement(c) == Placement.ON_BACKUP for c in cameras), 30, message="handed over")
    if how == "graceful stop":
        assert primary.wait(timeout=30) == 0
    wait_for(lambda: all(Segment.objects.filter(camera=c, server__name="srv-b").exists() for c in cameras), 20,
             message="the backup's segments")  # fmt: skip
    if how == "drain":
        wait_for(lambda: not any(streaming("srv-a", c, redis_client) for c in cameras), 10, message="released")
        stop_gracefully(primary)
    stop_gracefully(backup)
    for camera in cameras:
        frames = frames_by_server(camera)
        assert missing_between(frames["srv-a"] + frames["srv-b"]) == [], f"{camera.name} lost frames"
        assert max(frames["srv-b"]) > max(frames["srv-a"])


@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_failback_is_make_before_break(codec, pair, agent_process, engine, redis_client):
    sim, (camera,) = pair("fast", codec=codec)
    primary, _backup = agent_process("srv-a"), agent_process("srv-b")
    wait_for(lambda: streaming("srv-a", camera, redis_client), 30, message="the primary streaming")
    primary.kill()
    wait_for(lambda: placement(camera) == Placement.ON_BACKUP, 30, message="failed over")
    wait_for(lambda: streaming("srv-b", camera, redis_client), 10, message="the backup streaming")
    agent_process("srv-a")  # the primary returns
    wait_for(lambda: placement(camera) == Placement.ON_PRIMARY, 40, message="failed back after the hold-down")
    wait_for(lambda: not streaming("srv-b", camera, redis_client), 10, message="the backup let go")
    last_on_backup = max(frames_by_server(camera)["srv-b"])
    wait_for(lambda: max(frames_by_server(camera).get("srv-a", [0])) > last_on_backup + 5, 30,
             message="the primary recording after the failback")  # fmt: skip
    frames = frames_by_server(camera)
    after_kill = [c for c in frames["srv-a"] + frames["srv-b"] if c >= min(frames["srv-b"])]
    assert missing_between(after_kill) == [], "frames lost around the failback"
    kinds = list(Event.objects.filter(camera=camera).order_by("at", "id").values_list("kind", flat=True))
    assert kinds == ["failover_started", "failover_completed", "failback_started", "failback_completed"]


def test_flapping_primary_causes_no_ping_pong(pair, agent_process, engine, redis_client, site):
    sim, (camera,) = pair("fast")
    engine.damping = Damping(base=3.0, longest=engine.damping.longest)
    primary, _backup = agent_process("srv-a"), agent_process("srv-b")
    wait_for(lambda: streaming("srv-a", camera, redis_client), 30, message="the primary streaming")
    for _ in range(3):  # the primary's link goes silent for 2.5 s, three times in a row
        primary.send_signal(signal.SIGSTOP)
        wait_for(lambda: ServerState.objects.get(server=site["a"]).status == "down", 10, message="declared down")
        primary.send_signal(signal.SIGCONT)
        wait_for(lambda: ServerState.objects.get(server=site["a"]).status == "up", 10, message="up again")
        threading.Event().wait(1.0)
    state = ServerState.objects.get(server=site["a"])
    assert len(state.failures) == 3 and engine.damping.hold_down_after(state.failures, time.time()) == 12.0
    assert Event.objects.filter(kind="flap_damped").count() == 2
    moves = Event.objects.filter(camera=camera, kind__in=["failover_started", "failback_started"]).count()
    assert moves == 1, "the camera moved once and stayed on the backup while the primary flapped"
    assert placement(camera) == Placement.ON_BACKUP


def test_backup_also_down_is_reported(pair, agent_process, engine, redis_client):
    sim, (camera,) = pair("fast")
    primary, backup = agent_process("srv-a"), agent_process("srv-b")
    wait_for(lambda: streaming("srv-a", camera, redis_client), 30, message="the primary streaming")
    backup.kill()
    primary.kill()
    wait_for(lambda: placement(camera) == Placement.NOBODY, 30, message="reported as recorded by nobody")
    assert "both down" in Event.objects.get(kind="camera_unprotected", camera=camera).message


@pytest.mark.parametrize("mode", ["fast", "normal", "constant"])
def test_one_mail_per_incident_never_in_constant_mode(mode, pair, agent_process, engine, redis_client, site,
                                                      settings):  # fmt: skip
    settings.EMAIL_FROM_ENVIRONMENT = True
    MailSettings.objects.create(system=site["system"], recipients="ops@example.com", from_email="vms@example.com")
    sim, cameras = pair(mode, cameras=2)
    site["b"].redundancy.email_notifications = True
    site["b"].redundancy.save()
    primary, _backup = agent_process("srv-a"), agent_process("srv-b")
    wait_for(lambda: all(streaming("srv-a", c, redis_client) for c in cameras), 30, message="the primary streaming")
    primary.kill()
    wait_for(lambda: all(placement(c) == Placement.ON_BACKUP for c in cameras), 30, message="failed over")
    if mode == "constant":
        assert mail.outbox == []
    else:
        wait_for(lambda: mail.outbox, 10, message="the mail worker sending the incident's mail")
        assert len(mail.outbox) == 1
        assert mail.outbox[0].subject == "Redundancy started on srv-b: 2 camera(s)"
