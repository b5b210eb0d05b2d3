"""The two roles of the product, as Django groups kept in step with the code after every migrate.

Operators watch everything and act on the engine (drain, fail back); administrators also
configure (servers, cameras, licenses, settings, users' roles) and read the audit log.
Superusers are administrators of everything.
"""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

OPERATORS = "Operators"
ADMINISTRATORS = "Administrators"

DOMAIN_APPS = ["servers", "cameras", "recording", "redundancy", "playback"]
# Operators act on the engine (drain, fail back) and hand footage over (export a camera's recordings).
OPERATE = [("redundancy", "change_serverstate"), ("playback", "add_export")]


def _permissions(condition):
    return Permission.objects.filter(condition)


def ensure_roles(**kwargs) -> None:
    operators, _ = Group.objects.get_or_create(name=OPERATORS)
    administrators, _ = Group.objects.get_or_create(name=ADMINISTRATORS)
    view = Q(content_type__app_label__in=DOMAIN_APPS, codename__startswith="view_")
    operate = Q()
    for app_label, codename in OPERATE:
        operate |= Q(content_type__app_label=app_label, codename=codename)
    operators.permissions.set(_permissions(view | operate))
    configure = Q(content_type__app_label__in=DOMAIN_APPS) | Q(content_type__app_label="accounts",
                                                                codename="view_auditentry")  # fmt: skip
    # Not authtoken: whoever may manage tokens could take anyone's, a superuser's included.
    administrators.permissions.set(_permissions(configure))
