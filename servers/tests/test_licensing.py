"""Rule 2 once: the shortfalls of a server's licenses, and every place that words them agreeing."""

import pytest

from cameras.models import Camera
from cameras.modes import server_warnings
from cameras.rules import backup_problems
from capacity.inputs import load_site
from capacity.planner import plan
from servers.licensing import Shortfall, license_problems
from servers.models import Licensing

ACTIVE = Licensing(active=True, ip_camera_channels=2, analytics_channels=1)
NONE = Licensing(active=False, ip_camera_channels=0, analytics_channels=0)
NO_CAMERA = Licensing(active=True, ip_camera_channels=0, analytics_channels=0)


def shortfalls(licensing, **use):
    return [(p.shortfall, p.needed, p.licensed) for p in license_problems(licensing, **use)]


def test_a_server_within_its_licenses_has_no_problem():
    assert shortfalls(ACTIVE, cameras=2, analytics=1, backs_up=5) == []
    assert shortfalls(NONE) == []  # configured for nothing, it needs nothing


def test_each_shortfall_with_what_is_needed_and_licensed():
    assert shortfalls(ACTIVE, cameras=3) == [(Shortfall.IP_CAMERA_CHANNELS, 3, 2)]
    assert shortfalls(ACTIVE, cameras=1, analytics=2) == [(Shortfall.ANALYTICS_CHANNELS, 2, 1)]
    assert shortfalls(NO_CAMERA, backs_up=3) == [(Shortfall.BACKUP_NEEDS_IP_CAMERA, 1, 0)]
    assert shortfalls(NONE, backs_up=1) == [(Shortfall.NOT_ACTIVE, 0, 0)]
    assert shortfalls(NONE, cameras=1) == [(Shortfall.NOT_ACTIVE, 0, 0), (Shortfall.IP_CAMERA_CHANNELS, 1, 0)]


def test_backed_up_cameras_take_none_of_the_backups_channels():
    assert shortfalls(ACTIVE, cameras=2, backs_up=40) == []
    assert shortfalls(Licensing(True, 1, 0), backs_up=40) == []


@pytest.mark.django_db
def test_a_backup_without_an_ip_camera_license_is_refused_warned_and_planned_alike(site, make_server, make_camera):
    """The refusal, the Backup section and the planner read one rule: each names the same shortfall."""
    zero = make_server("srv-zero", site["system"], channels=0)
    camera = make_camera(site["a"])
    refusal = backup_problems(camera.name, camera.primary_server, zero)
    assert refusal == [
        "Rule 2: backup server srv-zero holds no license for an IP camera; "
        "a backup server needs a license for at least one IP camera."
    ]
    Camera.objects.filter(pk=camera.pk).update(backup_server=zero)  # stored past the rule, as after a lapse
    backed_up = list(Camera.objects.with_servers().filter(backup_server=zero))
    warnings = [w for w in server_warnings(zero, backed_up, [], zero.licensing()) if w.startswith("Rule 2")]
    assert warnings == [
        "Rule 2: srv-zero backs up cameras but holds no license for an IP camera; "
        "a backup server needs a license for at least one IP camera."
    ]
    planned = next(s for s in plan(load_site()).servers if s.server.name == "srv-zero")
    assert [w.text for w in planned.warnings if w.level == "error"] == [
        "Rule 2: srv-zero only backs up cameras, but holds no license for an IP camera; "
        "a backup server needs a license for at least one IP camera."
    ]
