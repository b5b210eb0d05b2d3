"""Video lost on the web tier's /metrics: the last hour's holes in the recording index, per camera, read off the
scrape's path and at most once a minute."""

import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import AuditEntry
from recording.models import Segment
from reports.metrics import NAME, VideoLostCollector
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # the index is read on a thread of its own


def _record(camera, server, start, end, fps=10):
    """Ten-second segments from ``start`` to ``end`` (datetimes), one frame interval apart."""
    rows, moment = [], start
    while moment < end:
        last = min(moment + timedelta(seconds=10), end) - timedelta(seconds=1 / fps)
        rows.append(Segment(camera=camera, server=server, started_at=moment, ended_at=last,
                            frame_count=int((last - moment).total_seconds() * fps) + 1,
                            path=f"/rec/{camera.pk}/{moment.timestamp():.3f}.ts"))  # fmt: skip
        moment += timedelta(seconds=10)
    Segment.objects.bulk_create(rows)


def _since_yesterday():
    """The cameras existed before the hour (video is lost only while a camera exists and is enabled)."""
    AuditEntry.objects.filter(object_type="cameras.camera").update(at=timezone.now() - timedelta(days=1))


def _scrape(collector) -> dict[str, tuple[str, float]]:
    registry = CollectorRegistry()
    registry.register(collector)
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            assert sample.name == NAME
            samples[sample.labels["camera"]] = (sample.labels["primary"], sample.value)
    return samples


def test_each_camera_s_unrecorded_seconds_of_the_last_hour(site, make_camera):
    now = timezone.now()
    whole = make_camera(site["a"], site["b"], name="whole", fps=10)
    holed = make_camera(site["a"], name="holed", fps=10)
    _record(whole, site["a"], now - timedelta(hours=2), now)
    _record(holed, site["a"], now - timedelta(hours=2), now - timedelta(minutes=30))
    _record(holed, site["a"], now - timedelta(minutes=28), now)  # two minutes nobody recorded
    _since_yesterday()
    samples = _scrape(VideoLostCollector(read_every=0))
    assert samples[str(whole.pk)] == ("srv-a", 0.0)
    primary, lost = samples[str(holed.pk)]
    assert primary == "srv-a" and abs(lost - 120.0) < 0.2


def test_the_index_is_read_again_only_after_its_period(site, make_camera):
    now = timezone.now()
    camera = make_camera(site["a"], name="late", fps=10)
    _record(camera, site["a"], now - timedelta(hours=2), now)
    _since_yesterday()
    collector = VideoLostCollector(read_every=3600)
    assert _scrape(collector)[str(camera.pk)][1] == 0.0
    Segment.objects.filter(camera=camera, started_at__gte=now - timedelta(minutes=20),
                           started_at__lt=now - timedelta(minutes=10)).delete()  # fmt: skip
    assert _scrape(collector)[str(camera.pk)][1] == 0.0  # the minute's reading stands
    assert abs(_scrape(VideoLostCollector(read_every=0))[str(camera.pk)][1] - 600.0) < 0.2


@contextmanager
def index_locked():
    """Nobody else reads the recording index meanwhile: PostgreSQL's table under an ACCESS EXCLUSIVE lock held by
    a connection of the test's own. (SQLite in WAL mode, as the product runs it, lets readers read beside any
    writer: a reading there is never held up by a lock.)"""
    import psycopg

    settings_dict = connection.settings_dict
    holder = psycopg.connect(host=settings_dict["HOST"] or "127.0.0.1", port=settings_dict["PORT"] or 5432,
                             user=settings_dict["USER"], dbname=settings_dict["NAME"])  # fmt: skip
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE recording_segment IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite's WAL readers are never held "
                                     "up by a lock; PostgreSQL's table lock holds the reading")


@postgresql_only
def test_a_scrape_never_waits_for_a_reading_held_up_by_the_database(site, make_camera):
    now = timezone.now()
    camera = make_camera(site["a"], name="held", fps=10)
    _record(camera, site["a"], now - timedelta(hours=2), now)
    _since_yesterday()
    collector = VideoLostCollector(read_every=0, first_wait=0.5)
    assert _scrape(collector)[str(camera.pk)][1] == 0.0
    with index_locked():
        for _ in range(3):  # each starts no second reading while the first waits on the lock
            began = time.monotonic()
            assert _scrape(collector)[str(camera.pk)][1] == 0.0  # the last reading's figures, at once
            assert time.monotonic() - began < 0.4
        assert sum(thread.name == "video-lost" for thread in threading.enumerate()) == 1
    wait_for(lambda: not collector._reading.is_alive(), 30, message="the held reading done")


@postgresql_only
def test_the_first_scrape_waits_a_few_seconds_at_most_and_leaves_the_figure_out(site, make_camera):
    make_camera(site["a"], name="first", fps=10)
    collector = VideoLostCollector(first_wait=0.5)
    with index_locked():
        began = time.monotonic()
        assert _scrape(collector) == {}  # no figure rather than a scrape held up
        assert time.monotonic() - began < 2.0
    wait_for(lambda: _scrape(collector), 30, message="the figures once the index can be read")
