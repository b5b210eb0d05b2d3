"""A camera's timeline across the servers that recorded it: lanes, gaps, and one source per moment.

After a failover one camera's hour lies on two servers, twice over where both recorded (constant mode,
a split, the overlap of a make-before-break handover). The timeline says, span by span, which server
recorded what (``lanes``), where nobody did (``gaps``), and which recording to play or export at each
moment (``pieces``): the active server's (the one the engine had the camera on then), the other's
where the active one has a gap. All of it is pure: segments and switches in, the timeline out;
``for_camera`` reads them from the index and the events.

A piece may start inside a segment (where the source changes while both servers record): video can
only start at a keyframe, so ``cut_at_keyframes`` moves each such cut back to the keyframe at or
before it, and ends the piece before it there, so that no moment is lost or played twice.
"""

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

# Two frames of one server further apart than this many frame intervals leave a gap between them.
GAP_FRAMES = 2.5
# A cut this close to a segment's start is its start: no keyframe to look for.
CUT_TOLERANCE = 0.001


@dataclass(frozen=True)
class SegmentInfo:
    id: int
    server: str
    started_at: float  # its first frame, seconds since the epoch
    ended_at: float  # its last frame
    frame_count: int
    recorded_by: str  # the server that recorded it (another one's, for a copy merged back)
    suffix: str = ".ts"


@dataclass(frozen=True)
class Span:
    """Contiguous video of one server: segments that follow each other without a gap."""

    server: str
    recorded_by: str
    started_at: float
    ended_at: float  # the end of its last frame
    frames: int
    segment_ids: tuple[int, ...]


@dataclass(frozen=True)
class Gap:
    started_at: float
    ended_at: float

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at


@dataclass(frozen=True)
class Piece:
    """What to play of one segment: from ``start`` (a keyframe, or the segment's start) to before ``end``."""

    segment: SegmentInfo
    start: float
    end: float

    @property
    def server(self) -> str:
        return self.segment.server

    @property
    def cut_start(self) -> bool:
        return self.start > self.segment.started_at + CUT_TOLERANCE


@dataclass(frozen=True)
class Source:
    """A stretch of time played from one server."""

    server: str
    started_at: float
    ended_at: float


@dataclass
class Timeline:
    since: float
    until: float
    frame_interval: float
    lanes: dict[str, list[Span]] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)

    @property
    def sources(self) -> list[Source]:
        runs: list[Source] = []
        for piece in self.pieces:
            if runs and runs[-1].server == piece.server and piece.start - runs[-1].ended_at <= self.frame_interval:
                runs[-1] = replace(runs[-1], ended_at=piece.end)
            else:
                runs.append(Source(piece.server, piece.start, piece.end))
        return runs


def lanes_of(segments: Iterable[SegmentInfo], frame_interval: float) -> dict[str, list[Span]]:
    """Each server's spans, in time order."""
    lanes: dict[str, list[Span]] = {}
    for segment in sorted(segments, key=lambda s: (s.server, s.started_at)):
        lane = lanes.setdefault(segment.server, [])
        end = segment.ended_at + frame_interval
        last = lane[-1] if lane else None
        if (last is not None and last.recorded_by == segment.recorded_by
                and segment.started_at - last.ended_at <= (GAP_FRAMES - 1) * frame_interval):  # fmt: skip
            lane[-1] = replace(last, ended_at=max(last.ended_at, end), frames=last.frames + segment.frame_count,
                               segment_ids=(*last.segment_ids, segment.id))  # fmt: skip
        else:
            lane.append(Span(segment.server, segment.recorded_by, segment.started_at, end, segment.frame_count,
                             (segment.id,)))  # fmt: skip
    return lanes


def _covered(spans: Iterable[Span]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted((span.started_at, span.ended_at) for span in spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def gaps_of(lanes: dict[str, list[Span]], since: float, until: float, frame_interval: float = 0.0) -> list[Gap]:
    """Where no server has video between ``since`` and ``until``. As within one server's recording, video that
    goes on from another server's less than a frame late (a span ends a frame interval after its last frame) is
    no gap: no frame is missing there."""
    gaps, cursor = [], since
    slack = (GAP_FRAMES - 2) * frame_interval
    for start, end in _covered(span for lane in lanes.values() for span in lane):
        if start > cursor + (slack if cursor > since else 0.0):
            gaps.append(Gap(cursor, min(start, until)))
        cursor = max(cursor, end)
        if cursor >= until:
            break
    if cursor < until:
        gaps.append(Gap(cursor, until))
    return [gap for gap in gaps if gap.ended_at > gap.started_at]


def active_server(switches: list[tuple[float, str]], primary: str) -> Callable[[float], str]:
    """The server the camera was on at a moment: the primary until the first switch, then each switch's."""
    times = [at for at, _ in switches]

    def at(moment: float) -> str:
        index = bisect_right(times, moment)
        return switches[index - 1][1] if index else primary

    return at


def choose(lanes: dict[str, list[Span]], switches: list[tuple[float, str]], primary: str, since: float,
           until: float) -> list[tuple[str, float, float]]:  # fmt: skip
    """(server, from, to) runs in time order: at each moment the active server's video, else the primary's,
    else another's."""
    active = active_server(sorted(switches), primary)
    covers = {server: _covered(spans) for server, spans in lanes.items()}
    edges = {since, until} | {at for at, _ in switches if since < at < until}
    for intervals in covers.values():
        edges |= {t for interval in intervals for t in interval if since < t < until}
    points = sorted(edges)
    runs: list[tuple[str, float, float]] = []
    for start, end in zip(points, points[1:], strict=False):
        middle = (start + end) / 2
        having = [server for server, intervals in covers.items() if any(a <= middle < b for a, b in intervals)]
        if not having:
            continue
        preferred = active(middle)
        server = preferred if preferred in having else primary if primary in having else sorted(having)[0]
        if runs and runs[-1][0] == server and runs[-1][2] == start:
            runs[-1] = (server, runs[-1][1], end)
        else:
            runs.append((server, start, end))
    return runs


def build(segments: list[SegmentInfo], switches: list[tuple[float, str]], primary: str, since: float, until: float,
          frame_interval: float) -> Timeline:  # fmt: skip
    lanes = lanes_of(segments, frame_interval)
    timeline = Timeline(since, until, frame_interval, lanes, gaps_of(lanes, since, until, frame_interval))
    by_server: dict[str, list[SegmentInfo]] = {}
    for segment in sorted(segments, key=lambda s: s.started_at):
        by_server.setdefault(segment.server, []).append(segment)
    for server, start, end in choose(lanes, switches, primary, since, until):
        for segment in by_server[server]:
            first, last = max(segment.started_at, start), min(segment.ended_at + frame_interval, end)
            if last > first:
                timeline.pieces.append(Piece(segment, first, last))
    timeline.pieces.sort(key=lambda piece: piece.start)
    return timeline


def cut_at_keyframes(pieces: list[Piece], keyframes: Callable[[SegmentInfo], list[float]]) -> list[Piece]:
    """Move every cut inside a segment back to its keyframe at or before the cut (``keyframes``: the times of a
    segment's keyframes), and end the piece before it there."""
    cut: list[Piece] = []
    for piece in pieces:
        if piece.cut_start:
            times = [t for t in keyframes(piece.segment) if t <= piece.start + CUT_TOLERANCE]
            start = max(times) if times else piece.segment.started_at
            piece = replace(piece, start=start)
            while cut and cut[-1].start >= start:
                cut.pop()  # wholly inside what this piece plays
            if cut and cut[-1].end > start:
                cut[-1] = replace(cut[-1], end=start)
        cut.append(piece)
    return cut


def settled_gaps(line: Timeline, now: float, open_for: float) -> list[Gap]:
    """The gaps, but for the last one when it runs to the range's end and began less than ``open_for`` seconds
    ago: a server that records the camera now indexes its segment when it closes it, so that silence is the
    segment being written, not yet a gap."""
    gaps = list(line.gaps)
    if gaps and gaps[-1].ended_at >= line.until and now - gaps[-1].started_at <= open_for and line.lanes:
        gaps.pop()
    return gaps


def open_segment_seconds(line: Timeline | None = None) -> float:
    """How long the segment being written may go unindexed: its length and a sweep of the agent's index spool.
    A segment is cut at the first keyframe after the agent's length, so it runs up to a keyframe interval
    longer (12 s for 10 s segments of a camera with a keyframe every 2 s): the longest segment of ``line``
    says how much longer for this camera."""
    from django.conf import settings

    longest = max((p.segment.ended_at - p.segment.started_at + line.frame_interval for p in line.pieces),
                  default=0.0) if line is not None else 0.0  # fmt: skip
    return max(settings.AGENT_SEGMENT_SECONDS, longest) + settings.AGENT_SWEEP_SECONDS


def when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def segment_info(segment) -> SegmentInfo:
    """What the timeline needs of a Segment row (with its servers selected)."""
    return SegmentInfo(segment.pk, segment.server.name, segment.started_at.timestamp(), segment.ended_at.timestamp(),
                       segment.frame_count, (segment.recorded_by or segment.server).name,
                       "." + segment.path.rsplit(".", 1)[-1])  # fmt: skip


def for_camera(camera, since: datetime, until: datetime) -> Timeline:
    """The camera's timeline from its index and its events."""
    from recording.models import Segment
    from redundancy.models import Event, EventKind

    rows = (
        Segment.objects.filter(camera=camera, ended_at__gte=since, started_at__lte=until)
        .select_related("server", "recorded_by")
        .order_by("started_at")
    )
    segments = [segment_info(row) for row in rows]
    # The active server changes when a takeover completes: until then the giving server records. The last
    # change before the range says where the camera was when it starts.
    moves = Event.objects.filter(camera=camera, to_server__isnull=False,
                                 kind__in=(EventKind.FAILOVER_COMPLETED, EventKind.FAILBACK_COMPLETED))  # fmt: skip
    moves = moves.select_related("to_server")
    before = moves.filter(at__lt=since).order_by("-at").first()
    switches = [(event.at.timestamp(), event.to_server.name)
                for event in [*([before] if before else []), *moves.filter(at__gte=since, at__lte=until)]]  # fmt: skip
    return build(segments, sorted(switches), camera.primary_server.name, since.timestamp(), until.timestamp(),
                 1 / max(camera.fps, 1))  # fmt: skip
