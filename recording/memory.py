"""Keep an agent's memory flat while it decodes pictures in many threads.

glibc gives each thread that allocates a heap of its own (an arena, up to eight per core), and a
freed block of a megabyte or more (a decoded 1080p picture: 3 MB, 6 MB as BGR) stays in the
arena that held it once glibc has raised its threshold for returning such blocks to the system.
With a hundred ingest threads decoding keyframes now and then, measured here
(bench/agent_capacity.py --codec h264 --steps 25 --seconds 30), the agent grew from 436 to 538 MB
in 30 s; with two arenas and large blocks always returned, 287 to 310 MB, at the same CPU.
"""

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
LARGE_BLOCK = 1 << 20  # bytes: blocks this large are mapped and unmapped, never kept in an arena


def keep_heap_flat() -> bool:
    """Call before the ingest threads start; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, ARENAS)) and bool(mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK))
