"""One camera's recordings over a time range as one MP4 file, stitched by stream copy, with its manifest.

For an operator handing footage to an investigator this is the chain of custody: the pieces of the
camera's timeline (``playback.timeline``: the active server's video at each moment, the other's where it
has a gap, cuts moved back to keyframes) are read from the agents that hold them (signed HTTP, each
segment checked against the SHA-256 its server computed as it sent it) and their packets, never decoded,
go into one MP4 in time order. A packet's time in the file is its wall time less the start of the file,
so a gap in the recordings stays a gap in the file's time. The manifest beside the file says which
server contributed which span (and who recorded it, for a copy merged back), where the gaps are, the
segments read with their checksums, and the file's own SHA-256.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import av

from playback import media, timeline
from playback.stitching import Fetched, Stitcher, iso
from playback.timeline import Piece
from recording import remote

log = logging.getLogger(__name__)

ROOM_TO_SPARE = 256 << 20  # bytes left free on the exports' disk after a file
PREFETCH = 3  # segments read ahead of the muxer, so the network and the agent's checksum overlap the muxing


class NothingRecorded(ValueError):
    """No server holds any video of the camera over the range."""


class NoRoom(OSError):
    """The disk the file goes to cannot hold it."""


def _prefetched(pieces: list[Piece], rows: dict) -> Iterator[Fetched]:
    """Each piece with its segment's bytes, read a few ahead on threads of their own."""

    def get(piece: Piece) -> Fetched:
        segment = rows[piece.segment.id]
        return Fetched(piece, segment, *remote.fetch(segment))

    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="export-fetch") as pool:
        pending = [pool.submit(get, piece) for piece in pieces[:PREFETCH]]
        try:
            for index in range(len(pieces)):
                item = pending[index].result()
                pending[index] = None  # let go of the bytes once muxed
                if index + PREFETCH < len(pieces):
                    pending.append(pool.submit(get, pieces[index + PREFETCH]))
                yield item
        finally:
            for future in pending:
                if future is not None:
                    future.cancel()


def plan(camera, since: datetime, until: datetime) -> tuple[timeline.Timeline, list[Piece], dict]:
    """The camera's timeline over the range, its pieces with cuts at keyframes, and their Segment rows."""
    from recording.models import Segment

    line = timeline.for_camera(camera, since, until)
    ids = {piece.segment.id for piece in line.pieces}
    rows = {row.pk: row for row in Segment.objects.filter(pk__in=ids).select_related("server", "recorded_by")}
    pieces = timeline.cut_at_keyframes(line.pieces, lambda info: media.keyframe_times(rows[info.id]))
    if not pieces:
        raise NothingRecorded(f"Nothing was recorded of {camera.name} between {iso(since.timestamp())} and "
                              f"{iso(until.timestamp())}.")  # fmt: skip
    return line, pieces, rows


Progress = Callable[[float], None]


def export(camera, since: datetime, until: datetime, out_path: Path, progress: Progress | None = None,
           now: Callable[[], datetime] | None = None) -> dict:  # fmt: skip
    """Write the camera's recordings from ``since`` to ``until`` into ``out_path`` (MP4) and its manifest beside it
    (``<name>.json``); returns the manifest. Raises NothingRecorded, or remote.Unreachable when a server that holds
    a piece does not answer (nothing is left at ``out_path`` then)."""
    from django.utils import timezone

    line, pieces, rows = plan(camera, since, until)
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".part")  # a file that is there is a finished one
    origin = min(since.timestamp(), pieces[0].start)
    stitcher = Stitcher(partial, origin, line.frame_interval)
    # One track, one codec: a camera switched to another codec within the range keeps the first one's.
    suffix = pieces[0].segment.suffix
    left_out = [piece for piece in pieces if piece.segment.suffix != suffix]
    kept = [piece for piece in pieces if piece.segment.suffix == suffix]
    total = sum(rows[piece.segment.id].size_bytes or 1 for piece in kept)
    free = shutil.disk_usage(out_path.parent).free
    if free < total + ROOM_TO_SPARE:  # the MP4 is about the size of what it is made of (MPEG-TS costs ~3 % more)
        raise NoRoom(f"The export needs about {total / 1e6:.0f} MB and {out_path.parent} has {free / 1e6:.0f} MB free.")
    done, read = 0, []
    add = stitcher.add_ts if suffix == ".ts" else stitcher.add_mjpeg
    try:
        for item, _ in add(_prefetched(kept, rows)):
            piece = item.piece
            read.append((piece, {"server": piece.server, "name": remote.segment_name(item.segment),
                                 "recorded_by": piece.segment.recorded_by, "sha256": item.sha256, "frames": 0,
                                 "from": iso(piece.start), "to": iso(piece.end)}))  # fmt: skip
            done += item.segment.size_bytes or 1
            if progress is not None:
                progress(min(done / total, 1.0))
        stitcher.finish()
        stitcher.close()
        if not stitcher.frames:
            raise NothingRecorded(f"The recordings of {camera.name} over the range hold no frame that can be read.")
        os.replace(partial, out_path)
    except BaseException:
        with contextlib.suppress(av.FFmpegError, OSError):
            stitcher.close()
        partial.unlink(missing_ok=True)
        raise
    with out_path.open("rb") as file:
        sha256 = hashlib.file_digest(file, "sha256").hexdigest()
    manifest = {
        "camera": {"id": camera.pk, "name": camera.name},
        "range": {"since": iso(since.timestamp()), "until": iso(until.timestamp())},
        "file": {
            "name": out_path.name,
            "size": out_path.stat().st_size,
            "sha256": sha256,
            "starts_at": iso(origin),
        },  # fmt: skip
        "codec": {"hevc": "h265"}.get(stitcher.codec, stitcher.codec),
        "frames": stitcher.frames,
        "first_frame": iso(stitcher.first_time),
        "last_frame": iso(stitcher.last_time),
        "spans": [run.as_dict() for run in stitcher.contributions],
        "gaps": [
            {"from": iso(gap.started_at), "to": iso(gap.ended_at), "seconds": round(gap.seconds, 3)}
            for gap in line.gaps
        ],  # fmt: skip
        "segments": [entry | {"frames": stitcher.written.get(id(piece), 0)} for piece, entry in read],
        "left_out": [
            {
                "server": piece.server,
                "name": remote.segment_name(rows[piece.segment.id]),
                "reason": f"recorded as {piece.segment.suffix.lstrip('.')}, the file holds {stitcher.codec}",
            }
            for piece in left_out
        ],  # fmt: skip
        "generated_at": iso((now or timezone.now)().timestamp()),
    }
    manifest_path(out_path).write_text(json.dumps(manifest, indent=2) + "\n")
    servers = ",".join(dict.fromkeys(run.server for run in stitcher.contributions))
    log.info("camera=%s event=exported frames=%s size=%s servers=%s", camera.pk, stitcher.frames,
             manifest["file"]["size"], servers)  # fmt: skip
    return manifest


def manifest_path(out_path: Path) -> Path:
    return Path(out_path).with_suffix(".json")
