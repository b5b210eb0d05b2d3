"""A camera's timeline across servers: lanes, gaps, and one source per moment."""

from playback.timeline import SegmentInfo, build, cut_at_keyframes

FI = 0.04  # 25 fps


def seg(id, server, start, end, recorded_by=None):
    return SegmentInfo(id, server, start, end, round((end - start) / FI) + 1, recorded_by or server)


def test_a_failover_leaves_two_lanes_one_gap_and_plays_each_moment_once():
    segments = [seg(1, "srv-a", 0, 9.96), seg(2, "srv-a", 10, 19.96), seg(3, "srv-b", 20.8, 30.76),
                seg(4, "srv-b", 30.8, 40)]  # fmt: skip
    timeline = build(segments, [(21.0, "srv-b")], "srv-a", 0, 40.04, FI)
    assert [(s.server, s.started_at, round(s.ended_at, 2), s.segment_ids) for lane in timeline.lanes.values()
            for s in lane] == [("srv-a", 0, 20.0, (1, 2)), ("srv-b", 20.8, 40.04, (3, 4))]  # fmt: skip
    assert [(g.started_at, g.ended_at) for g in timeline.gaps] == [(20.0, 20.8)]
    assert [p.segment.id for p in timeline.pieces] == [1, 2, 3, 4]
    assert not any(p.cut_start for p in timeline.pieces)
    assert [(s.server, s.started_at, round(s.ended_at, 2)) for s in timeline.sources] == [
        ("srv-a", 0, 20.0), ("srv-b", 20.8, 40.04)]  # fmt: skip


def test_where_both_record_the_active_server_plays_and_the_other_fills_its_gap():
    segments = [seg(1, "srv-a", 0, 14.96), seg(2, "srv-a", 16, 30), seg(3, "srv-b", 0.3, 30)]
    timeline = build(segments, [], "srv-a", 0, 30.04, FI)
    assert timeline.gaps == []
    assert [(p.segment.id, p.start, round(p.end, 2)) for p in timeline.pieces] == [
        (1, 0, 15.0), (3, 15.0, 16), (2, 16, 30.04)]  # fmt: skip
    cut = cut_at_keyframes(timeline.pieces, lambda s: [0.3, 5.3, 10.3, 15.3, 20.3] if s.id == 3 else [s.started_at])
    # srv-b's video starts at its keyframe before 15 s: srv-a's piece ends there, so nothing plays twice.
    assert [(p.segment.id, p.start, round(p.end, 2)) for p in cut] == [(1, 0, 10.3), (3, 10.3, 16), (2, 16, 30.04)]


def test_a_failback_switches_at_the_takeover_on_the_returning_server_s_keyframe():
    segments = [seg(1, "srv-b", 20, 59.96), seg(2, "srv-a", 50, 80)]
    timeline = build(segments, [(10, "srv-b"), (55, "srv-a")], "srv-a", 20, 80.04, FI)
    assert [(p.segment.id, p.start, round(p.end, 2)) for p in timeline.pieces] == [(1, 20, 55), (2, 55, 80.04)]
    cut = cut_at_keyframes(timeline.pieces, lambda s: [50, 52, 54, 56] if s.id == 2 else [20])
    assert [(p.segment.id, p.start, round(p.end, 2)) for p in cut] == [(1, 20, 54), (2, 54, 80.04)]


def test_a_range_with_nothing_recorded_is_one_gap():
    timeline = build([], [], "srv-a", 100, 200, FI)
    assert [(g.started_at, g.ended_at) for g in timeline.gaps] == [(100, 200)]
    assert timeline.pieces == [] and timeline.lanes == {}


def test_a_merged_back_copy_is_a_span_of_its_own_and_plays_when_the_original_is_gone():
    segments = [seg(1, "srv-a", 0, 9.96), seg(2, "srv-a", 11, 20, recorded_by="srv-b")]
    timeline = build(segments, [(10.5, "srv-b"), (20.5, "srv-a")], "srv-a", 0, 20.04, FI)
    assert [(s.recorded_by, s.segment_ids) for s in timeline.lanes["srv-a"]] == [("srv-a", (1,)), ("srv-b", (2,))]
    assert [p.segment.id for p in timeline.pieces] == [1, 2]


def test_the_silence_after_the_last_segment_is_the_one_being_written_until_it_is_overdue():
    from playback.timeline import settled_gaps

    line = build([seg(1, "srv-a", 0, 9.96)], [], "srv-a", 0, 18, FI)
    assert [(g.started_at, g.ended_at) for g in line.gaps] == [(10.0, 18)]
    assert settled_gaps(line, now=18, open_for=15) == []  # srv-a's next segment is still open
    assert [(g.started_at, g.ended_at) for g in settled_gaps(line, now=26, open_for=15)] == [(10.0, 18)]
    nothing = build([], [], "srv-a", 0, 18, FI)
    assert settled_gaps(nothing, now=18, open_for=15) == nothing.gaps  # nobody records: all of it is a gap


def test_a_segment_runs_to_the_keyframe_after_its_length_so_its_silence_waits_as_long(settings):
    """A segment is cut at the first keyframe after the agent's length: with 10 s segments and a keyframe every
    2 s, bench/playback.py's segments ran 12 s, and 15.3 s after the last indexed one the next (still open, then
    in the index spool until the sweep) was no gap yet."""
    from playback.timeline import open_segment_seconds, settled_gaps

    settings.AGENT_SEGMENT_SECONDS, settings.AGENT_SWEEP_SECONDS = 10, 5
    line = build([seg(1, "srv-a", 0, 11.96), seg(2, "srv-a", 12, 23.96)], [], "srv-a", 0, 39.3, FI)
    assert [(g.started_at, g.ended_at) for g in line.gaps] == [(24.0, 39.3)]
    assert open_segment_seconds() == 15  # without a range: the agent's length and a sweep
    assert settled_gaps(line, now=39.3, open_for=open_segment_seconds(line)) == []
    late = build([seg(1, "srv-a", 0, 11.96), seg(2, "srv-a", 12, 23.96)], [], "srv-a", 0, 41.5, FI)
    overdue = settled_gaps(late, now=41.5, open_for=open_segment_seconds(late))
    assert [(g.started_at, g.ended_at) for g in overdue] == [(24.0, 41.5)]  # past the longest segment and a sweep


def test_a_takeover_less_than_a_frame_late_is_no_gap_and_one_frame_missing_is():
    # srv-a's last frame at 9.96 (its span ends a frame later, at 10.0); srv-b's first 15 ms after that: no frame is
    # missing, as two frames of one server 1.4 intervals apart are none. A frame missing (srv-b at 10.04) is a gap.
    on_time = build([seg(1, "srv-a", 0, 9.96), seg(2, "srv-b", 10.015, 20)], [(10.0, "srv-b")], "srv-a", 0, 20.04, FI)
    assert on_time.gaps == []
    late = build([seg(1, "srv-a", 0, 9.96), seg(2, "srv-b", 10.04, 20)], [(10.0, "srv-b")], "srv-a", 0, 20.04, FI)
    assert [(g.started_at, round(g.ended_at, 2)) for g in late.gaps] == [(10.0, 10.04)]
