"""Video servers on hosts of their own, with real network faults between them (``testbed``).

Each server's agent runs in its own network namespace, the cameras in another; Redis and the database are
reached through the bed's bridge, the engine runs here. Every figure of video is read from the recorded files by
frame identity (the stamp in each MJPEG frame's pixels).
"""

import time

import pytest

from protocol import live
from redundancy.models import CameraPlacement, Event, EventKind, Placement
from simulation.identity import recorded_stamps
from testbed.waiting import wait_for

pytestmark = [pytest.mark.process, pytest.mark.netns, pytest.mark.django_db(transaction=True)]

FPS = 10.0


@pytest.fixture
def bed_site(bed, recorded_site, make_camera, redis_client):
    """srv-a records cameras 1-3, srv-b backs them up, each server on its own host; ``start(mode)`` sets the
    mode, starts the cameras and both agents, and waits until srv-a records all three."""
    a, b = recorded_site["a"], recorded_site["b"]

    def start(mode: str, cameras: int = 3, clock_offset_of=None, cut_before_start=None, wait_for_cameras=None,
              **agent_settings):  # fmt: skip
        for server in (a, b):
            server.redundancy.fast_redundancy = mode == "fast"
            server.redundancy.constant_redundancy = mode == "constant"
            server.redundancy.save()
            bed.place(server)
        bed.start_cameras(cameras, fps=FPS)
        for name, numbers in (cut_before_start or {}).items():
            for number in numbers:
                bed.cut_camera(name, number)
        made = [make_camera(a, b, name=f"cam {n}", stream_url=bed.camera_url(n), fps=FPS) for n in
                range(1, cameras + 1)]  # fmt: skip
        for name in ("srv-a", "srv-b"):
            bed.start_agent(name, clock_offset=(clock_offset_of or {}).get(name, 0.0), **agent_settings)
        for n in wait_for_cameras or range(1, cameras + 1):
            wait_for(lambda c=made[n - 1]: stream_state(redis_client, "srv-a", c) == "streaming", 40,
                     message=f"srv-a records camera {n}")  # fmt: skip
        return made

    return start


def stream_state(r, server: str, camera) -> str | None:
    return live.read_stream_reports(r, server).get(camera.pk, {}).get("state")


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
    wait_for(lambda: len(counters(b, cut)) >= 2 * FPS, 20, interval=0.5,
             message="srv-b's files holding 2 s of camera 1, which srv-a cannot reach")  # fmt: skip
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


@pytest.mark.parametrize("split_seconds", [5, 60])
def test_a_server_cut_off_from_the_control_plane_keeps_recording_and_the_site_converges_once(
    split_seconds, bed, bed_site, recorded_site, engine, redis_client
):
    """srv-a loses Redis, the database's relay and the engine (its cameras still in reach): fast mode moves its
    cameras to srv-b while srv-a records on, so for the split both record them; after the heal each camera
    comes back once, and no frame of any camera is lost."""
    a, b = recorded_site["a"], recorded_site["b"]
    cameras = bed_site("fast")
    started = time.time()
    fault = bed.isolate("srv-a")
    wait_for(lambda: all(placement(c) == Placement.ON_BACKUP for c in cameras), 20, message="srv-b records all")
    time.sleep(max(0.0, split_seconds - (time.time() - started)))
    bed.restore("srv-a", fault)
    healed = time.time()
    wait_for(lambda: all(placement(c) == Placement.ON_PRIMARY for c in cameras), 60, message="all back on srv-a")
    wait_for(lambda: not live.read_stream_reports(redis_client, "srv-b"), 20, message="srv-b let go of them all")
    time.sleep(3)  # long enough for a ping-pong to show
    assert all(placement(c) == Placement.ON_PRIMARY for c in cameras), f"converged {time.time() - healed:.1f} s"
    for camera in cameras:
        assert len(events(camera, EventKind.FAILOVER_STARTED)) == 1, "one failover per camera"
        assert len(events(camera, EventKind.FAILBACK_COMPLETED)) == 1, "one failback per camera"
        on_a, on_b = counters(a, camera), counters(b, camera)
        twice = on_a & on_b
        assert len(twice) / FPS >= split_seconds / 2, f"{camera.name}: recorded twice for {len(twice) / FPS} s"
        lost = set(range(min(on_a), max(on_a) + 1)) - on_a - on_b
        assert not lost, f"{camera.name}: {len(lost)} frames lost"


def test_a_server_whose_clock_is_three_seconds_ahead_causes_no_failover(bed, bed_site, engine, redis_client):
    """Heartbeat ages are read by Redis's clock, not the agents': a host whose clock is off is not silent."""
    from redundancy.models import ServerState, ServerStatus

    cameras = bed_site("fast", clock_offset_of={"srv-a": 3.0})
    time.sleep(8)  # several fast windows
    assert not Event.objects.filter(kind__in=(EventKind.FAILOVER_STARTED, EventKind.SERVER_DOWN)).exists()
    assert all(placement(c) == Placement.ON_PRIMARY for c in cameras)
    assert set(ServerState.objects.filter(server__name__in=("srv-a", "srv-b")).values_list("status", flat=True)) == {
        ServerStatus.UP}
    assert all(stream_state(redis_client, "srv-a", c) == "streaming" for c in cameras)


def test_a_camera_only_its_backup_can_reach_is_recorded_there_and_reported_as_such(
    bed, bed_site, recorded_site, engine, redis_client
):
    from redundancy.status import read_status

    a, b = recorded_site["a"], recorded_site["b"]
    cameras = bed_site("fast", cut_before_start={"srv-a": [1]}, wait_for_cameras=[2, 3])
    only_b = cameras[0]
    wait_for(lambda: placement(only_b) == Placement.ON_BACKUP, 30, message="camera 1 recorded by srv-b")
    wait_for(lambda: len(counters(b, only_b)) > FPS, 20, message="srv-b's files hold camera 1")
    assert not counters(a, only_b)
    row = next(r for r in read_status(redis_client, None)["cameras"] if r["id"] == only_b.pk)
    assert row["recording_on"] == "backup" and row["active_server"] == b.pk
    assert row["reason"] == "backup srv-b records it: primary srv-a lost the camera's stream"
    assert row["streams"][str(a.pk)] in ("lost", "connecting") and row["streams"][str(b.pk)] == "streaming"


@pytest.fixture
def damping_within_a_minute(settings):
    """Flap damping's longest hold-down cut to 16 s (before the engine starts), so that a site that flapped many
    times converges within the test's bounds."""
    settings.ENGINE_LONGEST_HOLD_DOWN_SECONDS = 16.0


def test_a_lossy_jittery_link_to_redis_loses_no_video_and_damps_what_flaps(
    bed, bed_site, recorded_site, damping_within_a_minute, engine, redis_client, settings
):
    """A minute of 5 % packet loss and up to 200 ms of jitter between both video servers and Redis. Fast mode
    may see a server fall silent (a false alarm, as the reference documentation warns); when in doubt it
    records twice, so no frame is lost, and a server that fails again within the hour waits longer each time
    before its cameras return."""
    cameras = bed_site("fast")
    began = time.time()
    for name in ("srv-a", "srv-b"):
        bed.link(name).set_link(jitter=0.2)
        bed.lose(name, 5)
    time.sleep(60)
    for name in ("srv-a", "srv-b"):
        bed.restore(name)
        bed.link(name).set_link()
    wait_for(lambda: all(placement(c) == Placement.ON_PRIMARY for c in cameras), 120, message="all on srv-a")
    downs = list(Event.objects.filter(kind=EventKind.SERVER_DOWN, server__name="srv-a").order_by("at"))
    failovers = Event.objects.filter(kind=EventKind.FAILOVER_STARTED).count()
    print(f"5 % loss, 200 ms jitter, 60 s: srv-a down {len(downs)} times, {failovers} camera failovers")
    for camera in cameras:
        on_a, on_b = counters(recorded_site["a"], camera), counters(recorded_site["b"], camera)
        lost = set(range(min(on_a), max(on_a) + 1)) - on_a - on_b
        assert not lost, f"{camera.name}: {len(lost)} frames lost"
    # Flap damping: each failure within the hour doubles the hold-down (up to its longest), and says so.
    grew = sum(engine.damping.hold_down(n) > engine.damping.hold_down(n - 1) for n in range(2, len(downs) + 1))
    assert Event.objects.filter(kind=EventKind.FLAP_DAMPED, server__name="srv-a").count() == grew
    # Every move began during the fault, and each camera's last move brought it home. Counts of failovers and
    # failbacks need not match: srv-b flaps too, and a failover whose backup is gone before it takes the camera
    # ends on the primary without a failback (nor an event), one whose both servers went silent ends as a
    # camera_restored.
    away = (EventKind.FAILOVER_COMPLETED, EventKind.CAMERA_UNPROTECTED)
    home = (EventKind.FAILBACK_COMPLETED, EventKind.CAMERA_RESTORED)
    for camera in cameras:
        moved = list(Event.objects.filter(camera=camera, kind__in=(EventKind.FAILOVER_STARTED, *away, *home))
                     .order_by("at", "id").values_list("kind", "at"))  # fmt: skip
        assert all(at.timestamp() >= began for _, at in moved), moved
        landed = [kind for kind, _ in moved if kind in away or kind in home]
        if landed:  # it was recorded by srv-b, or by nobody, at some point: its last move brought it home
            assert landed[-1] in home, moved
