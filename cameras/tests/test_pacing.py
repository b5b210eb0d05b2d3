"""A simulated camera's frame pacing: the full rate for one viewer, slower for each extra one, the count unbroken."""

from cameras.pacing import Pace, viewer_rate


def test_each_viewer_beyond_the_first_costs_its_share_of_the_frame_rate():
    assert viewer_rate(10, 0.5, 1) == 10
    assert viewer_rate(10, 0.5, 2) == 5
    assert viewer_rate(10, 0.25, 3) == 5
    assert viewer_rate(10, 0.5, 0) == 10  # nobody watching: the camera streams at its rate anyway
    assert viewer_rate(10, 0.5, 5) == 1  # never below a tenth
    assert viewer_rate(10, 0.0, 8) == 10


def test_at_the_full_rate_frame_n_is_due_at_start_plus_n_over_fps():
    pace = Pace(started=1000.0, fps=5)
    assert [pace.due(n) for n in (0, 1, 10)] == [1000.0, 1000.2, 1002.0]
    assert pace.counter_at(1002.1) == 10


def test_a_lower_rate_sends_the_next_frames_later_without_skipping_one():
    pace = Pace(started=1000.0, fps=10)
    pace.change_rate(5, now=1001.0)  # frame 10 is due now
    assert pace.counter_at(1001.0) == 10
    assert [round(pace.due(n), 6) for n in (10, 11, 12)] == [1001.0, 1001.2, 1001.4]
    pace.change_rate(10, now=1002.0)  # back to the full rate from frame 15
    assert pace.counter_at(1002.0) == 15 and round(pace.due(16), 6) == 1002.1
