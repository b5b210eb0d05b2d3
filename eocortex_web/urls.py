from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from eocortex_web import health

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="servers:list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("servers/settings/", include("cameras.settings_urls")),
    path("servers/", include("servers.urls")),
    path("cameras/", include("cameras.urls")),
    path("capacity/", include("capacity.urls")),
    path("reports/", include("reports.urls")),
    path("", include("playback.urls")),
    path("", include("playback.export_urls")),
    path("", include("redundancy.urls")),
    path("", include("redundancy.readiness_urls")),
    path("api/", include("eocortex_web.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # For Prometheus (METRICS_TOKEN as a bearer when set), load balancers and orchestrators: no sign-in, GET and HEAD.
    path("metrics", health.metrics, name="metrics"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
]
