"""METRICS_TOKEN: with it set, every tier's /metrics (the web tier's, an engine worker's, an agent's) answers 401
without the token as a bearer and the page with it; the health checks stay open either way. In production the web
tier (on the users' port) serves its metrics only with a token."""

import pytest
import requests

from redundancy.tests.test_metrics import Worker, engine
from utilities import bearer

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "scrape-token-for-tests"
RIGHT = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}


def test_the_token_is_compared_whole_and_only_as_a_bearer():
    assert bearer.allows(None, "") and bearer.allows("anything", "")  # no token set: open
    assert bearer.allows(f"Bearer {TOKEN}", TOKEN) and bearer.allows(f"bearer {TOKEN}", TOKEN)
    assert not bearer.allows(None, TOKEN)
    assert not bearer.allows(f"Basic {TOKEN}", TOKEN)
    assert not bearer.allows(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert not bearer.allows(f"Bearer {TOKEN}x", TOKEN)


def _guarded(get, metrics: str, health: list[str]):
    assert get(metrics).status_code == 401
    assert get(metrics, WRONG).status_code == 401
    page = get(metrics, RIGHT)
    assert page.status_code == 200 and "# TYPE" in page.text
    for url in health:
        assert get(url).status_code in (200, 503)  # answered, not asked for a token


def test_the_web_tier_s_metrics_ask_for_the_token(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def get(url, headers=None):
        return client.get(url, headers=headers or {})

    answer = get("/metrics")
    assert answer.status_code == 401 and answer["WWW-Authenticate"] == bearer.CHALLENGE
    _guarded(get, "/metrics", ["/health/live", "/health/ready"])


def test_in_production_the_web_tier_serves_its_metrics_only_with_a_token(client, settings):
    settings.PRODUCTION = True
    settings.METRICS_TOKEN = ""
    answer = client.get("/metrics")
    assert answer.status_code == 404 and b"set METRICS_TOKEN" in answer.content
    assert client.get("/health/ready").status_code == 200  # the probes need none
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=RIGHT).status_code == 200


def test_an_engine_worker_s_metrics_ask_for_the_token(settings, site):
    settings.METRICS_TOKEN = TOKEN
    with Worker(engine()) as worker:
        base = f"http://127.0.0.1:{worker.port}"
        _guarded(lambda path, headers=None: requests.get(base + path, headers=headers, timeout=5), "/metrics",
                 ["/health/live", "/health/ready"])  # fmt: skip


def test_an_agent_s_metrics_ask_for_the_token(settings, recorded_site, agents):
    settings.METRICS_TOKEN = TOKEN
    server = recorded_site["a"]
    agents("srv-a")
    base = f"http://{server.address}:{server.api_port}"
    _guarded(lambda path, headers=None: requests.get(base + path, headers=headers, timeout=5), "/metrics",
             ["/health/live", "/health/ready"])  # fmt: skip
