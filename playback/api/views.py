import time
from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import requires
from cameras.models import Camera
from playback import timeline
from playback.api.serializers import ExportRequestSerializer, ExportSerializer, RecordingsSerializer
from playback.models import Export, ExportState
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
    return get_object_or_404(Camera.objects.with_servers().restrict(request.user), pk=pk)


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
        line.gaps = timeline.settled_gaps(line, time.time(), timeline.open_segment_seconds(line))
        events = Event.objects.filter(camera=camera, at__gte=since, at__lte=until).order_by("at")
        return Response(RecordingsSerializer({"camera": camera, "line": line, "events": events}).data)


# Exports: what playback shows, and the exports themselves; making one also needs the add permission.
EXPORTS = (*PLAYBACK, "playback.view_export")


class ExportPermission(BasePermission):
    def has_permission(self, request, view):
        perms = EXPORTS if request.method in SAFE_METHODS else (*EXPORTS, "playback.add_export")
        return bool(request.user and request.user.is_authenticated and request.user.has_perms(perms))


class ExportsView(GenericAPIView):
    permission_classes = [ExportPermission]
    serializer_class = ExportSerializer
    filter_backends = []

    def get_queryset(self):
        return Export.objects.filter(camera=self.camera)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.camera = camera_for(request, kwargs["pk"])

    @extend_schema(responses=ExportSerializer(many=True), description="The camera's exports, newest first.")
    def get(self, request, pk: int):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=ExportRequestSerializer,
        responses={202: ExportSerializer},
        description="Export a range of the camera's recordings as one MP4 (stream copy from whichever servers "
        "recorded it) with a JSON manifest (spans per server, gaps, frame counts, the file's SHA-256). The job "
        "is made by the export worker: follow its progress, then its download and manifest links. A range with "
        "nothing recorded, longer than 24 hours or ending before it starts is refused (400).",
    )
    def post(self, request, pk: int):
        given = ExportRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            job = Export.request(self.camera, request.user, given.validated_data["since"],
                                 given.validated_data["until"])  # fmt: skip
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportView(ExportsView):
    http_method_names = ["get", "head", "options"]

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["export"])

    @extend_schema(responses=ExportSerializer, description="One export: its state, progress and links.")
    def get(self, request, pk: int, export: int):
        return Response(self.get_serializer(self.get_object()).data)


class NotDone(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The export is not done yet."


def finished(job: Export) -> Export:
    if job.state != ExportState.DONE:
        state = job.get_state_display().lower()
        raise NotDone(job.error if job.state == ExportState.FAILED else f"The export is {state}; its file is there "
                      "once it is done.")  # fmt: skip
    return job


class ExportDownloadView(ExportView):
    @extend_schema(responses={(200, "video/mp4"): OpenApiTypes.BINARY, 409: None},
                   description="The exported MP4, as an attachment.")  # fmt: skip
    def get(self, request, pk: int, export: int):
        job = finished(self.get_object())
        try:
            file = open(job.file, "rb")  # noqa: SIM115 (FileResponse closes it)
        except OSError:
            raise NotFound("The exported file is no longer there.") from None
        return FileResponse(file, as_attachment=True, filename=job.file_name, content_type="video/mp4")


class ExportManifestView(ExportView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT, 409: None},
                   description="The export's manifest: camera, range, file (name, size, SHA-256), codec, frames, "
                   "the spans each server contributed, the gaps, the segments read with their checksums.")  # fmt: skip
    def get(self, request, pk: int, export: int):
        return Response(finished(self.get_object()).manifest)
