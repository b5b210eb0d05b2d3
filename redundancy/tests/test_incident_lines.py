"""The web tier's lines of an incident carry its event id (``incident=``), the camera and the servers, as the
engine's and the agents' do: an operator's drain and fail-back, an acknowledgement, the mail sent for it."""

import logging

from django.contrib.auth.models import User
from django.utils import timezone

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
