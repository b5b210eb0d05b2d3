"""Backup readiness on the test bed: a backup that cannot reach a camera it backs up is found by its readiness
check, before any incident and without a failover (``recording.readiness``)."""

import pytest

from recording.models import BackupCheck, Segment
from redundancy.models import CameraPlacement, Event, EventKind, Placement
from testbed.waiting import wait_for

pytestmark = [pytest.mark.process, pytest.mark.netns, pytest.mark.django_db(transaction=True)]

FPS = 10.0


def last_check(camera, server):
    return BackupCheck.objects.filter(camera=camera, server=server).first()


def checked_since(camera, server, before):
    """The check of ``camera`` by ``server`` once it is newer than ``before`` (its checked_at then)."""
    check = last_check(camera, server)
    return check if check and check.checked_at and (before is None or check.checked_at > before) else None


def test_a_backup_cut_off_from_a_camera_is_found_by_its_check_without_a_failover(
    bed, recorded_site, make_camera, engine, admin_client
):
    a, b = recorded_site["a"], recorded_site["b"]
    for server in (a, b):
        bed.place(server)
    bed.start_cameras(2, fps=FPS)
    cut, other = (make_camera(a, b, name=f"cam {n}", stream_url=bed.camera_url(n), fps=FPS) for n in (1, 2))
    settings = {"BACKUP_CHECK_POLL_SECONDS": "0.5", "BACKUP_CHECK_TIMEOUT_SECONDS": "3"}
    for name in ("srv-a", "srv-b"):
        bed.start_agent(name, **settings)
    wait_for(lambda: CameraPlacement.objects.filter(camera=cut, state=Placement.ON_PRIMARY).exists(), 40,
             message="the engine places camera 1 on srv-a")  # fmt: skip
    # Before any fault srv-b can open both cameras it backs up.
    for camera in (cut, other):
        BackupCheck.objects.request(camera)
    for camera in (cut, other):
        wait_for(lambda c=camera: checked_since(c, b, None), 30, message=f"srv-b checks {camera.name}")
        assert last_check(camera, b).ok, last_check(camera, b).detail

    fault = bed.cut_camera("srv-b", 1)
    before = last_check(cut, b).checked_at
    BackupCheck.objects.request(cut)
    failed = wait_for(lambda: checked_since(cut, b, before), 30, message="srv-b checks camera 1 again")
    assert failed.ok is False and "does not answer within 3 s" in failed.detail, failed.detail
    assert "://" not in failed.detail
    (event,) = Event.objects.filter(camera=cut, kind=EventKind.BACKUP_CHECK_FAILED)
    assert event.server == b and "srv-b cannot open cam 1" in event.message
    # Found with nothing failed over: the camera stays on its primary, srv-b records nothing of it.
    assert CameraPlacement.objects.get(camera=cut).state == Placement.ON_PRIMARY
    assert not Event.objects.filter(camera=cut, kind=EventKind.FAILOVER_STARTED).exists()
    assert not Segment.objects.filter(camera=cut, server=b).exists()
    assert last_check(other, b).ok, "the other camera is still in reach"
    warning = "srv-b cannot open cam 1, which it backs up"
    assert warning in admin_client.get(f"/cameras/{cut.pk}/").content.decode()
    assert warning in admin_client.get(f"/servers/{b.pk}/").content.decode().split('id="backup-section"')[1]

    bed.restore("srv-b", fault)
    before = failed.checked_at
    BackupCheck.objects.request(cut)
    passed = wait_for(lambda: checked_since(cut, b, before), 30, message="srv-b checks camera 1 after the repair")
    assert passed.ok, passed.detail
    assert Event.objects.filter(camera=cut, kind=EventKind.BACKUP_CHECK_PASSED).count() == 1
    assert Event.objects.filter(camera=cut, kind=EventKind.BACKUP_CHECK_FAILED).count() == 1, "one per episode"
    assert CameraPlacement.objects.get(camera=cut).state == Placement.ON_PRIMARY
    assert "srv-b cannot open" not in admin_client.get(f"/cameras/{cut.pk}/").content.decode()
