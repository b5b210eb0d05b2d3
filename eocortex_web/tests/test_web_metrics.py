"""The web tier's /metrics as Prometheus reads it: open without signing in, requests counted by view and status
and timed by view, and the live websockets open on the process."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from redundancy.tests.test_live import socket

pytestmark = pytest.mark.django_db(transaction=True)


def scrape() -> dict[tuple[str, tuple], float]:
    """The samples of the web tier's metrics page, read without signing in: (name, sorted labels) → value."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}  # fmt: skip


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_answer_without_signing_in_in_the_text_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert b"django_http_requests_latency_seconds_by_view_method" in response.content
    assert b"csrftoken" not in response.content and "Set-Cookie" not in response


def test_a_page_is_counted_by_its_view_and_status_and_timed(admin_client):
    before = scrape()
    assert admin_client.get("/servers/").status_code == 200
    assert Client().get("/servers/").status_code == 302  # not signed in: sent to the login page
    after = scrape()
    for status in ("200", "302"):
        name = "django_http_responses_total_by_status_view_method_total"
        labels = {"status": status, "view": "servers:list", "method": "GET"}
        assert value(after, name, **labels) == value(before, name, **labels) + 1, status
    timed = ("django_http_requests_latency_seconds_by_view_method_count", {"view": "servers:list", "method": "GET"})
    assert value(after, timed[0], **timed[1]) == value(before, timed[0], **timed[1]) + 2
    assert value(after, "django_http_responses_total_by_status_total", status="302") >= 1


def test_the_live_socket_gauge_counts_open_sockets_only(admin_client):
    async def run():
        gauge = []

        async def read():
            gauge.append(value(await sync_to_async(scrape)(), "eocortex_web_live_sockets"))

        await read()
        refused = socket()  # not signed in: closed before it is accepted
        assert await refused.connect(timeout=5) == (False, 4401)
        await refused.disconnect()
        await read()
        first, second = socket(admin_client), socket(admin_client)
        for communicator in (first, second):
            connected, _ = await communicator.connect(timeout=5)
            assert connected
            assert (await communicator.receive_json_from(timeout=5))["type"] == "status"
        await read()
        await first.disconnect()
        await read()
        await second.disconnect()
        await read()
        return gauge

    start, *rest = async_to_sync(run)()
    assert [reading - start for reading in rest] == [0, 2, 1, 0]
