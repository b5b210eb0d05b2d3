"""What the report reads of the index: the holes the database finds, as ``playback.timeline`` would see them."""

from datetime import timedelta

from django.utils import timezone

from cameras.models import Camera
from playback import timeline
from recording.models import Segment
from reports import reading
from reports.tests.test_views import T0, at, record


def gaps(camera, since=T0, until=T0 + timedelta(hours=1), now=None):
    histories = reading.histories(Camera.objects.filter(pk=camera.pk).select_related("primary_server", "backup_server"),
                                  since, until, now or timezone.now())  # fmt: skip
    return [(round(start - T0.timestamp(), 3), round(end - T0.timestamp(), 3)) for start, end in histories[0].gaps]


def as_the_timeline_sees_it(camera, since=T0, until=T0 + timedelta(hours=1)):
    """The gaps the Timeline tab shows, from every segment read one by one."""
    line = timeline.for_camera(camera, since, until)
    return [(round(gap.started_at - T0.timestamp(), 3), round(gap.ended_at - T0.timestamp(), 3)) for gap in line.gaps]


def test_a_second_server_recording_through_the_first_ones_hole_leaves_no_gap(site, make_camera):
    camera = make_camera(site["a"], site["b"], name="constant", fps=10)
    record(camera, site["a"], -60, 600)
    record(camera, site["a"], 700, 3700)
    record(camera, site["b"], -60, 3700)  # constant mode: the backup records all the time
    assert gaps(camera) == [] == as_the_timeline_sees_it(camera)
    Segment.objects.filter(camera=camera, server=site["b"], started_at__gte=at(650), started_at__lt=at(680)).delete()
    assert gaps(camera) == [(650.0, 680.0)] == as_the_timeline_sees_it(camera)


def test_a_few_frames_late_is_no_gap_and_more_is(site, make_camera):
    camera = make_camera(site["a"], name="jitter", fps=10)
    record(camera, site["a"], -60, 600)
    record(camera, site["a"], 600.1, 1200)  # a frame missing: two frame intervals after the last, within GAP_FRAMES
    record(camera, site["a"], 1200.3, 3700)  # two missing: a gap from the end of its last frame's interval
    assert gaps(camera) == [(1200.0, 1200.3)] == as_the_timeline_sees_it(camera)


def test_the_segment_being_written_is_not_a_gap_yet(site, make_camera):
    camera = make_camera(site["a"], name="now", fps=10)
    now = T0 + timedelta(seconds=3600)
    record(camera, site["a"], -60, 3590)  # the last 10 s are in the segment the agent writes now
    assert gaps(camera, until=now, now=now) == []
    assert gaps(camera, until=now, now=now + timedelta(minutes=5)) == [(3590.0, 3600.0)]
