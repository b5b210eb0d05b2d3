"""A user limited to one multiserver system sees and acts on nothing else: pages, API, websocket."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import SystemAccess
from accounts.roles import ADMINISTRATORS
from cameras.models import Camera
from redundancy.models import Event, EventKind
from redundancy.notifications import event_payload, events_group
from redundancy.tests.test_live import socket
from servers.models import License, MultiserverSystem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def scoped(site, make_camera):
    """Sam administers the system 'Site' only; 'Other site' has its own server and camera."""
    sam = User.objects.create_user("sam", "sam@example.com", "a-long-test-passphrase")
    sam.groups.add(Group.objects.get(name=ADMINISTRATORS))
    SystemAccess.objects.create(user=sam, system=site["system"])
    mine = make_camera(site["a"], site["b"], name="mine")
    theirs = make_camera(site["other"], name="theirs")
    Event.objects.create(at=timezone.now(), kind=EventKind.SERVER_DOWN, server=site["other"], message="other down")
    Event.objects.create(at=timezone.now(), kind=EventKind.SERVER_DOWN, server=site["a"], message="a down")
    return {"user": User.objects.get(pk=sam.pk), "mine": mine, "theirs": theirs, **site}


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_lists_and_acts_only_within_the_users_systems(scoped):
    api, other = _api(scoped["user"]), scoped["other"]
    assert {s["name"] for s in api.get("/api/servers/").json()["results"]} == {"srv-a", "srv-b", "srv-c"}
    assert {c["name"] for c in api.get("/api/cameras/").json()["results"]} == {"mine"}
    assert [e["message"] for e in api.get("/api/events/").json()["results"]] == ["a down"]
    assert [s["name"] for s in api.get("/api/systems/").json()["results"]] == ["Site"]
    status = api.get("/api/status/").json()
    assert {s["name"] for s in status["servers"]} == {"srv-a", "srv-b", "srv-c"}
    assert {c["name"] for c in status["cameras"]} == {"mine"}
    assert {s["name"] for s in api.get("/api/capacity/").json()["servers"]} == {"srv-a", "srv-b", "srv-c"}
    assert api.get(f"/api/servers/{other.pk}/").status_code == 404
    assert api.get(f"/api/cameras/{scoped['theirs'].pk}/").status_code == 404
    assert api.get(f"/api/cameras/{scoped['theirs'].pk}/recordings/").status_code == 404
    assert api.get(f"/api/cameras/{scoped['mine'].pk}/recordings/").status_code == 200
    assert api.post(f"/api/servers/{other.pk}/drain/").status_code == 404
    # Backup readiness: another system's camera cannot be checked, nor is it in the report.
    assert api.post(f"/api/cameras/{scoped['theirs'].pk}/backup-check/").status_code == 404
    assert api.post(f"/api/cameras/{scoped['mine'].pk}/backup-check/").status_code == 202
    assert [r["camera_name"] for r in api.get("/api/backup-checks/").json()["results"]] == ["mine"]
    theirs, unknown = (api.get("/api/backup-checks/", {"backup_server": pk}) for pk in (other.pk, 987654))
    assert theirs.status_code == unknown.status_code == 200 and theirs.json() == unknown.json()
    assert api.post(f"/api/servers/{scoped['a'].pk}/drain/").status_code == 202
    assert api.get("/api/capacity/", {"system": other.system_id}).status_code == 400
    # Nothing outside can be chosen or changed.
    moved = api.patch(f"/api/cameras/{scoped['mine'].pk}/", {"primary_server": other.pk}, format="json")
    assert moved.status_code == 400 and "primary_server" in moved.json()
    body = {"assignments": [{"camera": scoped["theirs"].pk, "backup_server": None}]}
    refused = api.post("/api/cameras/assign-backup/", body, format="json")
    assert refused.status_code == 400 and "does not exist" in str(refused.json())
    created = api.post("/api/licenses/", {"key": "SCOPE-0001", "server": other.pk, "ip_camera_channels": 4},
                       format="json")  # fmt: skip
    assert created.status_code == 400 and "server" in created.json()
    assert Camera.objects.get(pk=scoped["mine"].pk).primary_server == scoped["a"]


def test_pages_show_only_the_users_systems(scoped, client):
    client.force_login(scoped["user"])
    servers_page = client.get("/servers/").content.decode()
    assert "srv-a" in servers_page and "srv-other" not in servers_page
    assert client.get(f"/servers/{scoped['other'].pk}/").status_code == 404
    assert client.get(f"/cameras/{scoped['theirs'].pk}/").status_code == 404
    assert client.get(f"/cameras/{scoped['theirs'].pk}/timeline/").status_code == 404
    assert client.get(f"/live/snapshot/{scoped['theirs'].pk}.jpg").status_code == 404
    assert client.get(f"/capacity/servers/{scoped['other'].pk}/").status_code == 404
    assert client.post(f"/cameras/{scoped['theirs'].pk}/backup-check/").status_code == 404
    assert client.get(f"/servers/systems/{scoped['other'].system_id}/mail/").status_code == 404
    for url in ("/cameras/", "/live/", "/events/", "/capacity/", "/servers/settings/cameras/", "/servers/licenses/",
                "/backup-checks/"):
        page = client.get(url).content.decode()
        assert "theirs" not in page and "srv-other" not in page and "other down" not in page, url
    new = client.get("/cameras/new/").content.decode()
    assert f'value="{scoped["other"].pk}"' not in new.split('name="primary_server"')[1].split("</select>")[0]


def test_the_websocket_carries_only_the_users_systems(scoped, client):
    client.force_login(scoped["user"])
    mine, theirs = scoped["mine"], scoped["theirs"]

    async def run():
        communicator = socket(client)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        status = await communicator.receive_json_from(timeout=5)
        events = [Event(pk=901, at=timezone.now(), kind="camera_lost", camera=theirs, message="theirs lost"),
                  Event(pk=902, at=timezone.now(), kind="camera_lost", camera=mine, message="mine lost")]  # fmt: skip
        payloads = [event_payload(e) for e in events]
        await get_channel_layer().group_send(events_group(), {"type": "redundancy.events", "events": payloads})
        pushed = []
        while not any(m["type"] == "event" for m in pushed):
            pushed.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return status, pushed

    status, pushed = async_to_sync(run)()
    assert {c["name"] for c in status["status"]["cameras"]} == {"mine"}
    assert {s["name"] for s in status["status"]["servers"]} == {"srv-a", "srv-b", "srv-c"}
    # The batch held the other system's event first: had it passed, it would be the first to arrive.
    assert [m["event"]["message"] for m in pushed if m["type"] == "event"] == ["mine lost"]


def test_a_user_without_limits_sees_the_whole_site(site, make_camera, api):
    make_camera(site["other"], name="theirs")
    assert {c["name"] for c in api.get("/api/cameras/").json()["results"]} == {"theirs"}


def test_no_message_or_drop_down_names_another_systems_server(scoped, client):
    api, other = _api(scoped["user"]), scoped["other"]
    body = {"assignments": [{"camera": scoped["mine"].pk, "backup_server": other.pk}]}
    refused = api.post("/api/cameras/assign-backup/", body, format="json")
    assert refused.status_code == 400
    assert f"Server {other.pk} does not exist." in str(refused.json()) and "srv-other" not in str(refused.json())
    client.force_login(scoped["user"])
    options = client.get("/cameras/backup-options/", {"primary_server": other.pk}).content.decode()
    assert "srv-other" not in options


def test_a_limited_user_keeps_their_limit_when_systems_change(scoped):
    from django.db.models import ProtectedError

    from servers.models import MultiserverSystem

    empty = MultiserverSystem.objects.create(name="Empty site")
    SystemAccess.objects.create(user=scoped["user"], system=empty)
    with pytest.raises(ProtectedError):
        empty.delete()  # without servers, only the user's limit holds it
    assert SystemAccess.objects.filter(user=scoped["user"], system=empty).exists()


def test_the_admin_is_closed_to_a_limited_user_even_as_staff(scoped, client):
    user = scoped["user"]
    user.is_staff = True
    user.save()
    client.force_login(user)
    response = client.get("/admin/servers/server/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    SystemAccess.objects.filter(user=user).delete()
    assert client.get("/admin/servers/server/").status_code == 200


def test_the_audit_log_is_for_administrators_of_the_whole_site(scoped):
    assert _api(scoped["user"]).get("/api/audit/").status_code == 403


def test_administrators_cannot_manage_api_tokens(scoped):
    assert not scoped["user"].has_perm("authtoken.view_token")
    assert not scoped["user"].has_perm("authtoken.add_token")


@pytest.mark.parametrize("url, field, foreign", [
    ("/api/cameras/", "primary_server", "other"), ("/api/cameras/", "backup_server", "other"),
    ("/api/servers/", "system", "other_system"), ("/api/licenses/", "server", "other"),
    ("/api/licenses/", "server__system", "other_system"), ("/api/events/", "camera", "theirs"),
    ("/api/events/", "server", "other"),
])  # fmt: skip
def test_a_filter_on_another_systems_id_answers_as_for_an_unknown_id(scoped, url, field, foreign):
    api = _api(scoped["user"])
    foreign_id = scoped["other"].system_id if foreign == "other_system" else scoped[foreign].pk
    theirs, unknown = api.get(url, {field: foreign_id}), api.get(url, {field: 987654})
    assert theirs.status_code == unknown.status_code == 400
    assert theirs.json() == unknown.json()


def test_the_browsable_api_offers_only_the_users_systems_in_its_filters(scoped):
    api = _api(scoped["user"])
    for url in ("/api/cameras/", "/api/servers/", "/api/licenses/", "/api/events/", "/api/systems/"):
        page = api.get(url, HTTP_ACCEPT="text/html").content.decode()
        assert "srv-other" not in page and "Other site" not in page and "theirs" not in page, url
    assert "srv-a" in api.get("/api/cameras/", HTTP_ACCEPT="text/html").content.decode()


def test_only_administrators_of_the_whole_site_create_systems(scoped, admin_user):
    refused = _api(scoped["user"]).post("/api/systems/", {"name": "Sams own"}, format="json")
    assert refused.status_code == 403
    assert not MultiserverSystem.objects.filter(name="Sams own").exists()
    assert _api(admin_user).post("/api/systems/", {"name": "Site two"}, format="json").status_code == 201


def test_a_name_taken_in_another_system_is_refused_without_saying_so(scoped, client):
    api, site_id = _api(scoped["user"]), scoped["system"].pk
    taken_there = api.post("/api/servers/", {"name": "srv-other", "system": site_id, "address": "127.0.0.1"},
                           format="json")  # fmt: skip
    taken_here = api.post("/api/servers/", {"name": "srv-a", "system": site_id, "address": "127.0.0.1"}, format="json")
    assert taken_there.status_code == taken_here.status_code == 400
    assert taken_there.json() == {"name": ["This name is not available."]}
    assert "already exists" in str(taken_here.json())  # one's own system may be named
    camera = api.post("/api/cameras/", {"name": "theirs", "stream_url": "rtsp://127.0.0.1/x", "codec": "h264",
                                        "primary_server": scoped["a"].pk}, format="json")  # fmt: skip
    assert camera.json() == {"name": ["This name is not available."]}
    other_key = License.objects.filter(server=scoped["other"]).first().key
    license = api.post("/api/licenses/", {"key": other_key, "server": scoped["a"].pk, "ip_camera_channels": 4},
                       format="json")  # fmt: skip
    assert license.json() == {"key": ["This name is not available."]}
    client.force_login(scoped["user"])
    page = client.post("/cameras/new/", {"name": "theirs", "enabled": "on", "failover_priority": "normal",
                                         "stream_url": "rtsp://127.0.0.1/x", "codec": "h264", "width": 1280,
                                         "height": 720, "fps": 10, "quality": "medium",
                                         "primary_server": scoped["a"].pk})  # fmt: skip
    assert page.status_code == 400
    assert "This name is not available." in page.content.decode() and "already exists" not in page.content.decode()


def test_a_refused_deletion_names_no_user(scoped, admin_user):
    Camera.objects.all().delete()
    response = _api(admin_user).delete(f"/api/systems/{scoped['system'].pk}/")
    assert response.status_code == 409
    assert "sam" not in response.json()["detail"] and "1 user limit" in response.json()["detail"]
