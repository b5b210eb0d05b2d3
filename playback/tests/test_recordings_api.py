"""GET /api/cameras/{id}/recordings/: what each server recorded of a camera, gaps, the source per moment."""

from datetime import UTC, datetime, timedelta

import pytest

from recording.models import Segment
from redundancy.models import Event, EventKind

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def segment(camera, server, start, end, **fields):
    return Segment.objects.create(camera=camera, server=server, started_at=T0 + timedelta(seconds=start),
                                  ended_at=T0 + timedelta(seconds=end), frame_count=round((end - start) * 25) + 1,
                                  path=f"/r/{server.name}/{camera.pk}/2026-12-01/{start:06.0f}.000.ts",
                                  **fields)  # fmt: skip


@pytest.fixture
def failed_over(site, make_camera):
    camera = make_camera(site["a"], site["b"], fps=25)
    segment(camera, site["a"], 0, 9.96)
    segment(camera, site["a"], 10, 19.96)
    segment(camera, site["b"], 21, 40)
    Event.objects.create(at=T0 + timedelta(seconds=21.5), kind=EventKind.FAILOVER_COMPLETED, camera=camera,
                         server=site["a"], to_server=site["b"], message=f"{camera.name} records on srv-b")  # fmt: skip
    return camera


def url(camera, since=0, until=40.04):
    return (f"/api/cameras/{camera.pk}/recordings/?since={(T0 + timedelta(seconds=since)).isoformat()}"
            f"&until={(T0 + timedelta(seconds=until)).isoformat()}").replace("+", "%2B")  # fmt: skip


def test_the_recordings_of_a_failover_name_both_servers_the_gap_and_the_source_of_each_moment(api, failed_over):
    answer = api.get(url(failed_over))
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["servers"] == [{"name": "srv-a", "role": "primary"}, {"name": "srv-b", "role": "backup"}]
    assert [(s["started_at"], s["ended_at"]) for s in data["lanes"]["srv-a"]] == [
        ("2026-12-01T10:00:00Z", "2026-12-01T10:00:20Z")]  # fmt: skip
    assert [(g["started_at"], g["seconds"]) for g in data["gaps"]] == [("2026-12-01T10:00:20Z", 1.0)]
    assert [s["server"] for s in data["sources"]] == ["srv-a", "srv-b"]
    assert [e["kind"] for e in data["events"]] == ["failover_completed"]


@pytest.mark.parametrize("since, until, message", [
    (40, 0, "The end of the range must come after its start."),
    (0, 8 * 86400, "A range is at most 7 days long."),
])  # fmt: skip
def test_a_range_that_is_not_one_is_refused_with_a_reason(api, failed_over, since, until, message):
    answer = api.get(url(failed_over, since, until))
    assert (answer.status_code, answer.json()) == (400, {"until": [message]})


def test_a_time_that_is_not_one_is_refused(api, failed_over):
    answer = api.get(f"/api/cameras/{failed_over.pk}/recordings/?since=yesterday")
    assert answer.status_code == 400 and "since" in answer.json()
