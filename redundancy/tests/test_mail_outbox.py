"""Mail leaves through an outbox: the engine only marks the events to mail, a worker of its own
sends them, with a timeout on every SMTP path and retries with backoff. A mail server that hangs
never delays a failover decision."""

import socket
import threading
import time

import pytest
from django.core import mail

from redundancy import notifications
from redundancy.models import Event, MailState, Placement
from redundancy.tests.test_engine import World
from servers.models import MailSettings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def silent_smtp():
    """A loopback SMTP 'server' that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


@pytest.fixture
def mailing_site(site, make_camera):
    site["b"].redundancy.email_notifications = True
    site["b"].redundancy.save()
    cameras = [make_camera(site["a"], site["b"], name=f"gate-{n}") for n in range(3)]
    return site, cameras


def _fail_primary(world, cameras):
    world.beat("srv-a", "srv-b", "srv-c")
    world.tick()
    world.now += 31
    world.beat("srv-b", "srv-c")
    started = time.monotonic()
    world.tick()
    return time.monotonic() - started


def test_a_hanging_smtp_server_delays_no_failover_decision(mailing_site, silent_smtp, settings):
    site, cameras = mailing_site
    settings.EMAIL_TIMEOUT = 2.0
    MailSettings.objects.create(system=site["system"], smtp_host="127.0.0.1", smtp_port=silent_smtp,
                                recipients="ops@example.com", from_email="vms@example.com")  # fmt: skip
    world = World(site)
    took = _fail_primary(world, cameras)
    assert all(world.placement(c) == Placement.TO_BACKUP for c in cameras)
    assert took < settings.EMAIL_TIMEOUT, f"the failover tick waited {took:.1f} s"
    pending = Event.objects.filter(kind="failover_started")
    assert {e.mail_state for e in pending} == {MailState.PENDING}
    assert not Event.objects.exclude(kind="failover_started").exclude(mail_state="").exists()

    # The mail worker meets the hanging server: its timeout ends the attempt; the engine ticks on meanwhile.
    sender = threading.Thread(target=notifications.send_pending_mail, kwargs={"now": world.now})
    sender.start()
    world.beat("srv-b", "srv-c", streams={c: "streaming" for c in cameras})
    started = time.monotonic()
    world.tick(0.5)
    assert time.monotonic() - started < settings.EMAIL_TIMEOUT
    assert all(world.placement(c) == Placement.ON_BACKUP for c in cameras)
    sender.join(30)
    assert not sender.is_alive(), "the SMTP timeout must end the attempt"
    for event in Event.objects.filter(kind="failover_started"):
        assert (event.mail_state, event.mail_attempts) == (MailState.PENDING, 1)
        assert event.mail_due.timestamp() > world.now  # retried later, with backoff
    assert "timed out" in Event.objects.filter(kind="failover_started").first().mail_error


def test_mail_is_retried_with_backoff_and_sent_once_per_incident(mailing_site, silent_smtp, settings):
    site, cameras = mailing_site
    settings.EMAIL_TIMEOUT = 0.5
    mail_settings = MailSettings.objects.create(system=site["system"], smtp_host="127.0.0.1", smtp_port=silent_smtp,
                                                recipients="ops@example.com", from_email="vms@example.com")  # fmt: skip
    world = World(site)
    _fail_primary(world, cameras)
    assert notifications.send_pending_mail(now=world.now) == 0
    first_retry = Event.objects.filter(kind="failover_started").first().mail_due.timestamp()
    assert notifications.send_pending_mail(now=world.now + 1) == 0, "not due yet: nothing is tried"
    assert Event.objects.filter(kind="failover_started").first().mail_attempts == 1
    assert notifications.send_pending_mail(now=first_retry + 0.1) == 0
    second_retry = Event.objects.filter(kind="failover_started").first().mail_due.timestamp()
    assert second_retry - first_retry > first_retry - world.now, "each failure waits longer"

    # The mail server works again (here: the site's own mail transport): one mail for the incident.
    mail_settings.smtp_host = ""
    mail_settings.save()
    settings.EMAIL_FROM_ENVIRONMENT = True
    assert notifications.send_pending_mail(now=second_retry + 0.1) == 1
    assert len(mail.outbox) == 1 and mail.outbox[0].subject == "Redundancy started on srv-b: 3 camera(s)"
    assert {e.mail_state for e in Event.objects.filter(kind="failover_started")} == {MailState.SENT}
    assert all(e.mailed_at is not None for e in Event.objects.filter(kind="failover_started"))
    assert notifications.send_pending_mail(now=second_retry + 60) == 0 and len(mail.outbox) == 1


def test_mail_gives_up_after_its_last_attempt_and_says_why(mailing_site, silent_smtp, settings):
    site, cameras = mailing_site
    settings.EMAIL_TIMEOUT = 0.2
    MailSettings.objects.create(system=site["system"], smtp_host="127.0.0.1", smtp_port=silent_smtp,
                                recipients="ops@example.com", from_email="vms@example.com")  # fmt: skip
    world = World(site)
    _fail_primary(world, cameras)
    now = world.now
    for _ in range(notifications.MAIL_ATTEMPTS):
        assert Event.objects.filter(kind="failover_started", mail_state=MailState.PENDING).count() == 3
        notifications.send_pending_mail(now=now)
        due = Event.objects.filter(kind="failover_started").first().mail_due
        now = due.timestamp() + 0.1 if due else now
    events = Event.objects.filter(kind="failover_started")
    assert {(e.mail_state, e.mail_attempts) for e in events} == {(MailState.FAILED, notifications.MAIL_ATTEMPTS)}
    assert notifications.send_pending_mail(now=now + 3600) == 0


def test_mail_without_working_settings_is_not_kept_pending(mailing_site, settings):
    site, cameras = mailing_site
    world = World(site)
    _fail_primary(world, cameras)
    assert notifications.send_pending_mail(now=world.now) == 0
    assert {e.mail_state for e in Event.objects.filter(kind="failover_started")} == {MailState.SKIPPED}
    assert mail.outbox == []
