"""Which multiserver systems a user may see and act on: the object-level check of pages, API and
live updates. Querysets are narrowed by the lookup path from their model to its system."""

from django.db.models import Q
from django_filters.rest_framework import DjangoFilterBackend

from accounts.models import SystemAccess

# The lookup path from each model whose objects can be chosen to the id of its system.
SYSTEM_PATHS = {
    "servers.multiserversystem": "pk",
    "servers.server": "system",
    "servers.license": "server__system",
    "cameras.camera": "primary_server__system",
}


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


def limit(queryset, user, *paths: str):
    """``queryset`` narrowed to the user's systems; ``paths`` lead from its model to the system id."""
    systems = allowed_systems(user)
    if systems is None:
        return queryset
    condition = Q()
    for path in paths:
        condition |= Q(**{f"{path}__in": systems})
    return queryset.filter(condition).distinct() if len(paths) > 1 else queryset.filter(condition)


def may_see(user, system_id: int | None) -> bool:
    systems = allowed_systems(user)
    return systems is None or system_id in systems


class ScopedQuerysetMixin:
    """For API views: only the objects of the user's systems exist (``scope_paths`` lead to the system)."""

    scope_paths: tuple[str, ...] = ()

    def get_queryset(self):
        return limit(super().get_queryset(), self.request.user, *self.scope_paths)


class ScopedChoicesMixin:
    """For serializers: related objects outside the user's systems cannot be chosen
    (``scoped_choices`` maps a field to the path from its model to the system)."""

    scoped_choices: dict[str, str] = {}

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        user = getattr(request, "user", None)
        for name, path in self.scoped_choices.items():
            field = fields.get(name)
            if field is not None and getattr(field, "queryset", None) is not None and user is not None:
                field.queryset = limit(field.queryset, user, path)
        return fields


class ScopedFilterBackend(DjangoFilterBackend):
    """django-filter, with the choices of every filter on a related object narrowed to the user's
    systems: the browsable API offers nothing else, and another system's id is refused exactly as
    an id that does not exist."""

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is not None:
            for filter_ in filterset.filters.values():
                choices = getattr(filter_, "queryset", None)
                path = SYSTEM_PATHS.get(choices.model._meta.label_lower) if choices is not None else None
                if path is not None:
                    filter_.queryset = limit(choices, request.user, path)
        return filterset
