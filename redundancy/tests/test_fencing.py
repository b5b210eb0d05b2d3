"""Fencing tokens: an engine worker that lost its lease while it was paused writes nothing when it runs again.

Two engines in this process share the database, Redis and a clock the test moves; the pause is the test
letting the other worker take the system in the middle of the first one's pass."""

import json

import pytest

from protocol import live
from redundancy import fencing
from redundancy.engine import Engine
from redundancy.models import CameraPlacement, DecidingTerm, Event, Placement
from redundancy.tests.test_engine import World

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pair(site, make_camera):
    """The world's engine (worker ``first``) leads the system; ``second`` waits. srv-a is the camera's primary,
    both servers in fast mode."""
    for name in ("a", "b"):
        site[name].redundancy.fast_redundancy = True
        site[name].redundancy.save()
    fast_site = site
    world = World(fast_site)
    world.engine.leases.worker = "first"
    second = Engine(world.redis, clock=lambda: world.now, wake_agent=lambda name: None, wake_mailer=lambda: None,
                    worker="second")  # fmt: skip
    camera = make_camera(fast_site["a"], fast_site["b"], name="gate")
    world.beat("srv-a", "srv-b", streams={camera: "streaming"})
    assert world.tick().ran and not second.tick().ran
    return world, second, camera


def system_of(world):
    return world.servers["system"].pk


def lease_holder(world):
    return world.redis.get(live.key("system-lease", system_of(world))).decode()


def take_over(world, second):
    """The first worker's lease runs out (it is paused); the second takes the system at its next pass."""
    world.redis.delete(live.key("system-lease", world.servers["system"].pk))
    return second.tick()


def test_each_lease_taken_begins_a_term_with_a_higher_token(pair):
    world, second, _ = pair
    system = world.servers["system"].pk
    assert world.engine.terms[system] == 1
    take_over(world, second)
    assert second.terms[system] == 2 and lease_holder(world) == "second"
    term = DecidingTerm.objects.get(system_id=system)
    assert (term.token, term.worker) == (2, "second")
    assert fencing.begin_term(system, "third") == 3


def test_a_worker_paused_before_it_stores_its_decisions_stores_nothing(pair, monkeypatch):
    world, second, camera = pair
    first = world.engine
    # srv-a dies. Both workers will see it; only the second, which took over during the first one's pause,
    # may decide the failover.
    world.now += 2.0
    world.beat("srv-b", streams={camera: "streaming"})
    confirm = first.leases.confirm

    def paused_after_its_check():
        lost = confirm()
        assert take_over(world, second).ran  # the second decides meanwhile
        return lost

    monkeypatch.setattr(first.leases, "confirm", paused_after_its_check)
    assert not first.tick().ran
    assert CameraPlacement.objects.get(camera=camera).state == Placement.TO_BACKUP  # the second's decision
    kinds = sorted(Event.objects.filter(server=world.servers["a"]).values_list("kind", flat=True))
    assert kinds.count("server_down") == 1 and kinds.count("failover_started") == 1, kinds
    assert system_of(world) not in first.terms and first._loaded is None  # it forgot what it knew
    monkeypatch.undo()
    first.tick()
    assert system_of(world) not in first.leases.held  # the second holds its lease now
    assert live.read_desired(world.redis, "srv-b") == {camera.pk}


def test_a_worker_paused_between_the_database_and_redis_cannot_overwrite_the_desired_sets(pair, monkeypatch):
    world, second, camera = pair
    first = world.engine
    world.now += 2.0
    world.beat("srv-b", streams={camera: "streaming"})
    store = first._store

    def paused_after_storing(changed, events):
        store(changed, events)  # its failover is stored: the second loads it
        take_over(world, second)
        # srv-a is back; the second gives it its camera to ingest again (it stays on srv-b for the hold-down).
        world.beat("srv-a", "srv-b", streams={camera: "streaming"})
        assert second.tick().ran
        assert live.read_desired(world.redis, "srv-a") == {camera.pk}

    monkeypatch.setattr(first, "_store", paused_after_storing)
    assert not first.tick().ran  # it would tell srv-a to stop ingesting: refused by the later term
    assert live.read_desired(world.redis, "srv-a") == {camera.pk}
    word = live.read_desired_word(world.redis, "srv-b")
    assert (word.cameras, word.system, word.term) == ({camera.pk}, system_of(world), second.terms[system_of(world)])
    assert system_of(world) not in first.terms
    assert Event.objects.filter(kind="server_down", server=world.servers["a"]).count() == 1


def test_a_worker_whose_lease_expired_in_a_long_pass_keeps_deciding_when_nobody_took_it(pair, monkeypatch):
    world, second, camera = pair
    first = world.engine
    system = world.servers["system"].pk
    world.now += 2.0
    world.beat("srv-b", streams={camera: "streaming"})
    confirm = first.leases.confirm

    def slow_pass():
        world.redis.delete(live.key("system-lease", system))  # it ran out during the pass; nobody took it
        return confirm()

    monkeypatch.setattr(first.leases, "confirm", slow_pass)
    assert first.tick().ran
    assert CameraPlacement.objects.get(camera=camera).state == Placement.TO_BACKUP
    assert lease_holder(world) == "first" and first.terms[system] == 1


def test_after_redis_failed_a_pass_every_desired_set_is_written_again(pair, monkeypatch):
    """A Redis failover may lose the last writes: the promoted replica holds an older desired set. The engine
    cannot tell what was lost, so after a pass Redis failed it writes every desired set again, later in its
    term than anything before; agents refuse the older word meanwhile."""
    import redis

    from redundancy import engine as engine_module

    world, _, camera = pair
    first = world.engine
    world.now += 2.0
    world.beat("srv-b", streams={camera: "streaming"})
    assert first.tick().ran and live.read_desired(world.redis, "srv-b") == {camera.pk}
    failed_over = live.read_desired_word(world.redis, "srv-b")
    older = live.Desired(frozenset(), failed_over.system, failed_over.term, failed_over.seq - 1)
    world.redis.set(live.key("desired", "srv-b"), json.dumps({"system": older.system, "term": older.term,
                                                               "seq": older.seq, "cameras": []}))  # fmt: skip
    assert not older.supersedes(failed_over)  # an agent that acted on the failover keeps it

    def redis_away(*args, **kwargs):
        raise redis.ConnectionError("the master is gone")

    monkeypatch.setattr(engine_module, "read_pass", redis_away)
    assert not first.tick().ran
    monkeypatch.undo()
    world.beat("srv-b", streams={camera: "streaming"})
    assert world.tick(0.2).ran
    again = live.read_desired_word(world.redis, "srv-b")
    assert again.cameras == {camera.pk} and again.supersedes(failed_over) and again.seq > failed_over.seq
    assert live.read_desired_word(world.redis, "srv-a").seq == again.seq  # every server's, not only the lost one


def test_the_word_of_an_earlier_term_is_refused_by_agents():
    later = live.Desired(frozenset({1, 2}), system=7, term=5)
    assert not live.Desired(frozenset(), system=7, term=4).supersedes(later)
    assert live.Desired(frozenset({1}), system=7, term=5).supersedes(later)
    assert live.Desired(frozenset({1}), system=7, term=6).supersedes(later)
    assert live.Desired(frozenset(), system=8, term=1).supersedes(later)  # the server moved to another system
    assert live.Desired(frozenset({3})).supersedes(later)  # written by hand
    assert live.Desired.parse(b"[3, 4]") == live.Desired(frozenset({3, 4}))
    assert not live.Desired(frozenset(), system=7, term=5, seq=3).supersedes(live.Desired(frozenset({1}), 7, 5, 4))


def test_a_long_pass_keeps_its_leases_and_a_worker_that_renews_nothing_loses_them(site, make_camera, settings):
    """The loop's keeper thread renews the leases whatever the passes do (a first load of a large site takes
    longer than a lease); a frozen or killed process renews nothing and loses them after the lease."""
    import threading
    import time

    from redundancy.runner import EngineLoop
    from testbed.waiting import wait_for

    settings.ENGINE_LEASE_SECONDS = 0.3
    world = World(site)
    make_camera(site["a"], site["b"])
    world.beat("srv-a", "srv-b", "srv-c", "srv-other")
    assert world.tick().ran
    loop = EngineLoop(world.engine, watch_agents=False, schedule=False)
    keeper = threading.Thread(target=loop._keep_leases, daemon=True)
    keeper.start()
    second = Engine(world.redis, clock=lambda: world.now, wake_agent=lambda name: None, wake_mailer=lambda: None,
                    worker="second")  # fmt: skip
    try:
        time.sleep(1.0)  # the first worker's pass goes on for three leases: the keeper alone must hold them
        assert not second.tick().ran and not second.leases.held
    finally:
        loop.stopping.set()
        keeper.join(5)
    # It renews nothing now, as if frozen: its leases run out within the lease.
    lapsed = [live.key("system-lease", system) for system in world.engine.leases.held]
    wait_for(lambda: not world.redis.exists(*lapsed), 1.0, interval=0.01, message="the first worker's leases to lapse")
    assert second.tick().ran and second.leases.held == world.engine.leases.held
