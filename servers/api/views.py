from rest_framework import viewsets
from rest_framework.settings import api_settings

from accounts.scope import CreatesSystems, ScopedQuerysetMixin
from servers.api.serializers import (
    LicenseSerializer,
    MultiserverSystemSerializer,
    ServerSerializer,
)
from servers.models import License, MultiserverSystem, Server


class MultiserverSystemViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, CreatesSystems]
    queryset = MultiserverSystem.objects.all()
    serializer_class = MultiserverSystemSerializer
    search_fields = ["name"]


class ServerViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    queryset = Server.objects.select_related("system", "redundancy")
    serializer_class = ServerSerializer
    filterset_fields = ["system", "redundancy__fast_redundancy", "redundancy__constant_redundancy"]


class LicenseViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    queryset = License.objects.select_related("server")
    serializer_class = LicenseSerializer
    filterset_fields = ["server", "server__system"]
