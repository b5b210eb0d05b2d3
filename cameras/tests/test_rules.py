"""The rules 1-3 of docs/architecture.md, through the model layer and the assignment service."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cameras.models import Camera
from cameras.rules import valid_backups
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups
from servers.models import License


def test_backup_must_differ_from_primary(site, make_camera):
    camera = make_camera(site["a"])
    camera.backup_server = site["a"]
    with pytest.raises(ValidationError, match="Rule 1: server srv-a is the primary server of camera"):
        camera.full_clean()


def test_database_refuses_backup_equal_to_primary(site, make_camera):
    camera = make_camera(site["a"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Camera.objects.filter(pk=camera.pk).update(backup_server=site["a"])


def test_backup_must_share_system(site, make_camera):
    camera = make_camera(site["a"])
    camera.backup_server = site["other"]
    with pytest.raises(ValidationError) as caught:
        camera.full_clean()
    message = caught.value.message_dict["backup_server"][0]
    assert "Rule 1" in message and "srv-other" in message and "Other site" in message and "srv-a" in message


def test_backup_needs_active_license(site, make_server, make_camera):
    unlicensed = make_server("srv-nolic", site["system"], license=False)
    camera = make_camera(site["a"])
    camera.backup_server = unlicensed
    with pytest.raises(ValidationError, match="Rule 2: backup server srv-nolic has no active license"):
        camera.full_clean()


def test_expired_license_does_not_count(site, make_server, make_camera):
    server = make_server("srv-expired", site["system"], license=False)
    License.objects.create(
        key="EXPIRED-0001",
        server=server,
        ip_camera_channels=8,
        valid_from=timezone.localdate() - timedelta(days=400),
        valid_until=timezone.localdate() - timedelta(days=1),
    )
    camera = make_camera(site["a"])
    with pytest.raises(BackupAssignmentError, match="srv-expired has no active license"):
        assign_backups([BackupAssignment(camera.pk, server.pk)])


def test_primary_needs_active_license(site, make_server, make_camera):
    unlicensed_primary = make_server("srv-p", site["system"], license=False)
    camera = make_camera(unlicensed_primary)
    camera.backup_server = site["b"]
    with pytest.raises(ValidationError, match="Rule 2: primary server srv-p of camera .* has no active license"):
        camera.full_clean()


def test_backup_only_server_needs_an_ip_camera_license(site, make_server, make_camera):
    analytics_only = make_server("srv-zero", site["system"], channels=0)
    camera = make_camera(site["a"])
    with pytest.raises(BackupAssignmentError, match="srv-zero holds no license for an IP camera"):
        assign_backups([BackupAssignment(camera.pk, analytics_only.pk)])


def test_backed_up_cameras_do_not_use_backup_channels(site, make_server, make_camera):
    one_channel = make_server("srv-one", site["system"], channels=1)
    cameras = [make_camera(site["a"]) for _ in range(3)]
    assign_backups([BackupAssignment(c.pk, one_channel.pk) for c in cameras])
    assert one_channel.backup_cameras.count() == 3


def test_analytics_run_on_primary_only(site, make_camera):
    camera = make_camera(site["a"], site["b"], analytics=["motion_detection"])
    assert camera.analytics_on(site["a"]) == ["motion_detection"]
    assert camera.analytics_on(site["b"]) == []


def test_unknown_analytics_module_is_refused(site, make_camera):
    camera = make_camera(site["a"])
    camera.analytics = ["mind_reading"]
    with pytest.raises(ValidationError, match="Unknown analytics module"):
        camera.full_clean()


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://127.0.0.1/stream", "must use rtsp, http or https"),
        ("file:///etc/passwd", "must use rtsp, http or https"),
        ("127.0.0.1:554/stream", "must use rtsp, http or https"),
        ("rtsp://", "Enter a valid stream URL"),
        ("rtsp://admin:secret@127.0.0.1/stream", "not in the stream URL"),
    ],
)
def test_malformed_stream_urls_are_refused(site, make_camera, url, message):
    camera = make_camera(site["a"])
    camera.stream_url = url
    with pytest.raises(ValidationError, match=message):
        camera.full_clean()


def test_rtsp_stream_url_is_accepted(site, make_camera):
    camera = make_camera(site["a"], stream_url="rtsp://127.0.0.1:8554/live/main")
    camera.full_clean()


def test_assignment_is_all_or_nothing(site, make_camera):
    good = make_camera(site["a"])
    bad = make_camera(site["a"])
    with pytest.raises(BackupAssignmentError) as caught:
        assign_backups([BackupAssignment(good.pk, site["b"].pk), BackupAssignment(bad.pk, site["other"].pk)])
    assert list(caught.value.errors) == [1]
    good.refresh_from_db()
    assert good.backup_server is None


def test_assignment_reports_unknown_ids_and_duplicates(site, make_camera):
    camera, other = make_camera(site["a"]), make_camera(site["a"])
    with pytest.raises(BackupAssignmentError) as caught:
        assign_backups(
            [
                BackupAssignment(999_999, site["b"].pk),
                BackupAssignment(other.pk, 999_999),
                BackupAssignment(camera.pk, site["b"].pk),
                BackupAssignment(camera.pk, site["c"].pk),
            ]
        )
    errors = caught.value.errors
    assert errors[0] == ["Camera 999999 does not exist."]
    assert errors[1] == ["Server 999999 does not exist."]
    assert 2 not in errors
    assert "listed more than once" in errors[3][0]


def test_assignment_sets_and_clears_backups(site, make_camera):
    camera = make_camera(site["a"], site["b"])
    changed = assign_backups([BackupAssignment(camera.pk, site["c"].pk)])
    assert [c.pk for c in changed] == [camera.pk]
    camera.refresh_from_db()
    assert camera.backup_server == site["c"]
    assign_backups([BackupAssignment(camera.pk, None)])
    camera.refresh_from_db()
    assert camera.backup_server is None


def test_valid_backups_offer_only_servers_that_keep_the_rules(site, make_server, make_camera):
    unlicensed = make_server("srv-nolic", site["system"], license=False)
    offered = valid_backups("cam", site["a"], [site["a"], site["b"], site["c"], site["other"], unlicensed])
    assert offered == [site["b"], site["c"]]


def test_server_cannot_leave_system_while_sharing_cameras(site, make_camera, make_system):
    make_camera(site["a"], site["b"])
    server = site["b"]
    server.system = make_system("Elsewhere")
    with pytest.raises(ValidationError, match="Rule 1: server srv-b cannot leave its multiserver system"):
        server.full_clean()
    site["c"].system = server.system
    site["c"].full_clean()  # srv-c shares no camera: it may move


def test_camera_takes_a_channel_of_its_primary(site, make_server, make_camera):
    two_channels = make_server("srv-2ch", site["system"], channels=2)
    make_camera(two_channels)
    make_camera(two_channels)
    third = Camera(name="third", stream_url="rtsp://127.0.0.1/third", primary_server=two_channels)
    with pytest.raises(ValidationError, match="srv-2ch is licensed for 2 IP camera channel"):
        third.full_clean()
    # Backing up does not take a channel: the full server may still back up more cameras.
    extra = make_camera(site["a"])
    assign_backups([BackupAssignment(extra.pk, two_channels.pk)])


def test_a_camera_on_a_primary_without_an_active_license_says_so(site, make_server):
    unlicensed = make_server("srv-unlic", site["system"], license=False)
    camera = Camera(name="new", stream_url="rtsp://127.0.0.1/new", primary_server=unlicensed)
    with pytest.raises(ValidationError) as refused:
        camera.full_clean()
    assert refused.value.message_dict["primary_server"] == [
        "Rule 2: primary server srv-unlic has no active license; camera new needs an IP camera channel of one."
    ]
    assert not Camera.objects.filter(name="new").exists()


def test_analytics_need_a_free_analytics_channel(site, make_camera):
    for _ in range(4):  # the fixtures license 4 analytics channels
        make_camera(site["a"], analytics=["motion_detection"])
    camera = make_camera(site["a"])
    camera.analytics = ["motion_detection"]
    with pytest.raises(ValidationError, match="licensed for 4 analytics channel"):
        camera.full_clean()


def test_lapsed_license_does_not_lock_existing_cameras(site, make_camera):
    camera = make_camera(site["a"], analytics=["motion_detection"])
    site["a"].licenses.all().delete()
    camera.refresh_from_db()
    camera.failover_priority = "high"
    camera.full_clean()  # takes no new channel: still editable


def test_lapsed_backup_license_is_reported_but_does_not_block_other_edits(site, make_camera):
    camera = make_camera(site["a"], site["b"])
    site["b"].licenses.all().delete()
    camera = Camera.objects.with_servers().get(pk=camera.pk)
    assert "Rule 2: backup server srv-b has no active license" in camera.assignment_problems()[0]
    camera.fps = 12
    camera.full_clean()  # the assignment did not change: still editable
    camera.backup_server = site["c"]
    camera.full_clean()
    camera.backup_server = site["b"]
    camera.primary_server = site["c"]
    with pytest.raises(ValidationError, match="srv-b has no active license"):
        camera.full_clean()


def test_resending_an_unchanged_assignment_is_accepted_after_a_license_lapsed(site, make_camera):
    camera = make_camera(site["a"], site["b"])
    site["b"].licenses.all().delete()
    assert assign_backups([BackupAssignment(camera.pk, site["b"].pk)]) == []
    with pytest.raises(BackupAssignmentError, match="srv-b has no active license"):
        assign_backups([BackupAssignment(make_camera(site["a"]).pk, site["b"].pk)])
