"""The audit log: configuration changes (through model signals) and manual actions, with the user.

The user comes from the request being served (``AuditMiddleware``); DRF sets the token user on
the same request, so API changes carry it too. Changes made outside a request (management
commands, the engine) are recorded without a user. Secrets are never written: an encrypted field
shows only whether it was set.
"""

import contextvars
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.utils import timezone

from accounts.models import AuditAction, AuditEntry
from utilities.encryption import EncryptedTextField

_request = contextvars.ContextVar("audit_request", default=None)
SECRET = "(secret)"
NEW_SECRET = "(new secret)"
# Fields that change by themselves, not by anyone's configuration.
IGNORED = {"last_login"}
SECRET_NAMES = {"password"}


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def current_user():
    user = getattr(_request.get(), "user", None)
    return user if user is not None and user.is_authenticated else None


def _secret_fields(model) -> set[str]:
    fields = model._meta.concrete_fields
    return {f.attname for f in fields if isinstance(f, EncryptedTextField) or f.name in SECRET_NAMES}


def _values(instance) -> dict:
    """Field values as stored (secrets in clear, in memory only: they are masked before writing)."""
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields if f.attname not in IGNORED}


def _masked(model, values: dict, new_secret: set[str] = frozenset()) -> dict:
    secrets = _secret_fields(model)
    shown = {key: (NEW_SECRET if key in new_secret else SECRET) if key in secrets and value else
             ("" if key in secrets else value) for key, value in values.items()}  # fmt: skip
    return json.loads(json.dumps(shown, cls=DjangoJSONEncoder))


def snapshot(instance) -> dict:
    """The object's fields as the audit log shows them."""
    return _masked(type(instance), _values(instance))


def record(action: str, obj, before=None, after=None, user=None) -> AuditEntry:
    user = user or current_user()
    return AuditEntry.objects.create(
        at=timezone.now(), user=user, username=user.get_username() if user else "", action=action,
        object_type=obj._meta.label_lower, object_id=str(obj.pk or ""), object_repr=str(obj)[:200],
        before=before, after=after,
    )  # fmt: skip


def _before_save(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None or instance._state.adding:
        instance._audit_before = None
        return
    stored = sender._default_manager.filter(pk=instance.pk).first()
    instance._audit_before = _values(stored) if stored is not None else None


def _after_save(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    after = _values(instance)
    before = getattr(instance, "_audit_before", None)
    instance._audit_before = None
    if created or before is None:
        record(AuditAction.CREATED, instance, None, _masked(sender, after))
        return
    changed = {key for key, value in after.items() if before.get(key) != value}
    if not changed:
        return
    new_secrets = changed & _secret_fields(sender)
    record(AuditAction.CHANGED, instance, _masked(sender, {k: before.get(k) for k in changed}),
           _masked(sender, {k: after[k] for k in changed}, new_secrets))  # fmt: skip


def _after_delete(sender, instance, **kwargs):
    record(AuditAction.DELETED, instance, snapshot(instance), None)


def track(model) -> None:
    """Record every create, change and delete of ``model``."""
    uid = f"audit-{model._meta.label_lower}"
    pre_save.connect(_before_save, sender=model, dispatch_uid=uid)
    post_save.connect(_after_save, sender=model, dispatch_uid=uid)
    post_delete.connect(_after_delete, sender=model, dispatch_uid=uid)


def _groups_changed(sender, instance, action, pk_set, model, **kwargs):
    """A user's roles are configuration too: record who gave or took them."""
    if not hasattr(instance, "get_username"):  # changed from the group's side: group.user_set.add(...)
        if action in ("post_add", "post_remove"):
            change = "groups_added" if action == "post_add" else "groups_removed"
            for user in model.objects.filter(pk__in=pk_set or ()):
                record(AuditAction.CHANGED, user, None, {change: [instance.name]})
        return
    if action == "pre_clear":
        instance._audit_cleared_groups = sorted(instance.groups.values_list("name", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        names = getattr(instance, "_audit_cleared_groups", [])
    else:
        names = sorted(model.objects.filter(pk__in=pk_set or ()).values_list("name", flat=True))
    change = {"post_add": "added", "post_remove": "removed", "post_clear": "removed"}[action]
    record(AuditAction.CHANGED, instance, None, {"groups_" + change: names})


def track_roles(user_model) -> None:
    m2m_changed.connect(_groups_changed, sender=user_model.groups.through, dispatch_uid="audit-user-groups")


def record_changes(changes, user=None) -> None:
    """Many changes at once (``(obj, before, after)``), for bulk updates that send no signals."""
    user = user or current_user()
    now = timezone.now()
    AuditEntry.objects.bulk_create(
        AuditEntry(
            at=now,
            user=user,
            username=user.get_username() if user else "",
            action=AuditAction.CHANGED,
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            before=before,
            after=after,
        )  # fmt: skip
        for obj, before, after in changes
    )
