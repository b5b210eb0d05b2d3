"""The live status page: its websocket (real Channels layer on Redis), snapshots and timeline."""

import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from eocortex_web.asgi import application
from protocol import live
from recording.models import Segment
from redundancy.models import CameraPlacement, Event, Placement, ServerState
from redundancy.notifications import event_payload, events_group
from redundancy.status import StatusPublisher

pytestmark = pytest.mark.django_db(transaction=True)


def socket(client=None, origin=b"http://127.0.0.1:8000"):
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if client is not None:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(application, "/ws/live/", headers=headers)


def test_anonymous_socket_is_refused(db):
    async def run():
        communicator = socket()
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(run)() == (False, 4401)


def test_cross_origin_socket_is_refused(admin_client):
    async def run():
        communicator = socket(admin_client, origin=b"http://evil.example")
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    assert async_to_sync(run)() is False


@pytest.mark.parametrize(
    "origin, host, accepted",
    [
        (b"http://127.0.0.1:8000", b"127.0.0.1:8000", True),
        (b"http://localhost:31337", b"localhost:8000", False),  # another application on the same host
        (b"http://127.0.0.1:31337", b"127.0.0.1:8000", False),
        (b"https://127.0.0.1:8000", b"127.0.0.1:8000", False),  # another scheme is another origin
        (b"http://127.0.0.1", b"127.0.0.1:8000", False),
        (b"null", b"127.0.0.1:8000", False),
        (b"http://evil.example:8000", b"evil.example:8000", False),  # a host the site does not answer to
    ],
)
def test_socket_origin_must_be_the_sites_own_scheme_host_and_port(admin_client, origin, host, accepted):
    async def run():
        headers = [(b"origin", origin), (b"host", host),
                   (b"cookie", f"sessionid={admin_client.cookies['sessionid'].value}".encode())]  # fmt: skip
        communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    assert async_to_sync(run)() is accepted


def test_socket_origin_may_be_a_trusted_origin_of_a_proxy(admin_client, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://vms.example.com"]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "vms.example.com"]

    async def run(origin):
        headers = [(b"origin", origin), (b"host", b"vms.example.com"),
                   (b"cookie", f"sessionid={admin_client.cookies['sessionid'].value}".encode())]  # fmt: skip
        communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    assert async_to_sync(run)(b"https://vms.example.com") is True
    assert async_to_sync(run)(b"https://vms.example.com:8443") is False


def test_socket_without_a_published_status_pushes_the_computed_one_every_second_and_events_at_once(
    admin_client, site, make_camera
):
    camera = make_camera(site["a"], site["b"], name="gate")
    live.publish_stream_reports(live.client(), "srv-b", {camera.pk: {"state": "streaming", "fps": 5.0}}, 30)

    async def run():
        communicator = socket(admin_client)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        first = await communicator.receive_json_from(timeout=5)
        second = await communicator.receive_json_from(timeout=5)
        event = Event(pk=1, at=timezone.now(), kind="failover_started", camera=camera, message="gate moves")
        await get_channel_layer().group_send(
            events_group(), {"type": "redundancy.events", "events": [event_payload(event)]}
        )
        pushed = []
        while not any(m["type"] == "event" for m in pushed):
            pushed.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return first, second, pushed

    first, second, pushed = async_to_sync(run)()
    assert first["type"] == second["type"] == "status"
    (row,) = first["status"]["cameras"]
    assert row["recording_on"] == "backup" and row["fps"] == 5.0
    assert [m for m in pushed if m["type"] == "event"][0]["event"]["message"] == "gate moves"


def test_socket_outlives_the_channel_layers_blocking_wait(admin_client, site):
    """The layer waits for messages in blocking reads of ``brpop_timeout`` seconds; its Redis client
    must not time out first (that closed every live page with 1011 every few seconds). A published
    status keeps the socket quiet all along: the delta after the wait still arrives."""
    held_for = get_channel_layer().brpop_timeout * 2 + 1.0
    r = live.client()
    for name in ("srv-a", "srv-b", "srv-c", "srv-other"):
        live.publish_heartbeat(r, name, {}, ttl=60)
    publisher = StatusPublisher(r)
    rows = {}
    for system in {s.system_id for s in site.values() if hasattr(s, "system_id")}:
        servers, cameras = status_rows_now(r, system)
        publisher.publish(system, live.redis_time(r), servers, cameras, full=True)
        rows[system] = servers

    async def run():
        communicator = socket(admin_client)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        assert (await communicator.receive_json_from(timeout=5))["type"] == "status"
        assert await communicator.receive_nothing(timeout=held_for, interval=0.25)  # raises if the consumer crashed
        system = site["a"].system_id
        row = {**rows[system][site["a"].pk], "draining": True}
        await sync_to_async(publisher.publish)(system, live.redis_time(r), {site["a"].pk: row}, {})
        delta = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return delta

    delta = async_to_sync(run)()
    assert delta["type"] == "delta" and delta["servers"][0]["draining"] is True


def status_rows_now(r, system):
    """The rows of one system, as the engine builds them."""
    from redundancy.tests.test_status_publish import engine_rows

    return engine_rows(r)[system]


def test_live_page_shows_the_wall_and_the_feed(admin_client, site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    Event.objects.create(at=timezone.now(), kind="server_down", server=site["a"], message="srv-a is down")
    page = admin_client.get("/live/").content.decode()
    assert f'id="tile-{camera.pk}"' in page and "srv-a is down" in page and 'data-socket="/ws/live/"' in page
    assert f'id="server-{site["a"].pk}"' in page and '<span data-field="load">0</span> ingested / 1 own' in page


def test_snapshot_comes_from_the_recording_server(admin_client, site, make_camera):
    camera = make_camera(site["a"])
    assert admin_client.get(f"/live/snapshot/{camera.pk}.jpg").status_code == 404
    live.publish_snapshots(live.client(), "srv-a", {camera.pk: b"\xff\xd8jpeg"})
    response = admin_client.get(f"/live/snapshot/{camera.pk}.jpg")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response.content == b"\xff\xd8jpeg" and response["X-Recorded-By"] == "srv-a"


def test_timeline_marks_segments_by_server_and_gaps(admin_client, site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    now = timezone.now()

    def segment(server, start, end, n):
        Segment.objects.create(camera=camera, server=server, started_at=now - timedelta(seconds=start),
                               ended_at=now - timedelta(seconds=end), frame_count=10, path=f"/rec/{n}")  # fmt: skip

    segment(site["a"], 120, 110, 1)
    segment(site["a"], 110, 100, 2)
    segment(site["b"], 90, 10, 3)  # 10 s with nothing recorded before the backup took over
    page = admin_client.get(f"/cameras/{camera.pk}/timeline/").content.decode()
    assert 'data-server="srv-a"' in page and 'data-server="srv-b"' in page
    assert "nothing recorded for 10.0 s" in page


def test_live_pages_need_login(client, site, make_camera):
    camera = make_camera(site["a"])
    for url in ["/live/", f"/live/snapshot/{camera.pk}.jpg", f"/cameras/{camera.pk}/timeline/"]:
        assert client.get(url).status_code == 302


def test_a_heartbeat_stamped_after_the_pages_clock_reads_as_fresh_not_negative(admin_client, site):
    live.publish_heartbeat(live.client(), "srv-a", {"at": time.time() + 0.4}, ttl=30)
    (row,) = [r for r in admin_client.get("/api/status/").json()["servers"] if r["name"] == "srv-a"]
    assert row["heartbeat_age"] == 0.0
    page = admin_client.get("/live/").content.decode()
    assert "-0.0 s" not in page and '<span data-field="age">0.0 s</span>' in page


def test_fail_back_is_offered_only_for_a_server_whose_cameras_are_away(admin_client, site, make_camera):
    camera = make_camera(site["a"], site["b"], name="gate")
    CameraPlacement.objects.create(camera=camera, state=Placement.ON_PRIMARY, since=timezone.now())

    def offered():
        page = admin_client.get("/live/").content.decode()
        card = page.split(f'id="server-{site["a"].pk}"', 1)[1].split('class="server-card', 1)[0]
        return 'data-field="fail-back" hidden' not in card

    def away():
        return {r["name"]: r["cameras_away"] for r in admin_client.get("/api/status/").json()["servers"]}

    assert not offered() and away()["srv-a"] == 0
    CameraPlacement.objects.filter(camera=camera).update(state=Placement.ON_BACKUP)
    assert offered() and away() == {"srv-a": 1, "srv-b": 0, "srv-c": 0, "srv-other": 0}
    CameraPlacement.objects.filter(camera=camera).update(state=Placement.ON_PRIMARY)
    ServerState.objects.create(server=site["a"], status_since=timezone.now(), draining=True)
    assert offered(), "a drained server is offered its way back"
