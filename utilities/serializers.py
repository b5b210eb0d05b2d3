"""Helpers shared by the apps' API serializers (and the pages that refuse a deletion as the API does)."""

import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def model_clean(instance, model, attrs: dict) -> dict:
    """Run the model's own clean() on the would-be object, so the API keeps the rules the pages keep.

    It checks a copy: a refused update leaves the instance and the database as they were.
    """
    if instance is None:
        candidate = model(**attrs)
    else:
        candidate = copy.copy(instance)
        for name, value in attrs.items():
            setattr(candidate, name, value)
    try:
        candidate.clean()
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from exc
    return attrs


def exception_handler(exc, context):
    """DRF's handler, plus: deleting something still in use is a 409 that says what uses it."""
    if isinstance(exc, ProtectedError):
        return Response({"detail": still_in_use(exc)}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)


def still_in_use(exc: ProtectedError) -> str:
    """What a refused deletion says: what still uses the object (users limited to a system are
    counted, never named)."""
    limits = [obj for obj in exc.protected_objects if obj._meta.label_lower == "accounts.systemaccess"]
    users = sorted({str(obj) for obj in exc.protected_objects if obj not in limits})
    if limits:
        users.append(f"{len(limits)} user limit(s) to it")
    shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
    return f"Still in use by: {shown}."
