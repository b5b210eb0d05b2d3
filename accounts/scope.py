"""Which multiserver systems a user may see and act on: the object-level check of pages, API and
live updates. Querysets are narrowed by the lookup path from their model to its system."""

from django.db.models import Q
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.validators import UniqueValidator

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


NOT_AVAILABLE = "This name is not available."


def taken_elsewhere(model, field: str, value, user, instance=None) -> bool:
    """The value is taken by an object outside the user's systems: a refusal must not say so."""
    path = SYSTEM_PATHS.get(model._meta.label_lower)
    if path is None or allowed_systems(user) is None:
        return False
    others = model._default_manager.filter(**{field: value})
    if instance is not None and instance.pk:
        others = others.exclude(pk=instance.pk)
    return others.exists() and not limit(others, user, path).exists()


class _ScopedUniqueValidator(UniqueValidator):
    """Unique across the site; a clash with another system's object is worded without naming it."""

    requires_context = True

    def __init__(self, original: UniqueValidator, user):
        super().__init__(original.queryset, original.message, original.lookup)
        self.user = user

    def __call__(self, value, serializer_field):
        try:
            super().__call__(value, serializer_field)
        except serializers.ValidationError:
            instance = getattr(serializer_field.parent, "instance", None)
            if taken_elsewhere(self.queryset.model, serializer_field.source, value, self.user, instance):
                raise serializers.ValidationError(NOT_AVAILABLE, code="unique") from None
            raise


class ScopedUniqueFormMixin:
    """For model forms with a ``user``: a unique value taken in another system is refused in words
    that do not confirm it exists."""

    def validate_unique(self):
        super().validate_unique()
        user = getattr(self, "user", None)
        for name in list(self.errors):
            if name in self.fields and any(e.code == "unique" for e in self.errors.as_data()[name]):
                value = self.fields[name].clean(self.data.get(self.add_prefix(name)))  # cleaned_data lost it
                if taken_elsewhere(self._meta.model, name, value, user, self.instance):
                    self.errors[name] = self.error_class([NOT_AVAILABLE])


class CreatesSystems(BasePermission):
    """Only users not limited to some systems create one: a limited user could not see it."""

    def has_permission(self, request, view):
        return request.method != "POST" or allowed_systems(request.user) is None


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
        if user is not None:
            for field in fields.values():
                field.validators = [_ScopedUniqueValidator(v, user) if type(v) is UniqueValidator else v
                                    for v in field.validators]  # fmt: skip
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
