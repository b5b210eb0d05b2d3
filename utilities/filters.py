"""Filters the API's list endpoints share."""

from datetime import UTC

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        value = super().to_python(value)
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                raise ValidationError("This time is out of range once converted to UTC.", code="invalid") from None
        return value


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time with any offset Python accepts, compared in UTC: PostgreSQL refuses offsets
    beyond ±15:59, and a time that leaves the calendar once moved to UTC is a clear 400."""

    field_class = UtcIsoDateTimeField


class TimeRangeFilterSet(django_filters.FilterSet):
    """``since`` (inclusive) and ``until`` (exclusive) on a model's ``at`` time."""

    since = UtcDateTimeFilter(field_name="at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="at", lookup_expr="lt")
