"""Playback pages' media: a camera's HLS playlist and its fragments, proxied from the servers that recorded them."""

import logging

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from accounts.permissions import view_required
from playback import hls
from playback.api.views import PLAYBACK, RangeSerializer, camera_for
from recording import remote
from recording.models import Segment

log = logging.getLogger(__name__)


def _plain(response_class, message: str, **kwargs) -> HttpResponse:
    return response_class(message + "\n", content_type="text/plain; charset=utf-8", **kwargs)


@login_required
@view_required(*PLAYBACK)
def playlist(request, pk):
    """``?since=&until=`` (ISO 8601; the last hour by default): the camera's recordings as an HLS VOD playlist."""
    camera = camera_for(request, pk)
    query = RangeSerializer(data=request.GET)
    if not query.is_valid():
        problems = [f"{field}: {' '.join(str(m) for m in messages)}" for field, messages in query.errors.items()]
        return _plain(HttpResponseBadRequest, "; ".join(problems))
    since, until = query.validated_data["since"], query.validated_data["until"]

    def url(fragment: hls.Fragment) -> str:
        if fragment.piece is None:
            return "gap.ts"  # never loaded: EXT-X-GAP
        address = reverse("playback:fragment", args=[camera.pk, fragment.piece.segment.id])
        cut = [("from", fragment.piece.start)] if fragment.cut_start else []
        cut += [("until", fragment.piece.end)] if fragment.cut_end else []
        return address + ("?" + "&".join(f"{name}={value:.6f}" for name, value in cut) if cut else "")

    response = HttpResponse(hls.playlist(camera, since, until, url), content_type=hls.CONTENT_TYPE)
    response["Cache-Control"] = "no-store"  # a range near now grows as the servers record
    return response


def _seconds(request, name: str) -> float | None:
    value = request.GET.get(name)
    if value is None:
        return None
    number = float(value)  # ValueError for the caller
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(name)
    return number


@login_required
@view_required(*PLAYBACK)
def fragment(request, camera_id, pk):
    """One segment of the camera for the player, MPEG-TS: ``?from=&until=`` (seconds since the epoch) cut it."""
    camera = camera_for(request, camera_id)
    segment = get_object_or_404(Segment.objects.select_related("server", "camera"), pk=pk, camera=camera)
    try:
        start, end = _seconds(request, "from"), _seconds(request, "until")
    except ValueError:
        return _plain(HttpResponseBadRequest, "from and until must be seconds since the epoch.")
    if start is not None and end is not None and end <= start:
        return _plain(HttpResponseBadRequest, "until must come after from.")
    try:
        body = hls.fragment(segment, start, end)
    except remote.Unreachable as exc:
        log.warning("camera=%s segment=%s server=%s event=fragment_unreachable", camera.pk, segment.pk,
                    segment.server.name)  # fmt: skip
        return _plain(HttpResponse, f"The recording on {segment.server.name} cannot be read now: {exc}.", status=502)
    response = StreamingHttpResponse(body, content_type=hls.FRAGMENT_TYPE)
    response["Cache-Control"] = "private, max-age=300"
    return response
