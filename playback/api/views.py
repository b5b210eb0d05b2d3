from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import requires
from accounts.scope import limit
from cameras.models import Camera
from playback import timeline
from playback.api.serializers import RecordingsSerializer
from redundancy.models import Event

# Playback shows a camera, what its servers recorded, and the events on its timeline.
PLAYBACK = ("cameras.view_camera", "recording.view_segment", "redundancy.view_event")
LONGEST_RANGE = timedelta(days=7)


class RangeSerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; the last hour by default.")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; now by default.")

    def validate(self, data):
        until = data.get("until") or timezone.now()
        since = data.get("since") or until - timedelta(hours=1)
        if since >= until:
            raise serializers.ValidationError({"until": "The end of the range must come after its start."})
        if until - since > LONGEST_RANGE:
            raise serializers.ValidationError({"until": "A range is at most 7 days long."})
        return {"since": since, "until": until}


def camera_for(request, pk: int) -> Camera:
    """The camera, if the user may see its system; 404 otherwise (another system's camera is not named)."""
    return get_object_or_404(limit(Camera.objects.with_servers(), request.user, "primary_server__system"), pk=pk)


class RecordingsView(APIView):
    permission_classes = [requires(*PLAYBACK)]

    @extend_schema(
        parameters=[RangeSerializer],
        responses=RecordingsSerializer,
        description="What each server recorded of a camera over a range: spans per server (a copy merged back "
        "after a failback names the server that recorded it), the gaps where nobody did, the source played at "
        "each moment (the active server's, the other's where it has a gap), and the camera's events.",
    )
    def get(self, request, pk: int):
        camera = camera_for(request, pk)
        query = RangeSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        since, until = query.validated_data["since"], query.validated_data["until"]
        line = timeline.for_camera(camera, since, until)
        events = Event.objects.filter(camera=camera, at__gte=since, at__lte=until).order_by("at")
        return Response(RecordingsSerializer({"camera": camera, "line": line, "events": events}).data)
