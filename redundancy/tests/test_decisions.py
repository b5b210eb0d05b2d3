"""The engine's placement decisions, as pure functions of what it sees."""

from dataclasses import FrozenInstanceError, replace

import pytest

from redundancy.decisions import (
    CameraView,
    Decision,
    ServerView,
    Windows,
    active_server,
    decide,
    hold_down_for,
    ingesting_servers,
)
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
    assert decide(cam, W).reason == "backup srv-2 records it: primary srv-1 is down", "it says why, as it stays"
    lost = camera(server(1, streams={7: "lost"}), server(2, streams=STREAMING), placement=Placement.TO_BACKUP)
    assert decide(lost, W).reason == "backup srv-2 records it: primary srv-1 lost the camera's stream"


def test_planned_shutdown_is_make_before_break():
    leaving = server(1, leaving=True, streams=STREAMING)
    cam = camera(leaving, server(2))
    decision = decide(cam, W)
    assert decision.placement == Placement.TO_BACKUP and "shutting down" in decision.reason
    moving = camera(leaving, server(2), placement=Placement.TO_BACKUP)
    assert ingesting_servers(moving) == {1, 2}  # both record until the backup has frames
    done = camera(leaving, server(2), placement=Placement.ON_BACKUP)
    assert ingesting_servers(done) == {2}


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
    assert ingesting_servers(camera(ready_without_frames, server(2), placement=Placement.TO_PRIMARY)) == {1, 2}
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
    decision = decide(on_backup, W)
    assert decision.placement == Placement.NOBODY and "both down" in decision.reason


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
    assert ingesting_servers(both) == {1, 2}
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
    assert ingesting_servers(cam) == {1, 2}


def test_a_camera_the_primary_only_lost_waits_for_its_stream_to_hold_before_returning():
    # The server has been healthy for hours, but the camera's stream came back 1 s ago (a flaky link).
    flaky = server(1, healthy_for=7200, hold_down=10, streams=STREAMING, streaming_for={7: 1.0})
    assert decide(camera(flaky, server(2), placement=Placement.ON_BACKUP), W).placement == Placement.ON_BACKUP
    steady = server(1, healthy_for=7200, hold_down=10, streams=STREAMING, streaming_for={7: 12.0})
    assert decide(camera(steady, server(2), placement=Placement.ON_BACKUP), W).placement == Placement.ON_PRIMARY


# -- failover: leaving the primary -------------------------------------------------------------


def test_a_server_is_down_only_once_its_silence_is_longer_than_the_window():
    assert decide(camera(server(1, age=1.5), server(2)), W).placement == Placement.ON_PRIMARY
    assert decide(camera(server(1, age=1.51), server(2)), W).placement == Placement.TO_BACKUP


def test_a_drained_primary_hands_its_camera_to_the_backup():
    decision = decide(camera(server(1, draining=True, streams=STREAMING), server(2)), W)
    assert decision.placement == Placement.TO_BACKUP and "being drained" in decision.reason


def test_a_primary_shutting_down_keeps_its_camera_when_no_backup_can_take_it():
    leaving = server(1, leaving=True, streams=STREAMING)
    for decision in (decide(camera(leaving, server(2)), W, backup_has_room=False),
                     decide(camera(leaving, None, mode="none"), W)):  # fmt: skip
        assert decision.placement == Placement.ON_PRIMARY and decision.events == ()


def test_a_backup_out_of_service_takes_no_camera():
    decision = decide(camera(server(1, age=60), server(2, draining=True)), W)
    assert decision.placement == Placement.NOBODY and "backup srv-2 is unavailable" in decision.reason


def test_a_camera_without_redundancy_is_never_moved_to_a_named_backup():
    decision = decide(camera(server(1, age=60), server(2), mode="none"), W)
    assert decision.placement == Placement.NOBODY and "no backup server" in decision.reason


# -- failover: the handover ---------------------------------------------------------------------


def test_failover_completes_only_when_a_live_backup_records_the_camera():
    # The backup's last report said "streaming", but the backup itself has gone silent.
    silent = server(2, age=60, streams=STREAMING)
    decision = decide(camera(server(1, streams=STREAMING), silent, placement=Placement.TO_BACKUP), W)
    assert decision.placement == Placement.ON_PRIMARY and decision.events == ()
    decision = decide(camera(server(1, age=60), silent, placement=Placement.TO_BACKUP), W)
    assert decision.placement == Placement.NOBODY and decision.events == ("camera_unprotected",)


@pytest.mark.parametrize("backup", [None, server(2, age=60), server(2, draining=True), server(2, leaving=True)])
def test_a_backup_gone_during_the_handover_leaves_the_camera_with_a_healthy_primary(backup):
    decision = decide(camera(server(1), backup, placement=Placement.TO_BACKUP), W)
    assert decision.placement == Placement.ON_PRIMARY and decision.events == ()
    assert "the backup is gone" in decision.reason


# Why nobody records the camera, as the event says it.
GONE_BACKUPS = [(None, "the camera has no backup server"), (server(2, age=60), "both down"),
                (server(2, draining=True), "backup srv-2 is unavailable")]  # fmt: skip


@pytest.mark.parametrize(("backup", "reason"), GONE_BACKUPS)
def test_a_backup_gone_during_the_handover_of_a_dead_primary_leaves_the_camera_unprotected(backup, reason):
    decision = decide(camera(server(1, age=60), backup, placement=Placement.TO_BACKUP), W)
    assert decision.placement == Placement.NOBODY and decision.events == ("camera_unprotected",)
    assert reason in decision.reason


def test_the_primary_takes_back_a_camera_its_backup_cannot_read_only_after_the_give_up_time():
    def after(seconds, primary):
        return decide(camera(primary, server(2), placement=Placement.TO_BACKUP, since=seconds), W)

    streaming = server(1, streams=STREAMING)
    assert after(14.9, streaming).placement == Placement.TO_BACKUP
    decision = after(15.0, streaming)
    assert decision.placement == Placement.ON_PRIMARY and "cannot read the camera" in decision.reason
    assert after(600, streaming).placement == Placement.ON_PRIMARY
    assert after(600, server(1)).placement == Placement.TO_BACKUP  # the primary has no picture either
    # A primary shutting down keeps recording until the backup has frames, but takes nothing back.
    assert after(600, server(1, leaving=True, streams=STREAMING)).placement == Placement.TO_BACKUP


def test_no_decision_while_the_backup_taking_the_camera_was_never_heard_from():
    cam = camera(server(1, streams=STREAMING), server(2, age=None), placement=Placement.TO_BACKUP)
    assert decide(cam, W) == Decision(Placement.TO_BACKUP)


# -- on the backup, and failback ----------------------------------------------------------------


def test_a_camera_stays_on_its_backup_while_the_primary_is_down():
    # Nothing to wait for (no hold-down), but the primary is not there.
    cam = camera(server(1, age=60), server(2, streams=STREAMING), placement=Placement.ON_BACKUP)
    assert decide(cam, W) == Decision(Placement.ON_BACKUP)


@pytest.mark.parametrize("out_of_service", ["draining", "leaving"])
def test_a_primary_out_of_service_gets_no_camera_back(out_of_service):
    primary = server(1, healthy_for=600, hold_down=10, streams=STREAMING, **{out_of_service: True})
    assert decide(camera(primary, server(2), placement=Placement.ON_BACKUP), W) == Decision(Placement.ON_BACKUP)


def test_failback_starts_when_the_hold_down_has_passed_to_the_second():
    def on_backup(**primary):
        return decide(camera(server(1, hold_down=10, streams=STREAMING, **primary), server(2),
                             placement=Placement.ON_BACKUP), W).placement  # fmt: skip

    assert on_backup(healthy_for=9.9) == Placement.ON_BACKUP
    assert on_backup(healthy_for=10) == Placement.ON_PRIMARY
    assert on_backup(healthy_for=600, streaming_for={7: 9.9}) == Placement.ON_BACKUP
    assert on_backup(healthy_for=600, streaming_for={7: 10}) == Placement.ON_PRIMARY


def test_failback_completes_only_when_the_primary_records_the_camera():
    no_frames_yet = camera(server(1), server(2, streams=STREAMING), placement=Placement.TO_PRIMARY)
    assert decide(no_frames_yet, W) == Decision(Placement.TO_PRIMARY)
    assert ingesting_servers(no_frames_yet) == {1, 2}  # the backup records until the primary has frames
    frames = camera(server(1, streams=STREAMING), server(2, streams=STREAMING), placement=Placement.TO_PRIMARY)
    decision = decide(frames, W)
    assert decision.placement == Placement.ON_PRIMARY and decision.events == ("failback_completed",)
    # Frames from a primary that is being drained again complete nothing: the camera stays on the backup.
    drained = camera(server(1, draining=True, streams=STREAMING), server(2), placement=Placement.TO_PRIMARY)
    assert decide(drained, W).placement == Placement.ON_BACKUP


def test_a_healthy_primary_not_yet_streaming_keeps_the_failback_going():
    for backup in (server(2, streams=STREAMING), server(2, age=60), None):
        cam = camera(server(1, healthy_for=600), backup, placement=Placement.TO_PRIMARY)
        assert decide(cam, W) == Decision(Placement.TO_PRIMARY)


def test_a_primary_lost_again_during_failback_returns_the_camera_to_the_backup():
    decision = decide(camera(server(1, age=60), server(2, streams=STREAMING), placement=Placement.TO_PRIMARY), W)
    assert decision.placement == Placement.ON_BACKUP and "unavailable again" in decision.reason
    assert decision.events == ()


@pytest.mark.parametrize(("backup", "reason"), GONE_BACKUPS)
def test_a_primary_lost_again_during_failback_without_a_backup_leaves_the_camera_unprotected(backup, reason):
    decision = decide(camera(server(1, age=60), backup, placement=Placement.TO_PRIMARY), W)
    assert decision.placement == Placement.NOBODY and decision.events == ("camera_unprotected",)
    assert reason in decision.reason


def test_no_decision_during_failback_while_the_primary_was_never_heard_from():
    cam = camera(server(1, age=None), server(2, streams=STREAMING), placement=Placement.TO_PRIMARY)
    assert decide(cam, W) == Decision(Placement.TO_PRIMARY)


# -- recorded by nobody -------------------------------------------------------------------------


def test_an_unrecorded_camera_goes_to_its_backup_once_the_backup_can_take_it():
    cam = camera(server(1, age=60), server(2), placement=Placement.NOBODY)
    decision = decide(cam, W)
    assert decision.placement == Placement.TO_BACKUP and decision.events == ("failover_started",)
    assert "primary srv-1 is down" in decision.reason
    assert decide(cam, W, backup_has_room=False) == Decision(Placement.NOBODY)
    for still_nobody in (camera(server(1, age=60), None, mode="none", placement=Placement.NOBODY),
                         camera(server(1, age=60), server(2), priority="never", placement=Placement.NOBODY),
                         camera(server(1, age=60), server(2, age=60), placement=Placement.NOBODY)):  # fmt: skip
        assert decide(still_nobody, W) == Decision(Placement.NOBODY)


# -- constant mode ------------------------------------------------------------------------------


def constant(primary, backup, placement=Placement.ON_PRIMARY):
    return camera(primary, backup, mode="constant", placement=placement)


def test_constant_mode_makes_the_connection_that_has_a_picture_the_active_one():
    no_picture = server(1)
    decision = decide(constant(no_picture, server(2, streams=STREAMING)), W)
    assert decision.placement == Placement.ON_BACKUP and decision.events == ("failover_completed",)
    assert decision.reason == "the primary has no picture"
    decision = decide(constant(server(1, age=60), server(2, streams=STREAMING)), W)
    assert decision.placement == Placement.ON_BACKUP and decision.reason == "primary srv-1 is down"
    # Neither has a picture: the primary's connection stays the active one.
    assert decide(constant(no_picture, server(2)), W) == Decision(Placement.ON_PRIMARY)


def test_constant_mode_prefers_the_primary_only_while_it_is_in_service():
    leaving = server(1, leaving=True, streams=STREAMING)
    decision = decide(constant(leaving, server(2, streams=STREAMING)), W)
    assert decision.placement == Placement.ON_BACKUP and "shutting down" in decision.reason


def test_constant_mode_trusts_no_picture_from_a_silent_backup():
    silent = server(2, age=60, streams=STREAMING)
    decision = decide(constant(server(1, age=60), silent), W)
    assert decision.placement == Placement.NOBODY and decision.events == ("camera_unprotected",)
    assert "both down" in decision.reason
    assert decide(constant(server(1), silent, placement=Placement.ON_BACKUP), W).placement == Placement.ON_PRIMARY


@pytest.mark.parametrize(("placement", "kind"), [(Placement.ON_BACKUP, "failback_completed"),
                                                 (Placement.TO_BACKUP, "failback_completed"),
                                                 (Placement.NOBODY, "camera_restored")])  # fmt: skip
def test_constant_mode_names_the_return_to_the_primary(placement, kind):
    decision = decide(constant(server(1, streams=STREAMING), server(2, streams=STREAMING), placement), W)
    assert decision.placement == Placement.ON_PRIMARY and decision.events == (kind,)


# -- who records -------------------------------------------------------------------------------


@pytest.mark.parametrize(("placement", "active"), [(Placement.ON_PRIMARY, 1), (Placement.TO_BACKUP, 1),
                                                   (Placement.ON_BACKUP, 2), (Placement.TO_PRIMARY, 2),
                                                   (Placement.NOBODY, None)])  # fmt: skip
def test_the_recording_that_counts_is_that_of_the_server_the_camera_is_placed_on(placement, active):
    # While a camera moves, the server it leaves still counts: the other has no frames yet.
    view = active_server(camera(server(1), server(2), placement=placement))
    assert (view.pk if view else None) == active


@pytest.mark.parametrize("mode", ["fast", "normal"])
def test_a_camera_on_its_primary_is_ingested_by_the_primary_alone(mode):
    assert ingesting_servers(camera(server(1, streams=STREAMING), server(2), mode=mode)) == {1}


def test_a_primary_keeps_trying_a_camera_nobody_records():
    assert ingesting_servers(camera(server(1), None, mode="none", placement=Placement.NOBODY)) == {1}


@pytest.mark.parametrize(("placement", "servers"), [(Placement.TO_BACKUP, {1, 2}), (Placement.ON_BACKUP, {2}),
                                                    (Placement.NOBODY, {1})])  # fmt: skip
def test_a_drained_primary_lets_go_of_its_camera_only_once_the_backup_has_it(placement, servers):
    assert ingesting_servers(camera(server(1, draining=True), server(2), placement=placement)) == servers


# -- the views and decisions themselves ---------------------------------------------------------


def test_a_server_view_without_history_has_earned_no_health_and_owes_no_hold_down():
    view = ServerView(pk=1, name="srv-1", heartbeat_age=0.2)
    assert (view.healthy_for, view.hold_down, view.leaving, view.draining) == (0.0, 0.0, False, False)


def test_what_a_decision_was_made_of_cannot_change_under_it():
    # The engine derives new views with dataclasses.replace; nobody edits one in place.
    for value, name in ((W, "fast"), (camera(server(1)), "placement"), (Decision(Placement.NOBODY), "placement")):
        with pytest.raises(FrozenInstanceError):
            setattr(value, name, 0)


def test_a_primary_that_reports_the_camera_lost_starts_no_failback_for_it():
    """Its link to the camera is what failed: the server's own health is no reason to return it."""
    lost = ServerView(pk=1, name="srv-1", heartbeat_age=0.2, healthy_for=7200, hold_down=10, streams={7: "lost"})
    backup = ServerView(pk=2, name="srv-2", heartbeat_age=0.2, streams={7: "streaming"})
    cam = CameraView(pk=7, name="gate", mode="fast", priority="normal", primary=lost, backup=backup,
                     placement=Placement.ON_BACKUP, in_placement_for=5.0)  # fmt: skip
    assert decide(cam, Windows(normal=30, fast=1.5)).placement == Placement.ON_BACKUP
    unreported = replace(lost, streams={})  # a restarted primary not yet reporting: its health counts
    assert decide(replace(cam, primary=unreported), Windows(normal=30, fast=1.5)).placement == Placement.TO_PRIMARY


def test_a_settled_camera_is_one_decide_would_leave_where_it_is_in_every_case():
    """The engine decides only the cameras that are not settled: for every camera ``settled`` says is, ``decide``
    must keep its placement and emit nothing, whatever the backup, the priority or the time in place."""
    import itertools

    from redundancy.decisions import settled, steady

    primaries = [server(1, age=age, leaving=leaving, draining=draining, gone_under=gone, streams=streams)
                 for age, leaving, draining, gone, streams in itertools.product(
                     (None, 0.1, 1.49, 1.6, 31.0), (False, True), (False, True), (0.0, 1.5),
                     ({}, {7: "streaming"}, {7: "lost"}, {7: "connecting"}))]  # fmt: skip
    backups = [None, server(2), server(2, age=40.0), server(2, streams={7: "streaming"}), server(2, draining=True)]
    settled_seen = 0
    for primary, backup, mode, placement, priority, since in itertools.product(
        primaries, backups, ("fast", "normal", "constant", "none"), [p.value for p in Placement],
        ("high", "normal", "never"), (0.0, 100.0),
    ):  # fmt: skip
        if settled(placement, mode, steady(primary, W), primary.streams.get(7)):
            settled_seen += 1
            view = camera(primary, backup, mode=mode, placement=placement, priority=priority, since=since)
            assert decide(view, W, backup_has_room=True) == Decision(placement), view
            assert decide(view, W, backup_has_room=False) == Decision(placement), view
    assert settled_seen > 100  # the cases above do reach it
