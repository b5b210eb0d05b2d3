"""The event log, and a server's drain and fail-back as the operator asks for them."""


import csv
from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from accounts.models import AuditEntry
from accounts.permissions import view_required
from redundancy import actions
from redundancy.changes import Change, configuration_changes, in_time_order, may_see_changes, worded
from redundancy.models import Event, EventKind
from servers.models import Server
from utilities.ids import query_id
from utilities.spreadsheets import text_cell

CSV_LIMIT = 100_000  # events in one download; a narrower range gives the rest
CSV_BATCH = 1000  # rows of events and changes merged, read at once
CSV_COLUMNS = ["time (UTC)", "event", "camera", "server", "to server", "mode", "what happened", "mail",
               "acknowledged (UTC)", "acknowledged by", "acknowledgement note"]  # fmt: skip
# Operators act on the engine's state: drain, fail back, acknowledge an event.
OPERATE = "redundancy.change_serverstate"
# The page's filters, kept by its pages and its CSV link.
QUERY = ("kind", "server", "camera", "since", "until", "zone", "changes", "unacknowledged")


class EventRange(forms.Form):
    """The Events page's time range, as typed in the browser's local time: ``zone`` is the browser's
    time zone (its IANA name, sent by forms.js), so each date is read with its own offset; without
    script the page shows UTC, and the range is read in UTC."""

    since = forms.DateTimeField(required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"])
    until = forms.DateTimeField(required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"])

    def __init__(self, data, zone: str = ""):
        try:
            self.zone = ZoneInfo(zone) if zone else UTC
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.zone, self.unknown_zone = UTC, zone
        super().__init__(data)

    def full_clean(self):
        with timezone.override(self.zone):  # a typed time is read in the browser's zone, its DST included
            super().full_clean()

    def clean(self):
        cleaned = super().clean()
        if getattr(self, "unknown_zone", None) and (cleaned.get("since") or cleaned.get("until")):
            raise forms.ValidationError(f"The browser's time zone {self.unknown_zone[:64]!r} is not known here.")
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until <= since:
            raise forms.ValidationError("Until must come after since.")
        return cleaned


@login_required
@view_required("redundancy.view_event")
def event_list(request):
    """The engine's transitions, filtered by kind, server, camera, time range and acknowledgement, with the
    configuration changes beside them for an administrator who asks for them; ``?format=csv`` downloads what the
    filters keep."""
    events = Event.objects.select_related("camera", "server", "to_server").restrict(request.user)
    kind = request.GET.get("kind", "")
    server_id = request.GET.get("server", "")
    camera_id = request.GET.get("camera", "")
    unacknowledged = request.GET.get("unacknowledged", "") == "1"
    may_see = may_see_changes(request.user)
    with_changes = may_see and request.GET.get("changes", "") == "1"
    if kind in EventKind.values:
        events = events.filter(kind=kind)
    if query_id(server_id) is not None:
        events = events.filter(Q(server_id=query_id(server_id)) | Q(to_server_id=query_id(server_id)))
    if query_id(camera_id) is not None:
        events = events.filter(camera_id=query_id(camera_id))
    if unacknowledged:
        events = events.filter(acknowledged_at__isnull=True)
    # A change is of no event kind and cannot be acknowledged: those filters keep events only.
    changes = None
    if with_changes and kind not in EventKind.values and not unacknowledged:
        changes = configuration_changes(request.user, query_id(server_id), query_id(camera_id))
    window = EventRange({name: request.GET.get(name, "") for name in ("since", "until")}, request.GET.get("zone", ""))
    if window.is_valid():
        if window.cleaned_data["since"]:
            events = events.filter(at__gte=window.cleaned_data["since"])
            changes = changes.filter(at__gte=window.cleaned_data["since"]) if changes is not None else None
        if window.cleaned_data["until"]:
            events = events.filter(at__lt=window.cleaned_data["until"])
            changes = changes.filter(at__lt=window.cleaned_data["until"]) if changes is not None else None
    elif request.GET.get("format") == "csv":
        return HttpResponseBadRequest(" ".join(e for errors in window.errors.values() for e in errors),
                                      content_type="text/plain; charset=utf-8")  # fmt: skip
    else:
        events = events.none()  # a range that says nothing clear shows nothing rather than everything
        changes = changes.none() if changes is not None else None
    if request.GET.get("format") == "csv":
        return _events_csv(events, changes, request.user)
    if changes is None:
        page = Paginator(events, 100).get_page(request.GET.get("page"))
        rows = list(page)
    else:
        page = Paginator(in_time_order(events, changes), 100).get_page(request.GET.get("page"))
        rows = _rows(page.object_list, request.user)
    query = {name: request.GET.get(name, "") for name in QUERY}
    return render(request, "redundancy/event_list.html", {
        "page": page, "rows": rows, "kinds": EventKind.choices, "servers": Server.objects.restrict(request.user),
        "kind": kind, "server_id": server_id, "camera_id": camera_id, "window": window,
        "since": query["since"], "until": query["until"], "zone": query["zone"],
        "may_see_changes": may_see, "with_changes": with_changes, "unacknowledged": unacknowledged,
        "can_acknowledge": request.user.has_perm(OPERATE), "back": request.get_full_path(),
        "query_string": urlencode({name: value for name, value in query.items() if value}),
    }, status=200 if window.is_valid() else 400)  # fmt: skip


def _rows(keys, user) -> list:
    """The events and changes a page of ``in_time_order`` names, in its order."""
    keys = list(keys)
    events = Event.objects.select_related("camera", "server", "to_server").in_bulk(
        [pk for _, source, pk in keys if source == "event"])
    entries = AuditEntry.objects.in_bulk([pk for _, source, pk in keys if source == "change"])
    changes = {change.entry.pk: change for change in worded(list(entries.values()), user)}
    return [events[pk] if source == "event" else changes[pk] for _, source, pk in keys
            if pk in (events if source == "event" else changes)]  # fmt: skip


class _Echo:
    def write(self, value):
        return value


def _utc(at) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds") if at else ""


def _csv_row(row) -> list[str]:
    if isinstance(row, Change):
        texts = ("Configuration change", row.entry.object_repr if row.camera_id else "",
                 row.entry.object_repr if row.server_id else "", "", "",
                 f"{row.summary}: {row.details}" if row.fields else row.summary, "", "", "")
    else:
        texts = (row.get_kind_display(), row.camera.name if row.camera else "",
                 row.server.name if row.server else "", row.to_server.name if row.to_server else "",
                 row.mode, row.message, row.get_mail_state_display() if row.mail_state else "",
                 row.acknowledged_by_username if row.acknowledged_at else "", row.acknowledgement_note)
    return [_utc(row.at), *(text_cell(text) for text in texts[:7]), _utc(getattr(row, "acknowledged_at", None)),
            *(text_cell(text) for text in texts[7:])]  # fmt: skip


def _events_csv(events, changes, user) -> StreamingHttpResponse:
    """Rows as they are read (an async iterator: Daphne sends each as it comes instead of the whole file at
    the end); past ``CSV_LIMIT`` a last line says the file was cut. With ``changes``, they are merged in."""
    writer = csv.writer(_Echo())

    async def read():
        if changes is None:
            async for event in events[: CSV_LIMIT + 1].aiterator(chunk_size=2000):
                yield event
            return
        # Read by slices of the merged order (a union's values have no asynchronous iterator).
        keys = in_time_order(events, changes)
        for start in range(0, CSV_LIMIT + 1, CSV_BATCH):
            batch = await sync_to_async(_rows)(keys[start : min(start + CSV_BATCH, CSV_LIMIT + 1)], user)
            for row in batch:
                yield row
            if len(batch) < CSV_BATCH:
                break

    async def rows():
        yield writer.writerow(CSV_COLUMNS)
        written = 0
        async for row in read():
            if written == CSV_LIMIT:
                yield writer.writerow([f"Cut at {CSV_LIMIT} events: narrow the time range for the rest."])
                break
            written += 1
            yield writer.writerow(_csv_row(row))

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="events-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response


class AcknowledgeForm(forms.Form):
    note = forms.CharField(required=False, max_length=500, error_messages={
        "max_length": "A note holds at most %(limit_value)d characters (this one has %(show_value)d)."})


@require_POST
@login_required
@permission_required(("redundancy.view_event", OPERATE), raise_exception=True)
def acknowledge(request, pk):
    """An operator has seen the event: who and when are kept (the first acknowledgement stays), audited.
    htmx gets the event's acknowledgement cell back; a plain form goes back to the page it came from."""
    event = get_object_or_404(Event.objects.restrict(request.user), pk=pk)
    form = AcknowledgeForm(request.POST)
    acknowledged = form.is_valid() and event.acknowledge(request.user, form.cleaned_data["note"])
    if request.htmx:
        return render(request, "redundancy/_acknowledgement.html", {
            "event": event, "form": form, "can_acknowledge": True, "already": form.is_valid() and not acknowledged,
            "back": request.GET.get("next", ""),
        }, status=200 if form.is_valid() else 400)  # fmt: skip
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["note"]))
    elif acknowledged:
        messages.success(request, f"{event.get_kind_display()} of {event.at:%Y-%m-%d %H:%M:%S} UTC acknowledged.")
    else:
        messages.info(request, f"{event.acknowledged_by_username or 'Someone'} had already acknowledged it.")
    back = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(back)
    return redirect("redundancy:events")


@require_POST
@login_required
@permission_required("redundancy.change_serverstate", raise_exception=True)
def server_action(request, pk, action):
    server = get_object_or_404(Server.objects.restrict(request.user), pk=pk)
    if action == "drain":
        started = actions.drain(server, request.user)
        messages.success(
            request,
            f"{server.name} is being drained: its cameras move to their backups as each backup records them."
            if started
            else f"{server.name} was already being drained.",
        )
    else:
        count = actions.fail_back(server, request.user)
        messages.success(request, f"{count} camera(s) return to {server.name} as soon as it records them.")
    back = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(back)
    return redirect("servers:server", server.pk)
