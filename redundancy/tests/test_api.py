from datetime import timedelta

import pytest
from django.utils import timezone

from protocol import live
from redundancy.models import CameraPlacement, Event, Placement, ServerState
from testbed.permissions import grant


@pytest.fixture
def events(site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    now = timezone.now()
    return [
        Event.objects.create(at=now - timedelta(minutes=5), kind="server_down", server=site["a"], message="a down"),
        Event.objects.create(
            at=now - timedelta(minutes=4),
            kind="failover_started",
            camera=camera,
            server=site["a"],
            to_server=site["b"],
            mode="normal",
            message="gate moves",
        ),  # fmt: skip
        Event.objects.create(
            at=now,
            kind="failover_completed",
            camera=camera,
            server=site["a"],
            to_server=site["b"],
            mode="normal",
            message="gate on b",
        ),  # fmt: skip
    ]


def test_events_are_listed_newest_first_and_filterable(api, events, site):
    body = api.get("/api/events/").json()
    assert [e["kind"] for e in body["results"]] == ["failover_completed", "failover_started", "server_down"]
    assert body["results"][0]["camera_name"] == "gate" and body["results"][0]["to_server_name"] == "srv-b"
    assert api.get("/api/events/?kind=server_down").json()["count"] == 1
    assert api.get(f"/api/events/?camera={events[1].camera_id}").json()["count"] == 2
    since = (timezone.now() - timedelta(minutes=1)).isoformat()
    assert api.get("/api/events/", {"since": since}).json()["count"] == 1
    assert api.get("/api/events/?kind=exploded").status_code == 400


def test_event_list_query_count_is_constant(api, events, django_assert_num_queries):
    with django_assert_num_queries(2):
        api.get("/api/events/")


def test_status_reports_servers_and_cameras(api, site, make_camera, settings):
    camera = make_camera(site["a"], site["b"], name="gate")
    r = live.client()
    live.publish_heartbeat(r, "srv-a", {"at": 1e12}, ttl=5)  # far future: age < 0 is still "heard from"
    live.publish_stream_reports(r, "srv-b", {camera.pk: {"state": "streaming"}}, ttl=5)
    ServerState.objects.create(server=site["a"], status="down", status_since=timezone.now())
    CameraPlacement.objects.create(camera=camera, state=Placement.ON_BACKUP, since=timezone.now(), reason="x")
    body = api.get("/api/status/").json()
    assert body["live"] is True
    servers = {s["name"]: s for s in body["servers"]}
    assert servers["srv-a"]["status"] == "down" and servers["srv-c"]["status"] == "unknown"
    (row,) = body["cameras"]
    assert row["placement"] == "on_backup" and row["active_server"] == site["b"].pk
    assert row["streams"] == {str(site["b"].pk): "streaming"}
    assert sorted(row["ingesting_servers"]) == [site["a"].pk, site["b"].pk]


def test_drain_and_fail_back_need_the_operator_permission(viewer_api, viewer, site):
    url = f"/api/servers/{site['a'].pk}/drain/"
    assert viewer_api.post(url).status_code == 403
    viewer_api.force_authenticate(grant(viewer, "change_serverstate"))
    response = viewer_api.post(url)
    assert response.status_code == 202 and "srv-a is being drained" in response.json()["detail"]
    assert ServerState.objects.get(server=site["a"]).draining
    assert viewer_api.post(url).json()["detail"] == "srv-a was already being drained."
    response = viewer_api.post(f"/api/servers/{site['a'].pk}/fail-back/")
    assert response.status_code == 202 and not ServerState.objects.get(server=site["a"]).draining
    kinds = list(Event.objects.order_by("at").values_list("kind", flat=True))
    assert kinds == ["drain_started", "drain_ended"]
    assert viewer_api.post("/api/servers/999999/drain/").status_code == 404


def test_events_page_and_server_actions(admin_client, events, site):
    page = admin_client.get("/events/?kind=failover_started").content.decode()
    assert "gate moves" in page and "a down" not in page
    response = admin_client.post(f"/servers/{site['b'].pk}/drain/", follow=True)
    assert "srv-b is being drained" in response.content.decode()
    assert ServerState.objects.get(server=site["b"]).draining


def test_viewer_cannot_drain_from_the_page(client, viewer, site):
    client.force_login(viewer)
    assert client.post(f"/servers/{site['a'].pk}/drain/").status_code == 403
    assert not ServerState.objects.filter(server=site["a"], draining=True).exists()


@pytest.mark.parametrize("since", ["8799-12-10T17:05:03+18:43", "0590-06-11T09:37:31+19:54"])
def test_event_times_with_any_offset_are_compared_in_utc(api, site, since):
    response = api.get("/api/events/", {"since": since})
    assert response.status_code == 200


def test_an_event_time_outside_the_calendar_in_utc_is_refused(api, site):
    response = api.get("/api/events/", {"since": "0001-01-01T00:10:00+05:00"})
    assert response.status_code == 400 and "since" in response.json()
