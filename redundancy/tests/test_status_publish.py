"""The published status: rows built as the engine builds them, written once per change, read by the API
and the live socket, and sent to the socket as versioned deltas (real Redis, real Channels layer)."""

import asyncio
import json
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Group, User
from django.utils import timezone

from accounts.models import SystemAccess
from accounts.roles import ADMINISTRATORS
from protocol import live
from redundancy import config as site_config
from redundancy.decisions import Windows
from redundancy.models import CameraPlacement, Placement, ServerState
from redundancy.observation import observe
from redundancy.status import (
    STATUS_TTL,
    StatusPublisher,
    camera_row,
    current_status,
    published_status,
    status_group,
    status_rows,
)
from redundancy.tests.test_live import socket

pytestmark = pytest.mark.django_db(transaction=True)


def engine_rows(r) -> dict[int, tuple[dict, dict]]:
    """Every system's rows as an engine pass builds them: system id → (server rows, camera rows)."""
    config = site_config.load()
    states = {state.pk: state for state in ServerState.objects.all()}
    placements = {
        pk: SimpleNamespace(state=state, since=since.timestamp(), reason=reason)
        for pk, state, since, reason in CameraPlacement.objects.values_list("camera_id", "state", "since", "reason")
    }  # fmt: skip
    seen = observe(r, [server.name for server in config.servers.values()], live.redis_time(r))
    views = {pk: seen.server_view(server, states.get(pk)) for pk, server in config.servers.items()}
    servers, cameras = status_rows(config, states, views, placements, seen.reports, seen.last_seen, Windows())
    return {
        system: (
            {pk: row for pk, row in servers.items() if config.servers[pk].system_id == system},
            {pk: row for pk, row in cameras.items() if config.cameras[pk].system_id == system},
        )
        for system in config.systems()
    }


def publish_all(publisher, r, full=True) -> dict[int, int | None]:
    at = live.redis_time(r)
    return {system: publisher.publish(system, at, servers, cameras, full=full)
            for system, (servers, cameras) in engine_rows(r).items()}  # fmt: skip


def heartbeat(r, *names):
    for name in names:
        live.publish_heartbeat(r, name, {}, ttl=30)


def comparable(status: dict) -> dict:
    """A status without what is read at read time (its time, the heartbeat ages, the versions)."""
    servers = {row["id"]: {k: v for k, v in row.items() if k != "heartbeat_age"} for row in status["servers"]}
    return {"servers": servers, "cameras": {row["id"]: row for row in status["cameras"]}}


def ages(status: dict) -> dict:
    return {row["name"]: row["heartbeat_age"] for row in status["servers"]}


@pytest.fixture
def busy_site(site, make_camera):
    """Two systems; a camera on each placement; srv-a silent for 10 s, srv-b and srv-other heartbeating,
    srv-c never heard; stream reports with frame rates."""
    r = live.client()
    now = live.redis_time(r)
    cameras = {
        "home": make_camera(site["a"], site["b"], name="home"),
        "moving": make_camera(site["a"], site["b"], name="moving"),
        "away": make_camera(site["a"], site["c"], name="away"),
        "alone": make_camera(site["b"], name="alone"),
        "off": make_camera(site["b"], site["a"], name="off", enabled=False),
        "theirs": make_camera(site["other"], name="theirs"),
    }
    for name, state in (("moving", Placement.TO_BACKUP), ("away", Placement.ON_BACKUP)):
        CameraPlacement.objects.create(camera=cameras[name], state=state, since=timezone.now(), reason=f"{name} why")
    ServerState.objects.create(server=site["a"], status="down", status_since=timezone.now(), storage_error="disk full")
    ServerState.objects.create(server=site["b"], status="up", status_since=timezone.now(), draining=True)
    live.publish_heartbeat(r, "srv-a", {"at": now - 10.0}, ttl=30)
    for name in ("srv-b", "srv-other"):
        live.publish_heartbeat(r, name, {}, ttl=30)
    live.publish_stream_reports(r, "srv-b", {
        cameras["moving"].pk: {"state": "streaming", "fps": 4.96},
        cameras["alone"].pk: {"state": "streaming", "fps": 25.0},
    }, 30)  # fmt: skip
    live.publish_stream_reports(r, "srv-c", {cameras["away"].pk: {"state": "streaming", "fps": 12.0}}, 30)
    live.publish_stream_reports(r, "srv-other", {cameras["theirs"].pk: {"state": "connecting"}}, 30)
    return {**site, **cameras}


def test_the_published_status_equals_the_status_computed_from_the_same_state(busy_site):
    r = live.client()
    publisher = StatusPublisher(r)
    publish_all(publisher, r)
    published = published_status(r, None)
    computed = current_status(r, clock=lambda: live.redis_time(r))
    assert comparable(published) == comparable(computed)
    assert [row["name"] for row in published["cameras"]] == [row["name"] for row in computed["cameras"]]
    assert [row["name"] for row in published["servers"]] == [row["name"] for row in computed["servers"]]
    for name, age in ages(computed).items():  # both by Redis's clock, read a moment apart
        assert age == ages(published)[name] if age is None else abs(age - ages(published)[name]) < 0.5, name
    assert ages(published)["srv-c"] is None and ages(published)["srv-a"] >= 10.0
    servers = {row["name"]: row for row in published["servers"]}
    assert servers["srv-a"]["last_heard"] is not None and servers["srv-b"]["last_heard"] is None
    assert servers["srv-a"]["storage_error"] == "disk full" and servers["srv-a"]["cameras_away"] == 2
    assert set(published["versions"]) == {str(busy_site["system"].pk), str(busy_site["other"].system_id)}

    # The state moves on: a camera comes home, a stream changes. The engine publishes only what changed.
    CameraPlacement.objects.filter(camera=busy_site["away"]).update(state=Placement.ON_PRIMARY, reason="back")
    live.publish_stream_reports(r, "srv-c", {}, 30)
    live.publish_stream_reports(r, "srv-a", {busy_site["away"].pk: {"state": "streaming", "fps": 12.0}}, 30)
    live.publish_heartbeat(r, "srv-a", {}, ttl=30)
    changed = {system: publisher.publish(system, live.redis_time(r), *rows)
               for system, rows in engine_rows(r).items()}  # fmt: skip
    assert changed[busy_site["other"].system_id] is None, "nothing changed in the other system"
    assert comparable(published_status(r, None)) == comparable(current_status(r, clock=lambda: live.redis_time(r)))


def test_a_limited_read_holds_only_those_systems_and_needs_each_snapshot(busy_site):
    r = live.client()
    publisher = StatusPublisher(r)
    system, other = busy_site["system"].pk, busy_site["other"].system_id
    servers, cameras = engine_rows(r)[system]
    publisher.publish(system, live.redis_time(r), servers, cameras, full=True)
    mine = published_status(r, {system})
    assert {row["name"] for row in mine["servers"]} == {"srv-a", "srv-b", "srv-c"}
    assert "theirs" not in {row["name"] for row in mine["cameras"]}
    assert published_status(r, None) is None, "the other system is not published: the reader computes it"
    assert published_status(r, {other}) is None


def test_a_quiet_pass_publishes_nothing_and_a_change_bumps_the_version_by_one(busy_site):
    r = live.client()
    publisher = StatusPublisher(r)
    system = busy_site["system"].pk
    heartbeat(r, "srv-b", "srv-other")
    first = publish_all(publisher, r)[system]
    heartbeat(r, "srv-b", "srv-other")  # heartbeats move; nothing published moves with them
    assert publish_all(publisher, r, full=False)[system] is None
    CameraPlacement.objects.filter(camera=busy_site["moving"]).update(state=Placement.ON_BACKUP)
    assert publish_all(publisher, r, full=False)[system] == first + 1
    snapshot = r.hgetall(live.key("status", system))
    assert int(snapshot[b"version"]) == first + 1
    assert json.loads(snapshot[f"c:{busy_site['moving'].pk}".encode()])["placement"] == Placement.ON_BACKUP


def test_a_cameras_fps_is_published_again_only_when_it_moved_by_1_fps_or_10_percent(busy_site):
    r = live.client()
    publisher = StatusPublisher(r)
    system, alone, moving = busy_site["system"].pk, busy_site["alone"].pk, busy_site["moving"].pk
    heartbeat(r, "srv-b", "srv-other")
    publish_all(publisher, r)

    def report(fps):
        heartbeat(r, "srv-b", "srv-other")
        reports = {alone: {"state": "streaming", "fps": fps}, moving: {"state": "streaming", "fps": 4.96}}
        live.publish_stream_reports(r, "srv-b", reports, 30)
        return publish_all(publisher, r, full=False)[system]

    def shown():
        return json.loads(r.hget(live.key("status", system), f"c:{alone}"))["fps"]

    assert report(24.3) is None and shown() == 25.0  # 0.7 fps: within 1 fps
    assert report(24.0) is not None and shown() == 24.0
    assert report(24.9) is None and report(23.1) is None and shown() == 24.0
    assert report(0.0) is not None and shown() == 0.0


def test_the_first_publish_of_a_system_is_full_and_versions_go_on_across_engines(busy_site):
    r = live.client()
    system = busy_site["system"].pk
    servers, cameras = engine_rows(r)[system]
    with pytest.raises(ValueError):
        StatusPublisher(r).publish(system, 0.0, servers, cameras)
    first = StatusPublisher(r).publish(system, 0.0, servers, cameras, full=True)
    assert first >= int((live.redis_time(r) - 5) * 1000), "without a snapshot versions start from Redis's clock"
    successor = StatusPublisher(r)  # another engine takes the system over
    assert successor.publish(system, 0.0, servers, cameras, full=True) == first + 1
    removed = next(iter(cameras))
    less = {pk: row for pk, row in cameras.items() if pk != removed}
    assert successor.publish(system, 0.0, servers, less, full=True) == first + 2
    assert f"c:{removed}".encode() not in r.hkeys(live.key("status", system))


def test_a_snapshot_expires_after_its_engine_unless_renewed_while_quiet(busy_site):
    r = live.client()
    clock = SimpleNamespace(now=1000.0)
    publisher = StatusPublisher(r, clock=lambda: clock.now)
    system = busy_site["system"].pk
    servers, cameras = engine_rows(r)[system]
    publisher.publish(system, 0.0, servers, cameras, full=True)
    key = live.key("status", system)
    assert 0 < r.pttl(key) <= STATUS_TTL * 1000
    r.pexpire(key, 5000)  # as if 55 s went by
    clock.now += 10
    publisher.publish(system, 0.0, servers, cameras)
    assert r.pttl(key) <= 5000, "renewed at most every 20 s"
    clock.now += 15
    publisher.publish(system, 0.0, servers, cameras)
    assert r.pttl(key) > 50_000, "a quiet engine renews its snapshot"


def test_the_status_api_and_the_live_page_read_the_published_status(busy_site, api, admin_client):
    r = live.client()
    publisher = StatusPublisher(r)
    versions = publish_all(publisher, r)
    assert api.get("/api/status/").json()["versions"] == {str(s): v for s, v in versions.items()}
    # What the page and the API show is what was published, even where the database has moved on since.
    CameraPlacement.objects.filter(camera=busy_site["away"]).update(state=Placement.ON_PRIMARY)
    (row,) = [row for row in api.get("/api/status/").json()["cameras"] if row["name"] == "away"]
    assert row["placement"] == Placement.ON_BACKUP
    page = admin_client.get("/live/").content.decode()
    assert f'id="tile-{busy_site["away"].pk}"' in page and f'data-system="{busy_site["system"].pk}"' in page
    r.delete(live.key("status", busy_site["other"].system_id))
    status = api.get("/api/status/").json()
    assert status["versions"] == {} and {row["name"]: row["placement"] for row in status["cameras"]}["away"] == (
        Placement.ON_PRIMARY
    ), "a system not published: the status computed on the spot"


# -- the live socket ------------------------------------------------------------------------------


async def receive_until(communicator, kind, timeout=5):
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


def test_a_socket_gets_the_whole_status_once_then_only_the_changed_rows(busy_site, admin_client):
    r = live.client()
    heartbeat(r, "srv-a", "srv-b", "srv-other")
    publisher = StatusPublisher(r)
    versions = publish_all(publisher, r)
    system = busy_site["system"].pk
    servers, cameras = engine_rows(r)[system]
    moving = busy_site["moving"].pk

    async def run():
        communicator = socket(admin_client)
        assert (await communicator.connect(timeout=5))[0]
        status = await receive_until(communicator, "status")
        row = {**cameras[moving], "placement": Placement.ON_BACKUP, "reason": "backup srv-b records it"}
        await sync_to_async(publisher.publish)(system, live.redis_time(r), {}, {moving: row})
        delta = await receive_until(communicator, "delta")
        await sync_to_async(publisher.publish)(system, live.redis_time(r), servers, {**cameras, moving: row})
        nothing = await communicator.receive_nothing(timeout=1.5)
        await communicator.disconnect()
        return status, delta, row, nothing

    status, delta, row, nothing = async_to_sync(run)()
    assert status["status"]["versions"] == {str(s): v for s, v in versions.items()}
    assert {r["name"] for r in status["status"]["cameras"]} == {"home", "moving", "away", "alone", "off", "theirs"}
    assert delta["system"] == system and delta["version"] == versions[system] + 1
    assert delta["cameras"] == [row] and delta["servers"] == [] and delta["removed_cameras"] == []
    assert nothing, "the same rows again send nothing"


def test_a_socket_that_misses_a_version_asks_again_and_goes_on_from_the_whole_status(busy_site, admin_client):
    r = live.client()
    publisher = StatusPublisher(r)
    system = busy_site["system"].pk
    version = publish_all(publisher, r)[system]
    servers, cameras = engine_rows(r)[system]
    moving, away = busy_site["moving"].pk, busy_site["away"].pk

    async def run():
        communicator = socket(admin_client)
        assert (await communicator.connect(timeout=5))[0]
        expected = (await receive_until(communicator, "status"))["status"]["versions"][str(system)]
        # Version +1 lost on its way (the channel was full): the socket meets +2 first.
        lost = {**cameras[moving], "reason": "lost"}
        r.delete(live.key("status-watched"))
        await sync_to_async(publisher.publish)(system, 0.0, {}, {moving: lost})
        await sync_to_async(live.client().set)(live.key("status-watched"), "1")
        await sync_to_async(publisher.publish)(system, 0.0, {}, {away: {**cameras[away], "reason": "next"}})
        delta = await receive_until(communicator, "delta")
        assert delta["version"] != expected + 1  # the page's rule: not the next one → ask for the whole again
        await communicator.send_json_to({"type": "resync"})
        again = (await receive_until(communicator, "status"))["status"]
        await sync_to_async(publisher.publish)(system, 0.0, {}, {away: {**cameras[away], "reason": "after"}})
        after = await receive_until(communicator, "delta")
        await communicator.disconnect()
        return expected, delta, again, after

    expected, delta, again, after = async_to_sync(run)()
    assert expected == version and delta["version"] == version + 2
    assert again["versions"][str(system)] == version + 2
    assert {row["id"]: row["reason"] for row in again["cameras"]}[moving] == "lost", "the missed change is in it"
    assert after["version"] == version + 3


def test_a_user_limited_to_one_system_receives_nothing_of_another(busy_site, client):
    sam = User.objects.create_user("sam", "sam@example.com", "a-long-test-passphrase")
    sam.groups.add(Group.objects.get(name=ADMINISTRATORS))
    SystemAccess.objects.create(user=sam, system=busy_site["system"])
    client.force_login(sam)
    r = live.client()
    publisher = StatusPublisher(r)
    publish_all(publisher, r)
    rows = engine_rows(r)
    system, other = busy_site["system"].pk, busy_site["other"].system_id
    theirs, home = busy_site["theirs"].pk, busy_site["home"].pk

    async def run():
        communicator = socket(client)
        assert (await communicator.connect(timeout=5))[0]
        status = await receive_until(communicator, "status")
        theirs_row = {**rows[other][1][theirs], "reason": "theirs moved"}
        await sync_to_async(publisher.publish)(other, 0.0, {}, {theirs: theirs_row})
        await get_layer().group_send(status_group(other), {"type": "status.delta", "system": other, "version": 10**15,
                                                           "at": 0.0, "resync": True})  # fmt: skip
        await sync_to_async(publisher.publish)(system, 0.0, {}, {home: {**rows[system][1][home], "reason": "mine"}})
        delta = await communicator.receive_json_from(timeout=5)  # the first message after: its own system's
        await communicator.disconnect()
        return status, delta

    status, delta = async_to_sync(run)()
    assert {row["name"] for row in status["status"]["cameras"]} == {"home", "moving", "away", "alone", "off"}
    assert {row["name"] for row in status["status"]["servers"]} == {"srv-a", "srv-b", "srv-c"}
    assert list(status["status"]["versions"]) == [str(system)]
    assert delta["type"] == "delta" and delta["system"] == system and delta["cameras"][0]["reason"] == "mine"


async def everything_within(communicator, seconds: float) -> list[dict]:
    """What the socket sends within ``seconds``."""
    loop = asyncio.get_running_loop()
    end, received = loop.time() + seconds, []
    while (left := end - loop.time()) > 0:
        if not await communicator.receive_nothing(timeout=min(left, 0.2)):
            received.append(await communicator.receive_json_from(timeout=1))
    return received


def get_layer():
    from channels.layers import get_channel_layer

    return get_channel_layer()


@pytest.mark.parametrize("silent", [False, True])
def test_a_quiet_second_costs_a_socket_nothing(busy_site, admin_client, silent):
    """Three quiet seconds: heartbeats arrive, the engine passes and publishes every half second, nothing
    changes. The socket gets nothing, also while a server is silent (srv-a here): its last_heard stays still."""
    r = live.client()
    heard = ("srv-b", "srv-other") if silent else ("srv-a", "srv-b", "srv-other")
    heartbeat(r, *heard)
    publisher = StatusPublisher(r)
    publish_all(publisher, r)

    def quiet_pass():
        heartbeat(r, *heard)
        return publish_all(publisher, r, full=False)

    async def run():
        communicator = socket(admin_client)
        assert (await communicator.connect(timeout=5))[0]
        first = await communicator.receive_output(timeout=5)
        loop = asyncio.get_running_loop()
        start, received, passes = loop.time(), [], []
        while loop.time() - start < 3.0:
            passes.append(await sync_to_async(quiet_pass)())
            while not await communicator.receive_nothing(timeout=0.5):
                received.append(await communicator.receive_output(timeout=1))
        await communicator.disconnect()
        return first, received, passes

    first, received, passes = async_to_sync(run)()
    assert json.loads(first["text"])["type"] == "status"
    assert all(version is None for published in passes for version in published.values())
    assert received == [], "a quiet second sends nothing, a server silent or not (the page ages it itself)"


def test_a_socket_without_a_published_status_sends_the_computed_one_every_second(busy_site, admin_client):
    """No engine publishes yet: the socket falls back to the status computed on the spot, then takes the
    published one as soon as the engine sends its first delta."""
    r = live.client()
    system = busy_site["system"].pk

    async def run():
        communicator = socket(admin_client)
        assert (await communicator.connect(timeout=5))[0]
        first = await receive_until(communicator, "status")
        second = await receive_until(communicator, "status")
        publisher = StatusPublisher(r)
        await sync_to_async(publish_all)(publisher, r)
        # Published now: the next whole status has versions, and then nothing comes while all is quiet.
        while not (status := await receive_until(communicator, "status"))["status"]["versions"]:
            pass
        await communicator.disconnect()
        return first, second, status, publisher.version(system)

    first, second, status, version = async_to_sync(run)()
    assert first["status"]["versions"] == second["status"]["versions"] == {}
    assert status["status"]["versions"][str(system)] == version


def test_a_camera_row_of_a_camera_never_placed_is_on_its_primary(busy_site):
    config = site_config.load()
    camera = config.cameras[busy_site["home"].pk]
    r = live.client()
    seen = observe(r, list(config.by_name), time.time())
    views = {pk: seen.server_view(server, None) for pk, server in config.servers.items()}
    from redundancy.decisions import CameraView

    view = CameraView(camera.pk, camera.name, camera.mode, camera.priority, views[camera.primary_id],
                      views[camera.backup_id], Placement.ON_PRIMARY, 0)  # fmt: skip
    row = camera_row(camera, None, view, Windows(), seen.reports, config)
    assert row["placement"] == Placement.ON_PRIMARY and row["since"] is None and row["reason"] == ""
    assert row["active_server"] == camera.primary_id and row["ingesting_servers"] == [camera.primary_id]


def test_a_limit_given_to_a_user_reaches_an_open_socket_within_seconds(busy_site, client):
    sam = User.objects.create_user("sam", "sam@example.com", "a-long-test-passphrase")
    sam.groups.add(Group.objects.get(name=ADMINISTRATORS))
    client.force_login(sam)
    r = live.client()
    publisher = StatusPublisher(r)
    publish_all(publisher, r)
    rows = engine_rows(r)
    system, other = busy_site["system"].pk, busy_site["other"].system_id
    theirs = busy_site["theirs"].pk

    async def run():
        communicator = socket(client)
        assert (await communicator.connect(timeout=5))[0]
        before = (await receive_until(communicator, "status"))["status"]
        await sync_to_async(SystemAccess.objects.create)(user=sam, system=busy_site["system"])
        loop = asyncio.get_running_loop()
        began = loop.time()
        after = (await receive_until(communicator, "status", timeout=10))["status"]
        took = loop.time() - began
        await sync_to_async(publisher.publish)(other, 0.0, {}, {theirs: {**rows[other][1][theirs], "reason": "x"}})
        nothing = not await everything_within(communicator, 1.5)
        await communicator.disconnect()
        return before, after, took, nothing

    before, after, took, nothing = async_to_sync(run)()
    assert set(before["versions"]) == {str(system), str(other)} and "theirs" in {c["name"] for c in before["cameras"]}
    assert set(after["versions"]) == {str(system)} and "theirs" not in {c["name"] for c in after["cameras"]}
    assert took < 5.0 and nothing


def test_a_large_status_comes_in_parts_under_the_web_servers_message_limit(busy_site, admin_client, monkeypatch):
    from redundancy import consumers

    monkeypatch.setattr(consumers, "STATUS_PART_BYTES", 2500)
    r = live.client()
    publisher = StatusPublisher(r)
    publish_all(publisher, r)

    async def run():
        communicator = socket(admin_client)
        assert (await communicator.connect(timeout=5))[0]
        first = await communicator.receive_output(timeout=5)
        parts = [await communicator.receive_output(timeout=5) for _ in range(json.loads(first["text"])["parts"] - 1)]
        await communicator.disconnect()
        return first, parts

    first, parts = async_to_sync(run)()
    assert all(len(message["text"]) <= 2500 for message in parts)
    first, parts = json.loads(first["text"]), [json.loads(part["text"]) for part in parts]
    status = first["status"]
    assert {part["type"] for part in parts} == {"status_part"}
    assert first["systems"] == sorted({busy_site["system"].pk, busy_site["other"].system_id})
    whole = {name: status[name] + [row for part in parts for row in part[name]] for name in ("servers", "cameras")}
    assert comparable({**status, **whole}) == comparable(published_status(r, None))
