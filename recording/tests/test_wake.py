"""An agent's lost stream wakes the engine at once, not at the agent's next heartbeat."""

import time

import pytest

from protocol import live
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_camera_lost_on_the_agent_wakes_the_engine_within_100_ms_and_its_retries_do_not(
    recorded_site, make_camera, simulator, agents, redis_client
):
    sim = simulator(1)
    camera = make_camera(recorded_site["a"], stream_url=sim.url(1), codec="mjpeg")
    agent = agents("srv-a", heartbeat_interval=5.0)  # only the nudge can be this quick
    agent.cameras.on_stream_change = agent.heartbeat.nudge  # as the agent wires it

    def report() -> dict:
        return live.read_stream_reports(redis_client, "srv-a").get(camera.pk) or {}

    wait_for(lambda: report().get("state") == "streaming", 15, message="the camera streaming")
    before = live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["streams"]
    subscription = redis_client.pubsub()
    subscription.subscribe(live.key("engine-wake"))
    assert subscription.get_message(timeout=2)["type"] == "subscribe"
    try:
        sim.set_state(1, "stopped")
        message = subscription.get_message(timeout=5)
        woken_at = time.time()
        assert message is not None and message["data"] == b"streams:srv-a"
        lost = report()
        assert lost["state"] == "lost"
        latency = woken_at - lost["since"]
        print(f"\ncamera lost on the agent -> engine woken: {latency * 1000:.1f} ms")
        assert latency < 0.1
        assert live.read_heartbeats(redis_client, ["srv-a"])["srv-a"]["streams"] != before
        # The agent tries the camera again every few tenths of a second: still lost, no news.
        wait_for(lambda: agent.workers[camera.pk].stats.since > lost["since"], 5, message="a reconnection attempt")
        assert subscription.get_message(timeout=0.5) is None
    finally:
        subscription.close()
