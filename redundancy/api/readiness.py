"""Backup readiness in the API: ask a camera's backup to check it now, and the report of every camera's last check."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import requires
from accounts.scope import limit
from cameras.models import Camera
from eocortex_web.ids import query_id
from recording.models import BackupCheck
from redundancy.readiness import readiness_report

REPORT = ("cameras.view_camera", "servers.view_server", "recording.view_backupcheck")


class BackupCheckSerializer(serializers.Serializer):
    camera = serializers.IntegerField(source="camera.pk")
    camera_name = serializers.CharField(source="camera.name")
    backup_server = serializers.IntegerField(source="server.pk")
    backup_server_name = serializers.CharField(source="server.name")
    checked_at = serializers.DateTimeField(allow_null=True, help_text="When the backup last checked it; null: never.")
    ok = serializers.BooleanField(allow_null=True, help_text="It opened the stream and read a keyframe; null: never "
                                  "checked.")  # fmt: skip
    detail = serializers.CharField(allow_blank=True, help_text="Why the last check failed; empty when it passed.")
    keyframe_seconds = serializers.FloatField(allow_null=True, help_text="Seconds from connecting to a keyframe.")
    requested_at = serializers.DateTimeField(allow_null=True, help_text="A check asked for and not yet done.")
    result = serializers.CharField(help_text="The result in words.")


class _Row:
    """A report row or a stored check, as the serializer reads them."""

    def __init__(self, camera, check: BackupCheck | None):
        self.camera, self.server, self.check = camera, camera.backup_server, check
        for name in ("checked_at", "ok", "keyframe_seconds", "requested_at"):
            setattr(self, name, getattr(check, name) if check else None)
        self.detail = check.detail if check else ""
        self.result = check.result if check else "never checked"


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
        camera = get_object_or_404(limit(Camera.objects.with_servers(), request.user, "primary_server__system"), pk=pk)
        if camera.backup_server_id is None:
            return Response({"detail": f"{camera.name} has no backup server to check it."}, status=400)
        check = BackupCheck.objects.request(camera)
        return Response(BackupCheckSerializer(_Row(camera, check)).data, status=status.HTTP_202_ACCEPTED)


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
        cameras = limit(Camera.objects.all(), self.request.user, "primary_server__system")
        if self.server_id is not None:
            cameras = cameras.filter(backup_server_id=self.server_id)
        rows = readiness_report(cameras)
        if self.ok:
            rows = [row for row in rows if row.ok is (self.ok == "true")]
        return [_Row(row.camera, row.check) for row in rows]
