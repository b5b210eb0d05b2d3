"""The live status page, its snapshots and the per-camera recording timeline."""

import re
from datetime import timedelta

import redis
from csp.constants import SELF
from csp.decorators import csp_update
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.permissions import LIVE, view_required
from accounts.querysets import allowed_systems
from cameras.models import Camera
from cameras.modes import RedundancyMode
from playback import timeline
from protocol import live
from recording.models import BackupCheck
from redundancy.decisions import Windows
from redundancy.models import Event
from redundancy.status import read_status

TIMELINE_WINDOW = timedelta(hours=1)  # what the page shows at first, around the moment asked for

# The Live page's filter: which servers record a camera now.
RECORDED_ON = [("primary", "On primary"), ("backup", "On backup"), ("both", "On both"),
               ("nobody", "Recorded by nobody")]  # fmt: skip


@login_required
@view_required(*LIVE)
def live_page(request):
    status = read_status(live.client(), allowed_systems(request.user))
    servers = {row["id"]: row for row in status["servers"]}
    failed = {check.camera_id: check for check in BackupCheck.objects.failed().filter(
        camera_id__in=[row["id"] for row in status["cameras"]])}  # fmt: skip
    for row in status["cameras"]:
        # A backup that cannot open the camera (its readiness check): live.js follows the events that follow.
        row["backup_check_warning"] = failed[row["id"]].warning() if row["id"] in failed else ""
        row["system_id"] = servers[row["primary_server"]]["system_id"]
        row["primary_name"] = servers[row["primary_server"]]["name"]
        row["backup_name"] = servers[row["backup_server"]]["name"] if row["backup_server"] in servers else ""
    return render(request, "redundancy/live.html", {
        "status": status,
        "events": Event.objects.select_related("camera", "server", "to_server").restrict(request.user)[:30],
        "modes": RedundancyMode.choices,
        "recorded_on_choices": RECORDED_ON,
        "can_operate": request.user.has_perm("redundancy.change_serverstate"),
        "fresh_within": Windows.from_settings().fast,  # a server heard within it shows no age of its own
    })  # fmt: skip


@login_required
@view_required("cameras.view_camera")
def snapshot(request, camera_id):
    """The latest JPEG of a camera, as its recording server published it."""
    if not Camera.objects.filter(pk=camera_id).restrict(request.user).exists():
        raise Http404("No such camera.")
    try:
        client = live.client()
        live.mark_watched(client, camera_id)  # its server keeps the picture fresh while someone looks
        shot = live.read_snapshot(client, camera_id)
    except redis.RedisError:
        shot = None
    if shot is None:
        raise Http404("No recent snapshot of this camera.")
    response = HttpResponse(shot["jpeg"], content_type="image/jpeg")
    response["Cache-Control"] = "no-store"
    response["X-Recorded-By"] = shot["server"]
    return response


@login_required
@view_required("cameras.view_camera", "recording.view_segment", "redundancy.view_event")
@csp_update({"media-src": [SELF, "blob:"]})  # hls.js feeds the video element through a MediaSource's blob: URL
def camera_timeline(request, pk):
    """The playback page: a camera's recordings by server around a moment (``?at=``, ISO 8601; the last hour by
    default), gaps and events marked. Rendered here for every browser; static/js/playback.js plays it."""
    camera = get_object_or_404(Camera.objects.with_servers().restrict(request.user), pk=pk)
    now = timezone.now()
    at, error = _moment(request.GET.get("at"), now)
    until = now if at is None else min(now, at + TIMELINE_WINDOW / 2)
    since = until - TIMELINE_WINDOW
    span = (until - since).total_seconds()
    line = timeline.for_camera(camera, since, until)

    def place(start: float, end: float) -> dict:
        start, end = max(start, line.since), min(end, line.until)
        return {"left": (start - line.since) / span * 100, "width": (end - start) / span * 100,
                "from": timeline.when(start), "to": timeline.when(end), "seconds": end - start}  # fmt: skip

    rows = {server: [{**place(s.started_at, s.ended_at), "span": s} for s in spans]
            for server, spans in line.lanes.items()}  # fmt: skip
    for items in rows.values():
        for item in items:
            item["width"] = max(0.15, item["width"])  # a short span stays visible
    gaps = [place(gap.started_at, gap.ended_at)
            for gap in timeline.settled_gaps(line, now.timestamp(), timeline.open_segment_seconds(line))]  # fmt: skip
    events = Event.objects.filter(camera=camera, at__gte=since, at__lte=until).select_related("server", "to_server")
    marks = [{"left": (e.at - since).total_seconds() / span * 100, "event": e} for e in events]
    return render(request, "redundancy/timeline.html", {
        "camera": camera, "rows": rows, "gaps": gaps, "marks": marks, "since": since, "until": until, "at": at,
        "error": error, "events": events,
    }, status=400 if error else 200)  # fmt: skip


def _moment(text, now):
    """``?at=``: an ISO 8601 moment (one without an offset is in the site's time zone) -> (moment, error)."""
    if not text:
        return None, ""
    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text.strip())  # an offset's "+" that came unescaped in the query
    try:
        at = parse_datetime(text)
    except ValueError:
        at = None
    if at is None:
        return None, f"“{text[:40]}” is not a date and time (ISO 8601, such as 2026-12-01T14:30:00Z)."
    if timezone.is_naive(at):
        at = timezone.make_aware(at)
    if at > now:
        return None, f"{text[:40]} is still to come: nothing is recorded yet."
    return at, ""
