"""A backup's readiness checks as events: stored with the check, once per episode, and pushed to the live page."""

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from recording.models import BackupCheck
from recording.readiness import BackupReadiness, CheckResult
from redundancy.models import Event, EventKind
from redundancy.notifications import events_group

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = CheckResult(False, "the camera's port refuses connections")


def _store(site, camera, result):
    BackupReadiness(site["b"], ingesting=dict).store(camera, result, None)


def _kinds(camera):
    return list(Event.objects.filter(camera=camera).order_by("at", "id").values_list("kind", flat=True))


def test_a_never_checked_camera_that_fails_starts_an_episode(site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    _store(site, camera, REFUSED)
    _store(site, camera, CheckResult(False, "the camera does not answer within 10 s"))
    assert _kinds(camera) == [EventKind.BACKUP_CHECK_FAILED]
    event = Event.objects.get(camera=camera)
    assert event.server == site["b"] and "port refuses connections" in event.message
    _store(site, camera, CheckResult(True, keyframe_seconds=0.5))
    _store(site, camera, CheckResult(True, keyframe_seconds=0.5))
    _store(site, camera, REFUSED)
    assert _kinds(camera) == [EventKind.BACKUP_CHECK_FAILED, EventKind.BACKUP_CHECK_PASSED,
                              EventKind.BACKUP_CHECK_FAILED]  # fmt: skip


def test_a_check_that_passes_from_the_first_is_no_event(site, make_camera):
    camera = make_camera(site["a"], site["b"])
    _store(site, camera, CheckResult(True, keyframe_seconds=0.2))
    assert _kinds(camera) == []
    assert BackupCheck.objects.get(camera=camera).keyframe_seconds == 0.2


def test_a_failed_check_is_pushed_to_the_live_page(site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    layer = get_channel_layer()
    channel = f"live-page-test-{uuid.uuid4().hex}"
    async_to_sync(layer.group_add)(events_group(), channel)
    async def receive():
        return await asyncio.wait_for(layer.receive(channel), 5)

    try:
        _store(site, camera, REFUSED)
        message = async_to_sync(receive)()
    finally:
        async_to_sync(layer.group_discard)(events_group(), channel)
    (event,) = message["events"]
    assert event["kind"] == "backup_check_failed" and event["camera"] == camera.pk
    assert event["system"] == site["system"].pk
