"""Operators and administrators, and the audit log of what they changed."""

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from accounts.roles import ADMINISTRATORS, OPERATORS
from cameras.models import Camera


def _user(name, role):
    user = User.objects.create_user(name, f"{name}@example.com", "a-long-test-passphrase")
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def operator(db):
    return _user("olga", OPERATORS)


@pytest.fixture
def administrator(db):
    return _user("adam", ADMINISTRATORS)


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_operators_watch_and_act_but_do_not_configure(operator, site, make_camera, client):
    camera = make_camera(site["a"], site["b"])
    api = _api(operator)
    assert api.get("/api/cameras/").status_code == 200
    assert api.get("/api/status/").status_code == 200
    assert api.post(f"/api/servers/{site['a'].pk}/drain/").status_code == 202
    assert api.post(f"/api/servers/{site['a'].pk}/fail-back/").status_code == 202
    assert api.patch(f"/api/cameras/{camera.pk}/", {"backup_server": site["c"].pk}, format="json").status_code == 403
    assert api.post("/api/cameras/assign-backup/", {"assignments": [{"camera": camera.pk, "backup_server": None}]},
                    format="json").status_code == 403  # fmt: skip
    assert api.get("/api/audit/").status_code == 403
    client.force_login(operator)
    assert client.get(f"/servers/{site['a'].pk}/").status_code == 200
    assert client.post(f"/servers/{site['a'].pk}/backup-settings/", {"fast_redundancy": "on"}).status_code == 403
    camera.refresh_from_db()
    assert camera.backup_server == site["b"]


def test_administrators_configure_and_read_the_audit_log(administrator, site, make_camera):
    camera = make_camera(site["a"], site["b"])
    api = _api(administrator)
    assert api.patch(f"/api/cameras/{camera.pk}/", {"backup_server": site["c"].pk}, format="json").status_code == 200
    assert api.patch(f"/api/servers/{site['a'].pk}/", {"max_inbound_mbps": 500}, format="json").status_code == 200
    log = api.get("/api/audit/", {"object_type": "cameras.camera"}).json()["results"]
    change = next(e for e in log if e["action"] == "changed")
    assert change["username"] == "adam"
    assert change["before"] == {"backup_server_id": site["b"].pk}
    assert change["after"] == {"backup_server_id": site["c"].pk}


def test_every_configuration_change_is_recorded_with_before_and_after(api, admin_user, site):
    response = api.post("/api/cameras/", {"name": "gate", "stream_url": "rtsp://127.0.0.1:8554/gate",
                                          "primary_server": site["a"].pk, "password": "planted-Secret-77"},
                        format="json")  # fmt: skip
    assert response.status_code == 201
    camera_id = response.json()["id"]
    api.patch(f"/api/cameras/{camera_id}/", {"password": "another-Secret-88", "fps": 12}, format="json")
    api.post("/api/cameras/assign-backup/", {"assignments": [{"camera": camera_id, "backup_server": site["b"].pk}]},
             format="json")  # fmt: skip
    api.delete(f"/api/cameras/{camera_id}/")
    entries = list(AuditEntry.objects.filter(object_type="cameras.camera", object_id=str(camera_id)).order_by("id"))
    assert [e.action for e in entries] == ["created", "changed", "changed", "deleted"]
    assert all(e.username == "root" for e in entries)
    created, edited, assigned, deleted = entries
    assert created.after["password"] == "(secret)" and created.after["name"] == "gate"
    assert edited.before == {"fps": 25, "password": "(secret)"}
    assert edited.after == {"fps": 12, "password": "(new secret)"}
    assert assigned.after == {"backup_server_id": site["b"].pk}
    assert deleted.before["name"] == "gate" and deleted.after is None
    text = str([(e.before, e.after, e.object_repr) for e in entries])
    assert "planted-Secret-77" not in text and "another-Secret-88" not in text


def test_manual_actions_are_recorded(operator, site):
    api = _api(operator)
    api.post(f"/api/servers/{site['a'].pk}/drain/")
    api.post(f"/api/servers/{site['a'].pk}/fail-back/")
    actions = list(AuditEntry.objects.filter(object_type="servers.server").values_list("action", "username"))
    assert ("drain", "olga") in actions and ("fail_back", "olga") in actions


def test_role_changes_are_recorded(admin_client, admin_user, operator):
    operator.groups.add(Group.objects.get(name=ADMINISTRATORS))
    entry = AuditEntry.objects.filter(object_type="auth.user", object_id=str(operator.pk)).latest("id")
    assert entry.after == {"groups_added": [ADMINISTRATORS]}


def test_unchanged_saves_write_nothing(site):
    count = AuditEntry.objects.count()
    site["a"].save()
    assert AuditEntry.objects.count() == count


def test_engine_and_commands_are_recorded_without_a_user(make_camera, site):
    camera = make_camera(site["a"])
    entry = AuditEntry.objects.get(object_type="cameras.camera", object_id=str(camera.pk))
    assert entry.user is None and entry.username == ""
    assert Camera.objects.filter(pk=camera.pk).exists()


def test_the_audit_log_is_read_only_in_the_admin(admin_client, site):
    assert admin_client.get("/admin/accounts/auditentry/").status_code == 200
    assert admin_client.get("/admin/accounts/auditentry/add/").status_code == 403
