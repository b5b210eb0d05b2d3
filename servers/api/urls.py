from rest_framework.routers import SimpleRouter
from rest_framework.urlpatterns import format_suffix_patterns

from servers.api.views import LicenseViewSet, MultiserverSystemViewSet, ServerViewSet

router = SimpleRouter()
router.register("systems", MultiserverSystemViewSet)
router.register("servers", ServerViewSet)
router.register("licenses", LicenseViewSet)
urlpatterns = format_suffix_patterns(router.urls)
