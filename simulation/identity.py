"""Which frames a recording holds, read from its files by the identity each frame carries.

Every figure of lost video comes from here, never from the agent's counters: an MJPEG frame's
identity is the stamp in its pixels (``simulation.stamp``), decoded from the JPEG; an H.264 or
H.265 frame's is the SEI message before its picture (``simulation.sei``), read from the packets
of the MPEG-TS file by PyAV's demuxer, an independent reader of what the agent wrote.
"""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from recording.segments import SUFFIXES, iter_jpegs
from simulation.sei import read_identity
from simulation.stamp import Stamp, read_stamp


def stamps_in(path: Path) -> Iterator[Stamp | None]:
    """The identity of each frame of one segment, in order; None for a frame that carries none."""
    path = Path(path)
    if path.suffix == ".ts":
        from recording.streamcopy import iter_packets

        for data in iter_packets(path):
            identity = read_identity(data)
            yield Stamp(*identity) if identity else None
    else:
        for jpeg in iter_jpegs(path):
            yield read_stamp(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))


def segment_files(storage: Path, camera_id: int) -> list[Path]:
    """A server's files of a camera, indexed or not, in time order."""
    paths = [path for suffix in SUFFIXES for path in Path(storage).glob(f"{camera_id}/*/*{suffix}")]
    return sorted(paths, key=lambda path: (path.parent.name, path.stem))


def recorded_stamps(storage: Path, camera_id: int) -> list[Stamp]:
    """Every identified frame a server recorded of a camera, in order."""
    return [stamp for path in segment_files(storage, camera_id) for stamp in stamps_in(path) if stamp]
