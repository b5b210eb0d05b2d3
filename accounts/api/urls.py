from rest_framework.routers import SimpleRouter
from rest_framework.urlpatterns import format_suffix_patterns

from accounts.api.views import AuditEntryViewSet

router = SimpleRouter()
router.register("audit", AuditEntryViewSet)
urlpatterns = format_suffix_patterns(router.urls)
