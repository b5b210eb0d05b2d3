"""What one camera costs a server that records it: the CCTV calculator, on plain numbers.

Every figure comes from ``capacity.coefficients``; nothing here reads the database.
"""

from dataclasses import dataclass, replace

from capacity import coefficients as k

SECONDS_PER_HOUR = 3600


def megapixels(width: int, height: int) -> float:
    return width * height / 1_000_000


def estimated_stream_kbps(codec: str, width: int, height: int, fps: float, quality: str) -> float:
    """The stream's bitrate from its settings (kbit/s)."""
    bits = width * height * fps * k.BITS_PER_PIXEL[codec] * k.QUALITY_FACTOR[quality]
    return bits / 1000


def stream_copied(codec: str, transport: str = "rtsp") -> bool:
    return codec in k.STREAM_COPIED and transport == "rtsp"


def recorded_kbps(
    codec: str, width: int, height: int, fps: float, stream_kbps: float, transport: str = "rtsp"
) -> float:
    """What the agent writes to disk a second (kbit/s): the stream itself in its container, or JPEG frames."""
    if codec == "mjpeg" or stream_copied(codec, transport):
        return stream_kbps * k.RECORDING_OVERHEAD[codec]
    return width * height * fps * k.RECORDED_AS_JPEG_BITS_PER_PIXEL / 1000


def gb_per_hour(kbps: float) -> float:
    return kbps * 1000 / 8 * SECONDS_PER_HOUR / k.STORAGE_BYTES_PER_GB


def ingest_cores(codec: str, width: int, height: int, fps: float, transport: str = "rtsp") -> float:
    """CPU to receive and record the stream (cores); the same on primary and backup."""
    mpx = megapixels(width, height)
    if stream_copied(codec, transport):  # nothing decoded but a keyframe for the snapshot now and then
        return k.STREAM_COPY_SECONDS_PER_FRAME * fps + k.KEYFRAME_DECODE_SECONDS_PER_MPX * mpx / k.SNAPSHOT_SECONDS
    per_frame = k.FRAME_HANDLING_SECONDS + k.DECODE_SECONDS_PER_MPX[codec] * mpx
    if codec != "mjpeg":
        per_frame += k.RECORD_ENCODE_SECONDS_PER_MPX * mpx
    return per_frame * fps


def analytics_decode_cores(codec: str, width: int, height: int, fps: float, transport: str = "rtsp") -> float:
    """Decoding every frame for analytics, where the recording itself decodes nothing (primary only)."""
    if not stream_copied(codec, transport):
        return 0.0
    return k.DECODE_SECONDS_PER_MPX[codec] * megapixels(width, height) * fps


@dataclass(frozen=True)
class SubStream:
    """A camera's sub stream as its primary reads it: for analytics and the snapshot, never recorded."""

    codec: str  # the camera's H.264 or H.265 over RTSP, MJPEG over HTTP
    width: int
    height: int
    fps: float
    measured_kbps: float | None = None  # what the agent reported of it
    transport: str = "rtsp"


def sub_stream_ingest_cores(sub: SubStream) -> float:
    """CPU to read the sub stream before analytics: its packets and a keyframe now and then for the snapshot,
    or over HTTP each MJPEG frame's handling (the camera's JPEG is the snapshot)."""
    if stream_copied(sub.codec, sub.transport):
        return ingest_cores(sub.codec, sub.width, sub.height, sub.fps, sub.transport)
    return k.FRAME_HANDLING_SECONDS * sub.fps


def analytics_cores(module: str, width: int, height: int, fps: float) -> float:
    """CPU of one analytics module on every frame (cores); primary server only (rule 3)."""
    cost = k.ANALYTICS_COST[module]
    return (cost.seconds_per_frame + cost.seconds_per_mpx * megapixels(width, height)) * fps


@dataclass(frozen=True)
class Estimate:
    """The calculator's answer for one camera's settings."""

    stream_kbps: float  # what the planner counts on the network
    stream_source: str  # "measured", "configured" or "estimated"
    estimated_kbps: float
    configured_kbps: float | None
    measured_kbps: float | None  # what the agent reported it records
    recorded_kbps: float
    storage_gb_per_day: float
    ingest_cores: float
    analytics_cores: dict[str, float]
    analytics_decode_cores: float = 0.0  # stream-copied cameras or a sub stream: the decoding analytics need
    sub_stream_kbps: float = 0.0  # the sub stream, received by the primary only
    sub_stream_source: str = ""  # "measured" or "estimated"; empty without a sub stream
    primary_ingest_cores: float | None = None  # with a sub stream: both streams read, the main one not decoded

    @property
    def analytics_total_cores(self) -> float:
        return sum(self.analytics_cores.values()) + self.analytics_decode_cores

    @property
    def kbps_on_primary(self) -> float:
        return self.stream_kbps + self.sub_stream_kbps

    @property
    def cores_on_primary(self) -> float:
        ingest = self.ingest_cores if self.primary_ingest_cores is None else self.primary_ingest_cores
        return ingest + self.analytics_total_cores


def estimate(
    codec: str,
    width: int,
    height: int,
    fps: float,
    quality: str = "medium",
    analytics=(),
    configured_kbps: float | None = None,
    measured_kbps: float | None = None,
    measured_fps: float | None = None,
    transport: str = "rtsp",
    sub_stream: SubStream | None = None,
) -> Estimate:
    """Measured beats configured beats estimated; a measured frame rate drives the CPU figures.

    The agent measures the stream it receives, as it records it: MJPEG, and H.264 or H.265 over RTSP
    (stream copy). For a stream it re-encodes (another codec over HTTP) it measures the recording's
    rate, and the stream's rate stays configured or estimated. ``transport`` is the stream URL's scheme.
    With a ``sub_stream`` the primary receives it too, and analytics decode and analyse its pictures.
    """
    estimated = estimated_stream_kbps(codec, width, height, fps, quality)
    rate = measured_fps or fps
    as_it_comes = codec == "mjpeg" or stream_copied(codec, transport)
    measured_is_stream = bool(measured_kbps) and as_it_comes
    if measured_is_stream:
        stream, source = float(measured_kbps), "measured"
    elif configured_kbps:
        stream, source = float(configured_kbps), "configured"
    else:
        stream, source = estimated, "estimated"
    if measured_is_stream:
        recorded = stream * k.RECORDING_OVERHEAD[codec]
    elif measured_kbps:
        recorded = float(measured_kbps)
    else:
        recorded = recorded_kbps(codec, width, height, rate, stream, transport)
    main = Estimate(
        stream_kbps=stream,
        stream_source=source,
        estimated_kbps=estimated,
        configured_kbps=float(configured_kbps) if configured_kbps else None,
        measured_kbps=float(measured_kbps) if measured_kbps else None,
        recorded_kbps=recorded,
        storage_gb_per_day=gb_per_hour(recorded) * 24,
        ingest_cores=ingest_cores(codec, width, height, rate, transport),
        analytics_cores={module: analytics_cores(module, width, height, rate) for module in analytics},
        analytics_decode_cores=analytics_decode_cores(codec, width, height, rate, transport) if analytics else 0.0,
    )
    if sub_stream is None:
        return main
    return _with_sub_stream(main, codec, width, height, rate, quality, analytics, transport, sub_stream)


def _with_sub_stream(main: Estimate, codec, width, height, rate, quality, analytics, transport,
                     sub: SubStream) -> Estimate:  # fmt: skip
    """A camera whose primary reads its sub stream for analytics and the snapshot (backups read only the main)."""
    if sub.measured_kbps:
        sub_kbps, sub_source = float(sub.measured_kbps), "measured"
    else:
        sub_kbps, sub_source = estimated_stream_kbps(sub.codec, sub.width, sub.height, sub.fps, quality), "estimated"
    # The main stream on the primary: recorded as it comes, an MJPEG one no longer decoded (a backup still does).
    main_reading = ingest_cores(codec, width, height, rate, transport)
    reading = k.FRAME_HANDLING_SECONDS * rate if codec == "mjpeg" else main_reading
    decode = k.DECODE_SECONDS_PER_MPX[sub.codec] * megapixels(sub.width, sub.height) * sub.fps
    return replace(
        main,
        analytics_cores={module: analytics_cores(module, sub.width, sub.height, sub.fps) for module in analytics},
        analytics_decode_cores=decode if analytics else 0.0,
        sub_stream_kbps=sub_kbps,
        sub_stream_source=sub_source,
        primary_ingest_cores=reading + sub_stream_ingest_cores(sub),
    )
