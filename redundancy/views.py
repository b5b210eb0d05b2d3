"""The event log, and a server's drain and fail-back as the operator asks for them."""


import csv
from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

from accounts.permissions import view_required
from redundancy import actions
from redundancy.models import Event, EventKind
from servers.models import Server
from utilities.ids import query_id

CSV_LIMIT = 100_000  # events in one download; a narrower range gives the rest
CSV_COLUMNS = ["time (UTC)", "event", "camera", "server", "to server", "mode", "what happened", "mail"]


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
    """The engine's transitions, filtered by kind, server, camera and time range; ``?format=csv``
    downloads what the filters keep."""
    events = Event.objects.select_related("camera", "server", "to_server").restrict(request.user)
    kind = request.GET.get("kind", "")
    server_id = request.GET.get("server", "")
    camera_id = request.GET.get("camera", "")
    if kind in EventKind.values:
        events = events.filter(kind=kind)
    if query_id(server_id) is not None:
        events = events.filter(Q(server_id=query_id(server_id)) | Q(to_server_id=query_id(server_id)))
    if query_id(camera_id) is not None:
        events = events.filter(camera_id=query_id(camera_id))
    window = EventRange({name: request.GET.get(name, "") for name in ("since", "until")}, request.GET.get("zone", ""))
    if window.is_valid():
        if window.cleaned_data["since"]:
            events = events.filter(at__gte=window.cleaned_data["since"])
        if window.cleaned_data["until"]:
            events = events.filter(at__lt=window.cleaned_data["until"])
    elif request.GET.get("format") == "csv":
        return HttpResponseBadRequest(" ".join(e for errors in window.errors.values() for e in errors),
                                      content_type="text/plain; charset=utf-8")  # fmt: skip
    else:
        events = events.none()  # a range that says nothing clear shows nothing rather than everything
    if request.GET.get("format") == "csv":
        return _events_csv(events)
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    query = {name: request.GET.get(name, "") for name in ("kind", "server", "camera", "since", "until", "zone")}
    return render(request, "redundancy/event_list.html", {
        "page": page, "kinds": EventKind.choices, "servers": Server.objects.restrict(request.user),
        "kind": kind, "server_id": server_id, "camera_id": camera_id, "window": window,
        "since": query["since"], "until": query["until"], "zone": query["zone"],
        "query_string": urlencode({name: value for name, value in query.items() if value}),
    }, status=200 if window.is_valid() else 400)  # fmt: skip


class _Echo:
    def write(self, value):
        return value


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a leading apostrophe."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _events_csv(events) -> StreamingHttpResponse:
    """Rows as they are read (an async iterator: Daphne sends each as it comes instead of the whole file at
    the end); past ``CSV_LIMIT`` a last line says the file was cut."""
    writer = csv.writer(_Echo())

    async def rows():
        yield writer.writerow(CSV_COLUMNS)
        written = 0
        async for event in events[: CSV_LIMIT + 1].aiterator(chunk_size=2000):
            if written == CSV_LIMIT:
                yield writer.writerow([f"Cut at {CSV_LIMIT} events: narrow the time range for the rest."])
                break
            written += 1
            texts = (event.get_kind_display(), event.camera.name if event.camera else "",
                     event.server.name if event.server else "", event.to_server.name if event.to_server else "",
                     event.mode, event.message, event.get_mail_state_display() if event.mail_state else "")
            at = event.at.astimezone(UTC).isoformat(timespec="milliseconds")
            yield writer.writerow([at, *(_cell(text) for text in texts)])  # fmt: skip

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="events-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response


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
