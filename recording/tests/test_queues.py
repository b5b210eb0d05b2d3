"""Each agent's Celery queue: the reconcile notices of one site never reach another site's agent."""

from recording.tasks import queue_for


def test_two_sites_on_one_broker_give_a_server_of_the_same_name_different_queues(settings):
    settings.LIVE_KEY_PREFIX = "site-one"
    one = queue_for("srv-a")
    settings.LIVE_KEY_PREFIX = "site-two"
    assert queue_for("srv-a") != one
    assert queue_for("srv-b") != queue_for("srv-a")
