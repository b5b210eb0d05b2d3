"""Who may read what: every page, API operation and the live socket needs the view permission of
what it shows (the Operators and Administrators roles have them; a user in no role has none)."""

from django.contrib.auth.decorators import permission_required
from rest_framework.permissions import BasePermission, DjangoModelPermissions

# The live page and its socket show servers, cameras (with where they record) and events.
LIVE = ("servers.view_server", "cameras.view_camera", "redundancy.view_event")
# The capacity planner shows servers and their cameras' estimates.
CAPACITY = ("servers.view_server", "cameras.view_camera")


def view_required(*perms: str):
    """For pages, after login_required: a 403 page for a user without every one of ``perms``."""
    return permission_required(perms, raise_exception=True)


class ModelPermissions(DjangoModelPermissions):
    """DRF's model permissions, reading included: GET needs the model's view permission."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


def requires(*perms: str) -> type[BasePermission]:
    """For API views without a model: the user must hold every one of ``perms``."""

    class Requires(BasePermission):
        def has_permission(self, request, view):
            return bool(request.user and request.user.is_authenticated and request.user.has_perms(perms))

    Requires.__name__ = f"Requires({', '.join(perms)})"
    return Requires
