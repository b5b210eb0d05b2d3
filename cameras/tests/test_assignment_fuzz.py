"""Hypothesis drives the assignment service with arbitrary batches: it applies all or nothing,
and nothing it stores breaks a rule."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cameras.models import Camera
from cameras.rules import backup_problems
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups
from servers.models import License


@pytest.fixture
def world(site, make_server, make_camera):
    expired = make_server("srv-expired", site["system"])
    License.objects.filter(server=expired).update(valid_until=timezone.localdate() - timedelta(days=1))
    make_server("srv-nolicense", site["system"], license=False)
    make_server("srv-zero", site["system"], channels=0)
    for n, (primary, backup) in enumerate([("a", "b"), ("a", None), ("b", "c"), ("c", None), ("other", None)]):
        make_camera(site[primary], site[backup] if backup else None, f"fuzz-cam-{n}")
    return site


def _state():
    return dict(Camera.objects.values_list("pk", "backup_server_id"))


def _ids():
    from servers.models import Server

    return list(Camera.objects.values_list("pk", flat=True)), list(Server.objects.values_list("pk", flat=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_batch_is_applied_whole_or_not_at_all_and_keeps_the_rules(world, data):
    cameras, servers = _ids()
    camera_ids = st.one_of(st.sampled_from(cameras), st.integers(min_value=1, max_value=10**6))
    server_ids = st.one_of(st.none(), st.sampled_from(servers), st.integers(min_value=1, max_value=10**6))
    batch = data.draw(st.lists(st.builds(BackupAssignment, camera_ids, server_ids), min_size=1, max_size=8))
    with transaction.atomic():
        before = _state()
        try:
            assign_backups(batch)
        except BackupAssignmentError as refused:
            assert refused.errors, "a refusal names at least one item"
            assert all(0 <= index < len(batch) for index in refused.errors)
            assert _state() == before, "a refused batch changes nothing"
        else:
            after = _state()
            wanted = {item.camera_id: item.backup_server_id for item in batch}
            assert all(after[camera_id] == backup_id for camera_id, backup_id in wanted.items())
            assert all(after[pk] == before[pk] for pk in before if pk not in wanted)
            for camera in Camera.objects.with_servers().filter(pk__in=wanted).prefetch_related(
                    "primary_server__licenses", "backup_server__licenses"):  # fmt: skip
                if before[camera.pk] != camera.backup_server_id:
                    assert not backup_problems(camera.name, camera.primary_server, camera.backup_server)
        transaction.set_rollback(True)
