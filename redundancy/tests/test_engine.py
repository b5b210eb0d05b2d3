"""The engine's tick against the real database and Redis, with heartbeats written by the test and a
clock it moves: no agents, no sleeping."""

import asyncio
import uuid

import pytest
from django.core import mail

from protocol import live
from redundancy import actions, notifications
from redundancy.engine import Engine
from redundancy.models import CameraPlacement, Event, Placement, ServerState
from servers.models import MailSettings

pytestmark = pytest.mark.django_db(transaction=True)


class World:
    """Servers that 'heartbeat' when the test says so, and a clock the test moves."""

    def __init__(self, servers):
        self.now = 1_800_000_000.0
        self.redis = live.client()
        self.servers = servers
        self.woken_agents = []
        self.in_outage = False
        self.last_pass = None
        self.mail_wakes = []
        self.engine = Engine(self.redis, clock=lambda: self.now, wake_agent=self.woken_agents.append,
                             wake_mailer=lambda: self.mail_wakes.append(self.now))  # fmt: skip

    def send_mail(self):
        """The mail worker's pass, at the test's time."""
        return notifications.send_pending_mail(now=self.now)

    def beat(self, *names, streams=None):
        for name in names:
            live.publish_heartbeat(self.redis, name, {"at": self.now}, ttl=60)
            if streams is not None:
                live.publish_stream_reports(self.redis, name, {c.pk: {"state": s} for c, s in streams.items()}, 60)

    def tick(self, seconds=0.0):
        """A pass of the engine after ``seconds``; time the test moved on passed with the engine
        running (as beat ticks it every second), unless the test made it an outage."""
        if not self.in_outage and self.last_pass is not None:
            # The engine passed every second meanwhile (as beat ticks it), unless the test made it an outage.
            moment = self.last_pass + 1.0
            while moment < self.now + seconds:
                live.mark_engine_pass(self.redis, moment)
                moment += 1.0
        self.now += seconds
        self.in_outage = False
        self.last_pass = self.now
        return self.engine.tick()

    def outage(self, seconds):
        """Redis unreachable for ``seconds``: no heartbeat gets through and the engine cannot pass."""
        self.now += seconds
        self.in_outage = True

    def placement(self, camera):
        return CameraPlacement.objects.get(camera=camera).state

    def desired(self, name):
        return live.read_desired(self.redis, name)


@pytest.fixture
def world(site):
    return World(site)


@pytest.fixture
def fast_site(site, make_server):
    for name in ("a", "b"):
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    return site


def test_healthy_servers_keep_their_cameras_and_agents_get_desired_sets(world, site, make_camera):
    camera = make_camera(site["a"], site["b"])
    world.beat("srv-a", "srv-b", "srv-c")
    result = world.tick()
    assert result.ran and world.placement(camera) == Placement.ON_PRIMARY
    assert world.desired("srv-a") == {camera.pk} and world.desired("srv-b") == set()
    assert set(world.woken_agents) >= {"srv-a", "srv-b"}
    world.woken_agents.clear()
    world.tick(0.5)
    assert world.woken_agents == []  # nothing changed: no notice


def test_fast_failover_and_failback_with_events(world, fast_site, make_camera):
    site = fast_site
    camera = make_camera(site["a"], site["b"], name="gate")
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick()
    # srv-a dies: after the fast window its camera moves to srv-b.
    world.now += 1.0
    world.beat("srv-b")
    world.tick()
    assert world.placement(camera) == Placement.ON_PRIMARY
    world.now += 1.0
    world.beat("srv-b")
    world.tick()
    assert world.placement(camera) == Placement.TO_BACKUP
    assert world.desired("srv-b") == {camera.pk}
    world.beat("srv-b", streams={camera: "streaming"})
    world.tick(0.2)
    assert world.placement(camera) == Placement.ON_BACKUP
    kinds = list(Event.objects.order_by("at", "id").values_list("kind", flat=True))
    assert kinds[-3:] == ["server_down", "failover_started", "failover_completed"]
    # srv-a returns: it ingests its camera again at once, but the camera stays on srv-b for the hold-down.
    world.beat("srv-a", streams={camera: "streaming"})
    world.beat("srv-b", streams={camera: "streaming"})
    world.tick(0.1)
    assert world.desired("srv-a") == {camera.pk} and world.placement(camera) == Placement.ON_BACKUP
    world.now += 11
    world.beat("srv-a", streams={camera: "streaming"})
    world.beat("srv-b", streams={camera: "streaming"})
    world.tick()
    assert world.placement(camera) == Placement.ON_PRIMARY
    assert world.desired("srv-b") == set()
    assert list(Event.objects.order_by("-at", "-id").values_list("kind", flat=True)[:2]) == [
        "failback_completed", "failback_started",
    ]  # fmt: skip


def test_a_completed_failover_says_how_the_backup_connected_and_what_the_camera_did_with_the_keyframe_asked(
    world, fast_site, make_camera
):
    camera = make_camera(fast_site["a"], fast_site["b"], name="gate")
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick()
    for _ in range(2):  # srv-a silent past the fast window
        world.now += 1.0
        world.beat("srv-b")
        world.tick()
    world.beat("srv-b")
    live.publish_stream_reports(world.redis, "srv-b", {camera.pk: {
        "state": "streaming", "open_seconds": 0.07, "keyframe_request": "accepted", "keyframe_wait_seconds": 0.09,
        "first_frame_seconds": 0.16}}, 60)  # fmt: skip
    world.tick(0.2)
    message = Event.objects.get(camera=camera, kind="failover_completed").message
    assert "stream opened in 0.07 s" in message
    assert "keyframe asked of the camera: accepted" in message
    assert "first keyframe 0.09 s after the open" in message
    assert "first frame 0.16 s after connecting" in message


def test_normal_mode_waits_for_the_normal_window(world, site, make_camera):
    camera = make_camera(site["a"], site["b"])
    world.beat("srv-a", "srv-b")
    world.tick()
    for _ in range(5):  # 25 s of silence: ridden out
        world.now += 5
        world.beat("srv-b")
        world.tick()
    assert world.placement(camera) == Placement.ON_PRIMARY
    assert ServerState.objects.get(server=site["a"]).status == "suspect"
    world.now += 6
    world.beat("srv-b")
    world.tick()
    assert world.placement(camera) == Placement.TO_BACKUP


def test_a_system_another_worker_leads_is_not_decided_here(world, site, make_camera):
    make_camera(site["a"], site["b"])
    world.beat("srv-a", "srv-b")
    for system in (site["system"].pk, site["other"].system_id):
        world.redis.set(live.key("system-lease", system), "another-worker", px=5000)
    assert not world.tick().ran
    assert not CameraPlacement.objects.exists()
    assert 4.0 < world.engine.leases.others_end_in <= 5.0  # the loop passes again when their lease would end
    for system in (site["system"].pk, site["other"].system_id):
        world.redis.delete(live.key("system-lease", system))
    assert world.tick().ran


def test_flapping_server_gets_longer_hold_downs_and_no_ping_pong(world, fast_site, make_camera):
    site = fast_site
    camera = make_camera(site["a"], site["b"])
    for _ in range(3):
        world.beat("srv-a", "srv-b", streams={camera: "streaming"})
        world.tick(0.5)
        world.now += 2.0  # a short outage of the link
        world.beat("srv-b", streams={camera: "streaming"})
        world.tick()
        world.beat("srv-b", streams={camera: "streaming"})
        world.tick(0.2)
        for _ in range(10):  # 5 s of health, shorter than any hold-down
            world.beat("srv-a", "srv-b", streams={camera: "streaming"})
            world.tick(0.5)
    state = ServerState.objects.get(server=site["a"])
    assert world.engine.damping.hold_down_after(state.failures, world.now) == 40 and len(state.failures) == 3
    assert Event.objects.filter(kind="flap_damped").count() == 2
    moves = Event.objects.filter(kind__in=["failover_started", "failback_started"]).count()
    assert moves == 1, "the camera stayed on the backup through the flapping"
    assert world.placement(camera) == Placement.ON_BACKUP


def test_backup_also_down_is_reported(world, fast_site, make_camera):
    camera = make_camera(fast_site["a"], fast_site["b"])
    world.beat("srv-a", "srv-b")
    world.tick()
    world.tick(40)
    assert world.placement(camera) == Placement.NOBODY
    event = Event.objects.get(kind="camera_unprotected")
    assert "srv-a and backup srv-b are both down" in event.message


def test_a_server_that_only_backs_up_fast_cameras_is_down_when_its_events_say_so(world, fast_site, make_camera):
    """One rule for "down": the status, the events and the decisions agree after the fast window."""
    camera = make_camera(fast_site["a"], fast_site["b"])
    world.beat("srv-a", "srv-b", "srv-c")
    world.tick()
    world.now += 2.0  # both silent past the fast window
    world.beat("srv-c")
    world.tick()
    assert world.placement(camera) == Placement.NOBODY
    assert "srv-a and backup srv-b are both down" in Event.objects.get(kind="camera_unprotected").message
    states = {s.server.name: s.status for s in ServerState.objects.select_related("server")}
    assert states["srv-a"] == states["srv-b"] == "down"
    assert set(Event.objects.filter(kind="server_down").values_list("server__name", flat=True)) == {"srv-a", "srv-b"}
    assert states["srv-c"] == "up"


def test_a_server_of_normal_cameras_only_is_suspect_until_the_normal_window(world, fast_site, make_camera):
    make_camera(fast_site["a"], fast_site["b"])  # fast: srv-a and srv-b are judged by the fast window
    make_camera(fast_site["c"], fast_site["a"])  # srv-c's camera is backed up in normal mode
    world.beat("srv-a", "srv-b", "srv-c")
    world.tick()
    world.now += 2.0
    world.beat("srv-a", "srv-b")
    world.tick()
    assert ServerState.objects.get(server=fast_site["c"]).status == "suspect"
    world.now += 29.0
    world.beat("srv-a", "srv-b")
    world.tick()
    assert ServerState.objects.get(server=fast_site["c"]).status == "down"


def test_priorities_decide_who_gets_a_full_backup(world, site, make_camera):
    site["b"].max_cameras = 2
    site["b"].save()
    low = make_camera(site["a"], site["b"], name="low", failover_priority="low")
    high = make_camera(site["a"], site["b"], name="high", failover_priority="high")
    normal = make_camera(site["a"], site["b"], name="normal")
    never = make_camera(site["a"], site["b"], name="never", failover_priority="never")
    make_camera(site["b"], name="own")  # srv-b's own camera takes one of its two places
    world.beat("srv-a", "srv-b")
    world.tick()
    world.now += 31
    world.beat("srv-b")
    world.tick()
    assert world.placement(high) == Placement.TO_BACKUP
    assert {world.placement(c) for c in (low, normal, never)} == {Placement.NOBODY}
    assert "srv-b is full" in Event.objects.get(kind="camera_unprotected", camera=normal).message
    assert "'never'" in Event.objects.get(kind="camera_unprotected", camera=never).message


def test_one_mail_per_incident_and_none_in_constant_mode(world, site, make_camera, settings):
    settings.EMAIL_FROM_ENVIRONMENT = True
    MailSettings.objects.create(system=site["system"], recipients="ops@example.com", from_email="vms@example.com")
    site["b"].redundancy.email_notifications = True
    site["b"].redundancy.save()
    site["c"].redundancy.email_notifications = True
    site["c"].redundancy.constant_redundancy = True
    site["c"].redundancy.save()
    normal = [make_camera(site["a"], site["b"], name=f"n{i}") for i in range(3)]
    constant = make_camera(site["a"], site["c"], name="k")
    world.beat("srv-a", "srv-b", "srv-c")
    world.tick()
    world.now += 31
    world.beat("srv-b", "srv-c", streams={constant: "streaming"})
    world.tick()
    assert mail.outbox == [] and world.mail_wakes == [world.now], "the engine only wakes the mail worker"
    assert world.send_mail() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Redundancy started on srv-b: 3 camera(s)"
    assert mail.outbox[0].to == ["ops@example.com"]
    assert all(c.name in mail.outbox[0].body for c in normal) and "k " not in mail.outbox[0].body
    assert Event.objects.filter(camera=constant, kind="failover_completed").exists()


def test_drain_moves_cameras_make_before_break_and_fail_back_returns_them(world, site, make_camera):
    camera = make_camera(site["a"], site["b"])
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick()
    actions.drain(site["a"])
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick(0.1)
    assert world.placement(camera) == Placement.TO_BACKUP
    assert world.desired("srv-a") == {camera.pk} and world.desired("srv-b") == {camera.pk}
    world.beat("srv-a", streams={camera: "streaming"})
    world.beat("srv-b", streams={camera: "streaming"})
    world.tick(0.1)
    assert world.placement(camera) == Placement.ON_BACKUP and world.desired("srv-a") == set()
    actions.fail_back(site["a"])
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick(0.1)  # the primary, streaming already, takes the camera back at once
    assert world.desired("srv-a") == {camera.pk} and world.placement(camera) == Placement.ON_PRIMARY
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick(0.1)
    assert world.placement(camera) == Placement.ON_PRIMARY and world.desired("srv-b") == set()
    kinds = set(Event.objects.values_list("kind", flat=True))
    assert {"drain_started", "drain_ended", "failover_completed", "failback_completed"} <= kinds


def test_without_redis_the_engine_decides_nothing(site, make_camera):
    import redis as redis_lib

    make_camera(site["a"], site["b"])
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    assert not Engine(dead, wake_agent=lambda name: None).tick().ran
    assert not Event.objects.exists() and not CameraPlacement.objects.exists()


def test_events_are_pushed_to_the_live_group(world, fast_site, make_camera):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from redundancy.notifications import events_group

    make_camera(fast_site["a"], fast_site["b"], name="gate")
    layer = get_channel_layer()
    channel = f"live-page-test-{uuid.uuid4().hex}"  # a plain channel: read straight from Redis
    async_to_sync(layer.group_add)(events_group(), channel)
    world.beat("srv-a", "srv-b")
    world.tick()
    world.now += 2
    world.beat("srv-b")
    world.tick()

    async def collect(until_kind):  # one event loop for all receives, as a consumer has
        kinds = []
        while until_kind not in kinds and len(kinds) < 10:
            message = await asyncio.wait_for(layer.receive(channel), 5)
            assert message["type"] == "redundancy.events"  # one message per tick's batch
            kinds += [event["kind"] for event in message["events"]]
        return kinds

    kinds = async_to_sync(collect)("failover_started")
    assert kinds == ["server_up", "server_up", "server_down", "failover_started"]
    async_to_sync(layer.group_discard)(events_group(), channel)


def test_silence_during_a_redis_outage_is_no_failure(world, fast_site, make_camera):
    """While Redis is unreachable neither heartbeats nor ticks get through; when it answers again
    the old heartbeats must not read as dead servers."""
    camera = make_camera(fast_site["a"], fast_site["b"])
    world.beat("srv-a", "srv-b", "srv-c", streams={camera: "streaming"})
    world.tick()
    world.tick(0.5)
    world.outage(20)
    world.tick()
    assert world.placement(camera) == Placement.ON_PRIMARY
    assert not Event.objects.filter(kind__in=["server_down", "failover_started"]).exists()
    world.beat("srv-a", "srv-b", "srv-c", streams={camera: "streaming"})
    world.tick(0.5)
    assert not Event.objects.filter(kind__in=["server_down", "failover_started"]).exists()
    # A server that really died during the outage is found one window after Redis came back.
    world.now += 1.0
    world.beat("srv-b", "srv-c")
    world.tick(1.0)
    assert Event.objects.filter(kind="server_down", server__name="srv-a").exists()
    assert world.placement(camera) == Placement.TO_BACKUP  # srv-b has not reported the camera's frames yet


def test_a_tick_gap_without_outage_keeps_fresh_heartbeats_fresh(world, fast_site, make_camera):
    camera = make_camera(fast_site["a"], fast_site["b"])
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick()
    world.now += 10  # the engine ran all along; srv-a fell silent long ago, srv-b is fresh
    world.beat("srv-b")
    world.tick()
    world.beat("srv-b")
    world.tick(2.0)
    assert Event.objects.filter(kind="server_down", server__name="srv-a").exists()


def test_storage_failure_and_recovery_are_events_and_server_health(world, site, make_camera):
    make_camera(site["a"], site["b"])
    world.beat("srv-a", "srv-b")
    world.tick()
    live.publish_heartbeat(world.redis, "srv-a", {"at": world.now, "storage_error": "No space left on device"}, 60)
    world.beat("srv-b")
    world.tick(0.5)
    world.tick(0.5)  # reported again: no second event
    failed = Event.objects.filter(kind="storage_failed", server=site["a"])
    assert failed.count() == 1
    assert failed.get().message == "srv-a cannot write its recordings: No space left on device"
    assert ServerState.objects.get(server=site["a"]).storage_error == "No space left on device"
    world.tick(5)  # srv-a silent: its storage is not guessed at
    assert ServerState.objects.get(server=site["a"]).storage_error == "No space left on device"
    world.beat("srv-a", "srv-b")
    world.tick(0.5)
    assert Event.objects.filter(kind="storage_restored", server=site["a"]).count() == 1
    assert ServerState.objects.get(server=site["a"]).storage_error == ""


def test_a_server_down_before_an_outage_stays_down_after_it(world, fast_site, make_camera):
    make_camera(fast_site["a"], fast_site["b"])
    world.beat("srv-a", "srv-b")
    world.tick()
    world.now += 5
    world.beat("srv-b")
    world.tick()
    world.outage(20)
    world.tick()
    world.beat("srv-b")
    world.tick(0.5)
    assert Event.objects.filter(kind="server_down", server__name="srv-a").count() == 1
    assert Event.objects.filter(kind="server_up", server__name="srv-a").count() == 1  # the first pass only
    assert ServerState.objects.get(server__name="srv-a").status == "down"


def test_the_status_the_engine_publishes_is_the_status_computed_from_the_same_state(site, fast_site, make_camera):
    from redundancy.status import StatusPublisher, current_status, published_status

    world = World(site)
    world.engine.publisher = StatusPublisher(world.redis)
    cameras = [make_camera(site["a"], site["b"], name="gate"), make_camera(site["b"], site["a"], name="yard"),
               make_camera(site["c"], None, name="dock"), make_camera(site["other"], None, name="far")]  # fmt: skip
    disabled = make_camera(site["a"], site["c"], name="spare", enabled=False)

    def same():
        published = published_status(world.redis, None)
        computed = current_status(world.redis, clock=lambda: world.now)
        assert published is not None
        for status in (published, computed):
            for row in status["servers"]:
                row.pop("heartbeat_age"), row.pop("last_heard", None)
        assert published["servers"] == computed["servers"]
        assert published["cameras"] == computed["cameras"]
        return published

    world.beat("srv-a", "srv-b", "srv-c", "srv-other", streams={cameras[0]: "streaming", cameras[1]: "streaming"})
    world.tick()
    first = same()
    assert {row["id"] for row in first["cameras"]} == {c.pk for c in [*cameras, disabled]}
    # srv-a falls silent: the failover, then its completion, as published each pass.
    world.now += 2.0
    world.beat("srv-b", "srv-c", "srv-other", streams={cameras[1]: "streaming"})
    world.tick()
    same()
    world.beat("srv-b", streams={cameras[0]: "streaming", cameras[1]: "streaming"})
    world.tick(0.2)
    after = same()
    gate = next(row for row in after["cameras"] if row["id"] == cameras[0].pk)
    assert gate["placement"] == Placement.ON_BACKUP and gate["active_server"] == site["b"].pk
    # A configuration change reaches the next pass's decisions and the published status.
    cameras[2].backup_server = site["a"]
    cameras[2].save()
    world.beat("srv-b", "srv-c", "srv-other", streams={cameras[0]: "streaming", cameras[1]: "streaming"})
    world.tick(0.2)
    dock = next(row for row in same()["cameras"] if row["id"] == cameras[2].pk)
    assert dock["backup_server"] == site["a"].pk and dock["mode"] == "normal"


def test_a_configuration_change_reaches_the_decisions_of_the_next_pass(world, site, make_camera):
    camera = make_camera(site["a"], None, name="gate")
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick()
    for name in ("a", "b"):  # fast redundancy on both, and srv-b becomes the camera's backup
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    camera.backup_server = site["b"]
    camera.save()
    world.now += 2.0  # srv-a silent past the fast window, in the very next pass
    world.beat("srv-b")
    world.tick()
    assert world.placement(camera) == Placement.TO_BACKUP and world.desired("srv-b") == {camera.pk}


def test_an_agent_whose_process_ended_is_down_at_once_in_fast_mode_and_only_after_the_window_in_normal(
    world, site, fast_site, make_camera
):
    fast = make_camera(site["a"], site["b"], name="fast")
    normal = make_camera(site["c"], site["b"], name="normal")
    world.beat("srv-a", "srv-b", "srv-c", streams={fast: "streaming", normal: "streaming"})
    world.tick()
    world.engine.agent_gone("srv-a")
    world.engine.agent_gone("srv-c")
    world.tick(0.05)  # no heartbeat is late yet
    assert world.placement(fast) == Placement.TO_BACKUP
    assert world.placement(normal) == Placement.ON_PRIMARY  # normal mode rides out a restart
    message = Event.objects.get(kind="server_down", server=site["a"]).message
    assert "process ended" in message, message
    # A new agent for srv-c beats again: it is no longer gone.
    world.now += 0.3
    world.beat("srv-a", "srv-b", "srv-c", streams={normal: "streaming"})
    world.tick()
    assert "srv-c" not in world.engine.gone and "srv-a" not in world.engine.gone


def test_two_engine_workers_never_decide_for_the_same_system_at_once(site, make_camera, settings):
    from testbed.waiting import wait_for

    settings.ENGINE_LEASE_SECONDS = 0.5
    cameras = {site["system"].pk: make_camera(site["a"], site["b"]), site["other"].system_id: make_camera(
        site["other"], None)}  # fmt: skip
    world = World(site)
    second = Engine(world.redis, clock=lambda: world.now, wake_agent=lambda name: None, wake_mailer=lambda: None,
                    worker="second")  # fmt: skip
    first = world.engine
    held = []
    for _ in range(8):  # both pass in turn: each keeps what it holds, the second gets its share
        world.beat("srv-a", "srv-b", "srv-c", "srv-other")
        first.tick(), second.tick()
        held.append((set(first.leases.held), set(second.leases.held)))
        world.now += 0.1
    assert all(not (one & two) for one, two in held), held
    assert held[-1][0] and held[-1][1] and held[-1][0] | held[-1][1] == set(cameras)
    assert CameraPlacement.objects.count() == 2  # each camera placed by the worker of its system
    # The first worker dies (it passes no more): its system's lease expires and the second takes it.
    lapsed = [live.key("system-lease", system) for system in first.leases.held]
    wait_for(lambda: not world.redis.exists(*lapsed), 2.0, interval=0.01, message="the first worker's lease to lapse")
    world.beat("srv-a", "srv-b", "srv-c", "srv-other")
    second.tick()
    assert second.leases.held == set(cameras)
    # It comes back: nothing is free, so it decides nothing until the second gives one system back.
    assert not first.tick().ran and not first.leases.held
    second.tick()
    assert first.tick().ran and len(first.leases.held) == 1 and not (first.leases.held & second.leases.held)


def test_a_pass_the_database_fails_is_made_again_from_what_was_stored(world, fast_site, make_camera, monkeypatch):
    from django.db import DatabaseError

    camera = make_camera(fast_site["a"], fast_site["b"], name="gate")
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    world.tick()
    world.now += 2.0  # srv-a silent past the fast window: this pass moves the camera, but cannot store it
    world.beat("srv-b")

    def refused(*args, **kwargs):
        raise DatabaseError("the database is away")

    monkeypatch.setattr(world.engine, "_store", refused)
    assert not world.tick().ran
    assert world.placement(camera) == Placement.ON_PRIMARY
    monkeypatch.undo()
    world.beat("srv-b")
    assert world.tick(0.1).ran
    assert world.placement(camera) == Placement.TO_BACKUP and world.desired("srv-b") == {camera.pk}
    kinds = list(Event.objects.filter(camera=camera).values_list("kind", flat=True))
    assert kinds == ["failover_started"]  # made and stored once, when it could be


def test_the_engine_s_loop_outlives_a_pass_that_fails(world, site, make_camera, monkeypatch):
    import threading

    from redundancy.runner import EngineLoop

    camera = make_camera(site["a"], site["b"])
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    real_tick, calls = world.engine.tick, []

    def tick():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in one pass")
        return real_tick()

    monkeypatch.setattr(world.engine, "tick", tick)
    loop = EngineLoop(world.engine, tick_seconds=0.05, watch_agents=False, schedule=False)
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        from testbed.waiting import wait_for

        wait_for(lambda: len(calls) >= 3, 10, message="passes after the failed one")
    finally:
        loop.stop()
        runner.join(10)
    assert world.placement(camera) == Placement.ON_PRIMARY  # the later passes decided


def test_a_worker_watches_every_agent_of_the_site_also_those_of_systems_it_does_not_lead(world, site):
    """So that a worker taking a system over knows at once which of its agents ended while it did not lead it."""
    from redundancy.runner import EngineLoop

    class Watch:
        watched = None

        def watch(self, servers):
            self.watched = dict(servers)

    world.redis.set(live.key("system-lease", site["other"].system_id), "another-worker", px=5000)
    world.beat("srv-a", "srv-b", "srv-c")
    assert world.tick().ran and world.engine.leases.held == {site["system"].pk}
    loop = EngineLoop(world.engine, watch_agents=False, schedule=False)
    loop.watch = Watch()
    loop._follow_agents()
    assert set(loop.watch.watched) == {"srv-a", "srv-b", "srv-c", site["other"].name}


def test_after_an_outage_of_redis_the_loop_waits_for_the_window_of_a_server_aged_as_if_it_had_not_happened(
    world, fast_site, make_camera
):
    site = fast_site
    camera = make_camera(site["a"], site["b"])
    world.beat("srv-a", "srv-b", "srv-c", streams={camera: "streaming"})
    world.tick()
    lost = world.now
    world.outage(5.0)  # nobody gets through; srv-a dies meanwhile
    live.report_outage(world.redis, "srv-b", lost, world.now)  # srv-b says so once it is back
    back = world.now
    world.beat("srv-b")
    world.tick()
    assert world.placement(camera) == Placement.ON_PRIMARY  # srv-a is aged as if Redis had been there
    world.now += 0.4
    world.beat("srv-b")
    world.tick()
    # srv-a's fast window ends 1.5 s after the outage (not after its last heartbeat, long past), before srv-b's:
    # the loop sleeps until then.
    assert world.engine.next_deadline(world.now) == pytest.approx(back + 1.5 - world.now, abs=0.01)
