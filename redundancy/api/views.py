import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import LIVE, requires
from accounts.querysets import allowed_systems
from accounts.scope import ScopedQuerysetMixin
from protocol import live
from redundancy import actions
from redundancy.api.serializers import (
    AcknowledgeSerializer,
    ActionResultSerializer,
    EventSerializer,
    StatusSerializer,
)
from redundancy.models import Event, EventKind
from redundancy.status import read_status
from servers.models import Server
from utilities.filters import TimeRangeFilterSet


class EventFilter(TimeRangeFilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=EventKind.choices)
    acknowledged = django_filters.BooleanFilter(
        field_name="acknowledged_at", lookup_expr="isnull", exclude=True,
        label="Acknowledged (false: the events nobody acknowledged)",
    )  # fmt: skip

    class Meta:
        model = Event
        fields = ["kind", "camera", "server", "to_server", "mode", "since", "until", "acknowledged"]


class CanOperate(permissions.BasePermission):
    """Drain, fail back and acknowledging an event are operator actions on the engine's state."""

    def has_permission(self, request, view):
        return request.user.has_perm("redundancy.change_serverstate")


class EventViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Event.objects.select_related("camera", "server", "to_server")
    serializer_class = EventSerializer
    filterset_class = EventFilter
    ordering_fields = ["at"]

    @extend_schema(
        request=AcknowledgeSerializer,
        responses=EventSerializer,
        description="Say that you have seen the event, with an optional note: who and when are kept and audited. "
        "An event already acknowledged keeps its first acknowledgement, which the answer shows.",
    )
    @action(detail=True, methods=["post"], filter_backends=[],
            permission_classes=[permissions.IsAuthenticated, requires("redundancy.view_event"), CanOperate])
    def acknowledge(self, request, pk=None):
        event = self.get_object()
        body = AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        event.acknowledge(request.user, body.validated_data["note"])
        return Response(EventSerializer(event, context=self.get_serializer_context()).data)


class StatusView(APIView):
    permission_classes = [requires(*LIVE)]

    @extend_schema(
        responses=StatusSerializer,
        description="Every server's health and every camera's placement, as the engine last published them "
        "(computed on the spot for a system it has not published).",
    )
    def get(self, request):
        return Response(read_status(live.client(), allowed_systems(request.user)))


class DrainView(APIView):
    permission_classes = [permissions.IsAuthenticated, CanOperate]

    @extend_schema(
        request=None,
        responses=ActionResultSerializer,
        description="Move the server's cameras to their backups for maintenance, make-before-break.",
    )
    def post(self, request, pk):
        server = get_object_or_404(Server.objects.restrict(request.user), pk=pk)
        started = actions.drain(server, request.user)
        text = f"{server.name} is being drained." if started else f"{server.name} was already being drained."
        return Response({"detail": text}, status=202)


class FailBackView(APIView):
    permission_classes = [permissions.IsAuthenticated, CanOperate]

    @extend_schema(
        request=None,
        responses=ActionResultSerializer,
        description="End a drain and return the server's cameras now, without the hold-down.",
    )
    def post(self, request, pk):
        server = get_object_or_404(Server.objects.restrict(request.user), pk=pk)
        count = actions.fail_back(server, request.user)
        return Response({"detail": f"{count} camera(s) return to {server.name} once it records them."}, status=202)
