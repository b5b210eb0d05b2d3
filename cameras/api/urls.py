from rest_framework.routers import SimpleRouter
from rest_framework.urlpatterns import format_suffix_patterns

from cameras.api.views import CameraViewSet

router = SimpleRouter()
router.register("cameras", CameraViewSet)
urlpatterns = format_suffix_patterns(router.urls)
