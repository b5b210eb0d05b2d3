"""The Reports page over a recording index and events made for it: figures, per-server totals, CSV, errors, scope."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, User

from accounts.models import AuditEntry, SystemAccess
from accounts.roles import OPERATORS
from cameras.models import Camera
from recording.models import Segment
from redundancy.models import Event, EventKind

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # the period: 00:00 → 01:00 UTC on 2 November
PERIOD = {"since": "2026-11-02T00:00", "until": "2026-11-02T01:00"}  # no zone sent: read in UTC
SEGMENT = 10  # seconds


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record(camera, server, start: float, end: float, fps: int = 10):
    """Segments of ``SEGMENT`` seconds from ``start`` to ``end`` (seconds after T0), one frame interval apart as
    an agent writes them."""
    rows, moment = [], start
    while moment < end:
        last = min(moment + SEGMENT, end) - 1 / fps  # the time of its last frame
        rows.append(Segment(camera=camera, server=server, started_at=at(moment), ended_at=at(last),
                            frame_count=int((last - moment) * fps) + 1,
                            path=f"/rec/{camera.pk}/{server.pk}/{moment:.3f}.ts"))  # fmt: skip
        moment += SEGMENT
    Segment.objects.bulk_create(rows)


def move(camera, kind, seconds, server, to_server):
    Event.objects.create(at=at(seconds), kind=kind, camera=camera, server=server, to_server=to_server,
                         message=f"{camera.name} {kind}")  # fmt: skip


@pytest.fixture
def recorded(site, make_camera):
    """cam-1 (srv-a, backed up by srv-b) fails over at 00:10 (srv-a's last segment ends then), records on srv-b
    for 300 s and returns; nobody recorded it for 30 s after srv-a stopped. cam-2 (srv-a, no backup) lost
    120 s at 00:40. Both exist since the day before the period."""
    one = make_camera(site["a"], site["b"], name="cam-1", fps=10)
    two = make_camera(site["a"], name="cam-2", fps=10)
    AuditEntry.objects.filter(object_type="cameras.camera").update(at=T0 - timedelta(days=1))
    a, b = site["a"], site["b"]
    record(one, a, -60, 600)
    record(one, b, 630, 900)  # the takeover: 30 s nobody recorded
    record(one, a, 900, 3700)  # back on srv-a (its agent restarted)
    move(one, EventKind.FAILOVER_STARTED, 610, a, b)
    move(one, EventKind.FAILOVER_COMPLETED, 630, a, b)
    move(one, EventKind.FAILBACK_STARTED, 925, b, a)
    move(one, EventKind.FAILBACK_COMPLETED, 930, b, a)
    record(two, a, -60, 2400)
    record(two, a, 2520, 3700)
    return {"one": one, "two": two, **site}


def rows_of(response) -> dict[str, list[str]]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    rows = list(csv.reader(io.StringIO(content.decode())))
    return {row[0]: row for row in rows[1:]}


def test_each_cameras_failovers_time_on_backup_and_video_lost(recorded, admin_client):
    rows = rows_of(admin_client.get("/reports/", {**PERIOD, "format": "csv"}))
    assert rows["cam-1"][1:] == ["srv-a", "srv-b", "1", "300.0", "0:05:00", "30.0", "0:00:30"]
    assert rows["cam-2"][1:] == ["srv-a", "", "0", "0.0", "0:00:00", "120.0", "0:02:00"]


def test_the_page_shows_the_table_and_the_chart(recorded, admin_client):
    page = admin_client.get("/reports/", PERIOD)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-camera="cam-1"' in html and 'title="300.0 s">0:05:00' in html
    chart = html.split('class="bars"')[1].split("</section>")[0]
    assert 'data-row="cam-1"' in chart and 'data-row="cam-2"' in chart
    assert 'data-width="100.00"' in chart  # the longest figure (cam-1's 300 s on backup) is the full bar
    assert 'title="video lost 0:02:00"' in chart


def test_video_lost_is_clipped_to_the_period(recorded, admin_client):
    # 00:38 → 00:41: 60 s of cam-2's 120 s gap (00:40 → 00:42) lie inside.
    rows = rows_of(admin_client.get("/reports/", {"since": "2026-11-02T00:38", "until": "2026-11-02T00:41",
                                                  "format": "csv"}))  # fmt: skip
    assert rows["cam-2"][6] == "60.0"
    # From the middle of cam-1's time on backup: it is on backup when the period starts.
    rows = rows_of(admin_client.get("/reports/", {"since": "2026-11-02T00:12", "until": "2026-11-02T00:20",
                                                  "format": "csv"}))  # fmt: skip
    assert rows["cam-1"][3:5] == ["0", "210.0"]  # 00:12 → 00:15:30, its failover before the period


def test_a_period_into_the_future_is_reported_up_to_now(recorded, admin_client):
    page = admin_client.get("/reports/", {"since": "2026-11-02T00:00", "until": "2999-01-01T00:00"})
    assert page.status_code == 200 and "until now (" in page.content.decode()
    week = admin_client.get("/reports/").content.decode()
    assert "until now (" in week and "the last week unless you choose a period" in week


def test_a_period_before_any_recording_is_all_lost_and_one_before_the_camera_existed_is_not(recorded, admin_client):
    rows = rows_of(admin_client.get("/reports/", {"since": "2026-11-01T10:00", "until": "2026-11-01T11:00",
                                                  "format": "csv"}))  # fmt: skip
    assert rows["cam-1"][6] == "3600.0"
    rows = rows_of(admin_client.get("/reports/", {"since": "2026-10-30T10:00", "until": "2026-10-30T11:00",
                                                  "format": "csv"}))  # fmt: skip
    assert rows["cam-1"][6] == "0.0"


def test_a_disabled_cameras_time_is_not_counted_as_lost(recorded, admin_client):
    two = Camera.objects.get(name="cam-2")
    two.enabled = False
    two.save()
    AuditEntry.objects.filter(object_type="cameras.camera", action="changed").update(at=at(2460))
    rows = rows_of(admin_client.get("/reports/", {**PERIOD, "format": "csv"}))
    assert rows["cam-2"][6] == "60.0"  # 00:40 → 00:41 only: disabled at 00:41, the rest of the gap is not lost


def test_per_server_totals(recorded, admin_client):
    rows = rows_of(admin_client.get("/reports/", {**PERIOD, "by": "server", "format": "csv"}))
    assert rows["srv-a"][1:] == ["Site", "2", "1", "0", "300.0", "0.0", "150.0"]
    assert rows["srv-b"][1:] == ["Site", "0", "0", "1", "0.0", "300.0", "0.0"]
    page = admin_client.get("/reports/", {**PERIOD, "by": "server"}).content.decode()
    assert 'data-server="srv-a"' in page and "Takeovers as backup" in page


def test_a_servers_cameras(recorded, admin_client):
    rows = rows_of(admin_client.get("/reports/", {**PERIOD, "server": recorded["b"].pk, "format": "csv"}))
    assert list(rows) == ["cam-1"]  # the cameras it is primary or backup for


def test_formula_looking_names_are_quoted_in_the_csv(recorded, admin_client):
    Camera.objects.filter(name="cam-2").update(name="=HYPERLINK(1)")
    rows = rows_of(admin_client.get("/reports/", {**PERIOD, "format": "csv"}))
    assert "'=HYPERLINK(1)" in rows


@pytest.mark.parametrize("period, error", [
    ({"since": "2026-11-02T01:00", "until": "2026-11-02T00:00"}, "Until must come after since."),
    ({"since": "2025-01-01T00:00", "until": "2026-11-02T00:00"}, "A report covers at most 366 days"),
    ({"since": "2999-01-01T00:00"}, "Since is in the future"),
    ({"since": "yesterday"}, "Enter a valid date/time."),
])  # fmt: skip
def test_a_period_that_makes_no_sense_is_refused_in_words(recorded, admin_client, period, error):
    page = admin_client.get("/reports/", period)
    assert page.status_code == 400 and error in page.content.decode()
    assert 'data-camera="cam-1"' not in page.content.decode()
    refused = admin_client.get("/reports/", {**period, "format": "csv"})
    assert refused.status_code == 400 and error in refused.content.decode()


def test_the_period_is_read_in_the_browsers_time_zone(recorded, admin_client):
    # 09:00 → 10:00 in Tokyo is the UTC period 00:00 → 01:00.
    tokyo = {"since": "2026-11-02T09:00", "until": "2026-11-02T10:00", "zone": "Asia/Tokyo", "format": "csv"}
    assert rows_of(admin_client.get("/reports/", tokyo))["cam-2"][6] == "120.0"


def test_a_limited_user_sees_only_their_systems(recorded, make_camera, client):
    theirs = make_camera(recorded["other"], name="theirs")
    move(theirs, EventKind.FAILOVER_COMPLETED, 100, recorded["other"], recorded["other"])
    sam = User.objects.create_user("sam", "sam@example.com", "a-long-test-passphrase")
    sam.groups.add(Group.objects.get(name=OPERATORS))
    SystemAccess.objects.create(user=sam, system=recorded["system"])
    client.force_login(sam)
    assert set(rows_of(client.get("/reports/", {**PERIOD, "format": "csv"}))) == {"cam-1", "cam-2"}
    servers = rows_of(client.get("/reports/", {**PERIOD, "by": "server", "format": "csv"}))
    assert set(servers) == {"srv-a", "srv-b", "srv-c"}
    page = client.get("/reports/", {**PERIOD, "server": recorded["other"].pk}).content.decode()
    assert "theirs" not in page and "srv-other" not in page


def test_the_report_needs_the_view_permissions(db, client):
    nobody = User.objects.create_user("nobody", "n@example.com", "a-long-test-passphrase")
    client.force_login(nobody)
    assert client.get("/reports/").status_code == 403


def test_the_chart_shows_the_twenty_with_the_most(site, make_camera, admin_client):
    for number in range(22):
        make_camera(site["a"], name=f"dark-{number:02d}", fps=10)  # never recorded: the whole period lost
    AuditEntry.objects.filter(object_type="cameras.camera").update(at=T0 - timedelta(days=1))
    html = admin_client.get("/reports/", PERIOD).content.decode()
    chart = html.split('class="bars"')[1].split("</section>")[0]
    assert chart.count('class="bar-row"') == 20 and "the 20 cameras with the most" in html
    assert html.count("<tr data-camera=") == 22
