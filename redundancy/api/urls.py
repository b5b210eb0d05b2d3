from django.urls import path
from rest_framework.routers import SimpleRouter
from rest_framework.urlpatterns import format_suffix_patterns

from redundancy.api.readiness import BackupCheckListView, BackupCheckRequestView
from redundancy.api.views import DrainView, EventViewSet, FailBackView, StatusView

router = SimpleRouter()
router.register("events", EventViewSet)
urlpatterns = [
    path("status/", StatusView.as_view(), name="status"),
    path("servers/<int:pk>/drain/", DrainView.as_view(), name="server-drain"),
    path("servers/<int:pk>/fail-back/", FailBackView.as_view(), name="server-fail-back"),
    path("cameras/<int:pk>/backup-check/", BackupCheckRequestView.as_view(), name="camera-backup-check"),
    path("backup-checks/", BackupCheckListView.as_view(), name="backup-checks"),
    *format_suffix_patterns(router.urls),
]
