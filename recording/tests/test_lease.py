"""One agent per video server: the lease on its name (real Redis), and the engine's conflict events."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocol import live
from recording.lease import ServerClaimed, ServerLease
from redundancy.engine import Engine
from redundancy.models import Event
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_held_name_is_refused_naming_its_holder_and_free_once_released(site):
    first, second = ServerLease(live.client(), "srv-a", 5), ServerLease(live.client(), "srv-a", 5)
    first.acquire()
    with pytest.raises(ServerClaimed) as refused:
        second.acquire()
    message = str(refused.value)
    assert f"process {first.identity['pid']} on host {first.identity['host']}" in message
    assert first.renew() is None, "the holder keeps its lease"
    first.release()
    second.acquire()
    assert second.held


def test_a_dead_holder_on_this_host_is_taken_over_at_once_one_elsewhere_is_not(site):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lease = ServerLease(live.client(), "srv-a", 30)
    dead_here = {**lease.identity, "agent": "a-killed-agent", "pid": gone.pid}
    live.client().set(lease.key, json.dumps(dead_here), px=30_000)
    lease.acquire()
    assert json.loads(live.client().get(lease.key))["agent"] == lease.identity["agent"]
    lease.release()
    elsewhere = {**dead_here, "host": "another-host"}
    live.client().set(lease.key, json.dumps(elsewhere), px=30_000)
    with pytest.raises(ServerClaimed, match="on host another-host"):
        lease.acquire()


def test_a_killed_holder_not_yet_reaped_by_its_parent_is_dead_too(site):
    # A SIGKILLed agent whose parent (a supervisor, a test) has not called wait() yet is a zombie: its pid still
    # answers signal 0, but it will never renew its lease. Its restarted agent takes over at once.
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        killed.kill()
        wait_for(lambda: Path(f"/proc/{killed.pid}/stat").read_text().split(")")[-1].split()[0] == "Z", 10,
                 interval=0.01, message="the child to end (a zombie)")  # fmt: skip
        lease = ServerLease(live.client(), "srv-a", 30)
        live.client().set(lease.key, json.dumps({**lease.identity, "agent": "killed", "pid": killed.pid}), px=30_000)
        lease.acquire()
        assert json.loads(live.client().get(lease.key))["agent"] == lease.identity["agent"]
        lease.release()
    finally:
        killed.wait()


def test_two_agents_for_one_server_are_events_reported_once_each(site):
    holder, late = ServerLease(live.client(), "srv-a", 5), ServerLease(live.client(), "srv-a", 5)
    holder.acquire()
    with pytest.raises(ServerClaimed):
        late.acquire()
    # The holder froze past its lease and another took the name: on waking it finds it lost.
    holder.release()
    late.acquire()
    assert holder.renew()["agent"] == late.identity["agent"]
    assert holder.renew() is not None and not holder.held  # still lost, not reported again
    Engine(live.client(), wake_agent=lambda name: None, wake_mailer=lambda: None).tick()
    messages = list(Event.objects.filter(kind="agent_conflict", server=site["a"]).values_list("message", flat=True))
    assert len(messages) == 2, messages
    assert any("was refused" in m for m in messages) and any("lost it" in m for m in messages)
    assert all(str(holder.identity["pid"]) in m for m in messages)
    Engine(live.client(), wake_agent=lambda name: None, wake_mailer=lambda: None).tick()
    assert Event.objects.filter(kind="agent_conflict").count() == 2
