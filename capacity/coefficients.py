"""Every coefficient of the capacity planner, with where it comes from. Tune them here only.

The Capacity page shows this table to operators (``TABLE``), so each entry says in words what
it is and what it rests on. "Measured here" figures come from

    .venv/bin/python bench/planner_coefficients.py        (single thread, real OpenCV)
    .venv/bin/python bench/agent_capacity.py               (the real agent process)

on the 2-core development machine; rerun them on the site's own server hardware and put the
results here when sizing a real site.
"""

from dataclasses import dataclass

# --- Bitrate of a camera's stream ---------------------------------------------------------
# Bits per pixel per frame at medium quality. A stream's bitrate is
#     width x height x fps x BITS_PER_PIXEL[codec] x QUALITY_FACTOR[quality].
BITS_PER_PIXEL = {
    # The "Kush gauge" rule of thumb for H.264: pixels x fps x motion rank x 0.07 bit/s; a fixed
    # camera watching a scene of low motion is rank 1. 1920x1080 at 25 fps gives 3.6 Mbit/s,
    # where camera makers' own calculators put medium-quality 1080p H.264.
    "h264": 0.07,
    # H.265/HEVC needs about half the bitrate of H.264 for the same picture in the standard's
    # own comparison (Ohm, Sullivan et al., "Comparison of the coding efficiency of video coding
    # standards", IEEE TCSVT 2012); surveillance encoders reach less, so 0.6 of H.264, not 0.5.
    "h265": 0.042,
    # Motion JPEG sends every frame as a JPEG picture. Measured here: a textured scene at JPEG
    # quality 90 takes 1.27 bit per pixel (bench/planner_coefficients.py); cameras' default
    # MJPEG quality is lower, so 1.0.
    "mjpeg": 1.0,
}
# Low quality is the encoder pushed for size, high quality doubles the bits (Kush rank 2).
QUALITY_FACTOR = {"low": 0.6, "medium": 1.0, "high": 2.0}

# --- What this agent writes to disk --------------------------------------------------------
# The agent records every stream as it comes. MJPEG: the camera's JPEGs one after the other, byte
# for byte. H.264 and H.265 over RTSP: the camera's packets copied into MPEG-TS, whose 4-byte header
# per 188-byte packet, PES headers and tables add 3.1 % to a 1080p 4 Mbit/s stream, measured here
# (bench/agent_capacity.py --codec h264: recorded bytes against the bytes the cameras sent).
RECORDING_OVERHEAD = {"mjpeg": 1.0, "h264": 1.031, "h265": 1.031}
# An HTTP stream of another codec than MJPEG is decoded and each frame written as a JPEG at quality
# 90 (only RTSP is stream-copied), taking far more storage: measured here, 1.27 bit per pixel.
RECORDED_AS_JPEG_BITS_PER_PIXEL = 1.27
STREAM_COPIED = {"h264", "h265"}  # over RTSP

# --- CPU, in core-seconds -------------------------------------------------------------------
# Handling one MJPEG frame besides decoding it: reading it off the socket, the segment write, stream
# statistics and the snapshot. Measured here with the real agent (bench/agent_capacity.py):
# 100 cameras at 320x180, 2 fps cost 11.6 % of a core, 0.58 ms a frame, of which the JPEG
# decode below is 0.14 ms.
FRAME_HANDLING_SECONDS = 0.00044
# A stream-copied frame: FFmpeg's RTSP reading (a poll and a read per RTP packet of 1.4 kB), the
# MPEG-TS write and the agent's bookkeeping, nothing decoded. Measured here with the real agent on
# 1080p H.264 at 25 fps and 4 Mbit/s (bench/agent_capacity.py --codec h264), per frame.
STREAM_COPY_SECONDS_PER_FRAME = 0.00030
# A stream-copied camera's picture for the live wall: one keyframe decoded each this many seconds
# when nobody watches it (recording.agent.UNWATCHED_SNAPSHOT_EVERY); while watched, one per keyframe.
SNAPSHOT_SECONDS = 30.0
# Decoding per megapixel of picture, per frame. The agent decodes every MJPEG frame it ingests (to
# check the stream, for snapshots and analytics); H.264 and H.265 frames only for analytics, on the
# camera's primary, and a keyframe now and then for the snapshot. Where the camera has a sub stream, the
# primary decodes that one for analytics (at its resolution) and leaves an MJPEG main stream undecoded.
DECODE_SECONDS_PER_MPX = {
    # libjpeg-turbo through cv2.imdecode, measured here: 5.1 ms for a 1920x1080 frame.
    "mjpeg": 0.00248,
    # H.264 through PyAV (libavcodec, one thread) in the real agent: 1080p at 25 fps and 4 Mbit/s with
    # motion detection cost 20.7 % of a core per camera here (bench/agent_capacity.py --codec h264
    # --analytics); less the stream copy and the motion detection, 3.0 ms per megapixel per frame.
    "h264": 0.0030,
    # H.265 decodes at roughly two thirds of H.264's speed in the same decoder (not measured here).
    "h265": 0.0045,
}
KEYFRAME_DECODE_SECONDS_PER_MPX = 0.0052  # 10.7 ms for a 1080p keyframe, measured here
# Re-encoding a frame as JPEG quality 90 for the recording (codecs not recorded as they come),
# cv2.imencode measured here: 4.6 ms for a 1920x1080 frame.
RECORD_ENCODE_SECONDS_PER_MPX = 0.00221


@dataclass(frozen=True)
class AnalyticsCost:
    """A module's CPU per analysed frame: a fixed part and a part per megapixel of the source
    picture (each module scales the frame down to 160 pixels wide before it looks)."""

    seconds_per_frame: float
    seconds_per_mpx: float


# Measured here (bench/planner_coefficients.py), fitted over 640x360, 1280x720 and 1920x1080.
ANALYTICS_COST = {
    "motion_detection": AnalyticsCost(0.00030, 0.00068),  # MOG2 background subtraction
    "tamper_detection": AnalyticsCost(0.00019, 0.00068),  # loss of detail (Laplacian variance)
}

# --- A camera's sub stream ------------------------------------------------------------------
# Where a camera has a sub stream, its primary reads it too (recording.pipeline.SubStream): analytics and the
# snapshot come from there, the main stream is recorded without decoding. The primary then receives both
# streams' bits, and its analytics decode and analyse the sub stream's pictures, not the main's. Backups read no
# sub stream. The agent reports the sub stream it reads (fps, bitrate, resolution); until it has, the planner
# takes it at 640x360 and at the camera's frame rate: the 16:9 size of the VGA-class second stream IP cameras
# ship with (issue 13's default), at the frame rate of the main stream as an upper bound (cameras' sub streams
# run at it or below). Its bitrate is then estimated as a main stream's, from its codec: the camera's H.264 or
# H.265 over RTSP, MJPEG over HTTP. Reading it costs what a main stream of its size costs to read (the
# stream-copy or MJPEG handling figures above, which also count a segment write it does not have), plus a
# keyframe decoded for the snapshot as above.
SUB_STREAM_SIZE = (640, 360)

# --- Planning -------------------------------------------------------------------------------
# A server without any capacity figure is compared with a 1 Gbit/s network port when the
# proposal balances backups, so it still takes a fair share; its table row says "not set".
NOMINAL_INBOUND_MBPS = 1000

STORAGE_BYTES_PER_GB = 1_000_000_000  # decimal gigabytes, as disks are sold


@dataclass(frozen=True)
class Coefficient:
    name: str
    value: str
    source: str


TABLE = [
    Coefficient(
        "H.264 bits per pixel",
        f"{BITS_PER_PIXEL['h264']}",
        "Kush gauge, low-motion scene (rank 1); 1080p25 = 3.6 Mbit/s",
    ),
    Coefficient(
        "H.265 bits per pixel",
        f"{BITS_PER_PIXEL['h265']}",
        "0.6 of H.264 (the standard's comparison shows about 0.5; surveillance encoders reach less)",
    ),
    Coefficient("MJPEG bits per pixel", f"{BITS_PER_PIXEL['mjpeg']}", "JPEG of a textured scene, measured here"),
    Coefficient(
        "Quality factor",
        ", ".join(f"{k} {v}" for k, v in QUALITY_FACTOR.items()),
        "low pushes the encoder for size; high doubles the bits (Kush rank 2)",
    ),
    Coefficient(
        "Recording of H.264/H.265 over RTSP",
        f"the stream's own bytes x {RECORDING_OVERHEAD['h264']} (MPEG-TS)",
        "stream copy, nothing re-encoded; measured here, bench/agent_capacity.py --codec h264",
    ),
    Coefficient(
        "Recording of other codecs over HTTP",
        f"JPEG q90, {RECORDED_AS_JPEG_BITS_PER_PIXEL} bit/pixel",
        "decoded and re-encoded, as only RTSP is stream-copied; measured here",
    ),
    Coefficient(
        "MJPEG frame handling", f"{FRAME_HANDLING_SECONDS * 1000:.2f} ms/frame", "real agent, bench/agent_capacity.py"
    ),
    Coefficient(
        "Stream-copied frame",
        f"{STREAM_COPY_SECONDS_PER_FRAME * 1000:.2f} ms/frame",
        "real agent, 1080p25 H.264 at 4 Mbit/s, bench/agent_capacity.py --codec h264",
    ),
    Coefficient(
        "Snapshot of a stream-copied camera",
        f"one keyframe each {SNAPSHOT_SECONDS:g} s, {KEYFRAME_DECODE_SECONDS_PER_MPX * 1000:.1f} ms/megapixel",
        "each keyframe instead while someone watches it on the live wall",
    ),
    *[
        Coefficient(f"{codec.upper()} decode", f"{seconds * 1000:.2f} ms/megapixel", source)
        for codec, seconds, source in (
            ("mjpeg", DECODE_SECONDS_PER_MPX["mjpeg"], "cv2.imdecode measured here"),
            ("h264", DECODE_SECONDS_PER_MPX["h264"], "PyAV in the agent, bench/agent_capacity.py --analytics"),
            ("h265", DECODE_SECONDS_PER_MPX["h265"], "about two thirds of H.264's decoding speed"),
        )
    ],
    Coefficient(
        "JPEG encode for recording",
        f"{RECORD_ENCODE_SECONDS_PER_MPX * 1000:.2f} ms/megapixel",
        "cv2.imencode measured here",
    ),
    *[
        Coefficient(
            f"{module.replace('_', ' ').capitalize()}",
            f"{cost.seconds_per_frame * 1000:.2f} ms + {cost.seconds_per_mpx * 1000:.2f} ms/megapixel per frame",
            "recording.analytics measured here",
        )
        for module, cost in ANALYTICS_COST.items()
    ],
    Coefficient(
        "Sub stream",
        f"{SUB_STREAM_SIZE[0]}x{SUB_STREAM_SIZE[1]} at the camera's frame rate, unless the agent measured it",
        "counted on the primary only, as well as the main stream: its bitrate, its reading, and analytics "
        "decoding and analysing its pictures instead of the main stream's (issue 13's default size)",
    ),
    Coefficient(
        "Server without capacity figures", f"{NOMINAL_INBOUND_MBPS} Mbit/s", "assumed 1 GbE port when balancing backups"
    ),
]
