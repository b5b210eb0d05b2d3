"""Rate limits beyond the login's: wrong API tokens, every user, the expensive endpoints, and the
live sockets one user may hold."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from eocortex_web.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rates(settings):
    def set_rates(**changed):
        framework = dict(settings.REST_FRAMEWORK)
        framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], **changed}
        settings.REST_FRAMEWORK = framework

    return set_rates


def test_wrong_api_tokens_from_one_address_are_throttled(site, admin_user, rates):
    rates(**{"failed-token": "20/min"})
    api = APIClient()
    answers = [api.get("/api/cameras/", HTTP_AUTHORIZATION=f"Token wrong-{n:040d}").status_code for n in range(25)]
    assert answers[:20] == [401] * 20 and answers[20:] == [429] * 5
    # Even the right token waits: the address is guessing.
    good = Token.objects.create(user=admin_user).key
    assert api.get("/api/cameras/", HTTP_AUTHORIZATION=f"Token {good}").status_code == 429
    other = APIClient(REMOTE_ADDR="127.0.0.9")
    assert other.get("/api/cameras/", HTTP_AUTHORIZATION=f"Token {good}").status_code == 200


def test_every_user_has_a_rate(site, admin_user, rates):
    rates(user="5/min")
    api = APIClient()
    api.force_authenticate(admin_user)
    answers = [api.get("/api/servers/").status_code for _ in range(7)]
    assert answers == [200] * 5 + [429] * 2


def test_the_capacity_proposal_is_throttled_tighter(site, admin_user, rates, make_camera):
    rates(**{"capacity-proposal": "3/min"})
    make_camera(site["a"])
    api = APIClient()
    api.force_authenticate(admin_user)
    answers = [api.post("/api/capacity/proposal/", {"scope": "all"}, format="json").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert api.get("/api/servers/").status_code == 200, "other endpoints keep the user's own rate"


def test_one_user_holds_a_bounded_number_of_live_sockets(admin_client, settings):
    settings.LIVE_SOCKETS_PER_USER = 2
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"),
               (b"cookie", f"sessionid={admin_client.cookies['sessionid'].value}".encode())]  # fmt: skip

    async def run():
        sockets = [WebsocketCommunicator(application, "/ws/live/", headers=headers) for _ in range(4)]
        first, second, third = [await s.connect(timeout=5) for s in sockets[:3]]
        await sockets[0].disconnect()
        fourth = await sockets[3].connect(timeout=5)  # a closed socket gives its place back
        for s in sockets[1:]:
            await s.disconnect()
        return first[0], second[0], third, fourth[0]

    first, second, third, fourth = async_to_sync(run)()
    assert first and second and fourth
    assert third == (False, 4429)
