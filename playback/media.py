"""What the web application reads of a recorded segment's packets (over HTTP from its server, never from a disk).

A segment's times are the arrival times of its first and last frames (the index); inside it, an MPEG-TS
segment's packets carry the camera's own timestamps, which place each frame relative to the first one.
An MJPEG segment has no timestamps: its frames are spread evenly between the first and the last.
"""

import av

from playback.timeline import SegmentInfo, segment_info
from recording import remote

# FFmpeg's http timeout (microseconds); one read from the start: a segment is demuxed in order, and a seekable
# input would first fetch its end too, to guess a duration nobody needs here.
OPEN_OPTIONS = {"timeout": "5000000", "seekable": "0"}


def frame_times(info: SegmentInfo) -> list[float]:
    """An MJPEG segment's frame times: evenly spread over its span."""
    if info.frame_count < 2:
        return [info.started_at]
    step = (info.ended_at - info.started_at) / (info.frame_count - 1)
    return [info.started_at + index * step for index in range(info.frame_count)]


def packet_times(url: str, started_at: float) -> list[tuple[float, bool]]:
    """(time, keyframe) of each frame of the MPEG-TS segment at ``url``, its first frame at ``started_at``."""
    times = []
    try:
        with av.open(url, options=OPEN_OPTIONS) as container:
            stream = container.streams.video[0]
            first = None
            for packet in container.demux(stream):
                if not packet.size or packet.pts is None:
                    continue
                first = packet.pts if first is None else first
                times.append((started_at + float((packet.pts - first) * stream.time_base), bool(packet.is_keyframe)))
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise remote.Unreachable(f"the segment cannot be read ({type(exc).__name__})") from None
    return times


def keyframe_times(segment) -> list[float]:
    """The times of a recorded segment's keyframes (``segment``: a Segment row with its server)."""
    info = segment_info(segment)
    if info.suffix == ".mjpeg":
        return frame_times(info)
    return [at for at, key in packet_times(remote.segment_url(segment), info.started_at) if key]
