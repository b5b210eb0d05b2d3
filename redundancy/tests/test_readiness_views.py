"""Backup readiness in the pages and the API: the report, the request to check now, and the warnings on the
camera page, in the backup's Backup (redundancy) section and on the Live page."""

from datetime import UTC, datetime

import pytest

from recording.models import BackupCheck

pytestmark = pytest.mark.django_db


def _checked(camera, server, ok, detail=""):
    return BackupCheck.objects.create(camera=camera, server=server, ok=ok, detail=detail, keyframe_seconds=0.8 if ok
                                      else None, checked_at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC))  # fmt: skip


@pytest.fixture
def cameras(site, make_camera):
    gate = make_camera(site["a"], site["b"], name="gate")
    yard = make_camera(site["a"], site["b"], name="yard")
    dock = make_camera(site["a"], site["c"], name="dock")
    make_camera(site["a"], name="lonely")  # no backup: not in the report
    _checked(gate, site["b"], False, "the camera's port refuses connections")
    _checked(yard, site["b"], True)
    _checked(dock, site["b"], False, "from a former backup")  # srv-b no longer backs it up: no news
    return {"gate": gate, "yard": yard, "dock": dock}


def test_the_api_asks_the_backup_to_check_now(api, cameras, site):
    answer = api.post(f"/api/cameras/{cameras['yard'].pk}/backup-check/")
    assert answer.status_code == 202
    assert answer.json()["backup_server_name"] == "srv-b" and answer.json()["requested_at"]
    assert BackupCheck.objects.get(camera=cameras["yard"], server=site["b"]).requested_at is not None


def test_a_check_of_a_camera_never_checked_is_asked_for_too(api, cameras, site):
    answer = api.post(f"/api/cameras/{cameras['dock'].pk}/backup-check/")
    assert answer.status_code == 202 and answer.json()["ok"] is None and answer.json()["backup_server"] == site["c"].pk


def test_a_camera_without_a_backup_has_nothing_to_check(api, cameras):
    from cameras.models import Camera

    answer = api.post(f"/api/cameras/{Camera.objects.get(name='lonely').pk}/backup-check/")
    assert answer.status_code == 400 and "no backup" in answer.json()["detail"]


def test_a_viewer_may_not_ask_for_a_check(viewer_api, cameras):
    assert viewer_api.post(f"/api/cameras/{cameras['gate'].pk}/backup-check/").status_code == 403
    assert BackupCheck.objects.get(camera=cameras["gate"]).requested_at is None


def test_the_api_report_lists_every_camera_with_a_backup_failed_first(viewer_api, cameras):
    rows = viewer_api.get("/api/backup-checks/").json()["results"]
    assert [(r["camera_name"], r["backup_server_name"], r["ok"]) for r in rows] == [
        ("gate", "srv-b", False), ("dock", "srv-c", None), ("yard", "srv-b", True)]  # fmt: skip
    assert rows[0]["detail"] == "the camera's port refuses connections"
    assert rows[1]["checked_at"] is None and rows[1]["result"] == "never checked"


def test_the_api_report_filters_by_backup_server_and_result(viewer_api, cameras, site):
    def names(**query):
        return [r["camera_name"] for r in viewer_api.get("/api/backup-checks/", query).json()["results"]]

    assert names(backup_server=site["c"].pk) == ["dock"]
    assert names(ok="false") == ["gate"] and names(ok="true") == ["yard"]
    assert names(backup_server=987654) == []
    assert viewer_api.get("/api/backup-checks/", {"ok": "maybe"}).status_code == 400
    assert viewer_api.get("/api/backup-checks/", {"backup_server": "x"}).status_code == 400


def test_the_report_page_says_when_and_what(admin_client, cameras):
    page = admin_client.get("/backup-checks/").content.decode()
    assert "gate" in page and "failed: the camera&#x27;s port refuses connections" in page
    assert "2026-12-01 03:00:00" in page
    assert "never checked" in page  # dock, by srv-c
    assert "lonely" not in page and "from a former backup" not in page


def test_the_report_page_filters_by_backup_server(admin_client, cameras, site):
    page = admin_client.get("/backup-checks/", {"server": site["c"].pk}).content.decode()
    assert "dock" in page and "gate" not in page


def test_the_camera_page_warns_and_offers_a_check_to_who_may_change_it(admin_client, client, viewer, cameras):
    page = admin_client.get(f"/cameras/{cameras['gate'].pk}/").content.decode()
    assert "srv-b cannot open gate, which it backs up: the camera&#x27;s port refuses connections" in page
    assert "Check the backup now" in page
    client.force_login(viewer)
    page = client.get(f"/cameras/{cameras['gate'].pk}/").content.decode()
    assert "srv-b cannot open gate" in page and "Check the backup now" not in page
    assert "srv-b cannot open" not in client.get(f"/cameras/{cameras['yard'].pk}/").content.decode()


def test_the_camera_page_asks_for_a_check(admin_client, cameras):
    url = f"/cameras/{cameras['yard'].pk}/backup-check/"
    answer = admin_client.post(url)
    assert answer.status_code == 302 and answer["Location"] == f"/cameras/{cameras['yard'].pk}/"
    assert BackupCheck.objects.get(camera=cameras["yard"]).requested_at is not None
    partial = admin_client.post(url, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "a check is asked for" in partial.content.decode()
    assert 'hx-trigger="every 2s"' in partial.content.decode(), "the part asks again until the check is done"
    BackupCheck.objects.filter(camera=cameras["yard"]).update(requested_at=None)
    done = admin_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "a check is asked for" not in done and "every 2s" not in done


def test_a_viewer_cannot_ask_from_the_page(client, viewer, cameras):
    client.force_login(viewer)
    assert client.post(f"/cameras/{cameras['yard'].pk}/backup-check/").status_code == 403
    part = client.get(f"/cameras/{cameras['yard'].pk}/backup-check/")
    assert part.status_code == 200 and "ready" in part.content.decode()
    assert "Check the backup now" not in part.content.decode()


def test_the_backup_section_warns_of_a_camera_the_backup_cannot_open(admin_client, cameras, site):
    page = admin_client.get(f"/servers/{site['b'].pk}/").content.decode()
    section = page.split('id="backup-section"')[1]
    assert "srv-b cannot open gate, which it backs up" in section
    assert "from a former backup" not in page
    assert "ready (keyframe after 0.8 s)" in page  # yard, in the table of cameras it backs up
    assert "srv-b cannot open" not in admin_client.get(f"/servers/{site['c'].pk}/").content.decode()


def test_the_live_page_shows_the_warning_on_the_tile(admin_client, cameras):
    page = admin_client.get("/live/").content.decode()
    tile = page.split(f'id="tile-{cameras["gate"].pk}"')[1].split("</article>")[0]
    assert "srv-b cannot open gate" in tile and 'data-field="backup-check" hidden' not in tile
    yard = page.split(f'id="tile-{cameras["yard"].pk}"')[1].split("</article>")[0]
    assert 'data-field="backup-check" hidden' in yard
