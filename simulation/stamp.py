"""A machine-readable stamp in every simulated frame: frame counter and capture time.

The stamp is a grid of black and white cells in the top-left corner, large enough to
survive JPEG compression and re-encoding into recorded segments, so a recording can be
checked frame by frame: which frames arrived, which are missing, and when each was taken.
"""

import binascii
from dataclasses import dataclass

import numpy as np

COLUMNS = 32
ROWS = 3  # 96 bits: 32 counter + 48 capture time (ms since the epoch) + 16 CRC
BASE_CELL = 8


@dataclass(frozen=True)
class Stamp:
    counter: int
    captured_ms: int


def cell_size(width: int) -> int:
    """Cells scale with the frame so the stamp keeps its share of the picture; 8 px aligns with JPEG blocks."""
    return BASE_CELL * max(1, width // 320)


def _bits(counter: int, captured_ms: int) -> list[int]:
    payload = (counter & 0xFFFFFFFF).to_bytes(4, "big") + (captured_ms & 0xFFFFFFFFFFFF).to_bytes(6, "big")
    data = payload + binascii.crc_hqx(payload, 0xFFFF).to_bytes(2, "big")
    return [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]


def draw_stamp(image: np.ndarray, counter: int, captured_ms: int) -> None:
    """Write the stamp into ``image`` (BGR, in place)."""
    cell = cell_size(image.shape[1])
    cells = np.array(_bits(counter, captured_ms), dtype=np.uint8).reshape(ROWS, COLUMNS) * 255
    block = np.kron(cells, np.ones((cell, cell), dtype=np.uint8))
    image[: ROWS * cell, : COLUMNS * cell] = block[:, :, None]


def read_stamp(image: np.ndarray) -> Stamp | None:
    """The stamp of a decoded frame, or None when it is absent or damaged (CRC mismatch)."""
    cell = cell_size(image.shape[1])
    if image.shape[0] < ROWS * cell or image.shape[1] < COLUMNS * cell:
        return None
    region = image[: ROWS * cell, : COLUMNS * cell].astype(np.float32)
    gray = region if region.ndim == 2 else region.mean(axis=2)
    # Mean of each cell's middle half, away from the compression ringing at the cell edges.
    lo, hi = cell // 4, cell - cell // 4
    cells = gray.reshape(ROWS, cell, COLUMNS, cell)[:, lo:hi, :, lo:hi].mean(axis=(1, 3))
    bits = (cells > 127).astype(np.uint8).ravel().tolist()
    data = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
    payload, crc = data[:10], int.from_bytes(data[10:], "big")
    if binascii.crc_hqx(payload, 0xFFFF) != crc:
        return None
    return Stamp(int.from_bytes(payload[:4], "big"), int.from_bytes(payload[4:], "big"))
