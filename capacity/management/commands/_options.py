"""What the capacity commands share: choosing a multiserver system by name."""

from django.core.management.base import CommandError

from servers.models import MultiserverSystem


def system_id(name: str | None) -> int | None:
    if not name:
        return None
    system = MultiserverSystem.objects.filter(name=name).first()
    if system is None:
        known = ", ".join(MultiserverSystem.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"No multiserver system {name!r}. Known: {known}.")
    return system.pk
