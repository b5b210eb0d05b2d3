"""Each camera's effective redundancy mode (rule 5 of docs/architecture.md)."""

from cameras.models import Camera
from cameras.modes import RedundancyMode, server_warnings


def mode_of(camera):
    return Camera.objects.with_servers().get(pk=camera.pk).redundancy_mode


def test_no_backup_means_no_redundancy(site, make_camera):
    assert mode_of(make_camera(site["a"])) == RedundancyMode.NONE


def test_plain_backup_is_normal_mode(site, make_camera):
    assert mode_of(make_camera(site["a"], site["b"])) == RedundancyMode.NORMAL


def test_constant_on_backup_is_constant_mode(site, make_server, make_camera):
    backup = make_server("srv-k", site["system"], constant=True, fast=True)
    assert mode_of(make_camera(site["a"], backup)) == RedundancyMode.CONSTANT


def test_fast_mode_needs_primary_flag(site, make_server, make_camera):
    fast_backup = make_server("srv-f", site["system"], fast=True)
    camera = make_camera(site["a"], fast_backup, name="door")
    loaded = Camera.objects.with_servers().get(pk=camera.pk)
    assert loaded.redundancy_mode == RedundancyMode.NORMAL
    assert loaded.redundancy_warnings == [
        "Fast redundancy is on for backup server srv-f but not for primary server srv-a: "
        "camera door uses normal redundancy until it is enabled on srv-a."
    ]
    site["a"].redundancy.fast_redundancy = True
    site["a"].redundancy.save()
    assert mode_of(camera) == RedundancyMode.FAST


def test_fast_on_primary_alone_changes_nothing(site, make_server, make_camera):
    fast_primary = make_server("srv-fp", site["system"], fast=True)
    assert mode_of(make_camera(fast_primary, site["b"])) == RedundancyMode.NORMAL


def test_server_warnings_name_the_missing_primary(site, make_server, make_camera):
    fast_backup = make_server("srv-f", site["system"], fast=True, email=False)
    make_camera(site["a"], fast_backup)
    backed_up = list(Camera.objects.with_servers().filter(backup_server=fast_backup))
    warnings = server_warnings(fast_backup, backed_up, [], fast_backup.licensing())
    assert any("must also be enabled on primary server(s) srv-a" in w for w in warnings)
    primary_side = list(Camera.objects.with_servers().filter(primary_server=site["a"]))
    warnings = server_warnings(site["a"], [], primary_side, site["a"].licensing())
    assert any("srv-f have fast redundancy on; enable it here too" in w for w in warnings)


def test_constant_mode_warns_no_email_and_double_bandwidth(site, make_server, make_camera):
    backup = make_server("srv-k", site["system"], constant=True, email=True)
    make_camera(site["a"], backup)
    backed_up = list(Camera.objects.with_servers().filter(backup_server=backup))
    warnings = server_warnings(backup, backed_up, [], backup.licensing())
    assert "No email is sent in constant redundancy mode." in warnings
    assert any("doubles the bandwidth" in w for w in warnings)
