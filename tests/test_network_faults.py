"""Video servers on hosts of their own, with real network faults between them (``testbed``).

Each server's agent runs in its own network namespace, the cameras in another; Redis and the database are
reached through the bed's bridge, the engine runs here. Every figure of video is read from the recorded files by
frame identity (the stamp in each MJPEG frame's pixels).
"""

import time

import pytest

from conftest import wait_for
from protocol import live
from recording.identity import recorded_stamps
from redundancy.models import CameraPlacement, Event, EventKind, Placement

pytestmark = [pytest.mark.process, pytest.mark.netns, pytest.mark.django_db(transaction=True)]

FPS = 10.0


@pytest.fixture
def bed_site(bed, recorded_site, make_camera, redis_client):
    """srv-a records cameras 1-3, srv-b backs them up, each server on its own host; ``start(mode)`` sets the
    mode, starts the cameras and both agents, and waits until srv-a records all three."""
    a, b = recorded_site["a"], recorded_site["b"]

    def start(mode: str, cameras: int = 3, **agent_settings):
        for server in (a, b):
            server.redundancy.fast_redundancy = mode == "fast"
            server.redundancy.constant_redundancy = mode == "constant"
            server.redundancy.save()
            bed.place(server)
        bed.start_cameras(cameras, fps=FPS)
        made = [make_camera(a, b, name=f"cam {n}", stream_url=bed.camera_url(n), fps=FPS) for n in
                range(1, cameras + 1)]  # fmt: skip
        for name in ("srv-a", "srv-b"):
            bed.start_agent(name, **agent_settings)
        for camera in made:
            wait_for(lambda c=camera: stream_state(redis_client, "srv-a", c) == "streaming", 40,
                     message=f"srv-a records {camera.name}")  # fmt: skip
        return made

    return start


def stream_state(r, server: str, camera) -> str | None:
    return live.read_stream_health(r, server).get(camera.pk, {}).get("state")


def placement(camera) -> str | None:
    return CameraPlacement.objects.filter(camera=camera).values_list("state", flat=True).first()


def events(camera, kind: str) -> list[Event]:
    return list(Event.objects.filter(camera=camera, kind=kind).order_by("at"))


def counters(server, camera) -> set[int]:
    return {stamp.counter for stamp in recorded_stamps(server.storage_dir, camera.pk)}


def test_fast_mode_a_server_that_loses_its_path_to_one_camera_hands_that_camera_alone_to_the_backup(
    bed, bed_site, recorded_site, engine, redis_client, settings
):
    a, b = recorded_site["a"], recorded_site["b"]
    cut, *others = bed_site("fast")
    fault = bed.cut_camera("srv-a", 1)
    wait_for(lambda: placement(cut) == Placement.ON_BACKUP, 20, message="camera 1 recorded by srv-b")
    assert stream_state(redis_client, "srv-a", cut) in ("lost", "connecting")
    for camera in others:
        assert placement(camera) == Placement.ON_PRIMARY and stream_state(redis_client, "srv-a", camera) == "streaming"
        assert stream_state(redis_client, "srv-b", camera) is None, "the backup does not read cameras it need not"
    time.sleep(2)  # srv-b records camera 1 while srv-a cannot reach it
    restored_at = time.time()
    bed.restore("srv-a", fault)
    wait_for(lambda: placement(cut) == Placement.ON_PRIMARY, 30, message="camera 1 back on srv-a")
    wait_for(lambda: stream_state(redis_client, "srv-b", cut) is None, 10, message="srv-b let go of camera 1")

    failback = events(cut, EventKind.FAILBACK_COMPLETED)
    assert len(events(cut, EventKind.FAILOVER_STARTED)) == 1 and len(failback) == 1, "one failover, one failback"
    assert failback[0].at.timestamp() >= restored_at + settings.ENGINE_HOLD_DOWN_SECONDS, "after the hold-down"
    for camera in others:
        assert not Event.objects.filter(camera=camera, kind__in=(EventKind.FAILOVER_STARTED,
                                                                 EventKind.CAMERA_LOST)).exists()  # fmt: skip
    # By frame identity: srv-b recorded camera 1 while srv-a could not, and the video lost is the detection.
    on_a, on_b = counters(a, cut), counters(b, cut)
    assert on_b and not on_b <= on_a, "srv-b has frames srv-a never got"
    first, last = min(on_a | on_b), max(on_a)
    lost = set(range(first, last + 1)) - on_a - on_b
    assert len(lost) / FPS <= 3.0, f"{len(lost) / FPS:.1f} s of camera 1 lost"


def test_normal_mode_a_server_that_loses_its_path_to_one_camera_keeps_it_and_reports_it_lost(
    bed, bed_site, recorded_site, engine, redis_client, settings
):
    """Normal mode is redundancy of servers: a server that is up keeps its cameras, a camera it cannot reach is
    reported lost (an event, its stream's state), and the backup is not asked to read it."""
    cut, *others = bed_site("normal")
    bed.cut_camera("srv-a", 1)
    wait_for(lambda: events(cut, EventKind.CAMERA_LOST), 20, message="camera 1 reported lost")
    time.sleep(settings.ENGINE_NORMAL_WINDOW_SECONDS + 1)  # longer than normal mode's window
    assert placement(cut) == Placement.ON_PRIMARY
    assert stream_state(redis_client, "srv-a", cut) in ("lost", "connecting")
    assert stream_state(redis_client, "srv-b", cut) is None
    assert not Event.objects.filter(kind=EventKind.FAILOVER_STARTED).exists()
    for camera in others:
        assert stream_state(redis_client, "srv-a", camera) == "streaming"
