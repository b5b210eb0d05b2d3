"""The object-level check of the API and forms, built on ``Model.objects.restrict(user)``
(``accounts.querysets``): views, choices and filters offer only the user's systems, and a unique
value taken in another system is refused without saying it exists."""

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.validators import UniqueValidator

from accounts.querysets import allowed_systems, restricted


class ScopedQuerysetMixin:
    """For API views: only the objects of the user's systems exist."""

    def get_queryset(self):
        return super().get_queryset().restrict(self.request.user)


NOT_AVAILABLE = "This name is not available."


def taken_elsewhere(model, field: str, value, user, instance=None) -> bool:
    """The value is taken by an object outside the user's systems: a refusal must not say so."""
    if not hasattr(model, "system_paths") or allowed_systems(user) is None:
        return False
    others = model._default_manager.filter(**{field: value})
    if instance is not None and instance.pk:
        others = others.exclude(pk=instance.pk)
    return others.exists() and not others.restrict(user).exists()


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
    """For serializers: related objects outside the user's systems cannot be chosen."""

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is not None:
            for field in fields.values():
                related = getattr(field, "child_relation", field)  # a many-to-many field chooses through its child
                if restricted(getattr(related, "queryset", None)):
                    related.queryset = related.queryset.restrict(user)
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
                if restricted(getattr(filter_, "queryset", None)):
                    filter_.queryset = filter_.queryset.restrict(request.user)
        return filterset
