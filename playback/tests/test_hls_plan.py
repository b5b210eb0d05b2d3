"""The playlist's plan, pure: fragments end to end in wall time, discontinuities where timestamps do not go on."""

import pytest

from playback.hls import Fragment, plan, render
from playback.timeline import SegmentInfo, build

FI = 0.1  # 10 frames per second


def seg(id, server, start, frames, suffix=".ts", recorded_by=None):  # noqa: A002
    return SegmentInfo(id, server, start, start + (frames - 1) * FI, frames, recorded_by or server, suffix)


def keyframes_every(seconds):
    def keyframes(info):
        count = int((info.ended_at - info.started_at) / seconds + 1e-9) + 1
        return [info.started_at + index * seconds for index in range(count)]

    return keyframes


def fragments(segments, since, until, switches=(), keyframes=None):
    line = build(segments, list(switches), "a", since, until, FI)
    return plan(line, keyframes or keyframes_every(0.5))


def shape(planned: list[Fragment]):
    return [(f.piece.segment.id if f.piece else None, round(f.start, 6), round(f.duration, 6), f.discontinuity,
             f.cut_start, f.cut_end) for f in planned]  # fmt: skip


def test_segments_of_one_connection_play_on_and_a_gap_is_a_fragment_of_its_own():
    planned = fragments([seg(1, "a", 0, 20), seg(2, "a", 2, 20), seg(3, "a", 5, 20)], 0, 7)
    assert shape(planned) == [(1, 0, 2, False, False, False), (2, 2, 2, False, False, False),
                              (None, 4, 1, False, False, False), (3, 5, 2, True, False, False)]  # fmt: skip


@pytest.mark.parametrize("start, new", [(2.0, False), (2.1, False), (2.15, True)])
def test_a_segment_more_than_two_frame_intervals_after_the_last_frame_is_a_new_connection(start, new):
    # The last frame of the first is at 1.9: 2.1 is two intervals on, the most one connection leaves.
    planned = fragments([seg(1, "a", 0, 20), seg(2, "a", start, 10)], 0, start + 1)
    assert [f.discontinuity for f in planned if f.piece] == [False, new]
    assert sum(f.duration for f in planned) == pytest.approx(start + 1)
    assert not [f for f in planned if f.piece is None], "a hole shorter than a gap is in the fragment before"


def test_another_server_another_recorder_or_mjpeg_never_plays_on():
    other_server = fragments([seg(1, "a", 0, 20), seg(2, "b", 2, 20)], 0, 4)
    merged = fragments([seg(1, "a", 0, 20), seg(2, "a", 2, 20, recorded_by="b")], 0, 4)
    mjpeg = fragments([seg(1, "a", 0, 20, ".mjpeg"), seg(2, "a", 2, 20, ".mjpeg")], 0, 4)
    for planned in (other_server, merged, mjpeg):
        assert [f.discontinuity for f in planned] == [False, True]


def test_a_cut_moves_to_the_keyframe_before_it_and_both_sides_are_new_timestamps():
    # Constant mode: both recorded 0-4 s; the camera moved to b at 2.3 s; b's keyframes every 0.5 s.
    segments = [seg(1, "a", 0, 40), seg(2, "b", 0.05, 40), seg(3, "a", 4, 10)]
    planned = fragments(segments, 0, 4, switches=[(2.3, "b")])
    assert shape(planned) == [(1, 0, 2.05, False, False, True), (2, 2.05, 1.95, True, True, False)]


def test_a_range_starting_inside_a_segment_starts_at_its_next_keyframe_after_a_lead_gap():
    planned = fragments([seg(1, "a", 0, 20), seg(2, "a", 2, 20)], 0.7, 3.55)
    assert shape(planned) == [(None, 0.7, 0.3, False, False, False), (1, 1.0, 1.0, True, True, False),
                              (2, 2.0, 1.55, False, False, True)]  # fmt: skip


def test_a_range_starting_after_the_last_keyframe_of_a_segment_leads_to_the_next_one():
    planned = fragments([seg(1, "a", 0, 20), seg(2, "a", 2, 20)], 1.7, 3)
    assert shape(planned) == [(None, 1.7, 0.3, False, False, False), (2, 2.0, 1.0, True, False, True)]


def test_a_range_with_nothing_is_one_gap_and_a_server_that_does_not_answer_leaves_a_lead_gap():
    assert shape(fragments([], 0, 5)) == [(None, 0, 5, False, False, False)]
    unreadable = fragments([seg(1, "a", 0, 20), seg(2, "a", 2, 20)], 0.7, 3, keyframes=lambda info: [])
    assert shape(unreadable) == [(None, 0.7, 1.3, False, False, False), (2, 2.0, 1.0, True, False, True)]


def test_the_playlist_text():
    planned = fragments([seg(1, "a", 0, 20), seg(2, "b", 3, 25)], 0.7, 5.4)
    text = render(planned, lambda f: f"{f.piece.segment.id}.ts" if f.piece else "gap.ts")
    assert text == "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:8", "#EXT-X-TARGETDURATION:3", "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-START:TIME-OFFSET=0.300000,PRECISE=YES",
        "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.700Z", "#EXT-X-GAP", "#EXTINF:0.300000,", "gap.ts",
        "#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:01.000Z", "#EXTINF:1.000000,", "1.ts",
        "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:02.000Z", "#EXT-X-GAP", "#EXTINF:1.000000,", "gap.ts",
        "#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:03.000Z", "#EXTINF:2.400000,", "2.ts",
        "#EXT-X-ENDLIST", "",
    ])  # fmt: skip


def test_a_moment_a_hair_before_a_second_is_written_as_that_second():
    text = render([Fragment(1.9996, 1.0, None)], lambda f: "gap.ts")
    assert "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:02.000Z" in text


def test_without_gaps_the_version_is_6_and_the_target_the_longest_fragment_rounded_up():
    text = render(fragments([seg(1, "a", 0, 26)], 0, 2.6), lambda f: "1.ts")
    assert "#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:3\n" in text and "#EXT-X-START" not in text and "GAP" not in text


def test_an_mjpeg_piece_plays_in_parts_of_two_seconds_at_most_cut_at_its_frames():
    planned = fragments([seg(1, "a", 0, 50, ".mjpeg"), seg(2, "a", 5, 15, ".mjpeg")], 0.3, 6.5,
                        keyframes=keyframes_every(FI))  # fmt: skip
    assert shape(planned) == [(1, 0.3, 2.0, False, True, True), (1, 2.3, 2.0, True, True, True),
                              (1, 4.3, 0.7, True, True, False), (2, 5.0, 1.5, True, False, False)]  # fmt: skip
