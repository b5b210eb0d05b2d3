"""Backup readiness: the schedule (pure), one check against the simulator's cameras, and the agent's checker
storing results with one event per episode."""

import threading
from datetime import UTC, datetime

import pytest

from recording.models import BackupCheck, Segment
from recording.readiness import (
    BackupReadiness,
    CheckResult,
    check_stream,
    due_order,
    feed_of,
    from_own_stream,
    is_due,
    last_slot,
    offset,
)
from redundancy.models import Event, EventKind
from testbed.waiting import wait_for

DAY = 86400.0


# -- the schedule -------------------------------------------------------------------------------------


def test_checks_are_spread_over_the_period():
    offsets = [offset(camera_id, DAY) for camera_id in range(1, 201)]
    assert all(0 <= o < DAY for o in offsets)
    hours = {int(o // 3600) for o in offsets}
    assert len(hours) >= 20, "200 cameras fall in nearly every hour of the day, not all at once"
    assert offset(7, DAY) == offset(7, DAY), "the same moment on every agent and every start"


def test_a_camera_is_due_once_per_period_at_its_own_moment():
    at = offset(3, DAY)
    assert last_slot(3, DAY, 10 * DAY + at) == 10 * DAY + at
    assert last_slot(3, DAY, 10 * DAY + at - 1) == 9 * DAY + at
    checked = 10 * DAY + at + 5  # just after its slot
    assert not is_due(3, DAY, checked + 60, checked)
    assert not is_due(3, DAY, 11 * DAY + at - 1, checked), "not before its next slot"
    assert is_due(3, DAY, 11 * DAY + at, checked)
    assert is_due(3, DAY, 13 * DAY, checked), "a missed slot (agent down) is made up"


def test_the_period_follows_the_setting():
    checked = 5 * 3600 + offset(4, 3600) + 1
    assert not is_due(4, 3600, checked + 3598, checked)
    assert is_due(4, 3600, checked + 3600, checked)


def test_cameras_asked_for_go_first_oldest_request_first():
    assert due_order({9: 200.0, 4: 100.0}, {1, 4, 2}) == [4, 9, 1, 2]
    assert due_order({}, {3, 1}) == [1, 3]


def test_a_camera_this_server_records_is_judged_by_its_own_stream():
    assert from_own_stream({"state": "streaming", "first_frame_seconds": 0.4}) == CheckResult(True, "", 0.4)
    assert from_own_stream({"state": "lost", "reason": "the camera does not answer"}) == CheckResult(
        False, "the camera does not answer"
    )
    assert from_own_stream({"state": "connecting"}) is None


# -- one check against the simulator ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_a_check_reads_a_keyframe_and_writes_nothing(site, simulator, make_camera, codec):
    sim = simulator(1, codecs=(codec,), gop_seconds=1.0) if codec != "mjpeg" else simulator(1)
    camera = make_camera(site["a"], site["b"], stream_url=sim.url(1), codec=codec)
    result = check_stream(feed_of(camera), timeout=5.0)
    assert result.ok, result
    assert 0 <= result.keyframe_seconds < 5.0
    assert not Segment.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_a_stopped_camera_fails_the_check_with_its_reason(site, simulator, make_camera, codec):
    sim = simulator(1, codecs=(codec,)) if codec != "mjpeg" else simulator(1)
    camera = make_camera(site["a"], site["b"], stream_url=sim.url(1), codec=codec, username="admin",
                         password="s3cret-pass")  # fmt: skip
    sim.set_state(1, "stopped")
    result = check_stream(feed_of(camera), timeout=3.0)
    assert not result.ok and "refuses connections" in result.detail, result
    assert "s3cret-pass" not in result.detail and "admin" not in result.detail and "://" not in result.detail


@pytest.mark.django_db(transaction=True)
def test_a_camera_out_of_rtsp_sessions_fails_the_check_before_any_failover(recorded_site, simulator, make_camera,
                                                                           agents, redis_client):  # fmt: skip
    from protocol import live

    sim = simulator(1, codecs=("h264",), gop_seconds=1.0, max_viewers=1)  # the camera allows one session
    camera = make_camera(recorded_site["a"], recorded_site["b"], stream_url=sim.url(1), codec="h264")
    agents("srv-a")
    wait_for(lambda: live.read_stream_reports(redis_client, "srv-a").get(camera.pk, {}).get("state") == "streaming",
             20, message="the primary streaming")  # fmt: skip
    result = check_stream(feed_of(camera), timeout=5.0)
    assert not result.ok and "RTSP session away" in result.detail, result


@pytest.mark.django_db
def test_a_camera_that_opens_and_sends_nothing_fails_within_the_timeout(site, simulator, make_camera):
    sim = simulator(1, codecs=("h264",), gop_seconds=1.0)
    camera = make_camera(site["a"], site["b"], stream_url=sim.url(1), codec="h264")
    sim.set_state(1, "stalled")
    started = datetime.now(UTC)
    result = check_stream(feed_of(camera), timeout=2.0)
    assert not result.ok
    assert (datetime.now(UTC) - started).total_seconds() < 6.0


# -- the checker: results stored, requests first, one event per episode ----------------------------------


def _checker(server, **options):
    return BackupReadiness(server, ingesting=options.pop("ingesting", dict), timeout=3.0, **options)


@pytest.mark.django_db(transaction=True)
def test_nothing_is_checked_before_its_slot_unless_asked(site, simulator, make_camera):
    sim = simulator(1)
    camera = make_camera(site["a"], site["b"], stream_url=sim.url(1))
    clock = [100 * DAY + offset(camera.pk, DAY) + 10]  # just after its slot: it waits for the next one
    checker = _checker(site["b"], clock=lambda: clock[0])
    assert checker.check_due() == 0
    BackupCheck.objects.request(camera)
    assert checker.check_due() == 1
    check = BackupCheck.objects.get(camera=camera, server=site["b"])
    assert check.ok and check.requested_at is None and check.checked_at is not None
    assert checker.check_due() == 0, "asked once, checked once"
    clock[0] += DAY
    assert checker.check_due() == 1, "its next slot"


@pytest.mark.django_db(transaction=True)
def test_a_failed_check_is_one_event_per_episode_and_its_end_another(site, simulator, make_camera):
    sim = simulator(1)
    camera = make_camera(site["a"], site["b"], stream_url=sim.url(1), name="gate")
    checker = _checker(site["b"])

    def check_now():
        BackupCheck.objects.request(camera)
        assert checker.check_due() == 1
        return BackupCheck.objects.get(camera=camera, server=site["b"])

    assert check_now().ok
    assert not Event.objects.exists(), "a first check that passes is no news"
    sim.set_state(1, "stopped")
    assert check_now().ok is False
    assert check_now().ok is False
    (failed,) = Event.objects.filter(kind=EventKind.BACKUP_CHECK_FAILED)
    assert failed.camera == camera and failed.server == site["b"]
    assert "srv-b cannot open gate" in failed.message
    (warning,) = BackupCheck.objects.failed()
    assert "srv-b cannot open gate" in warning.warning()
    sim.set_state(1, "streaming")
    assert check_now().ok
    assert check_now().ok
    assert Event.objects.filter(kind=EventKind.BACKUP_CHECK_PASSED).count() == 1
    assert Event.objects.filter(kind=EventKind.BACKUP_CHECK_FAILED).count() == 1
    assert not BackupCheck.objects.failed()


@pytest.mark.django_db(transaction=True)
def test_only_the_cameras_this_server_backs_up_are_checked(site, simulator, make_camera):
    sim = simulator(2)
    mine = make_camera(site["a"], site["b"], stream_url=sim.url(1))
    other = make_camera(site["a"], site["c"], stream_url=sim.url(2))
    disabled = make_camera(site["a"], site["b"], stream_url=sim.url(2), enabled=False)
    for camera in (mine, other, disabled):
        BackupCheck.objects.request(camera)
    assert _checker(site["b"]).check_due() == 1
    assert BackupCheck.objects.get(camera=mine).ok
    assert BackupCheck.objects.get(camera=other).ok is None
    assert BackupCheck.objects.get(camera=disabled).ok is None


@pytest.mark.django_db(transaction=True)
def test_a_camera_the_backup_records_already_is_judged_without_a_second_connection(site, make_camera):
    camera = make_camera(site["a"], site["b"], stream_url="http://127.0.0.1:9/none.mjpg")  # nobody answers there
    BackupCheck.objects.request(camera)
    checker = _checker(site["b"], ingesting=lambda: {camera.pk: {"state": "streaming", "first_frame_seconds": 0.3}})
    assert checker.check_due() == 1
    check = BackupCheck.objects.get(camera=camera)
    assert check.ok and check.keyframe_seconds == 0.3


@pytest.mark.django_db(transaction=True)
def test_a_database_that_fails_the_store_loses_that_result_only(site, simulator, make_camera, monkeypatch):
    from django.db import DatabaseError

    sim = simulator(1)
    camera = make_camera(site["a"], site["b"], stream_url=sim.url(1))
    BackupCheck.objects.request(camera)
    checker = _checker(site["b"])

    def refuse(*args, **kwargs):
        raise DatabaseError("database gone")

    with monkeypatch.context() as patched:
        patched.setattr(BackupCheck.objects, "select_for_update", refuse)
        assert checker.check_due() == 1  # no exception: the thread lives on
    assert BackupCheck.objects.get(camera=camera).ok is None
    assert checker.check_due() == 1, "the request still stands: the next pass checks it again"
    assert BackupCheck.objects.get(camera=camera).ok


@pytest.mark.django_db(transaction=True)
def test_the_agent_runs_its_checker_and_stops_it(recorded_site, simulator, make_camera, agents, settings):
    settings.BACKUP_CHECK_POLL_SECONDS = 0.2
    sim = simulator(1)
    camera = make_camera(recorded_site["a"], recorded_site["b"], stream_url=sim.url(1))
    agent = agents("srv-b")
    BackupCheck.objects.request(camera)
    check = wait_for(lambda: BackupCheck.objects.filter(camera=camera, ok=True).first(), 15, message="a check")
    assert check.server == recorded_site["b"] and check.requested_at is None
    assert not Segment.objects.filter(camera=camera).exists()
    assert camera.pk not in agent.workers, "checked, not ingested"
    agent.stop()
    assert not [t for t in threading.enumerate() if t.name == "readiness-srv-b" and t.is_alive()]


@pytest.mark.django_db(transaction=True)
def test_the_agent_checks_on_its_schedule_without_being_asked(recorded_site, simulator, make_camera, agents, settings):
    settings.BACKUP_CHECK_POLL_SECONDS, settings.BACKUP_CHECK_HOURS = 0.2, 2 / 3600  # a period of 2 s
    sim = simulator(1)
    camera = make_camera(recorded_site["a"], recorded_site["b"], stream_url=sim.url(1))
    agents("srv-b")
    first = wait_for(lambda: BackupCheck.objects.filter(camera=camera, ok=True).first(), 15, message="a check")
    wait_for(lambda: BackupCheck.objects.get(pk=first.pk).checked_at > first.checked_at, 15, message="the next one")
    assert BackupCheck.objects.get(pk=first.pk).requested_at is None
