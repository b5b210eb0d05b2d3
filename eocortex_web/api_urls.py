from rest_framework.routers import DefaultRouter

from cameras.api.views import CameraViewSet
from servers.api.views import LicenseViewSet, MultiserverSystemViewSet, ServerViewSet

router = DefaultRouter()
router.register("systems", MultiserverSystemViewSet)
router.register("servers", ServerViewSet)
router.register("licenses", LicenseViewSet)
router.register("cameras", CameraViewSet)
urlpatterns = router.urls
