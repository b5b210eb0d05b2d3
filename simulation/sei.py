"""Frame identity inside an H.264 or H.265 stream: one SEI message per frame.

A simulated RTSP camera puts, before the picture of every frame, an SEI "user data unregistered"
message: our UUID, then the frame counter and the capture time with a CRC (the payload of the
pixel stamp of ``simulation.stamp``). The message travels with the frame through RTP, the agent's
stream copy and the recorded file, so a recording is checked frame by frame by reading its
packets, without decoding a picture and without trusting any counter of the agent.

Standard library only: the RTSP camera process (Debian's Python with GStreamer) imports it too.
"""

import binascii

UUID = bytes.fromhex("5e1f0c2a9b7d4e3f8a6c1b2d3e4f5a6b")  # no zero byte: never escaped, found as it is
PAYLOAD_SIZE = 12  # 4 counter + 6 capture time (ms since the epoch) + 2 CRC
START_CODE = b"\x00\x00\x00\x01"
USER_DATA_UNREGISTERED = 5
H264_SEI, H265_PREFIX_SEI = 6, 39


def payload(counter: int, captured_ms: int) -> bytes:
    data = (counter & 0xFFFFFFFF).to_bytes(4, "big") + (captured_ms & 0xFFFFFFFFFFFF).to_bytes(6, "big")
    return data + binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")


def escape(rbsp: bytes) -> bytes:
    """Emulation prevention: no 00 00 0x (x <= 3) may appear inside a NAL unit."""
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def unescape(data: bytes) -> bytes:
    return data.replace(b"\x00\x00\x03", b"\x00\x00")


def sei_nal(codec: str, counter: int, captured_ms: int) -> bytes:
    """The Annex-B NAL unit (start code included) that carries one frame's identity."""
    header = bytes([H264_SEI]) if codec == "h264" else bytes([H265_PREFIX_SEI << 1, 1])
    body = UUID + payload(counter, captured_ms)
    message = bytes([USER_DATA_UNREGISTERED, len(body)]) + body + b"\x80"  # rbsp trailing bits
    return START_CODE + header + escape(message)


def first_picture_offset(codec: str, access_unit: bytes) -> int:
    """Where the first slice of an Annex-B access unit starts (its start code): an SEI goes before it."""
    index = access_unit.find(b"\x00\x00\x01")
    while index != -1:
        nal = access_unit[index + 3] if index + 3 < len(access_unit) else 0
        kind = nal & 0x1F if codec == "h264" else (nal >> 1) & 0x3F
        if (codec == "h264" and 1 <= kind <= 5) or (codec != "h264" and kind <= 31):
            return index - 1 if index > 0 and access_unit[index - 1] == 0 else index
        index = access_unit.find(b"\x00\x00\x01", index + 3)
    return len(access_unit)


def read_identity(data: bytes) -> tuple[int, int] | None:
    """(counter, capture time in ms) of the frame whose packet is ``data``; None without a valid message."""
    index = data.find(UUID)
    if index == -1:
        return None
    # The payload may hold escaped zeros: unescape a little more than it needs.
    raw = unescape(data[index + len(UUID) : index + len(UUID) + PAYLOAD_SIZE * 2])[:PAYLOAD_SIZE]
    if len(raw) < PAYLOAD_SIZE or binascii.crc_hqx(raw[:10], 0xFFFF) != int.from_bytes(raw[10:], "big"):
        return None
    return int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:10], "big")
