"""A camera that lowers its frame rate while two servers read it: the judgement, the stored health's warning, and
the whole way from a simulated camera that slows down for its second viewer to the event and the pages."""

import re
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from cameras.models import Camera
from protocol import live
from recording.models import StreamHealth, frame_rate_drop
from redundancy.models import Event, EventKind
from testbed.waiting import wait_for

GATE = Camera(name="gate", fps=25)


def test_a_rate_below_80_percent_of_the_configured_fps_on_either_server_is_a_drop():
    drop = frame_rate_drop(GATE, [("srv-a", 25.0), ("srv-b", 19.9)])
    assert drop is not None and drop.measured == (("srv-a", 25.0), ("srv-b", 19.9))
    assert drop.warning() == (
        "gate lowers its frame rate while srv-a and srv-b both read it: measured srv-a 25.0 fps, srv-b 19.9 fps, "
        "expected 25 fps (the camera slows down for each extra viewer)."
    )
    assert frame_rate_drop(GATE, [("srv-a", 12.5), ("srv-b", 25.0)]) is not None


def test_80_percent_and_more_is_no_drop():
    assert frame_rate_drop(GATE, [("srv-a", 20.0), ("srv-b", 24.6)]) is None


def test_one_viewer_alone_is_never_a_drop():
    """The reference is what the camera sends one viewer: a slow camera read once is not this warning's."""
    assert frame_rate_drop(GATE, [("srv-a", 5.0)]) is None
    assert frame_rate_drop(GATE, [("srv-a", 5.0), ("srv-b", 0.0)]) is None  # srv-b has measured nothing yet


def test_the_end_of_an_episode_is_judged_at_90_percent():
    assert frame_rate_drop(GATE, [("srv-a", 21.0), ("srv-b", 21.0)]) is None
    assert frame_rate_drop(GATE, [("srv-a", 21.0), ("srv-b", 21.0)], below=0.9) is not None


@pytest.fixture
def stored(site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate", fps=10)

    def store(server, fps, state="streaming", age=1.0):
        StreamHealth.objects.update_or_create(camera=camera, server=site[server], defaults={
            "state": state, "fps": fps, "reported_at": timezone.now() - timedelta(seconds=age)})  # fmt: skip

    store.camera = camera
    return store


def test_stored_health_names_the_cameras_read_twice_at_a_lower_rate(stored, site):
    stored("a", 5.0)
    assert StreamHealth.objects.frame_rate_drops() == []  # the primary alone
    stored("b", 5.1)
    (drop,) = StreamHealth.objects.frame_rate_drops()
    assert drop.camera == "gate" and drop.expected_fps == 10 and drop.measured == (("srv-a", 5.0), ("srv-b", 5.1))
    assert StreamHealth.objects.filter(camera__backup_server=site["b"]).frame_rate_drops() == [drop]
    assert StreamHealth.objects.filter(camera__backup_server=site["a"]).frame_rate_drops() == []


def test_a_row_left_by_a_server_that_stopped_reading_or_a_lost_stream_does_not_count(stored):
    stored("a", 10.0)
    stored("b", 5.0, age=60)  # the backup stopped reading a minute ago: its last row stays
    assert StreamHealth.objects.frame_rate_drops() == []
    stored("b", 0.0, state="lost")
    assert StreamHealth.objects.frame_rate_drops() == []


def test_a_stale_refusal_no_longer_warns(stored):
    StreamHealth.objects.create(camera=stored.camera, server=stored.camera.backup_server, state="lost",
                                reason="refused: no more sessions", reported_at=timezone.now())  # fmt: skip
    assert StreamHealth.objects.refused().count() == 1
    StreamHealth.objects.update(reported_at=timezone.now() - timedelta(minutes=5))
    assert StreamHealth.objects.refused().count() == 0


FRAME_RATE_EVENT = re.compile(r"gate lowers its frame rate while srv-a and srv-b both read it: "
                              r"measured srv-a ([\d.]+) fps, srv-b ([\d.]+) fps, expected 10 fps")  # fmt: skip


def halved(text: str) -> bool:
    """The frame rate warning, both servers measuring half of the camera's 10 fps."""
    measured = FRAME_RATE_EVENT.search(text)
    return bool(measured) and all(3.5 <= float(fps) <= 6.5 for fps in measured.groups())


@pytest.mark.process
@pytest.mark.django_db(transaction=True)
def test_a_constant_mode_camera_that_halves_its_rate_for_the_backup_is_an_event_and_a_warning(
    site, tmp_path, simulator, agents, make_camera, redis_client, engine, admin_client
):
    for name in ("a", "b"):
        site[name].recordings_path = str(tmp_path / site[name].name)
        site[name].save()
    backup = site["b"]
    backup.redundancy.constant_redundancy = True
    backup.redundancy.save()
    sim = simulator(1, codecs=("h264",), fps=10.0, gop_seconds=1.0, fps_drop_per_viewer=50)
    camera = make_camera(site["a"], backup, name="gate", stream_url=sim.url(1), codec="h264", fps=10)
    agents("srv-a")

    def primary_fps():
        report = live.read_stream_reports(redis_client, "srv-a").get(camera.pk, {})
        return report.get("state") == "streaming" and time.time() - report["since"] > 6 and report["fps"]

    assert 9 <= wait_for(primary_fps, 30, message="the primary streaming for a full window") <= 11
    wait_for(lambda: StreamHealth.objects.filter(camera=camera, server=site["a"], fps__gte=9).exists(), 15,
             message="the one viewer's full rate stored")  # fmt: skip
    page = admin_client.get(f"/cameras/{camera.pk}/").content.decode()
    assert "lowers its frame rate" not in page, "one viewer gets the full rate: no warning"

    agents("srv-b")
    event = wait_for(lambda: Event.objects.filter(kind=EventKind.FRAME_RATE_DROPPED, camera=camera).first(), 40,
                     message="the frame rate drop as an event")  # fmt: skip
    assert FRAME_RATE_EVENT.search(event.message), event.message
    assert event.server == backup
    assert halved(event.message), f"half of 10 fps, as both servers measure: {event.message}"
    assert sim.call(sim.simulator.describe())[0]["sessions"] == 2

    def warned():  # the stored rates settle within a save or two (the first may straddle the drop)
        pages = [admin_client.get(url).content.decode() for url in (f"/cameras/{camera.pk}/", f"/servers/{backup.pk}/")]
        return all(halved(page) for page in pages)

    wait_for(warned, 30, message="the halved rates on the camera page and in the Backup section")
    threading.Event().wait(3)
    assert Event.objects.filter(kind=EventKind.FRAME_RATE_DROPPED, camera=camera).count() == 1, "one per episode"
