from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView
from django_prometheus.exports import ExportToDjangoView
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
    # For Prometheus, load balancers and orchestrators: no sign-in, no data of the site, GET and HEAD only.
    path("metrics", csrf_exempt(require_safe(ExportToDjangoView)), name="metrics"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
]
