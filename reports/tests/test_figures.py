"""The report's arithmetic, pure: moves, enabled history and gaps in, figures out."""

from reports.figures import (
    FAILBACK,
    FAILOVER,
    UNPROTECTED,
    CameraHistory,
    Move,
    camera_figures,
    duration,
    enabled,
    on_backup,
    overlap,
    server_totals,
)

SINCE, UNTIL = 1000.0, 2000.0


def history(moves=(), gaps=(), at_start=True, changes=(), primary_id=1):
    return CameraHistory(7, "cam", "srv-a", "srv-b", primary_id, tuple(moves), at_start, tuple(changes), tuple(gaps))


def test_a_failover_and_its_failback_count_once_and_the_time_between():
    figures = camera_figures(history([Move(1100, FAILOVER, 1, 2), Move(1160, FAILBACK, 2, 1)]), SINCE, UNTIL)
    assert (figures.failovers, figures.on_backup_seconds) == (1, 60)
    assert figures.backup_seconds == {2: 60} and figures.failover_pairs == ((1, 2),)


def test_time_on_backup_is_clipped_to_the_period():
    before = Move(900, FAILOVER, 1, 2)  # the last move before the period: on backup when it starts
    figures = camera_figures(history([before, Move(1030, FAILBACK, 2, 1), Move(1970, FAILOVER, 1, 2)]), SINCE, UNTIL)
    assert figures.on_backup_seconds == 30 + 30
    assert figures.failovers == 1  # the one before the period is not this period's


def test_a_backup_that_loses_the_camera_ends_its_time_on_backup():
    moves = [Move(1100, FAILOVER, 1, 2), Move(1150, UNPROTECTED, 1, None), Move(1400, FAILBACK, 2, 1)]
    assert camera_figures(history(moves), SINCE, UNTIL).on_backup_seconds == 50


def test_stray_moves_change_nothing():
    # A failback with the camera on its primary, a second failover while on the backup.
    moves = [Move(1050, FAILBACK, 2, 1), Move(1100, FAILOVER, 1, 2), Move(1120, FAILOVER, 1, 2),
             Move(1200, FAILBACK, 2, 1)]  # fmt: skip
    assert on_backup(moves, SINCE, UNTIL) == [(1100, 1200, 2)]


def test_video_lost_is_the_gaps_while_enabled_within_the_period():
    gaps = [(990, 1010), (1500, 1540), (1990, 2010)]
    assert camera_figures(history(gaps=gaps), SINCE, UNTIL).lost_seconds == 10 + 40 + 10


def test_a_disabled_cameras_time_is_not_lost():
    gaps = [(1500, 1540)]
    assert camera_figures(history(gaps=gaps, at_start=False), SINCE, UNTIL).lost_seconds == 0
    disabled_for_a_while = history(gaps=gaps, changes=[(1510, False), (1530, True)])
    assert camera_figures(disabled_for_a_while, SINCE, UNTIL).lost_seconds == 20
    created_then = history(gaps=[(SINCE, 1540)], at_start=False, changes=[(1520, True)])
    assert camera_figures(created_then, SINCE, UNTIL).lost_seconds == 20


def test_enabled_stretches():
    assert enabled(True, [], SINCE, UNTIL) == [(SINCE, UNTIL)]
    assert enabled(False, [(1200, True), (1300, False), (1300, False), (1900, True)], SINCE, UNTIL) == [
        (1200, 1300), (1900, UNTIL)]  # fmt: skip
    assert enabled(True, [(900, False)], SINCE, UNTIL) == []


def test_overlap_counts_only_what_both_hold():
    assert overlap([(0, 10), (20, 30)], [(5, 25)]) == 5 + 5
    assert overlap([(0, 10)], [(10, 20)]) == 0


def test_server_totals_count_failovers_away_and_takeovers_and_their_cameras_time():
    one = camera_figures(history([Move(1100, FAILOVER, 1, 2), Move(1160, FAILBACK, 2, 1)], gaps=[(1100, 1105)]),
                         SINCE, UNTIL)  # fmt: skip
    two = camera_figures(history([Move(1200, FAILOVER, 1, 3)], gaps=[(1300, 1302)]), SINCE, UNTIL)
    rows = {row.name: row for row in server_totals([(1, "srv-a", "Site"), (2, "srv-b", "Site"), (3, "srv-c", "Site")],
                                                    [one, two])}  # fmt: skip
    a, b, c = rows["srv-a"], rows["srv-b"], rows["srv-c"]
    assert (a.cameras, a.failovers_away, a.takeovers, a.on_backup_seconds, a.lost_seconds) == (2, 2, 0, 60 + 800, 7)
    assert (b.cameras, b.takeovers, b.carried_seconds) == (0, 1, 60)
    assert (c.takeovers, c.carried_seconds, c.failovers_away) == (1, 800, 0)


def test_servers_the_user_does_not_see_get_no_row():
    figures = camera_figures(history([Move(1100, FAILOVER, 1, 9)]), SINCE, UNTIL)
    assert [row.name for row in server_totals([(1, "srv-a", "Site")], [figures])] == ["srv-a"]


def test_durations_read_as_hours_minutes_seconds():
    assert duration(0) == "0:00:00"
    assert duration(59.6) == "0:01:00"
    assert duration(30 * 86400 + 3661) == "721:01:01"


def test_a_disabled_camera_is_not_on_its_backup():
    """Disabling a camera takes it off every server without a failback: its time on backup (and the backup's
    time carrying it) stops while it is disabled and goes on when it is enabled again on the backup."""
    moves = [Move(1100, FAILOVER, 1, 2)]
    figures = camera_figures(history(moves, changes=[(1200, False), (1900, True)]), SINCE, UNTIL)
    assert figures.on_backup_seconds == 100 + 100 and figures.backup_seconds == {2: 200}
    created_on_backup = camera_figures(history(moves, at_start=False, changes=[(1150, True)]), SINCE, UNTIL)
    assert created_on_backup.on_backup_seconds == 850
