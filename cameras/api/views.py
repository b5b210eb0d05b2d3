from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.scope import ScopedQuerysetMixin
from cameras.api.serializers import BackupAssignmentsSerializer, CameraSerializer
from cameras.models import Camera
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups
from servers.models import Server


class CanChangeCameras(permissions.DjangoModelPermissions):
    """Assigning backups changes cameras: it needs the change permission, not the add one."""

    perms_map = {**permissions.DjangoModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class CameraViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    queryset = Camera.objects.with_servers()
    serializer_class = CameraSerializer
    filterset_fields = ["primary_server", "backup_server", "enabled", "failover_priority", "codec"]
    search_fields = ["name"]

    @extend_schema(
        request=BackupAssignmentsSerializer,
        responses={
            200: CameraSerializer(many=True),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Nothing changed. A malformed body gets field errors; a rule broken by any item gets "
                '{"assignments": [...]} with one object of errors per item, in order.',
            ),
        },
        description="Set or clear the backup server of many cameras at once. All items are applied or none: "
        "when any item breaks a rule, the response lists the errors per item and nothing changes.",
    )
    @action(detail=False, methods=["post"], url_path="assign-backup", permission_classes=[CanChangeCameras],
            filter_backends=[], pagination_class=None)  # fmt: skip
    def assign_backup(self, request):
        payload = BackupAssignmentsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        items = payload.validated_data["assignments"]
        try:
            assign_backups([BackupAssignment(item["camera"], item["backup_server"]) for item in items],
                           cameras=Camera.objects.restrict(request.user),
                           servers=Server.objects.restrict(request.user))  # fmt: skip
        except BackupAssignmentError as exc:
            errors = [{"backup_server": exc.errors[i]} if i in exc.errors else {} for i in range(len(items))]
            return Response({"assignments": errors}, status=status.HTTP_400_BAD_REQUEST)
        cameras = self.get_queryset().filter(pk__in=[item["camera"] for item in items])
        return Response(CameraSerializer(cameras, many=True).data)
