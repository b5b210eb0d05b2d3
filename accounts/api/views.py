import django_filters
from rest_framework import permissions, serializers, viewsets

from accounts.models import AuditAction, AuditEntry
from accounts.querysets import allowed_systems
from utilities.filters import TimeRangeFilterSet


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "user", "username", "action", "object_type", "object_id", "object_repr", "before",
                  "after"]  # fmt: skip


class AuditFilter(TimeRangeFilterSet):
    action = django_filters.MultipleChoiceFilter(choices=AuditAction.choices)

    class Meta:
        model = AuditEntry
        fields = ["user", "action", "object_type", "object_id", "since", "until"]


class CanReadAuditLog(permissions.BasePermission):
    """Administrators of the whole site only: the log shows who changed what in every system."""

    def has_permission(self, request, view):
        return request.user.has_perm("accounts.view_auditentry") and allowed_systems(request.user) is None


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    permission_classes = [permissions.IsAuthenticated, CanReadAuditLog]
    filterset_class = AuditFilter
    ordering_fields = ["at"]
