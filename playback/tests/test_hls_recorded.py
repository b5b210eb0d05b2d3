"""A simulated RTSP H.264 camera recorded by a real agent, played back through the playlist and its fragments:
every frame of the range once, in order, by the identity each frame carries (its SEI message), and each
fragment's timestamps spanning what the playlist says it lasts."""

import io
from datetime import timedelta
from pathlib import Path

import av
import pytest

from playback.tests.test_hls import content, entries, iso, user_client  # noqa: F401 (a fixture)
from recording.models import Segment
from simulation.sei import read_identity
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def packets(data: bytes) -> list[tuple[float, bool, int]]:
    """(seconds, keyframe, counter) of each frame of an MPEG-TS fragment."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return [(float(packet.pts * stream.time_base), bool(packet.is_keyframe), read_identity(bytes(packet))[0])
                for packet in container.demux(stream) if packet.size]  # fmt: skip


def frame_times(path: Path, started_at: float) -> list[tuple[float, int]]:
    """(time, counter) of each frame of a recorded file, its first frame at ``started_at`` (as playback reads it)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        found = [(packet.pts, read_identity(bytes(packet))[0]) for packet in container.demux(stream) if packet.size]
    return [(started_at + float((pts - found[0][0]) * stream.time_base), counter) for pts, counter in found]


def test_a_recorded_camera_plays_every_frame_of_the_range_once(recorded_site, simulator, make_camera, agents,  # noqa: F811
                                                               user_client):  # noqa: F811  # fmt: skip
    sim = simulator(1, codecs=("h264",), gop_seconds=1.0)  # 5 frames per second, a keyframe each second
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="h264", fps=5)
    agents("srv-a")
    wait_for(lambda: Segment.objects.filter(camera=camera).count() >= 4, 40, message="four segments")
    segments = list(Segment.objects.filter(camera=camera).order_by("started_at"))[:4]
    since = segments[0].started_at + timedelta(seconds=0.5)  # between two keyframes
    until = segments[3].ended_at - timedelta(seconds=0.3)
    answer = user_client.get(f"/cameras/{camera.pk}/playback.m3u8", {"since": iso(since.timestamp()),
                                                                      "until": iso(until.timestamp())})  # fmt: skip
    assert answer.status_code == 200
    listed = entries(answer.content.decode())
    assert sum(entry.duration for entry in listed) == pytest.approx((until - since).total_seconds(), abs=1e-3)
    assert [entry.gap for entry in listed] == [True, False, False, False, False], "a lead to the first keyframe"
    assert [entry.discontinuity for entry in listed] == [False, True, False, False, False]

    counters = []
    for entry in listed[1:]:
        frames = packets(content(user_client.get(entry.uri)))
        assert frames[0][1], "each fragment starts on a keyframe"
        spans = frames[-1][0] - frames[0][0] + 1 / 5
        # What the playlist says it lasts, but for the last frame before a cut, shown for its whole interval.
        assert -0.05 <= spans - entry.duration <= 1 / 5 + 0.01, (entry.uri, spans, entry.duration)
        counters += [counter for *_, counter in frames]
    assert counters == list(range(counters[0], counters[-1] + 1)), "every frame once, in order"

    # The first frame is the first keyframe at or after since, the last the last frame before until.
    recorded = [frame for segment in segments for frame in frame_times(Path(segment.path),
                                                                       segment.started_at.timestamp())]  # fmt: skip
    first_keyframe = next(c for t, c in recorded if t >= since.timestamp() - 0.001 and c % 5 == 0)
    assert counters[0] == first_keyframe
    assert counters[-1] == max(c for t, c in recorded if t < until.timestamp())
