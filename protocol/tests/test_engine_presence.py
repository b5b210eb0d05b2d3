"""Whether an engine is there to hand cameras to, read from the workers' registry by Redis's clock."""

import pytest

from protocol import live
from redundancy.leases import SystemLeases


@pytest.fixture
def r():
    client = live.client()
    client.delete(live.key("engine-workers"))
    yield client
    client.delete(live.key("engine-workers"))


def test_an_engine_is_there_while_a_worker_passes_and_gone_when_it_leaves(r):
    assert not live.engine_ticking(r)
    leases = SystemLeases(r, "worker-1", ttl=3.0)
    leases.hold(set())
    assert live.engine_ticking(r)
    leases.release()
    assert not live.engine_ticking(r), "a worker that stopped gave its place back"


def test_a_worker_not_heard_within_the_window_is_no_engine(r):
    r.zadd(live.key("engine-workers"), {"frozen": live.redis_time(r) - 4.0})
    assert not live.engine_ticking(r)
    assert live.engine_ticking(r, within=5.0)
