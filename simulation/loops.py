"""Encode once, replay for ever: the pictures of the simulated RTSP cameras.

A real camera's encoder costs the camera, not the recorder. So that a hundred simulated 1080p
cameras cost the simulator next to nothing, the pictures of every camera with the same codec,
resolution, frame rate, keyframe interval and bitrate are encoded once, as a loop of whole
GOPs (PyAV's libx264 and libx265, no B-frames, a keyframe exactly every ``gop`` frames), and
replayed at the camera's frame rate. Each frame's identity is not in its pixels (they repeat
with the loop) but in an SEI message that the camera process puts before each picture
(``simulation.sei``).

A loop file holds a JSON header line, then per access unit: keyframe flag, the offset of its
first picture (where the SEI goes) and its length (``>?II``), then its Annex-B bytes.
"""

import hashlib
import json
import os
import struct
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from simulation.sei import first_picture_offset

RECORD = struct.Struct(">?II")
ENCODERS = {"h264": "libx264", "h265": "libx265"}
LOOP_SECONDS = 4.0  # at least this long, in whole GOPs: the motion repeats no faster


@dataclass(frozen=True)
class LoopSpec:
    codec: str  # h264 or h265
    width: int
    height: int
    fps: float
    gop: int  # frames from one keyframe to the next
    bitrate_kbps: int

    @property
    def frames(self) -> int:
        gops = max(1, -(-round(LOOP_SECONDS * self.fps) // self.gop))
        return gops * self.gop

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def encoder_options(spec: LoopSpec) -> dict[str, str]:
    """A camera-like encoder: fixed GOP, no scene cuts, no B-frames, headers before every keyframe, and a
    constant bitrate, as surveillance cameras are usually set (the scene alone would need far less)."""
    common = f"keyint={spec.gop}:min-keyint={spec.gop}:scenecut=0:bframes=0"
    kbps = spec.bitrate_kbps
    if spec.codec == "h264":
        return {"preset": "veryfast", "x264-params": f"{common}:vbv-maxrate={kbps}:vbv-bufsize={kbps}:nal-hrd=cbr"}
    return {"preset": "veryfast", "x265-params": f"{common}:open-gop=0:repeat-headers=1:log-level=error:"
                                                 f"vbv-maxrate={kbps}:vbv-bufsize={kbps}:strict-cbr=1"}  # fmt: skip


def encode(spec: LoopSpec) -> list[tuple[bool, bytes]]:
    """The loop's access units, in order: (keyframe, Annex-B bytes)."""
    import av  # the camera process (Debian's Python) reads loop files and never encodes

    from simulation.simulator import background, scene

    context = av.CodecContext.create(ENCODERS[spec.codec], "w")
    context.width, context.height, context.pix_fmt = spec.width, spec.height, "yuv420p"
    context.framerate = Fraction(spec.fps).limit_denominator(1000)
    context.time_base = 1 / context.framerate  # one tick a frame
    context.gop_size, context.max_b_frames = spec.gop, 0
    context.bit_rate = spec.bitrate_kbps * 1000
    context.options = encoder_options(spec)
    backdrop = background(spec.width, spec.height)
    units: list[tuple[bool, bytes]] = []
    for counter in range(spec.frames):
        picture = scene(backdrop, f"{spec.codec} {spec.width}x{spec.height} loop #{counter}", counter, spec.fps)
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
        frame.pts = counter
        units.extend((bool(p.is_keyframe), bytes(p)) for p in context.encode(frame))
    units.extend((bool(p.is_keyframe), bytes(p)) for p in context.encode(None))
    if len(units) != spec.frames or [i for i, (key, _) in enumerate(units) if key] != list(
        range(0, spec.frames, spec.gop)
    ):
        raise RuntimeError(f"the {spec.codec} encoder did not keep one keyframe every {spec.gop} frames")
    return units


def loop_file(spec: LoopSpec, directory: Path) -> Path:
    """The loop's file under ``directory``, encoded the first time it is asked for."""
    path = directory / f"{spec.codec}-{spec.width}x{spec.height}-{spec.key()}.loop"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.part")
    with open(scratch, "wb") as out:
        out.write(json.dumps({**asdict(spec), "frames": spec.frames}).encode() + b"\n")
        for keyframe, unit in encode(spec):
            out.write(RECORD.pack(keyframe, first_picture_offset(spec.codec, unit), len(unit)) + unit)
    os.replace(scratch, path)  # whole or not at all, whoever else encodes it meanwhile
    return path


def read_loop(path: Path) -> tuple[dict, list[tuple[bool, bytes, bytes]]]:
    """The header and the access units as (keyframe, before the first picture, from it on)."""
    data = Path(path).read_bytes()
    end = data.index(b"\n")
    header, offset, units = json.loads(data[:end]), end + 1, []
    while offset < len(data):
        keyframe, split, length = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        unit = data[offset : offset + length]
        units.append((keyframe, unit[:split], unit[split:]))
        offset += length
    return header, units
