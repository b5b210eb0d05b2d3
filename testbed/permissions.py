"""Permissions given to a test's user by codename."""

from django.contrib.auth.models import Permission, User


def grant(user, *codenames):
    """``user`` with these permissions added, as a fresh instance (Django caches permissions per object)."""
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)
