"""The Reports page: per camera or per server, over a period, failovers, time on backup and video lost; a table,
a chart and the same rows as CSV."""

import csv
from datetime import UTC

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import urlencode

from accounts.permissions import view_required
from cameras.models import Camera
from reports import figures, reading
from reports.forms import ReportPeriod
from servers.models import MultiserverSystem, Server
from utilities.ids import query_id
from utilities.spreadsheets import text_cell

CHART_ROWS = 20  # the chart shows the rows with the most time on backup and video lost
QUERY = ("by", "system", "server", "since", "until", "zone")


def _rows(request, since, until, now, by: str, system_id, server_id):
    cameras = Camera.objects.restrict(request.user).select_related("primary_server", "backup_server")
    servers = Server.objects.restrict(request.user).select_related("system")
    if system_id is not None:
        cameras = cameras.filter(primary_server__system_id=system_id)
        servers = servers.filter(system_id=system_id)
    if server_id is not None:
        cameras = cameras.filter(Q(primary_server_id=server_id) | Q(backup_server_id=server_id))
        servers = servers.filter(pk=server_id)
    start, end = since.timestamp(), until.timestamp()
    cameras_figures = [figures.camera_figures(history, start, end)
                       for history in reading.histories(cameras.order_by("name"), since, until, now)]  # fmt: skip
    if by == "server":
        return figures.server_totals(servers.order_by("name").values_list("pk", "name", "system__name"),
                                     cameras_figures)  # fmt: skip
    return cameras_figures


def _chart(rows, period_seconds: float) -> list[dict]:
    """Bars of time on backup and video lost, scaled to the longest of them, for the rows with the most."""
    shown = sorted((row for row in rows if row.on_backup_seconds or row.lost_seconds),
                   key=lambda row: -(row.on_backup_seconds + row.lost_seconds))[:CHART_ROWS]  # fmt: skip
    longest = max((max(row.on_backup_seconds, row.lost_seconds) for row in shown), default=0.0) or 1.0
    return [{
        "name": row.name, "on_backup": figures.duration(row.on_backup_seconds),
        "lost": figures.duration(row.lost_seconds),
        "on_backup_pct": 100 * row.on_backup_seconds / longest, "lost_pct": 100 * row.lost_seconds / longest,
        "lost_share": 100 * row.lost_seconds / period_seconds if period_seconds else 0.0,
    } for row in shown]  # fmt: skip


CAMERA_COLUMNS = ["camera", "primary server", "backup server", "failovers", "time on backup (s)",
                  "time on backup (h:mm:ss)", "video lost (s)", "video lost (h:mm:ss)"]  # fmt: skip
SERVER_COLUMNS = ["server", "system", "cameras", "failovers away", "takeovers as backup",
                  "its cameras on backup (s)", "recorded as backup (s)", "video lost (s)"]  # fmt: skip


def _seconds(value: float) -> str:
    return f"{value:.1f}"


def _csv(rows, by: str, since, until) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"report-{by}s-{since.astimezone(UTC):%Y%m%d-%H%M}-{until.astimezone(UTC):%Y%m%d-%H%M}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    if by == "server":
        writer.writerow(SERVER_COLUMNS)
        for row in rows:
            writer.writerow([text_cell(row.name), text_cell(row.system), row.cameras, row.failovers_away, row.takeovers,
                             _seconds(row.on_backup_seconds), _seconds(row.carried_seconds),
                             _seconds(row.lost_seconds)])  # fmt: skip
        return response
    writer.writerow(CAMERA_COLUMNS)
    for row in rows:
        writer.writerow([text_cell(row.name), text_cell(row.primary), text_cell(row.backup), row.failovers,
                         _seconds(row.on_backup_seconds), figures.duration(row.on_backup_seconds),
                         _seconds(row.lost_seconds), figures.duration(row.lost_seconds)])  # fmt: skip
    return response


@login_required
@view_required("cameras.view_camera", "servers.view_server", "redundancy.view_event")
def report(request):
    """``?by=camera`` (one row per camera) or ``?by=server`` (per server, the totals of its cameras), for the
    period since → until typed in the browser's local time; ``?format=csv`` downloads the rows."""
    now = timezone.now()
    by = "server" if request.GET.get("by") == "server" else "camera"
    system_id, server_id = query_id(request.GET.get("system")), query_id(request.GET.get("server"))
    period = ReportPeriod({name: request.GET.get(name, "") for name in ("since", "until")},
                          request.GET.get("zone", ""), now=now)  # fmt: skip
    wants_csv = request.GET.get("format") == "csv"
    if not period.is_valid():
        if wants_csv:
            return HttpResponseBadRequest(" ".join(e for errors in period.errors.values() for e in errors),
                                          content_type="text/plain; charset=utf-8")  # fmt: skip
        rows, since, until = [], None, None
    else:
        since, until = period.cleaned_data["since"], period.cleaned_data["until"]
        rows = _rows(request, since, until, now, by, system_id, server_id)
        if wants_csv:
            return _csv(rows, by, since, until)
    query = {name: request.GET.get(name, "") for name in QUERY}
    query["by"] = by
    seconds = (until - since).total_seconds() if since else 0.0
    return render(request, "reports/report.html", {
        "rows": rows, "by": by, "period": period, "since": since, "until": until, "until_now": until == now,
        "chart": _chart(rows, seconds), "chart_rows": CHART_ROWS,
        "typed": query, "query_string": urlencode({name: value for name, value in query.items() if value}),
        "systems": MultiserverSystem.objects.restrict(request.user).order_by("name"),
        "servers": Server.objects.restrict(request.user).order_by("name"),
        "system_id": system_id, "server_id": server_id,
        "totals": _totals(rows, by), "tabs": _tabs(query),
    }, status=200 if period.is_valid() else 400)  # fmt: skip


def _tabs(query: dict) -> dict:
    """Query strings of the two tabs (the same period and filters) and of a server's cameras (without its own
    ``by`` and ``server``)."""
    kept = {name: value for name, value in query.items() if value}
    return {
        "camera": urlencode({**kept, "by": "camera"}), "server": urlencode({**kept, "by": "server"}),
        "drill": urlencode({name: value for name, value in kept.items() if name not in ("by", "server")}),
    }  # fmt: skip


def _totals(rows, by: str) -> dict:
    if by == "server":
        return {
            "cameras": sum(row.cameras for row in rows), "failovers": sum(row.failovers_away for row in rows),
            "takeovers": sum(row.takeovers for row in rows),
            "on_backup": figures.duration(sum(row.on_backup_seconds for row in rows)),
            "carried": figures.duration(sum(row.carried_seconds for row in rows)),
            "lost": figures.duration(sum(row.lost_seconds for row in rows)),
        }  # fmt: skip
    return {
        "failovers": sum(row.failovers for row in rows),
        "on_backup": figures.duration(sum(row.on_backup_seconds for row in rows)),
        "lost": figures.duration(sum(row.lost_seconds for row in rows)),
    }
