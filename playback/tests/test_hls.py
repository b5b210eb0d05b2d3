"""A camera's recordings as an HLS playlist for the browser, its fragments proxied from the agents that hold them.

The segments are real files (H.264 in MPEG-TS written by PyAV, MJPEG as JPEGs back to back) in each server's
storage, served by that server's own recordings server on loopback. Every frame carries its identity in its
pixels (``simulation.stamp``): frame n was taken at T0 + n / FPS, so what a fragment holds is read back by
decoding it, frame by frame.
"""

import io
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import av
import cv2
import numpy as np
import pytest

from accounts.models import SystemAccess
from recording import remote
from recording.models import Segment
from recording.segments import segment_path
from recording.serving import RecordingServer
from recording.streamcopy import TS_OPTIONS
from redundancy.models import Event, EventKind
from simulation.stamp import draw_stamp, read_stamp

# The recordings servers read the index on threads of their own: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

FPS = 10
GOP = 5  # a keyframe every half second
T0 = float(int(time.time()) - 600)  # frame n of the camera was taken at T0 + n / FPS


def at(counter: float) -> float:
    return T0 + counter / FPS


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def picture(counter: int, grain: bool = False) -> np.ndarray:
    image = np.full((180, 320, 3), 60 + counter % 100, np.uint8)
    if grain:  # noise that costs its bytes: megabytes a segment
        image = np.random.default_rng(counter).integers(0, 255, image.shape, dtype=np.uint8)
    draw_stamp(image, counter, int(at(counter) * 1000))
    return image


def write_ts(path, counters: range, pts_offset: int, grain: bool = False, codec: str = "h264") -> None:
    """H.264 (or H.265) in MPEG-TS as a camera's connection gives it: timestamps go on from the segment before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mpegts", options=TS_OPTIONS) as output:
        stream = output.add_stream("libx265" if codec == "h265" else "libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(GOP),
                                        "keyint_min": str(GOP), "sc_threshold": "0"}  # fmt: skip
        if codec == "h265":
            stream.codec_context.options = {"preset": "ultrafast", "x265-params": f"keyint={GOP}:min-keyint={GOP}:"
                                            "scenecut=0:bframes=0:log-level=error"}  # fmt: skip
        if grain:
            stream.codec_context.options = {**stream.codec_context.options, "qp": "0"}
        for counter in counters:
            frame = av.VideoFrame.from_ndarray(picture(counter, grain), format="bgr24").reformat(format="yuv420p")
            frame.pts = counter + pts_offset
            output.mux(stream.encode(frame))
        output.mux(stream.encode())


def write_mjpeg(path, counters: range) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(cv2.imencode(".jpg", picture(counter))[1].tobytes() for counter in counters))


def record(camera, server, counters: range, pts_offset: int = 0, grain: bool = False) -> Segment:
    """A segment of ``server`` holding the camera's frames ``counters``, on its disk and in its index."""
    suffix = ".mjpeg" if camera.codec == "mjpeg" else ".ts"
    path = segment_path(server.storage_dir, camera.pk, at(counters[0]), suffix)
    (write_mjpeg(path, counters) if suffix == ".mjpeg" else write_ts(path, counters, pts_offset, grain, camera.codec))
    return Segment.objects.create(
        camera=camera, server=server, started_at=datetime.fromtimestamp(at(counters[0]), UTC),
        ended_at=datetime.fromtimestamp(at(counters[-1]), UTC), frame_count=len(counters),
        size_bytes=path.stat().st_size, path=str(path),
    )  # fmt: skip


@pytest.fixture
def serve():
    """Start the recordings server of each server given; all are stopped after the test."""
    started = []

    def start(*servers):
        for server in servers:
            recordings = RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
            recordings.start()
            started.append(recordings)

    yield start
    for recordings in started:
        recordings.stop()


@pytest.fixture
def user_client(client, viewer, site):
    """A viewer of the system 'Site' only."""
    SystemAccess.objects.create(user=viewer, system=site["system"])
    client.force_login(viewer)
    return client


@pytest.fixture
def failed_over(recorded_site, make_camera, serve):
    """srv-a recorded frames 0-39 (two segments of one connection), then died; srv-b took over and recorded
    frames 50-89 (the camera's frames 40-49 are lost: a gap of one second)."""
    a, b = recorded_site["a"], recorded_site["b"]
    camera = make_camera(a, b, fps=FPS, codec="h264")
    segments = [record(camera, a, range(0, 20)), record(camera, a, range(20, 40)),
                record(camera, b, range(50, 70), 7000), record(camera, b, range(70, 90), 7000)]  # fmt: skip
    Event.objects.create(at=datetime.fromtimestamp(at(50), UTC), kind=EventKind.FAILOVER_COMPLETED, camera=camera,
                         server=a, to_server=b, message="records on srv-b")  # fmt: skip
    serve(a, b)
    return {"camera": camera, "segments": segments, **recorded_site}


@dataclass
class Entry:
    uri: str
    duration: float
    program_date_time: float
    gap: bool
    discontinuity: bool


def entries(text: str) -> list[Entry]:
    found, tags = [], []
    for line in text.splitlines():
        if line.startswith(("#EXT-X-DISCONTINUITY", "#EXT-X-GAP", "#EXTINF", "#EXT-X-PROGRAM-DATE-TIME")):
            tags.append(line)
        elif line and not line.startswith("#"):
            duration = float(next(t for t in tags if t.startswith("#EXTINF:"))[8:].rstrip(","))
            pdt = next(t for t in tags if t.startswith("#EXT-X-PROGRAM-DATE-TIME:"))[25:]
            when = datetime.fromisoformat(pdt.replace("Z", "+00:00")).timestamp()
            found.append(Entry(line, duration, when, "#EXT-X-GAP" in tags, "#EXT-X-DISCONTINUITY" in tags))
            tags = []
    return found


def playlist(client, camera, since: float, until: float):
    return client.get(f"/cameras/{camera.pk}/playback.m3u8", {"since": iso(since), "until": iso(until)})


def decoded(data: bytes) -> tuple[str, bool, list[int]]:
    """(codec, whether it starts on a keyframe, the frame counters shown) of an MPEG-TS fragment."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        packets = [packet for packet in container.demux(stream) if packet.size]
        codec = stream.codec_context.name
        decoder = av.CodecContext.create(codec, "r")
        decoder.extradata = stream.codec_context.extradata
        frames = [frame for packet in packets for frame in decoder.decode(packet)] + list(decoder.decode(None))
    stamps = [read_stamp(frame.to_ndarray(format="bgr24")) for frame in frames]
    assert None not in stamps, "every frame shown carries its identity"
    return codec, bool(packets[0].is_keyframe), [stamp.counter for stamp in stamps]


def content(response) -> bytes:
    assert response.status_code == 200, (response.status_code, getattr(response, "content", b"")[:300])
    assert response["Content-Type"] == "video/mp2t"
    return b"".join(response.streaming_content)


def test_the_playlist_lays_both_servers_and_the_gap_end_to_end_in_wall_time(failed_over, user_client):
    camera, segments = failed_over["camera"], failed_over["segments"]
    since, until = at(0), at(90)
    answer = playlist(user_client, camera, since, until)
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"] == "application/vnd.apple.mpegurl"
    text = answer.content.decode()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-TARGETDURATION:2\n" in text and "#EXT-X-VERSION:8\n" in text
    listed = entries(text)
    paths = [f"/cameras/{camera.pk}/recordings/{segment.pk}.ts" for segment in segments]
    assert [entry.uri for entry in listed] == [paths[0], paths[1], "gap.ts", paths[2], paths[3]]
    assert [entry.gap for entry in listed] == [False, False, True, False, False]
    # One connection of srv-a plays on; after the gap, srv-b's timestamps are its own.
    assert [entry.discontinuity for entry in listed] == [False, False, False, True, False]
    assert [entry.duration for entry in listed] == pytest.approx([2.0, 2.0, 1.0, 2.0, 2.0], abs=1e-6)
    assert [entry.program_date_time for entry in listed] == pytest.approx([at(0), at(20), at(40), at(50), at(70)],
                                                                          abs=0.001)  # fmt: skip
    assert sum(entry.duration for entry in listed) == pytest.approx(until - since, abs=1e-6)


def test_a_range_inside_segments_starts_at_a_keyframe_after_a_gap_of_its_own_and_ends_where_asked(
    failed_over, user_client
):
    camera = failed_over["camera"]
    since, until = at(13), at(84.5)  # frame 13 is between the keyframes of frames 10 and 15
    text = playlist(user_client, camera, since, until).content.decode()
    listed = entries(text)
    assert sum(entry.duration for entry in listed) == pytest.approx(until - since, abs=1e-6)
    assert "#EXT-X-START:TIME-OFFSET=0.200000,PRECISE=YES" in text, "a player told nothing else starts at the video"
    lead, first, last = listed[0], listed[1], listed[-1]
    assert (lead.gap, lead.duration) == (True, pytest.approx(0.2, abs=1e-6)), "the player's clock stays the wall's"
    assert first.program_date_time == pytest.approx(at(15), abs=0.001)
    assert [entry.program_date_time for entry in listed[2:]] == pytest.approx([at(20), at(40), at(50), at(70)],
                                                                              abs=0.001)  # fmt: skip
    shown = [decoded(content(user_client.get(entry.uri))) for entry in listed if not entry.gap]
    assert all(codec == "h264" and keyframe for codec, keyframe, _ in shown), "every fragment starts on a keyframe"
    counters = [counter for *_, frames in shown for counter in frames]
    assert counters == [*range(15, 40), *range(50, 85)], "every frame of the range once, in order, but the gap"
    assert last.uri.endswith(f"?until={at(84.5):.6f}")


def test_a_whole_fragment_is_the_agent_s_bytes(failed_over, user_client):
    segment = failed_over["segments"][2]
    data = content(user_client.get(f"/cameras/{failed_over['camera'].pk}/recordings/{segment.pk}.ts"))
    assert data == remote.fetch(segment)[0]


def test_a_cut_fragment_starts_at_the_keyframe_at_from_and_keeps_the_timestamps(failed_over, user_client):
    camera, segment = failed_over["camera"], failed_over["segments"][0]
    url = f"/cameras/{camera.pk}/recordings/{segment.pk}.ts"
    data = content(user_client.get(url, {"from": f"{at(12):.6f}", "until": f"{at(17):.6f}"}))
    codec, keyframe, counters = decoded(data)
    assert (codec, keyframe, counters) == ("h264", True, list(range(10, 17)))
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        first = next(packet.pts for packet in container.demux(stream) if packet.size)
    assert first * stream.time_base == pytest.approx(10 / FPS), "timestamps as the camera gave them"


def test_an_h265_recording_is_cut_by_stream_copy_too(recorded_site, make_camera, serve, user_client):
    camera = make_camera(recorded_site["a"], fps=FPS, codec="h265")
    segment = record(camera, recorded_site["a"], range(0, 20))
    serve(recorded_site["a"])
    query = {"from": f"{at(7):.6f}", "until": f"{at(13):.6f}"}
    data = content(user_client.get(f"/cameras/{camera.pk}/recordings/{segment.pk}.ts", query))
    assert decoded(data) == ("hevc", True, list(range(5, 13)))
    assert content(user_client.get(f"/cameras/{camera.pk}/recordings/{segment.pk}.ts")) == remote.fetch(segment)[0]


def test_a_segment_of_megabytes_is_cut_too(recorded_site, make_camera, serve, user_client):
    """FFmpeg reads a seekable input's end first: a multi-megabyte segment must still be read from its start."""
    camera = make_camera(recorded_site["a"], fps=FPS, codec="h264")
    segment = record(camera, recorded_site["a"], range(0, 80), grain=True)
    serve(recorded_site["a"])
    assert segment.size_bytes > 6_000_000
    data = content(user_client.get(f"/cameras/{camera.pk}/recordings/{segment.pk}.ts", {"from": f"{at(61):.6f}"}))
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [packet for packet in container.demux(stream) if packet.size]
    assert frames[0].is_keyframe and [round(p.pts * stream.time_base * FPS) for p in frames] == list(range(60, 80))
    listed = entries(playlist(user_client, camera, at(61), at(80)).content.decode())
    assert [(entry.gap, entry.program_date_time) for entry in listed] == [
        (True, pytest.approx(at(61), abs=0.001)),
        (False, pytest.approx(at(65), abs=0.001)),
    ], "the playlist starts at the keyframe after since"


def test_a_source_change_inside_a_segment_moves_the_cut_to_the_keyframe_before_it(
    recorded_site, make_camera, serve, user_client
):
    """Constant mode: both servers recorded frames 20-59; the camera moved to srv-b at frame 33."""
    a, b = recorded_site["a"], recorded_site["b"]
    camera = make_camera(a, b, fps=FPS, codec="h264")
    record(camera, a, range(0, 20)), record(camera, a, range(20, 60))
    record(camera, b, range(20, 60), 3000), record(camera, b, range(60, 80), 3000)
    Event.objects.create(at=datetime.fromtimestamp(at(33), UTC), kind=EventKind.FAILOVER_COMPLETED, camera=camera,
                         server=a, to_server=b, message="records on srv-b")  # fmt: skip
    serve(a, b)
    listed = entries(playlist(user_client, camera, at(0), at(80)).content.decode())
    assert not any(entry.gap for entry in listed)
    assert [entry.program_date_time for entry in listed] == pytest.approx([at(0), at(20), at(30), at(60)], abs=0.001)
    assert [entry.discontinuity for entry in listed] == [False, False, True, False]
    assert "until=" in listed[1].uri and "from=" in listed[2].uri
    shown = [decoded(content(user_client.get(entry.uri))) for entry in listed]
    assert [counter for *_, frames in shown for counter in frames] == list(range(80))


def test_an_mjpeg_recording_plays_as_h264(recorded_site, make_camera, serve, user_client):
    a = recorded_site["a"]
    camera = make_camera(a, fps=FPS, codec="mjpeg")
    first, second = record(camera, a, range(0, 20)), record(camera, a, range(20, 40))
    serve(a)
    listed = entries(playlist(user_client, camera, at(5), at(40)).content.decode())
    assert [entry.uri.split("?")[0] for entry in listed] == [f"/cameras/{camera.pk}/recordings/{s.pk}.ts"
                                                             for s in (first, second)]  # fmt: skip
    assert all(entry.discontinuity for entry in listed[1:]), "each transcoded fragment has timestamps of its own"
    assert sum(entry.duration for entry in listed) == pytest.approx(3.5, abs=1e-6)
    shown = [decoded(content(user_client.get(entry.uri))) for entry in listed]
    assert [(codec, keyframe) for codec, keyframe, _ in shown] == [("h264", True), ("h264", True)]
    assert [frames for *_, frames in shown] == [list(range(5, 20)), list(range(20, 40))]


def test_another_system_s_camera_and_another_camera_s_segment_are_not_found(failed_over, make_camera, user_client):
    theirs = make_camera(failed_over["other"], fps=FPS)
    segment = failed_over["segments"][0]
    assert playlist(user_client, theirs, at(0), at(90)).status_code == 404
    assert user_client.get(f"/cameras/{theirs.pk}/recordings/{segment.pk}.ts").status_code == 404
    mine = make_camera(failed_over["a"], fps=FPS)
    assert user_client.get(f"/cameras/{mine.pk}/recordings/{segment.pk}.ts").status_code == 404


def test_a_server_that_does_not_answer_is_a_502(recorded_site, make_camera, user_client):
    a = recorded_site["a"]
    camera = make_camera(a, fps=FPS, codec="h264")
    segment = record(camera, a, range(0, 20))  # nobody serves srv-a's recordings
    for query in ({}, {"from": f"{at(7):.6f}"}):
        answer = user_client.get(f"/cameras/{camera.pk}/recordings/{segment.pk}.ts", query)
        assert answer.status_code == 502
        assert answer.content.decode().startswith("The recording on srv-a cannot be read now")


def test_the_playlist_is_made_while_a_server_does_not_answer(recorded_site, make_camera, user_client):
    a = recorded_site["a"]
    camera = make_camera(a, fps=FPS, codec="h264")
    record(camera, a, range(0, 20))
    second = record(camera, a, range(20, 40))  # nobody serves them
    answer = playlist(user_client, camera, at(13), at(40))
    assert answer.status_code == 200
    listed = entries(answer.content.decode())
    # The cut's keyframes cannot be read: the video from the next segment on, its fragments a 502 for now.
    assert [(entry.gap, entry.uri.split("?")[0]) for entry in listed] == [
        (True, "gap.ts"), (False, f"/cameras/{camera.pk}/recordings/{second.pk}.ts")]  # fmt: skip
    assert sum(entry.duration for entry in listed) == pytest.approx(2.7, abs=1e-6)


def test_without_signing_in_the_playlist_and_fragments_lead_to_the_login(failed_over, client):
    camera, segment = failed_over["camera"], failed_over["segments"][0]
    for url in (f"/cameras/{camera.pk}/playback.m3u8", f"/cameras/{camera.pk}/recordings/{segment.pk}.ts"):
        answer = client.get(url)
        assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("query, message", [
    ({"since": "yesterday"}, "since: Datetime has wrong format."),
    ({"since": iso(T0 + 10), "until": iso(T0)}, "until: The end of the range must come after its start."),
    ({"since": iso(T0), "until": iso(T0 + 8 * 86400)}, "until: A range is at most 7 days long."),
])  # fmt: skip
def test_a_range_that_is_not_one_is_refused_in_plain_words(failed_over, user_client, query, message):
    answer = user_client.get(f"/cameras/{failed_over['camera'].pk}/playback.m3u8", query)
    assert answer.status_code == 400 and answer["Content-Type"].startswith("text/plain")
    assert answer.content.decode().startswith(message)


def test_a_cut_that_is_not_a_time_is_refused(failed_over, user_client):
    camera, segment = failed_over["camera"], failed_over["segments"][0]
    for query in ({"from": "soon"}, {"until": "nan"}, {"from": str(at(10)), "until": str(at(5))}):
        assert user_client.get(f"/cameras/{camera.pk}/recordings/{segment.pk}.ts", query).status_code == 400


def test_a_range_with_nothing_recorded_is_one_gap(failed_over, user_client):
    listed = entries(playlist(user_client, failed_over["camera"], at(200), at(260)).content.decode())
    assert [(entry.gap, entry.duration) for entry in listed] == [(True, pytest.approx(6.0))]


def test_the_moments_are_utc_with_milliseconds(failed_over, user_client):
    text = playlist(user_client, failed_over["camera"], at(0), at(90)).content.decode()
    stamps = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", text)
    assert stamps and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp) for stamp in stamps)
    assert stamps[0] == datetime.fromtimestamp(T0, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
