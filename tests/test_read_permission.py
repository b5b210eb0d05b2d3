"""Reading needs the model's view permission: a signed-in user in no role sees nothing, in the
pages, the API and the live websocket. The pages and API operations are taken from the URL
configuration and the API schema, so a new one cannot be missed."""

import re

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, User
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.roles import OPERATORS
from redundancy.models import Event
from redundancy.tests.test_live import socket
from servers.models import License

pytestmark = pytest.mark.django_db(transaction=True)

# Pages anybody signed in may open: signing in and out, the admin (its own staff check), the API
# (checked below, operation by operation) and its schema and docs (no data of the site in them), the metrics
# and health probes (open to anybody, signed in or not: counts and yes or no, no data of the site).
OPEN = {"login", "logout", "schema", "api-docs", "metrics", "health-live", "health-ready"}
OPEN_PREFIXES = ("admin/", "api/")


def _pages(patterns=None, prefix=""):
    """(name, route) of every page of the site, from the URL configuration."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from _pages(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            if entry.name not in OPEN and route and not route.startswith(OPEN_PREFIXES):
                yield entry.name, route


def _api_reads():
    for path, operations in SchemaGenerator().get_schema(request=None, public=True)["paths"].items():
        if "get" in operations:
            yield path


@pytest.fixture
def nobody(site):
    return User.objects.create_user("nobody", "nobody@example.com", "a-long-test-passphrase")


@pytest.fixture
def objects(site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    Event.objects.create(at=timezone.now(), kind="server_down", server=site["a"], message="srv-a is down")
    return {"camera": camera.pk, "camera_id": camera.pk, "system_id": site["system"].pk, "server": site["a"].pk,
            "license": License.objects.filter(server=site["a"]).first().pk}  # fmt: skip


def _url(route, objects):
    """The route with the id of an object of its kind (a license, a server, else a camera)."""
    kind = "license" if route.startswith("servers/licenses") else "server" if "servers/" in route else "camera"
    ids = {**objects, "pk": objects[kind]}
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(ids[match.group(1)]), route)


@pytest.mark.parametrize("name, route", sorted(set(_pages())))
def test_a_user_in_no_role_opens_no_page(client, nobody, objects, name, route):
    client.force_login(nobody)
    url = _url(route, objects)
    response = client.get(url)
    if response.status_code == 405:  # an action: it is refused before it is done
        response = client.post(url)
    assert response.status_code == 403, (url, response.status_code)


@pytest.mark.parametrize("path", sorted(_api_reads()))
def test_a_user_in_no_role_reads_nothing_from_the_api(nobody, objects, site, path):
    api = APIClient()
    api.force_authenticate(nobody)
    kinds = {"/licenses/": objects["license"], "/systems/": objects["system_id"], "/servers/": objects["server"],
             "/events/": Event.objects.first().pk, "/cameras/": objects["camera"]}  # fmt: skip
    url = path.replace("{id}", str(next((pk for part, pk in kinds.items() if part in path), 0)))
    url = re.sub(r"\{\w+\}", "1", url)  # a nested object's id (an export's): refused before it is looked up
    response = api.get(url)
    assert response.status_code == 403, (url, response.status_code, response.content[:200])


def test_an_operator_reads_what_nobody_may_not(client, nobody, objects):
    nobody.groups.add(Group.objects.get(name=OPERATORS))
    client.force_login(nobody)
    for url in ["/servers/", "/cameras/", "/events/", "/live/", "/capacity/", f"/cameras/{objects['camera']}/",
                "/backup-checks/"]:
        assert client.get(url).status_code == 200, url
    api = APIClient()
    api.force_authenticate(User.objects.get(pk=nobody.pk))
    for url in ["/api/cameras/", "/api/events/", "/api/status/", "/api/capacity/", "/api/licenses/",
                "/api/backup-checks/"]:
        assert api.get(url).status_code == 200, url


def test_a_user_in_no_role_gets_no_live_socket(client, nobody):
    client.force_login(nobody)

    async def run():
        communicator = socket(client)
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(run)() == (False, 4403)
