"""A user limited to one multiserver system sees and acts on nothing else: pages, API, websocket.

The routes are read from the URL configuration and the API router (see OBJECT_ROUTES below): every
route with an object id is tried with another system's object, every route without one is read with
filters naming it."""

import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group, User
from django.urls import URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import SystemAccess
from accounts.roles import ADMINISTRATORS
from cameras.models import Camera
from playback.models import Export
from protocol import live
from recording.models import Segment
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
    assert api.get(f"/api/cameras/{scoped['mine'].pk}/recordings/").status_code == 200
    # Backup readiness: another system's camera is not in the report.
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
    renamed = api.patch(f"/api/systems/{site_id}/", {"name": "Other site"}, format="json")
    assert renamed.status_code == 400 and renamed.json() == {"name": ["This name is not available."]}
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


# Every route, read from the URL configuration (the API router's routes among them), is checked below:
# a route with an object id must say here which of another system's objects the id names, or why
# none; so a new route cannot be left out of the scope tests.
OBJECT_ROUTES = {
    "servers:license-delete": {"pk": "license"},
    "servers:mail-settings": {"system_id": "system"},
    "servers:server-edit": {"pk": "server"},
    "servers:server-delete": {"pk": "server"},
    "servers:system-edit": {"pk": "system"},
    "servers:system-delete": {"pk": "system"},
    "cameras:connection": {"pk": "camera"},
    "cameras:general": {"pk": "camera"},
    "cameras:backup-options": {"pk": "camera"},
    "cameras:delete": {"pk": "camera"},
    "cameras:test-connection": {"pk": "camera"},
    "capacity:server": {"pk": "server"},
    "playback:playlist": {"pk": "camera"},
    "playback:fragment": {"camera_id": "camera", "pk": "segment"},
    "exports:create": {"pk": "camera"},
    "exports:progress": {"pk": "export"},
    "servers:server": {"pk": "server"},
    "servers:backup-settings": {"pk": "server"},
    "redundancy:drain": {"pk": "server"},
    "redundancy:fail-back": {"pk": "server"},
    "redundancy:snapshot": {"camera_id": "camera"},
    "redundancy:timeline": {"pk": "camera"},
    "readiness:camera": {"pk": "camera"},
    "camera-recordings": {"pk": "camera"},
    "camera-exports": {"pk": "camera"},
    "camera-export": {"pk": "camera", "export": "export"},
    "camera-export-download": {"pk": "camera", "export": "export"},
    "camera-export-manifest": {"pk": "camera", "export": "export"},
    "server-drain": {"pk": "server"},
    "server-fail-back": {"pk": "server"},
    "camera-backup-check": {"pk": "camera"},
    "multiserversystem-detail": {"pk": "system"},
    "server-detail": {"pk": "server"},
    "license-detail": {"pk": "license"},
    "camera-detail": {"pk": "camera"},
    "event-detail": {"pk": "event"},
    "redundancy:acknowledge": {"pk": "event"},
    "event-acknowledge": {"pk": "event"},
}
# Routes with an id that names no system's object, and why.
SITE_WIDE_OBJECT_ROUTES = {
    "auditentry-detail": "the audit log is for administrators of the whole site (refused with 403)",
}
# Routes without an id that answer for the whole site, to anybody, by design.
UNSCOPED_ROUTES = {
    "metrics": "Prometheus scrapes the whole site's counts, by camera id and server name, without signing in",
}
# Markers of the other system in anything shown: its name, server, camera, event and license key.
THEIR_MARKERS = ("Other site", "srv-other", "theirs", "other down", "LIC-SRV-OTHER")
METHODS = ("get", "post", "put", "patch", "delete")


def routes():
    """(name, route, kwargs) of every route outside the admin (closed to limited users, tested
    above); the router's format-suffix twins are the same views."""
    def walk(patterns, prefix, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
                continue
            regex = pattern.pattern.regex
            kwargs = set(getattr(pattern.pattern, "converters", {})) | set(regex.groupindex)
            if "format" not in kwargs:
                yield (f"{namespace}{pattern.name}" if pattern.name else None), prefix + str(pattern.pattern), kwargs

    return [r for r in walk(get_resolver().url_patterns, "", "") if not r[1].startswith("admin/")]


@pytest.fixture
def theirs(scoped):
    """One object of each kind in the other system."""
    other, camera, now = scoped["other"], scoped["theirs"], timezone.now()
    live.publish_snapshots(live.client(), other.name, {camera.pk: b"\xff\xd8 a picture of theirs"})
    segment = Segment.objects.create(camera=camera, server=other, started_at=now - timedelta(seconds=4),
                                     ended_at=now, frame_count=40, path="/nonexistent/theirs.mkv")  # fmt: skip
    return {
        "system": other.system, "server": other, "camera": camera, "segment": segment,
        "license": License.objects.get(server=other), "event": Event.objects.get(message="other down"),
        "export": Export.objects.create(camera=camera, since=now - timedelta(seconds=4), until=now),
    }  # fmt: skip


def _url(route: str, ids: dict) -> str:
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(ids[m.group(1)]), route)  # the router's regexes
    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids[m.group(1)]), route)  # path() routes
    return "/" + route.replace("^", "").replace("$", "")


def test_every_route_with_an_object_id_says_which_object_it_names():
    with_ids = {name: kwargs for name, _, kwargs in routes() if kwargs}
    assert with_ids, "the walk found no route with an id"
    unclassified = {name for name in with_ids if name not in OBJECT_ROUTES and name not in SITE_WIDE_OBJECT_ROUTES}
    assert unclassified == set(), "say which object each id of these routes names (OBJECT_ROUTES)"
    assert {name: set(ids) for name, ids in OBJECT_ROUTES.items()} == {
        name: kwargs for name, kwargs in with_ids.items() if name in OBJECT_ROUTES}  # fmt: skip
    assert set(SITE_WIDE_OBJECT_ROUTES) <= set(with_ids)


def test_no_route_finds_another_systems_object_by_its_id(scoped, theirs, admin_user):
    """Every method of every route with an id answers for another system's object exactly as for an
    id that names nothing (404, at least for one method); a user of the whole site reaches the same
    object through the same route, so the table above names the right objects."""
    limited, whole_site = APIClient(), APIClient()
    limited.force_login(scoped["user"])
    whole_site.force_login(admin_user)
    urls, found = {}, {}
    for name, route, _ in routes():
        if name in OBJECT_ROUTES:
            urls[name] = _url(route, {kwarg: theirs[kind].pk for kwarg, kind in OBJECT_ROUTES[name].items()})
            nothing = _url(route, dict.fromkeys(OBJECT_ROUTES[name], 987654))
            answers = {method: getattr(limited, method)(urls[name]).status_code for method in METHODS}
            if answers != {method: getattr(limited, method)(nothing).status_code for method in METHODS} or (
                    404 not in answers.values()):  # fmt: skip
                found[urls[name]] = answers
    assert found == {}, "these answered another system's object otherwise than as no object"
    # Reads first, deletions last: a POST may act (a server drained, a camera deleted) on what a later one names.
    unreached = [url for url in urls.values() if whole_site.get(url).status_code in (404, 405)]
    unreached.sort(key=lambda url: url.endswith("/delete/"))
    unreached = [url for url in unreached if whole_site.post(url).status_code in (404, 405)]
    assert unreached == [], "a user of the whole site does not reach the object either: the id names another kind"


def test_no_page_or_list_shows_another_systems_objects(scoped, theirs):
    """Every route without an id, as is, as CSV where it offers one, and with each filter naming the
    other system's objects, shows nothing of it."""
    client = APIClient()
    client.force_login(scoped["user"])
    filters = {"system": theirs["system"].pk, "server": theirs["server"].pk, "primary_server": theirs["server"].pk,
               "backup_server": theirs["server"].pk, "camera": theirs["camera"].pk}  # fmt: skip
    shown, read = {}, 0
    for name, route, kwargs in routes():
        if kwargs or name in UNSCOPED_ROUTES:
            continue
        for query in ({}, {"format": "csv"}, *({key: value} for key, value in filters.items())):
            response = client.get(_url(route, {}), query)
            if response.status_code == 200:
                read += 1
                content = b"".join(response)
                body = content.decode(errors="replace")
                if markers := [m for m in THEIR_MARKERS if m in body]:
                    shown[f"{name} {query}"] = markers
    assert read > 50, "the walk read too few pages to mean anything"
    assert shown == {}
