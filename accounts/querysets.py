"""Which multiserver systems a user may see, and querysets narrowed to them.

Each model whose objects belong to a system says once how to reach it: ``system_paths``, the
lookup paths from the model to its system's id (an event concerns the systems of its server, its
target server and its camera). ``Model.objects.restrict(user)`` keeps the objects of the user's
systems, as NetBox's ``RestrictedQuerySet`` keeps the objects a user's permissions allow; pages,
API, forms, serializers, filters and live updates all narrow through it.
"""

from django.db import models
from django.db.models import Q

from accounts.models import SystemAccess


def allowed_systems(user, fresh: bool = False) -> set[int] | None:
    """The ids of the systems the user is limited to, or None for the whole site (read once per
    request; ``fresh`` reads it again, for a long-lived websocket)."""
    if user is None or not user.is_authenticated:
        return set()
    if user.is_superuser:
        return None
    if fresh or not hasattr(user, "_allowed_systems"):
        user._allowed_systems = set(SystemAccess.objects.filter(user=user).values_list("system_id", flat=True)) or None
    return user._allowed_systems


def may_see(user, system_id: int | None) -> bool:
    systems = allowed_systems(user)
    return systems is None or system_id in systems


class RestrictedQuerySet(models.QuerySet):
    """The queryset of a model with ``system_paths``."""

    def restrict(self, user):
        """The objects of the user's systems (all of them for a user of the whole site, none for
        an anonymous one)."""
        systems = allowed_systems(user)
        if systems is None:
            return self
        paths = self.model.system_paths
        condition = Q()
        for path in paths:
            condition |= Q(**{f"{path}__in": systems})
        return self.filter(condition).distinct() if len(paths) > 1 else self.filter(condition)


def restricted(queryset) -> bool:
    """A queryset or manager (DRF's related fields hold the model's manager) that can be restricted."""
    return isinstance(queryset, RestrictedQuerySet | models.Manager) and hasattr(queryset, "restrict")
