"""Hypothesis on the calculator's inputs and on random small systems."""

import math

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cameras.models import Camera
from cameras.rules import backup_problems
from capacity.estimates import estimate
from capacity.forms import CalculatorForm
from capacity.inputs import load_site
from capacity.planner import plan
from capacity.proposal import apply, propose
from servers.models import License, MultiserverSystem, Server

codecs = st.sampled_from(["h264", "h265", "mjpeg"])
qualities = st.sampled_from(["low", "medium", "high"])
sizes = st.integers(min_value=16, max_value=8192)
rates = st.integers(min_value=1, max_value=120)
modules = st.lists(st.sampled_from(["motion_detection", "tamper_detection"]), unique=True)


@given(codecs, sizes, sizes, rates, qualities, modules, st.none() | st.integers(1, 1_000_000))
def test_estimates_are_finite_positive_and_consistent(codec, width, height, fps, quality, analytics, configured):
    est = estimate(codec, width, height, fps, quality, analytics, configured)
    for value in (est.stream_kbps, est.recorded_kbps, est.storage_gb_per_day, est.ingest_cores):
        assert math.isfinite(value) and value > 0
    assert est.storage_gb_per_day == pytest.approx(est.recorded_kbps * 1000 / 8 * 86400 / 1e9)
    assert est.cores_on_primary >= est.ingest_cores
    assert set(est.analytics_cores) == set(analytics)
    more = estimate(codec, width, height, min(120, fps + 1), quality, analytics, configured)
    assert more.ingest_cores >= est.ingest_cores and more.recorded_kbps >= est.recorded_kbps
    low, high = (estimate(codec, width, height, fps, q).estimated_kbps for q in ("low", "high"))
    assert low < est.estimated_kbps < high or quality != "medium"


@given(st.dictionaries(st.sampled_from(["codec", "width", "height", "fps", "quality", "expected_bitrate_kbps",
                                        "retention_hours", "analytics"]),
                       st.one_of(st.text(max_size=12), st.integers(-10**9, 10**9).map(str))))  # fmt: skip
def test_calculator_form_takes_any_input_without_crashing(data):
    form = CalculatorForm(data)
    if form.is_valid():
        cleaned = form.cleaned_data
        assert 16 <= cleaned["width"] <= 8192 and 1 <= cleaned["fps"] <= 120 and cleaned["retention_hours"] >= 1
    else:
        assert form.errors
        assert all(name in form.fields for name in form.errors)


def _build(spec) -> None:
    system = MultiserverSystem.objects.create(name="fuzz")
    servers = []
    for n, (capacity, constant, licensed) in enumerate(spec["servers"]):
        server = Server.objects.create(system=system, name=f"f{n}", address="127.0.0.1", max_inbound_mbps=capacity)
        if licensed:
            License.objects.create(key=f"FUZZ-{n:04d}", server=server, ip_camera_channels=64, analytics_channels=64)
        server.redundancy.constant_redundancy = constant
        server.redundancy.save()
        servers.append(server)
    for n, (primary, backup, kbps, analytics) in enumerate(spec["cameras"]):
        backup_server = servers[backup % len(servers)] if backup is not None else None
        if backup_server is not None and backup_server.pk == servers[primary % len(servers)].pk:
            backup_server = None
        Camera.objects.create(name=f"fc{n}", stream_url=f"http://127.0.0.1:{20000 + n}/v.mjpg", codec="mjpeg",
                              width=640, height=360, fps=10, expected_bitrate_kbps=kbps,
                              primary_server=servers[primary % len(servers)], backup_server=backup_server,
                              analytics=["motion_detection"] if analytics else [])  # fmt: skip


systems = st.fixed_dictionaries({
    "servers": st.lists(st.tuples(st.none() | st.integers(5, 200), st.booleans(), st.booleans()), min_size=2,
                        max_size=5),
    "cameras": st.lists(st.tuples(st.integers(0, 4), st.none() | st.integers(0, 4), st.integers(100, 20_000),
                                  st.booleans()), max_size=20),
})  # fmt: skip


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=systems, scope=st.sampled_from(["unassigned", "all"]))
def test_plans_and_proposals_on_random_systems(spec, scope):
    with transaction.atomic():
        _build(spec)
        capacity_plan = plan(load_site(), pairs=True)
        for p in capacity_plan.servers:
            for case in (p.worst, p.worst_pair):
                if case is not None:
                    assert case.figures.mbps >= p.normal.figures.mbps
                    assert case.figures.cameras == p.normal.figures.cameras + case.moved
        proposal = propose(load_site(), scope)
        for change in proposal.changes:
            camera = Camera.objects.select_related("primary_server").get(pk=change.camera_id)
            backup = Server.objects.get(pk=change.proposed_backup_id)
            assert not backup_problems(camera.name, camera.primary_server, backup)
            assert change.current_mode == change.proposed_mode or change.current_backup is None
        apply(proposal)
        after = plan(load_site())
        if proposal.peak_after is not None:
            assert after.peak == pytest.approx(proposal.peak_after)
        transaction.set_rollback(True)
