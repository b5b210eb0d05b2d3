"""Proposed backups keep every rule and lower the worst case."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cameras.models import Camera
from cameras.rules import backup_problems
from cameras.services import BackupAssignmentError
from capacity.inputs import load_site
from capacity.planner import plan
from capacity.proposal import apply, propose
from servers.models import License

MJPEG = {"codec": "mjpeg", "width": 640, "height": 360, "fps": 10}


@pytest.fixture
def skewed(make_system, make_server, make_camera):
    """Four equal servers; all twelve of A's cameras are backed up by B, the others have none."""
    system = make_system("Skewed")
    servers = {n: make_server(n, system, max_inbound_mbps=100, max_cameras=40) for n in "ABCD"}
    for n in range(12):
        make_camera(servers["A"], servers["B"], f"a{n:02d}", expected_bitrate_kbps=4000, **MJPEG)
    for name in "BCD":
        for n in range(6):
            make_camera(servers[name], None, f"{name.lower()}{n:02d}", expected_bitrate_kbps=4000, **MJPEG)
    return servers


def _peak():
    return plan(load_site()).peak


def test_proposal_for_all_cameras_lowers_the_worst_case_peak(skewed):
    before = _peak()
    proposal = propose(load_site(), "all")
    assert proposal.peak_before == pytest.approx(before)
    assert proposal.peak_after < proposal.peak_before
    # A's twelve cameras are spread over B, C and D rather than all on B.
    a_backups = {c.proposed_backup for c in proposal.changes if c.primary == "A"}
    assert len(a_backups) >= 2
    apply(proposal)
    assert _peak() == pytest.approx(proposal.peak_after)
    assert _peak() < before
    assert set(Camera.objects.filter(primary_server__name="A").values_list("backup_server__name", flat=True)) == {
        "B", "C", "D"}  # fmt: skip


def test_proposal_for_unassigned_cameras_leaves_the_others(skewed):
    proposal = propose(load_site(), "unassigned")
    assert {c.camera[0] for c in proposal.changes} == {"b", "c", "d"}
    assert len(proposal.changes) == 18
    assert all(c.current_backup is None for c in proposal.changes)
    apply(proposal)
    assert not Camera.objects.filter(backup_server__isnull=True).exists()
    assert set(Camera.objects.filter(primary_server__name="A").values_list("backup_server__name", flat=True)) == {"B"}


def test_proposal_never_breaks_a_rule(make_system, make_server, make_camera):
    system = make_system("Rules")
    a = make_server("R-A", system)
    make_server("R-unlicensed", system, license=False)
    zero = make_server("R-zero", system, channels=0)  # a backup needs a license for one IP camera
    expired = make_server("R-expired", system)
    License.objects.filter(server=expired).update(valid_until=timezone.localdate() - timedelta(days=1))
    make_server("R-elsewhere", make_system("Elsewhere"))
    good = make_server("R-good", system)
    for n in range(5):
        make_camera(a, None, f"rule-{n}", **MJPEG)
    site = load_site()
    proposal = propose(site, "all")
    assert {c.proposed_backup for c in proposal.changes} == {"R-good"}
    for change in proposal.changes:
        camera = Camera.objects.get(pk=change.camera_id)
        assert not backup_problems(camera.name, camera.primary_server, good)
    assert zero.pk not in {c.proposed_backup_id for c in proposal.changes}


def test_proposal_respects_capacity_and_says_why(make_system, make_server, make_camera):
    system = make_system("Tight")
    a = make_server("T-A", system)
    make_server("T-small", system, max_inbound_mbps=10)
    for n in range(4):
        make_camera(a, None, f"tight-{n}", expected_bitrate_kbps=4000, **MJPEG)
    proposal = propose(load_site(), "unassigned")
    assert len(proposal.changes) == 2  # 2 x 4 Mbit/s fit in 10, a third would not
    assert len(proposal.unplaced) == 2
    assert all("capacity" in why for _, why in proposal.unplaced)


def test_proposal_with_no_valid_backup_says_which_rules(make_system, make_server, make_camera):
    a = make_server("Lonely", make_system("Alone"))
    make_camera(a, None, "alone-cam", **MJPEG)
    proposal = propose(load_site(), "unassigned")
    assert proposal.changes == []
    assert proposal.unplaced == [("alone-cam", "no server in its multiserver system may back it up (rules 1 and 2)")]


def test_constant_backup_counts_in_normal_load(make_system, make_server, make_camera):
    system = make_system("Const")
    a = make_server("K-A", system)
    make_server("K-const", system, constant=True, max_inbound_mbps=1000)
    make_server("K-plain", system, max_inbound_mbps=1000)
    for n in range(4):
        make_camera(a, None, f"k-{n}", expected_bitrate_kbps=4000, **MJPEG)
    proposal = propose(load_site(), "unassigned")
    # A constant backup carries the camera all the time; a normal backup only when K-A fails.
    # Both score the same until the constant one's normal load makes it the worse choice.
    placed = [c.proposed_backup for c in proposal.changes]
    assert len(placed) == 4
    assert placed.count("K-plain") >= 2


def test_apply_refuses_everything_when_a_license_lapsed_since_the_proposal(skewed):
    proposal = propose(load_site(), "unassigned")
    target = proposal.changes[0].proposed_backup
    License.objects.filter(server__name=target).update(valid_until=timezone.localdate() - timedelta(days=1))
    with pytest.raises(BackupAssignmentError) as refused:
        apply(proposal)
    assert "Rule 2" in str(refused.value)
    assert Camera.objects.filter(backup_server__isnull=True).count() == 18  # nothing stored


def test_unknown_scope_is_refused(skewed):
    with pytest.raises(ValueError, match="Unknown scope"):
        propose(load_site(), "some")


def test_reconsidering_all_cameras_keeps_each_cameras_mode(make_system, make_server, make_camera):
    system = make_system("Modes")
    a = make_server("M-A", system)
    constant = make_server("M-const", system, constant=True)
    plain = [make_server(f"M-plain-{n}", system, max_inbound_mbps=40) for n in range(2)]
    for n in range(6):
        make_camera(a, constant, f"const-{n}", expected_bitrate_kbps=4000, **MJPEG)
    for n in range(6):
        make_camera(a, plain[0], f"plain-{n}", expected_bitrate_kbps=4000, **MJPEG)
    proposal = propose(load_site(), "all")
    assert proposal.changes, "the plain cameras are spread over both plain servers"
    assert all(change.current_mode == change.proposed_mode == "normal" for change in proposal.changes)
    apply(proposal)
    assert set(Camera.objects.filter(name__startswith="const").values_list("backup_server__name", flat=True)) == {
        "M-const"}  # fmt: skip


def test_a_second_proposal_moves_nothing_for_nothing(skewed):
    apply(propose(load_site(), "all"))
    again = propose(load_site(), "all")
    assert again.changes == []
    assert again.kept == Camera.objects.count()
