"""The REST API under /api/: each app's own api/urls.py, and the root that lists the apps' routers."""

from importlib import import_module

from django.urls import include, path
from rest_framework.routers import DefaultRouter
from rest_framework.urlpatterns import format_suffix_patterns

APPS = ("servers", "cameras", "redundancy", "capacity", "playback", "accounts")

root = DefaultRouter()  # only for its root view: the routes are the apps'
for app in APPS:
    app_router = getattr(import_module(f"{app}.api.urls"), "router", None)
    if app_router is not None:
        root.registry.extend(app_router.registry)

urlpatterns = [
    *(path("", include(f"{app}.api.urls")) for app in APPS),
    *format_suffix_patterns([path("", root.get_api_root_view(), name="api-root")]),
]
