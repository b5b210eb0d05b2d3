"""Backup readiness in the API: ask a camera's backup to check it now, and the report of every camera's last check."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import requires
from cameras.models import Camera
from recording.models import BackupCheck
from redundancy.readiness import ReadinessRow, readiness_report
from utilities.ids import query_id

REPORT = ("cameras.view_camera", "servers.view_server", "recording.view_backupcheck")


class BackupCheckSerializer(serializers.Serializer):
    """A ``redundancy.readiness.ReadinessRow``: a camera, its backup and that backup's last check of it (or none)."""

    camera = serializers.IntegerField(source="camera.pk")
    camera_name = serializers.CharField(source="camera.name")
    backup_server = serializers.IntegerField(source="server.pk")
    backup_server_name = serializers.CharField(source="server.name")
    # A row never checked has no check: these read as null (or empty).
    checked_at = serializers.DateTimeField(source="check.checked_at", allow_null=True,
                                           help_text="When the backup last checked it; null: never.")  # fmt: skip
    ok = serializers.BooleanField(allow_null=True, help_text="It opened the stream and read a keyframe; null: never "
                                  "checked.")  # fmt: skip
    detail = serializers.CharField(source="check.detail", default="",
                                   help_text="Why the last check failed; empty when it passed.")  # fmt: skip
    keyframe_seconds = serializers.FloatField(source="check.keyframe_seconds", allow_null=True,
                                              help_text="Seconds from connecting to a keyframe.")  # fmt: skip
    requested_at = serializers.DateTimeField(source="check.requested_at", allow_null=True,
                                             help_text="A check asked for and not yet done.")  # fmt: skip
    result = serializers.CharField(help_text="The result in words.")


class CanChangeCamera(permissions.BasePermission):
    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.has_perm("cameras.change_camera"))


class BackupCheckRequestView(APIView):
    permission_classes = [CanChangeCamera]

    @extend_schema(
        request=None,
        responses={202: BackupCheckSerializer, 400: OpenApiResponse(description="The camera has no backup server.")},
        description="Ask the camera's backup server to check now that it can open the camera and read a keyframe "
        "(nothing is recorded). Accepted: the backup's agent checks it within seconds; GET /api/backup-checks/ "
        "has the result.",
    )
    def post(self, request, pk):
        camera = get_object_or_404(Camera.objects.with_servers().restrict(request.user), pk=pk)
        if camera.backup_server_id is None:
            return Response({"detail": f"{camera.name} has no backup server to check it."}, status=400)
        check = BackupCheck.objects.request(camera)
        return Response(BackupCheckSerializer(ReadinessRow(camera, check)).data, status=status.HTTP_202_ACCEPTED)


class BackupCheckListView(generics.ListAPIView):
    permission_classes = [requires(*REPORT)]
    serializer_class = BackupCheckSerializer
    filter_backends = []

    @extend_schema(
        description="Every camera with a backup server, with the time and result of the backup's last readiness "
        "check of it (failed first; never checked: ok and checked_at null).",
        parameters=[
            OpenApiParameter("backup_server", int, description="Only the cameras this server backs up."),
            OpenApiParameter("ok", bool, description="false: only failed checks; true: only passed ones."),
        ],
    )
    def get(self, request, *args, **kwargs):
        self.server_id = query_id(request.query_params.get("backup_server", ""))
        self.ok = request.query_params.get("ok", "").lower()
        bad_server = self.server_id is None and request.query_params.get("backup_server")
        if bad_server or self.ok not in ("", "true", "false"):
            return Response({"detail": "backup_server takes a server's id, ok true or false."}, status=400)
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        cameras = Camera.objects.restrict(self.request.user)
        if self.server_id is not None:
            cameras = cameras.filter(backup_server_id=self.server_id)
        rows = readiness_report(cameras)
        if self.ok:
            rows = [row for row in rows if row.ok is (self.ok == "true")]
        return rows
