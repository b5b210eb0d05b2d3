"""A camera that lowers its frame rate while its primary and its backup both read it (constant mode's second
connection): one event per episode from the engine's tick, a warning on the camera page and in the backup's
Backup (redundancy) section that goes away with the drop."""

from datetime import timedelta

import pytest
from django.utils import timezone

from protocol import live
from recording.models import StreamHealth
from redundancy.models import Event, EventKind
from redundancy.tests.test_engine import World

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def constant(site, make_camera):
    site["b"].redundancy.constant_redundancy = True
    site["b"].redundancy.save()
    world = World(site)
    world.camera = make_camera(site["a"], site["b"], name="gate", fps=10)
    return world


def read(world, **fps_since):
    """Heartbeats of srv-a and srv-b, each streaming the camera at (fps, since seconds ago) or not reading it."""
    for name in ("srv-a", "srv-b"):
        live.publish_heartbeat(world.redis, name, {"at": world.now}, ttl=60)
        reading = fps_since.get(name.replace("srv-", ""))
        reports = {} if reading is None else {world.camera.pk: {
            "state": "streaming", "fps": reading[0], "since": world.now - reading[1]}}  # fmt: skip
        live.publish_stream_reports(world.redis, name, reports, 60)


def drops():
    return list(Event.objects.filter(kind=EventKind.FRAME_RATE_DROPPED).values_list("message", "server__name"))


def test_a_drop_while_both_read_is_one_event_per_episode(constant):
    read(constant, a=(10.0, 60), b=(10.0, 30))
    constant.tick()
    assert drops() == []
    read(constant, a=(5.0, 60), b=(5.1, 30))
    constant.tick(1)
    message = ("gate lowers its frame rate while srv-a and srv-b both read it: measured srv-a 5.0 fps, "
               "srv-b 5.1 fps, expected 10 fps (the camera slows down for each extra viewer).")  # fmt: skip
    assert drops() == [(message, "srv-b")]
    for _ in range(3):
        constant.tick(1)
    assert len(drops()) == 1, "one event while the drop lasts, not one per tick"
    read(constant, a=(10.0, 60), b=(9.6, 30))
    constant.tick(1)
    read(constant, a=(4.0, 60), b=(4.0, 30))
    constant.tick(1)
    assert len(drops()) == 2, "it recovered and dropped again: a new episode"
    assert "measured srv-a 4.0 fps, srv-b 4.0 fps" in drops()[0][0]


def test_a_rate_hovering_about_80_percent_is_one_episode(constant):
    for fps in (7.5, 8.5, 7.5, 8.9, 7.9):  # below 80 %, then never back to 90 %
        read(constant, a=(fps, 60), b=(fps, 30))
        constant.tick(1)
    assert len(drops()) == 1


def test_one_viewer_at_a_low_rate_is_no_drop(constant):
    read(constant, a=(3.0, 60))  # the backup does not read it
    constant.tick()
    assert drops() == []


def test_a_connection_too_new_to_have_measured_is_not_judged(constant):
    read(constant, a=(10.0, 60), b=(3.0, 2))  # the backup's first seconds: its 5 s window is not full
    constant.tick()
    assert drops() == []
    read(constant, a=(5.0, 60), b=(5.0, 6))
    constant.tick(4)
    assert len(drops()) == 1


def test_the_backup_letting_go_ends_the_episode(constant):
    read(constant, a=(5.0, 60), b=(5.0, 30))
    constant.tick()
    read(constant, a=(10.0, 60))
    constant.tick(1)
    read(constant, a=(5.0, 60), b=(5.0, 10))
    constant.tick(1)
    assert len(drops()) == 2


def store(camera, server, fps, state="streaming"):
    StreamHealth.objects.update_or_create(camera=camera, server=server, defaults={
        "state": state, "fps": fps, "reported_at": timezone.now() - timedelta(seconds=2)})  # fmt: skip


def test_the_camera_page_and_the_backup_section_warn_while_the_drop_lasts(constant, site, admin_client):
    camera = constant.camera
    warning = "gate lowers its frame rate while srv-a and srv-b both read it: measured srv-a 4.9 fps, srv-b 5.0 fps"

    def pages():
        return [admin_client.get(url).content.decode() for url in (f"/cameras/{camera.pk}/",
                                                                  f"/servers/{site['b'].pk}/")]  # fmt: skip

    store(camera, site["a"], 10.0)
    assert not any("lowers its frame rate" in page for page in pages()), "one viewer: no warning"
    store(camera, site["a"], 4.9)
    store(camera, site["b"], 5.0)
    assert all(warning in page and "expected 10 fps" in page for page in pages())
    assert "lowers its frame rate" not in admin_client.get(f"/servers/{site['a'].pk}/").content.decode(), (
        "the Backup section of the server that backs the camera up, not of its primary"
    )
    store(camera, site["a"], 10.0)
    store(camera, site["b"], 9.8)
    assert not any("lowers its frame rate" in page for page in pages()), "the drop is over"
