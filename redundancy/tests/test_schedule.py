"""The periodic tasks, sent by one engine worker at a time under the schedule's lease (no beat process)."""

import time

import pytest

from protocol import live
from redundancy.schedule import Schedule
from testbed.waiting import wait_for

SWEEP = {"sweep": {"task": "redundancy.send_mail", "schedule": 0.4, "options": {"queue": "mail", "expires": 10}}}


@pytest.fixture
def workers(redis_client):
    sent = []
    made = []

    def make(name, ttl=0.5, tasks=SWEEP, send=None):
        schedule = Schedule(redis_client, name, tasks=tasks, ttl=ttl, interval=0.05,
                            send=send or (lambda task, **options: sent.append((name, task, options))))  # fmt: skip
        made.append(schedule)
        return schedule

    yield make, sent
    for schedule in made:
        schedule.stop()


def test_one_worker_sends_each_task_once_per_period(workers, redis_client):
    make, sent = workers
    first, second = make("first"), make("second")
    assert first.round() == ["sweep"] and second.round() == []
    assert first.round() == []  # not due again yet
    assert redis_client.get(live.key("schedule-lease")) == b"first"
    time.sleep(0.45)  # the period (0.4 s) passes, by Redis's clock: the schedule reads no other
    assert second.round() == [] and first.round() == ["sweep"]
    assert sent == [("first", "redundancy.send_mail", {"queue": "mail", "expires": 10})] * 2


def test_a_dead_worker_s_schedule_is_taken_over_within_the_lease_and_keeps_its_rhythm(workers, redis_client):
    make, sent = workers
    first, second = make("first"), make("second")
    first.round()
    began = time.monotonic()
    # The first worker is killed: it renews nothing more. The second takes over once the lease runs out,
    # and sends at the period after the first one's last send, not at once.
    wait_for(lambda: second.round(), 3, interval=0.02, message="the second worker sending")
    took = time.monotonic() - began
    assert 0.4 <= took < 1.5, took
    assert redis_client.get(live.key("schedule-lease")) == b"second"
    assert [who for who, *_ in sent] == ["first", "second"]


def test_a_worker_that_stops_hands_the_schedule_on_at_once(workers, redis_client):
    make, sent = workers
    first, second = make("first", ttl=30), make("second", ttl=30)
    first.round()
    first.stop()
    assert redis_client.get(live.key("schedule-lease")) is None
    time.sleep(0.45)  # the period passes (Redis's clock)
    assert second.round() == ["sweep"]


def test_a_send_that_fails_is_logged_and_tried_at_the_next_period(workers, caplog):
    make, _ = workers
    failures = []

    def broker_away(task, **options):
        failures.append(task)
        raise ConnectionError("broker away")

    schedule = make("first", send=broker_away)
    assert schedule.round() == []
    assert failures == ["redundancy.send_mail"]
    assert "event=periodic_task_not_sent task=sweep error=ConnectionError" in caplog.text
    time.sleep(0.45)  # the period passes (Redis's clock)
    schedule.round()
    assert len(failures) == 2


@pytest.mark.django_db
def test_the_mail_sweep_reaches_the_broker_as_a_celery_message(redis_client, settings):
    from eocortex_web.celery import app

    with app.connection_for_write() as connection:
        broker = connection.default_channel.client  # the broker's own Redis (the mail queue is a list there)
        before = broker.llen(settings.MAIL_QUEUE)
        sweep = settings.PERIODIC_TASKS["redundancy-mail"]
        schedule = Schedule(redis_client, "first", tasks={"redundancy-mail": sweep})
        assert schedule.round() == ["redundancy-mail"]
        wait_for(lambda: broker.llen(settings.MAIL_QUEUE) == before + 1, 5, message="the sweep queued")
        message = broker.lindex(settings.MAIL_QUEUE, 0)
        assert b"redundancy.send_mail" in message
        broker.lpop(settings.MAIL_QUEUE)
