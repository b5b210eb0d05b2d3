"""What the engine decides of a server: its status, its window, its hold-down, and which cameras go first."""

import time

import pytest
from django.utils import timezone

from redundancy.decisions import PRIORITY_ORDER, Damping, Windows, hold_down_for, server_status
from redundancy.models import ServerState, ServerStatus

W = Windows(normal=30, fast=1.5)


def status(age, leaving=False, draining=False, down_window=30.0):
    return server_status(age, leaving, draining, down_window, W)


def test_the_default_windows_are_the_documented_ones():
    # Tens of seconds in normal mode, seconds in fast mode (rule 5 of docs/architecture.md), as the settings' defaults.
    assert Windows() == Windows(normal=30.0, fast=1.5)


def test_only_fast_mode_has_the_fast_window():
    assert [W.for_mode(mode) for mode in ("fast", "normal", "constant", "none")] == [1.5, 30, 30, 30]


def test_a_server_is_judged_by_the_shortest_window_of_its_cameras():
    assert W.for_server(["normal", "fast", "constant"]) == 1.5
    assert W.for_server(["normal", "constant", "none"]) == 30
    assert W.for_server([]) == 30  # it records nothing: the conservative window


def test_a_server_never_heard_from_is_unknown_not_down():
    assert status(None) == ServerStatus.UNKNOWN
    assert status(None, leaving=True, draining=True) == ServerStatus.UNKNOWN


def test_a_server_is_down_once_its_silence_is_longer_than_its_down_window():
    assert status(30.0) == ServerStatus.SUSPECT
    assert status(30.01) == ServerStatus.DOWN
    assert status(1.6, down_window=1.5) == ServerStatus.DOWN


def test_a_server_silent_past_the_fast_window_is_suspect_until_its_down_window():
    assert status(0.2) == ServerStatus.UP
    assert status(1.5) == ServerStatus.UP
    assert status(1.51) == ServerStatus.SUSPECT


def test_a_server_taken_out_of_service_says_so_until_it_is_down():
    assert status(0.2, leaving=True) == ServerStatus.LEAVING
    assert status(10, draining=True) == ServerStatus.DRAINING
    assert status(0.2, leaving=True, draining=True) == ServerStatus.LEAVING  # the shutdown is what happens next
    assert status(31, leaving=True) == ServerStatus.DOWN
    assert status(31, draining=True) == ServerStatus.DOWN


def test_flap_damping_leaves_a_server_that_has_not_failed_the_base_hold_down():
    assert hold_down_for(0, 10, 1800) == 10


def test_high_priority_cameras_claim_a_full_backup_first():
    ranks = [PRIORITY_ORDER[priority] for priority in ("high", "normal", "low", "never")]
    assert ranks == sorted(set(ranks))  # strictly in that order, no two alike


def test_more_failures_never_shorten_the_hold_down():
    holds = [hold_down_for(n, 3600, 1800) for n in range(5)]
    assert holds == sorted(holds) and max(holds) <= 1800


DAMPING = Damping(base=10, longest=1800)


def judged(record, age=0.2, now=1000.0):
    from redundancy.decisions import ServerView, judge_server

    view = ServerView(pk=1, name="srv-a", heartbeat_age=age)
    return judge_server(record, view, 30.0, W, DAMPING, now)


def test_a_server_that_never_failed_holds_its_cameras_return_for_the_base_hold_down():
    # A camera that left its primary for a lost stream (the server itself never failed) comes back only after
    # the stream has held that long: a path to one camera that flaps must not move it back and forth.
    from redundancy.decisions import ServerRecord

    fresh = judged(ServerRecord(ServerStatus.UNKNOWN, 0.0)).record
    assert fresh.status == ServerStatus.UP and DAMPING.hold_down_after(fresh.failures, 1000.0) == 10
    assert DAMPING.hold_down_after(judged(fresh, now=1001.0).record.failures, 1001.0) == 10


def test_each_failure_within_the_hour_doubles_the_hold_down_and_says_so():
    from redundancy.decisions import ServerRecord

    record, kinds = ServerRecord(ServerStatus.UP, 0.0, 0.0), []
    for n, now in enumerate((1000.0, 1100.0, 1200.0)):
        down = judged(record, age=31.0, now=now)
        kinds.append(down.events)
        record = judged(down.record, now=now + 50).record
        assert DAMPING.hold_down_after(record.failures, now + 50) == 10 * 2**n
    assert kinds == [("server_down",), ("server_down", "flap_damped"), ("server_down", "flap_damped")]
    later = 1200.0 + 3600
    forgotten = judged(record, now=later).record.failures
    assert DAMPING.hold_down_after(forgotten, later) == 10, "failures older than the hour are forgotten"


def test_the_hold_down_is_derived_from_the_failures_within_the_hour():
    damping = Damping(base=10, longest=1800)
    now = 10_000.0
    assert damping.hold_down_after([], now) == 10  # never below the base
    assert damping.hold_down_after([now - 30, now - 20, now - 10], now) == 40
    assert damping.hold_down_after([now - 3700, now - 20, now - 10], now) == 20  # an hour ago no longer counts


@pytest.mark.django_db
def test_a_servers_hold_down_follows_a_change_of_the_settings(site, settings):
    """Nothing stored goes stale: the hold-down is reckoned from the recent failures and today's settings."""
    now = time.time()
    state = ServerState.objects.create(server=site["a"], status_since=timezone.now(), failures=[now - 60, now - 30])
    settings.ENGINE_HOLD_DOWN_SECONDS = 10
    assert state.hold_down_seconds == 20
    settings.ENGINE_HOLD_DOWN_SECONDS = 7
    assert ServerState.objects.get(pk=state.pk).hold_down_seconds == 14
