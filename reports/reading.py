"""What a report reads, for all its cameras at once: the engine's moves (events), the cameras' enabled history
(the audit log) and the holes in the recording index. A few aggregated queries whatever the number of cameras:
the index is never read row by row in Python, the database finds its holes (a window over each camera's segments
in time order) and only those come back."""

from datetime import datetime, timedelta

from django.db.models import F, Max, Min, OuterRef, Subquery, Window
from django.db.models.expressions import RowRange

from accounts.models import AuditAction, AuditEntry
from playback import timeline
from recording.models import Segment
from redundancy.models import Event
from reports.figures import MOVES, CameraHistory, Move

# A segment that ended this much before the period may still cover its first moment (its last frame's interval).
LEAD = timedelta(seconds=1)


def _seconds(at: datetime) -> float:
    return at.timestamp()


def _moves(cameras, since: datetime, until: datetime) -> dict[int, list[Move]]:
    """Each camera's moves in the period, after the last one before it (which says where the period starts)."""
    before = Event.objects.filter(camera=OuterRef("pk"), kind__in=MOVES, at__lt=since).order_by("-at", "-id")
    last = cameras.annotate(last_move=Subquery(before.values("pk")[:1])).values_list("last_move", flat=True)
    rows = Event.objects.filter(pk__in=[pk for pk in last if pk is not None]) | Event.objects.filter(
        camera__in=cameras, kind__in=MOVES, at__gte=since, at__lt=until)  # fmt: skip
    moves: dict[int, list[Move]] = {}
    for camera_id, at, kind, server, to_server in rows.order_by("camera_id", "at", "id").values_list(
            "camera_id", "at", "kind", "server_id", "to_server_id"):  # fmt: skip
        moves.setdefault(camera_id, []).append(Move(_seconds(at), kind, server, to_server))
    return moves


def _enabled(cameras, since: datetime, until: datetime) -> dict[int, tuple[bool | None, list[tuple[float, bool]]]]:
    """Each camera's enabled state when the period starts (None: no change recorded since, so as it is now) and
    its changes within it, from the audit log: a camera created after the period starts did not exist before."""
    ids = {str(pk): pk for pk in cameras.values_list("pk", flat=True)}
    entries = (AuditEntry.objects.filter(object_type="cameras.camera", object_id__in=list(ids), at__gte=since,
                                         action__in=(AuditAction.CREATED, AuditAction.CHANGED),
                                         after__has_key="enabled")  # fmt: skip
               .order_by("at", "id").values_list("object_id", "at", "action", "before", "after"))
    history: dict[int, tuple[bool | None, list[tuple[float, bool]]]] = {}
    for object_id, at, action, before, after in entries:
        camera_id = ids[object_id]
        if camera_id not in history:
            history[camera_id] = (False if action == AuditAction.CREATED else bool((before or {}).get("enabled")), [])
        if at < until:
            history[camera_id][1].append((_seconds(at), bool(after["enabled"])))
    return history


def _gaps(cameras, since: datetime, until: datetime, now: datetime) -> dict[int, list[tuple[float, float]]]:
    """Where no server recorded each camera in the period, as ``playback.timeline.gaps_of`` finds them. Two
    segments further apart than ``GAP_FRAMES`` frame intervals leave a hole; the database finds the holes per
    frame rate (a window over each camera's segments: the latest end before each start), and the covered
    stretches between them go through the timeline's gaps for the period's edges. Within one server this is the
    timeline's rule exactly; where video goes on from another server, the timeline already counts a hole of half a
    frame interval to one and a half, which this does not: at most one frame per handover."""
    segments = Segment.objects.filter(camera__in=cameras, ended_at__gte=since - LEAD, started_at__lt=until).order_by()
    edges = {camera_id: (first, last) for camera_id, first, last in segments.values("camera_id").annotate(
        first=Min("started_at"), last=Max("ended_at")).values_list("camera_id", "first", "last")}  # fmt: skip
    holes: dict[int, list[tuple[datetime, datetime]]] = {}
    fps_of = dict(cameras.values_list("pk", "fps"))
    for fps in set(fps_of.values()):
        interval = timedelta(seconds=1 / max(fps, 1))
        # In the index's order (camera, start): segments that start together may come either way round, and
        # the later of them then sees the other's end, so no hole is found between them either way.
        latest_end = Window(Max("ended_at"), partition_by=[F("camera_id")], order_by=[F("started_at").asc()],
                            frame=RowRange(start=None, end=-1))  # fmt: skip
        found = (segments.filter(camera__fps=fps).annotate(latest_end=latest_end)
                 .filter(started_at__gt=F("latest_end") + interval * timeline.GAP_FRAMES)
                 .values_list("camera_id", "latest_end", "started_at"))  # fmt: skip
        for camera_id, latest_end, started_at in found:
            holes.setdefault(camera_id, []).append((latest_end + interval, started_at))
    gaps: dict[int, list[tuple[float, float]]] = {}
    for camera_id, fps in fps_of.items():
        interval = 1 / max(fps, 1)
        covered, start = [], None
        if camera_id in edges:
            first, last = edges[camera_id]
            start = _seconds(first)
            for hole_start, hole_end in sorted(holes.get(camera_id, []), key=lambda hole: hole[1]):
                covered.append(timeline.Span("index", "index", start, _seconds(hole_start), 0, ()))
                start = _seconds(hole_end)
            covered.append(timeline.Span("index", "index", start, _seconds(last) + interval, 0, ()))
        lanes = {"index": covered} if covered else {}
        line = timeline.Timeline(_seconds(since), _seconds(until), interval, lanes,
                                 timeline.gaps_of(lanes, _seconds(since), _seconds(until), interval))  # fmt: skip
        # The segment being written is indexed when it closes: silence up to now is not yet a gap.
        settled = timeline.settled_gaps(line, _seconds(now), timeline.open_segment_seconds())
        gaps[camera_id] = [(gap.started_at, gap.ended_at) for gap in settled]
    return gaps


def histories(cameras, since: datetime, until: datetime, now: datetime) -> list[CameraHistory]:
    """The history of each of ``cameras`` (a queryset, its servers selected) over the period, which ends by
    ``now``."""
    moves, enabled = _moves(cameras, since, until), _enabled(cameras, since, until)
    gaps = _gaps(cameras, since, until, now)
    result = []
    for camera in cameras:
        at_start, changes = enabled.get(camera.pk, (None, []))
        result.append(CameraHistory(
            camera.pk, camera.name, camera.primary_server.name,
            camera.backup_server.name if camera.backup_server else "", camera.primary_server_id,
            moves=tuple(moves.get(camera.pk, ())),
            enabled_at_start=camera.enabled if at_start is None else at_start,
            enabled_changes=tuple(changes), gaps=tuple(gaps.get(camera.pk, ())),
        ))  # fmt: skip
    return result
