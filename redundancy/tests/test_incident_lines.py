"""The web tier's lines of an incident carry its event id (``incident=``), the camera and the servers, as the
engine's and the agents' do: an operator's drain and fail-back, an acknowledgement, the mail sent for it."""

import logging

from django.contrib.auth.models import User
from django.utils import timezone

from protocol import live
from redundancy import actions, notifications
from redundancy.models import Event, EventKind, MailState
from servers.models import MailSettings
from utilities.logformat import pairs
from utilities.ports import free_ports


def _lines(caplog, event):
    return [pairs(record.getMessage()) for record in caplog.records if f"event={event}" in record.getMessage()]


def test_a_drain_and_its_fail_back_name_their_events(site, caplog):
    caplog.set_level(logging.INFO, logger="redundancy")
    olga = User.objects.create_user("olga", "olga@example.com", "a-long-test-passphrase")
    drained = actions.drain(site["a"], user=olga)
    [line] = _lines(caplog, "drain_started")
    assert line == {"server": "srv-a", "event": "drain_started", "incident": drained.pk, "user": "olga"}
    actions.fail_back(site["a"], user=olga)
    [line] = _lines(caplog, "fail_back_requested")
    ended = Event.objects.get(kind=EventKind.DRAIN_ENDED)
    assert line["server"] == "srv-a" and line["incident"] == ended.pk and line["cameras"] == 0


def _failover(site, camera, **fields):
    return Event.objects.create(at=timezone.now(), kind=EventKind.FAILOVER_STARTED, camera=camera, server=site["a"],
                                to_server=site["b"], message=f"{camera.name} to srv-b", **fields)  # fmt: skip


def test_an_acknowledgement_names_the_event_its_camera_and_servers(site, make_camera, caplog):
    caplog.set_level(logging.INFO, logger="redundancy")
    camera = make_camera(site["a"], site["b"], name="gate")
    event = _failover(site, camera)
    olga = User.objects.create_user("olga", "olga@example.com", "a-long-test-passphrase")
    assert event.acknowledge(olga, "seen")
    [line] = _lines(caplog, "event_acknowledged")
    assert line == {"camera": camera.pk, "server": "srv-a", "to_server": "srv-b", "event": "event_acknowledged",
                    "incident": event.pk, "kind": "failover_started", "user": "olga"}  # fmt: skip


def test_the_mail_of_an_incident_names_its_events(site, make_camera, caplog):
    caplog.set_level(logging.INFO, logger="redundancy")
    refusing = free_ports(1)[0]  # nothing listens there: the mail fails at once
    MailSettings.objects.create(system=site["system"], smtp_host="127.0.0.1", smtp_port=refusing, use_tls=False,
                                recipients="ops@example.com", from_email="vms@example.com")  # fmt: skip
    cameras = [make_camera(site["a"], site["b"], name=name) for name in ("gate", "yard")]
    events = [_failover(site, camera, mail_state=MailState.PENDING) for camera in cameras]
    assert notifications.send_pending_mail() == 0
    [line] = _lines(caplog, "mail_failed")
    assert line["server"] == "srv-b" and line["attempt"] == 1
    assert line["incidents"] == ",".join(str(event.pk) for event in events)


def test_every_word_written_while_a_camera_moves_carries_its_incident(site, make_camera, caplog):
    from redundancy.models import Placement
    from redundancy.tests.test_engine import World

    for name in ("a", "b", "c"):
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    caplog.set_level(logging.INFO, logger="redundancy")
    world = World(site)
    gate = make_camera(site["a"], site["b"], name="gate")
    yard = make_camera(site["c"], site["b"], name="yard")
    world.beat("srv-a", streams={gate: "streaming"})
    world.beat("srv-c", streams={yard: "streaming"})
    world.beat("srv-b", streams={})
    world.tick()
    for _ in range(2):  # srv-a silent past the fast window: gate moves to srv-b
        world.now += 1.0
        world.beat("srv-b", "srv-c")
        world.tick()
    assert world.placement(gate) == Placement.TO_BACKUP
    gate_moved = Event.objects.get(kind=EventKind.FAILOVER_STARTED, camera=gate).pk
    assert live.read_desired_word(world.redis, "srv-b").incidents == {gate.pk: gate_moved}
    for _ in range(2):  # srv-c too, while srv-b has not yet reported gate's frames
        world.now += 1.0
        world.beat("srv-b")
        world.tick()
    assert world.placement(yard) == Placement.TO_BACKUP and world.placement(gate) == Placement.TO_BACKUP
    yard_moved = Event.objects.get(kind=EventKind.FAILOVER_STARTED, camera=yard).pk
    # The later write still names gate's incident: an agent that reconciles only now logs both.
    assert live.read_desired_word(world.redis, "srv-b").incidents == {gate.pk: gate_moved, yard.pk: yard_moved}
    world.beat("srv-b", streams={gate: "streaming", yard: "streaming"})
    world.tick(0.2)
    assert world.placement(gate) == Placement.ON_BACKUP == world.placement(yard)
    assert world.engine._incidents == {}  # both moves over: the next words carry none
    # Each move is one incident from its start to its end, its start caused by its primary's server_down.
    for camera, moved, primary in ((gate, gate_moved, "srv-a"), (yard, yard_moved, "srv-c")):
        down = Event.objects.get(kind=EventKind.SERVER_DOWN, server__name=primary).pk
        done = Event.objects.get(kind=EventKind.FAILOVER_COMPLETED, camera=camera).pk
        lines = {line["event"]: line for line in (pairs(record.getMessage()) for record in caplog.records)
                 if line.get("camera") == camera.pk}  # fmt: skip
        assert lines["failover_started"]["incident"] == moved and lines["failover_started"]["cause"] == down
        assert lines["failover_completed"]["incident"] == moved and lines["failover_completed"]["event_id"] == done
        assert lines["failover_completed"]["primary"] == primary and lines["failover_completed"]["backup"] == "srv-b"
