"""The engine's placement decisions, as pure functions of what it sees."""

import pytest

from redundancy.decisions import CameraView, ServerView, Windows, decide, hold_down_for, ingesting_servers
from redundancy.models import Placement

W = Windows(normal=30, fast=1.5)


def server(pk, age=0.2, **kw):
    return ServerView(pk=pk, name=f"srv-{pk}", heartbeat_age=age, **kw)


def camera(primary, backup=None, mode="fast", placement=Placement.ON_PRIMARY, priority="normal", since=0.0, **kw):
    return CameraView(pk=7, name="gate", mode=mode, priority=priority, primary=primary, backup=backup,
                      placement=placement, in_placement_for=since, **kw)  # fmt: skip


STREAMING = {7: "streaming"}


def test_healthy_primary_keeps_its_camera():
    assert decide(camera(server(1, streams=STREAMING), server(2)), W).placement == Placement.ON_PRIMARY


def test_fast_mode_moves_after_the_fast_window():
    cam = camera(server(1, age=1.6), server(2))
    decision = decide(cam, W)
    assert decision.placement == Placement.TO_BACKUP and decision.events == ("failover_started",)
    assert "primary srv-1 is down" in decision.reason


def test_normal_mode_rides_out_a_short_outage():
    assert decide(camera(server(1, age=10), server(2), mode="normal"), W).placement == Placement.ON_PRIMARY
    assert decide(camera(server(1, age=31), server(2), mode="normal"), W).placement == Placement.TO_BACKUP


def test_failover_completes_when_the_backup_reports_frames():
    cam = camera(server(1, age=5), server(2), placement=Placement.TO_BACKUP)
    assert decide(cam, W).placement == Placement.TO_BACKUP
    cam = camera(server(1, age=5), server(2, streams=STREAMING), placement=Placement.TO_BACKUP)
    assert decide(cam, W).events == ("failover_completed",)


def test_planned_shutdown_is_make_before_break():
    leaving = server(1, leaving=True, streams=STREAMING)
    cam = camera(leaving, server(2))
    decision = decide(cam, W)
    assert decision.placement == Placement.TO_BACKUP and "shutting down" in decision.reason
    moving = camera(leaving, server(2), placement=Placement.TO_BACKUP)
    assert ingesting_servers(moving, W) == {1, 2}  # both record until the backup has frames
    done = camera(leaving, server(2), placement=Placement.ON_BACKUP)
    assert ingesting_servers(done, W) == {2}


def test_fast_mode_moves_a_camera_whose_stream_the_primary_lost():
    cam = camera(server(1, streams={7: "lost"}), server(2))
    assert decide(cam, W).placement == Placement.TO_BACKUP
    assert decide(camera(server(1, streams={7: "lost"}), server(2), mode="normal"), W).placement == (
        Placement.ON_PRIMARY
    )


def test_failback_waits_for_the_hold_down_and_the_primary_frames():
    back = server(1, healthy_for=5, hold_down=10, streams=STREAMING)
    assert decide(camera(back, server(2), placement=Placement.ON_BACKUP), W).placement == Placement.ON_BACKUP
    ready_without_frames = server(1, healthy_for=11, hold_down=10)
    decision = decide(camera(ready_without_frames, server(2), placement=Placement.ON_BACKUP), W)
    assert decision.placement == Placement.TO_PRIMARY
    # The primary ingests its camera while it is up, so the backup lets go only after its frames.
    assert ingesting_servers(camera(ready_without_frames, server(2), placement=Placement.TO_PRIMARY), W) == {1, 2}
    ready = server(1, healthy_for=11, hold_down=10, streams=STREAMING)
    decision = decide(camera(ready, server(2), placement=Placement.ON_BACKUP), W)
    assert decision.placement == Placement.ON_PRIMARY
    assert decision.events == ("failback_started", "failback_completed")


def test_fail_back_now_skips_the_hold_down():
    back = server(1, healthy_for=1, hold_down=600, streams=STREAMING)
    cam = camera(back, server(2), placement=Placement.ON_BACKUP, fail_back_now=True)
    assert decide(cam, W).placement == Placement.ON_PRIMARY


def test_backup_also_down_is_reported_not_dropped():
    cam = camera(server(1, age=60), server(2, age=60))
    decision = decide(cam, W)
    assert decision.placement == Placement.NOBODY and decision.events == ("camera_unprotected",)
    assert "both down" in decision.reason
    on_backup = camera(server(1, age=60), server(2, age=60), placement=Placement.ON_BACKUP)
    assert decide(on_backup, W).placement == Placement.NOBODY


def test_losing_the_backup_returns_the_camera_to_a_healthy_primary_at_once():
    cam = camera(server(1, healthy_for=1, hold_down=600, streams=STREAMING), server(2, age=60),
                 placement=Placement.ON_BACKUP)  # fmt: skip
    assert decide(cam, W).placement == Placement.ON_PRIMARY


@pytest.mark.parametrize("priority", ["never"])
def test_never_priority_is_never_moved(priority):
    decision = decide(camera(server(1, age=60), server(2), priority=priority), W)
    assert decision.placement == Placement.NOBODY and "'never'" in decision.reason


def test_full_backup_leaves_the_camera_unprotected():
    decision = decide(camera(server(1, age=60), server(2)), W, backup_has_room=False)
    assert decision.placement == Placement.NOBODY and "full" in decision.reason


def test_constant_mode_switches_the_active_connection_without_moving():
    both = camera(server(1, age=60), server(2, streams=STREAMING), mode="constant")
    assert decide(both, W).events == ("failover_completed",)
    assert ingesting_servers(both, W) == {1, 2}
    back = camera(server(1, streams=STREAMING), server(2, streams=STREAMING), mode="constant",
                  placement=Placement.ON_BACKUP)  # fmt: skip
    assert decide(back, W).events == ("failback_completed",)


def test_camera_without_backup_goes_unrecorded_when_its_server_dies():
    decision = decide(camera(server(1, age=60), None, mode="none"), W)
    assert decision.placement == Placement.NOBODY and "no backup server" in decision.reason
    assert decide(camera(server(1), None, mode="none", placement=Placement.NOBODY), W).events == ("camera_restored",)


def test_flap_damping_doubles_the_hold_down():
    assert [hold_down_for(n, 10, 1800) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert hold_down_for(20, 10, 1800) == 1800


@pytest.mark.parametrize("mode", ["fast", "normal", "constant"])
def test_a_primary_never_heard_from_is_waited_for(mode):
    decision = decide(camera(server(1, age=None), server(2), mode=mode), W)
    assert decision.placement == Placement.ON_PRIMARY and decision.events == ()


@pytest.mark.parametrize("mode", ["none", "constant", "normal"])
def test_only_fast_mode_acts_on_a_short_silence(mode):
    backup = None if mode == "none" else server(2, streams=STREAMING)
    decision = decide(camera(server(1, age=2.0, streams=STREAMING), backup, mode=mode), W)
    assert decision.placement == Placement.ON_PRIMARY and decision.events == ()


def test_no_decision_while_the_servers_it_waits_for_were_never_heard_from():
    # Redis was emptied: the backup that records the camera has not heartbeated yet.
    cam = camera(server(1, age=None), server(2, age=None), placement=Placement.ON_BACKUP)
    assert decide(cam, W).placement == Placement.ON_BACKUP
    assert ingesting_servers(cam, W) == {1, 2}


def test_a_camera_the_primary_only_lost_waits_for_its_stream_to_hold_before_returning():
    # The server has been healthy for hours, but the camera's stream came back 1 s ago (a flaky link).
    flaky = server(1, healthy_for=7200, hold_down=10, streams=STREAMING, streaming_for={7: 1.0})
    assert decide(camera(flaky, server(2), placement=Placement.ON_BACKUP), W).placement == Placement.ON_BACKUP
    steady = server(1, healthy_for=7200, hold_down=10, streams=STREAMING, streaming_for={7: 12.0})
    assert decide(camera(steady, server(2), placement=Placement.ON_BACKUP), W).placement == Placement.ON_PRIMARY
