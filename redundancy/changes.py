"""The configuration changes the Events page shows beside the engine's transitions, for administrators: entries of
the audit log (``accounts.AuditEntry``) of the user's systems, worded field by field, secrets never shown.

An entry names its object by type and id, and holds the fields it changed (a creation or a deletion holds them
all). Its system is found from both: the object as it is now (``restrict`` of its model), or, for an object since
deleted or moved, the system or server id its entry recorded. An entry whose system cannot be told (a license
deleted with its server) is shown only to users of the whole site, as are users, roles and system access, which
belong to no system.
"""

from dataclasses import dataclass, field

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db.models import CharField, IntegerField, Q, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from accounts import audit
from accounts.models import AuditAction, AuditEntry
from accounts.querysets import allowed_systems, restricted
from cameras.models import Camera
from servers.models import License, Server
from utilities.encryption import EncryptedTextField

# Who reads the audit log: the Administrators role (accounts/roles.py) and superusers.
AUDIT_PERMISSION = "accounts.view_auditentry"
# Ids the entries' snapshots hold, by which an object since deleted or moved is placed in a system.
SNAPSHOT_IDS = ("system_id", "server_id", "primary_server_id", "backup_server_id")


def may_see_changes(user) -> bool:
    return user.has_perm(AUDIT_PERMISSION)


def _text_ids(queryset):
    """The objects' ids as text, as ``AuditEntry.object_id`` holds them."""
    return queryset.order_by().annotate(text_id=Cast("pk", CharField())).values("text_id")


def _recorded(key: str, values) -> Q:
    """The entry recorded ``key`` (before or after the change) as one of ``values``."""
    return Q(**{f"before_{key}__in": values}) | Q(**{f"after_{key}__in": values})


def configuration_changes(user, server_id: int | None = None, camera_id: int | None = None):
    """The audit entries the user may see beside the events, newest first, narrowed like the events to a server
    (the server, its settings, its licenses and the cameras it records or backs up) or a camera. Acknowledgements
    are not among them: the event itself shows who acknowledged it."""
    entries = AuditEntry.objects.exclude(action=AuditAction.ACKNOWLEDGED).annotate(**{
        f"{side}_{key}": Cast(KeyTextTransform(key, side), IntegerField())
        for side in ("before", "after") for key in SNAPSHOT_IDS
    })  # fmt: skip
    systems = allowed_systems(user)
    if systems is not None:
        servers = Server.objects.restrict(user).order_by().values("pk")
        entries = entries.filter(
            Q(object_type__in=("servers.multiserversystem", "servers.mailsettings"),  # their id is the system's
              object_id__in=[str(pk) for pk in systems])
            | Q(object_type="servers.server") & (Q(object_id__in=_text_ids(Server.objects.restrict(user)))
                                                 | _recorded("system_id", systems))
            | Q(object_type="servers.redundancysettings", object_id__in=_text_ids(Server.objects.restrict(user)))
            | Q(object_type="servers.license") & (Q(object_id__in=_text_ids(License.objects.restrict(user)))
                                                  | _recorded("server_id", servers))
            | Q(object_type="cameras.camera") & (Q(object_id__in=_text_ids(Camera.objects.restrict(user)))
                                                 | _recorded("primary_server_id", servers))
        )  # fmt: skip
    if server_id is not None:
        cameras = Camera.objects.filter(Q(primary_server_id=server_id) | Q(backup_server_id=server_id))
        licenses = License.objects.filter(server_id=server_id)
        entries = entries.filter(
            Q(object_type__in=("servers.server", "servers.redundancysettings"), object_id=str(server_id))
            | Q(object_type="servers.license") & (Q(object_id__in=_text_ids(licenses))
                                                  | _recorded("server_id", [server_id]))
            | Q(object_type="cameras.camera") & (Q(object_id__in=_text_ids(cameras))
                                                 | _recorded("primary_server_id", [server_id])
                                                 | _recorded("backup_server_id", [server_id]))
        )  # fmt: skip
    if camera_id is not None:
        entries = entries.filter(object_type="cameras.camera", object_id=str(camera_id))
    return entries


def in_time_order(events, changes):
    """Events and changes merged newest first, as ``(at, source, pk)`` rows that a paginator counts and slices in
    the database (``source`` is "change" or "event")."""
    def keys(queryset, source):
        return queryset.order_by().annotate(source=Value(source, output_field=CharField())).values_list(
            "at", "source", "pk")

    return keys(events, "event").union(keys(changes, "change"), all=True).order_by("-at", "source", "-pk")


@dataclass
class FieldChange:
    name: str
    before: str
    after: str


@dataclass
class Change:
    """An audit entry as the Events page and its CSV word it."""

    entry: AuditEntry
    what: str  # "camera gate", "video server srv-a"
    fields: list[FieldChange] = field(default_factory=list)
    camera_id: int | None = None
    server_id: int | None = None

    is_change = True

    @property
    def at(self):
        return self.entry.at

    @property
    def who(self) -> str:
        return self.entry.username or "the system (a command or the engine)"

    @property
    def summary(self) -> str:
        action = {AuditAction.CREATED: "created", AuditAction.CHANGED: "changed", AuditAction.DELETED: "deleted",
                  AuditAction.DRAIN: "started a drain of", AuditAction.FAIL_BACK: "failed back"}.get(
                      self.entry.action, self.entry.get_action_display().lower())  # fmt: skip
        return f"{self.who} {action} {self.what}"

    @property
    def details(self) -> str:
        return "; ".join(f"{c.name}: {c.before} → {c.after}" for c in self.fields)


def _model(object_type: str):
    try:
        return apps.get_model(object_type)
    except (LookupError, ValueError):
        return None


def _field(model, key: str):
    if model is None:
        return None
    for candidate in model._meta.concrete_fields:
        if key in (candidate.attname, candidate.name):
            return candidate
    try:
        return model._meta.get_field(key)
    except FieldDoesNotExist:
        return None


def _secret(model_field) -> bool:
    return isinstance(model_field, EncryptedTextField) or getattr(model_field, "name", "") in audit.SECRET_NAMES


def _shown_secret(value) -> str:
    """What a secret's stored mark says: never the secret (the audit stores only marks, and a value that is not
    one is not shown either)."""
    if not value:
        return "(none)"
    return "(new secret)" if value == audit.NEW_SECRET else "(secret)"


class _Names:
    """The names of the objects a page's entries point at (a camera's primary server...), read once per model
    and only within the user's systems: another system's object stays a number."""

    def __init__(self, user):
        self.user, self.wanted, self.found = user, {}, {}

    def want(self, model, value):
        if isinstance(value, int):
            self.wanted.setdefault(model, set()).add(value)

    def read(self):
        for model, ids in self.wanted.items():
            manager = model._default_manager
            queryset = manager.restrict(self.user) if restricted(manager.all()) else manager.all()
            self.found[model] = {pk: str(obj) for pk, obj in queryset.in_bulk(ids).items()}

    def name(self, model, value) -> str:
        return self.found.get(model, {}).get(value, f"#{value}")


def _text(model_field, value, names: _Names) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if model_field is not None and model_field.is_relation and model_field.related_model is not None:
        return names.name(model_field.related_model, value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if model_field is not None and model_field.choices:
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def worded(entries, user) -> list[Change]:
    """The entries as the page shows them: who, what object, and each field before → after."""
    names = _Names(user)
    for entry in entries:
        model = _model(entry.object_type)
        for values in (entry.before or {}, entry.after or {}):
            if not isinstance(values, dict):
                continue
            for key, value in values.items():
                model_field = _field(model, key)
                if model_field is not None and model_field.is_relation and model_field.related_model is not None:
                    names.want(model_field.related_model, value)
    names.read()
    changes = []
    for entry in entries:
        model = _model(entry.object_type)
        before = entry.before if isinstance(entry.before, dict) else {}
        after = entry.after if isinstance(entry.after, dict) else {}
        fields = []
        for key in [*before, *(k for k in after if k not in before)]:
            if key == "id":
                continue
            model_field = _field(model, key)
            label = str(model_field.verbose_name) if model_field is not None else key.replace("_", " ")
            if _secret(model_field) or key in audit.SECRET_NAMES:
                fields.append(FieldChange(label, _shown_secret(before.get(key)), _shown_secret(after.get(key))))
            else:
                fields.append(FieldChange(label, _text(model_field, before.get(key), names),
                                          _text(model_field, after.get(key), names)))  # fmt: skip
        kind = str(model._meta.verbose_name) if model is not None else entry.object_type
        change = Change(entry, f"{kind} {entry.object_repr}".strip(), fields)
        object_id = int(entry.object_id) if entry.object_id.isdigit() else None
        if entry.object_type == "cameras.camera":
            change.camera_id = object_id
        elif entry.object_type in ("servers.server", "servers.redundancysettings"):
            change.server_id = object_id
        changes.append(change)
    return changes
