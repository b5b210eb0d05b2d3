"""Every page of the site in a real browser, checked by axe-core (no serious or critical violation) and by
the keyboard (Tab reaches every control). The pages are read from the URL configuration, as the scope tests
read them: a new page is checked without being named here."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from playback.models import Export
from recording.models import Segment
from redundancy.models import Event, EventKind, ServerState, ServerStatus
from servers.models import License
from testbed.accessibility import axe_violations, keyboard_unreached
from testbed.browser import sign_in
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)
from tests.test_object_scope import OBJECT_ROUTES, _url, routes

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]

# Pages of other makers, checked by them: Django's admin, the browsable API and its Swagger UI.
NOT_OURS = ("admin/", "api/")
# Routes whose GET answers neither 200 nor a redirect or 405 (a POST-only route) here, and what they answer.
ANSWERS_WITHOUT_A_PAGE = {
    "capacity:calculator": (400,),  # the calculator's answer needs a camera's settings
    "playback:fragment": (502,),  # a recording held by an agent that does not run here
    "redundancy:snapshot": (404,),  # no picture: no agent records here
}


@pytest.fixture
def objects(site, make_camera):
    """One object of each kind a page's id can name, in the site's system, with something to show."""
    camera = make_camera(site["a"], site["b"], name="gate")
    make_camera(site["a"], name="yard", enabled=False)
    now = timezone.now()
    ServerState.objects.create(server=site["a"], status=ServerStatus.UP, status_since=now)
    event = Event.objects.create(at=now, kind=EventKind.FAILOVER_COMPLETED, server=site["a"], to_server=site["b"],
                                 camera=camera, message="gate moved to srv-b")  # fmt: skip
    segment = Segment.objects.create(camera=camera, server=site["a"], started_at=now - timedelta(seconds=4),
                                     ended_at=now, frame_count=40, path="/nonexistent/gate.mkv")  # fmt: skip
    return {
        "system": site["system"], "server": site["a"], "camera": camera, "segment": segment, "event": event,
        "license": License.objects.filter(server=site["a"]).first(),
        "export": Export.objects.create(camera=camera, since=now - timedelta(seconds=4), until=now),
    }  # fmt: skip


def pages(objects, user) -> list[str]:
    """Every route that answers a GET with a whole HTML page, its ids naming ``objects``."""
    client = Client(raise_request_exception=False)
    client.force_login(user)
    found, failing = [], {}
    for name, route, kwargs in routes():
        if route.startswith(NOT_OURS) or (kwargs and name not in OBJECT_ROUTES):
            continue
        url = _url(route, {kwarg: objects[kind].pk for kwarg, kind in OBJECT_ROUTES.get(name, {}).items()})
        response = client.get(url)
        if response.status_code == 200:  # a page, or a file (a playlist, a CSV)
            if response.get("Content-Type", "").startswith("text/html") and b"<html" in b"".join(response):
                found.append(url)
        elif response.status_code not in ANSWERS_WITHOUT_A_PAGE.get(name, (302, 405)):
            failing[url] = response.status_code
    # A page that breaks must not drop out of the walk unseen.
    assert failing == {}, "these routes answer a GET with neither a page nor what they are known to answer"
    return found


def test_every_page_passes_axe_and_the_keyboard_reaches_every_control(objects, web, browser_page):  # noqa: F811
    admin = User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    found = {}

    def check(url):
        page.wait_for_load_state("networkidle")
        if problems := axe_violations(page) + [f"not reached by Tab: {c}" for c in keyboard_unreached(page)]:
            found[url] = problems

    page.goto(f"{web}/accounts/login/")
    check("/accounts/login/")
    sign_in(page, web, "admin", PASSWORD, "/servers/")
    urls = pages(objects, admin)
    assert len(urls) >= 18, f"the walk found too few pages to mean anything: {urls}"
    for url in urls:
        response = page.goto(f"{web}{url}")
        assert response.status == 200, url
        check(url)
    assert page.goto(f"{web}/cameras/987654/").status == 404  # the site's own page for what is not there
    check("/cameras/987654/ (not found)")
    assert found == {}, "\n".join(f"{url}: {problem}" for url, problems in found.items() for problem in problems)
