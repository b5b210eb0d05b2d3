from django.urls import path
from rest_framework.routers import DefaultRouter

from accounts.api.views import AuditEntryViewSet
from cameras.api.views import CameraViewSet
from capacity.api.views import CapacityView, EstimateView, ProposalView
from redundancy.api.views import DrainView, EventViewSet, FailBackView, StatusView
from servers.api.views import LicenseViewSet, MultiserverSystemViewSet, ServerViewSet

router = DefaultRouter()
router.register("systems", MultiserverSystemViewSet)
router.register("servers", ServerViewSet)
router.register("licenses", LicenseViewSet)
router.register("cameras", CameraViewSet)
router.register("events", EventViewSet)
router.register("audit", AuditEntryViewSet)
urlpatterns = [
    path("status/", StatusView.as_view(), name="status"),
    path("capacity/", CapacityView.as_view(), name="capacity"),
    path("capacity/estimate/", EstimateView.as_view(), name="capacity-estimate"),
    path("capacity/proposal/", ProposalView.as_view(), name="capacity-proposal"),
    path("servers/<int:pk>/drain/", DrainView.as_view(), name="server-drain"),
    path("servers/<int:pk>/fail-back/", FailBackView.as_view(), name="server-fail-back"),
    *router.urls,
]
