import re

import pytest

from cameras.models import Camera


@pytest.fixture
def gate(site, make_camera):
    return make_camera(site["a"], site["b"], name="gate", password="planted-Camera-pw", username="planted-user")


def connection_data(camera, **changes):
    data = {
        "stream_url": camera.stream_url,
        "codec": camera.codec,
        "width": camera.width,
        "height": camera.height,
        "fps": camera.fps,
        "quality": "medium",
        "expected_bitrate_kbps": "",
        "primary_server": camera.primary_server_id,
        "backup_server": camera.backup_server_id or "",
        "username": "",
        "password": "",
    }
    data.update(changes)
    return data


def test_connection_tab_offers_only_valid_backups(admin_client, site, gate, make_server):
    make_server("srv-nolic", site["system"], license=False)
    page = admin_client.get(f"/cameras/{gate.pk}/").content.decode()
    select = page.split('name="backup_server"')[1].split("</select>")[0]
    assert "srv-b" in select and "srv-c" in select
    assert "srv-a" not in select and "srv-other" not in select and "srv-nolic" not in select


def test_connection_tab_never_shows_credentials(admin_client, gate):
    page = admin_client.get(f"/cameras/{gate.pk}/").content.decode()
    assert "planted" not in page and "Credentials are stored" in page


def test_connection_tab_applies_backup_and_keeps_password(admin_client, site, gate):
    response = admin_client.post(f"/cameras/{gate.pk}/", connection_data(gate, backup_server=site["c"].pk))
    assert response.status_code == 302
    gate.refresh_from_db()
    assert gate.backup_server == site["c"] and gate.password == "planted-Camera-pw"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"backup_server": "SELF"}, "cannot also be its backup"),
        ({"backup_server": "OTHER"}, "same system"),
        ({"stream_url": "ftp://127.0.0.1/cam"}, "rtsp, http or https"),
        ({"stream_url": "rtsp://u:p@127.0.0.1/cam", "fps": 0}, "taken out of the stream URL"),
        ({"fps": 0}, "greater than or equal to 1"),
        ({"stream_url": "rtsp://127.0.0.1/" + "x" * 600}, "at most 500 characters"),
    ],
)
def test_bad_connection_input_changes_nothing(admin_client, site, gate, change, message):
    server = {"SELF": site["a"].pk, "OTHER": site["other"].pk}.get(change.get("backup_server"))
    if server:
        change = {"backup_server": server}
    before = Camera.objects.values().get(pk=gate.pk)
    response = admin_client.post(f"/cameras/{gate.pk}/", connection_data(gate, **change))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Camera.objects.values().get(pk=gate.pk) == before


def test_backup_options_follow_the_chosen_primary(admin_client, site, gate):
    response = admin_client.get(
        f"/cameras/{gate.pk}/backup-options/", {"primary_server": site["b"].pk}, HTTP_HX_REQUEST="true"
    )
    options = re.findall(r"<option[^>]*>([^<]*)</option>", response.content.decode())
    # The stored backup is now the primary: still shown, so Apply cannot drop it silently.
    assert options == ["— none —", "srv-a", "srv-c", "srv-b (not valid now)"]


def test_general_tab_sets_analytics_and_priority(admin_client, gate):
    response = admin_client.post(
        f"/cameras/{gate.pk}/general/",
        {"name": "gate", "enabled": "on", "failover_priority": "high", "analytics": ["motion_detection"]},
    )
    assert response.status_code == 302
    gate.refresh_from_db()
    assert gate.failover_priority == "high" and gate.analytics == ["motion_detection"]


def test_add_camera_page(admin_client, site):
    response = admin_client.post(
        "/cameras/new/",
        {
            "name": "lobby",
            "enabled": "on",
            "failover_priority": "normal",
            "stream_url": "rtsp://127.0.0.1:8554/lobby",
            "codec": "h264",
            "width": 1280,
            "height": 720,
            "fps": 15,
            "quality": "high",
            "primary_server": site["a"].pk,
            "backup_server": site["b"].pk,
        },
    )
    assert response.status_code == 302
    assert Camera.objects.get(name="lobby").redundancy_mode == "normal"
    assert Camera.objects.get(name="lobby").quality == "high"


def test_camera_list_filters_by_mode(admin_client, site, make_camera):
    make_camera(site["a"], site["b"], name="with-backup")
    make_camera(site["a"], name="alone")
    page = admin_client.get("/cameras/", {"mode": "none"}).content.decode()
    assert "alone" in page and "with-backup" not in page


def test_viewer_cannot_change_a_camera(client, viewer, site, gate):
    client.force_login(viewer)
    assert client.get(f"/cameras/{gate.pk}/").status_code == 200
    response = client.post(f"/cameras/{gate.pk}/", connection_data(gate, backup_server=site["c"].pk))
    assert response.status_code == 403
    gate.refresh_from_db()
    assert gate.backup_server == site["b"]


def test_connection_tab_refuses_unlicensed_backup(admin_client, site, gate, make_server):
    unlicensed = make_server("srv-nolic", site["system"], license=False)
    response = admin_client.post(f"/cameras/{gate.pk}/", connection_data(gate, backup_server=unlicensed.pk))
    assert response.status_code == 400
    assert "Rule 2: backup server srv-nolic has no active license" in response.content.decode()
    gate.refresh_from_db()
    assert gate.backup_server == site["b"]


def test_backup_refresh_never_carries_credentials(admin_client, gate):
    page = admin_client.get(f"/cameras/{gate.pk}/").content.decode()
    form_tag = page[page.index('<form method="post" class="form-grid"') :].split(">", 1)[0]
    assert "hx-get" not in form_tag
    primary_select = page[page.index('name="primary_server"') :].split(">", 1)[0]
    assert f'hx-get="/cameras/{gate.pk}/backup-options/"' in primary_select
    assert 'hx-include="#id_backup_server"' in primary_select


def test_typed_password_is_not_kept_silently_after_an_error(admin_client, gate):
    response = admin_client.post(
        f"/cameras/{gate.pk}/", connection_data(gate, stream_url="ftp://127.0.0.1/x", password="typed-New-pw")
    )
    page = response.content.decode()
    assert "The password you typed was not stored; type it again." in page and "typed-New-pw" not in page


def test_viewer_sees_disabled_fields(client, viewer, gate):
    client.force_login(viewer)
    page = client.get(f"/cameras/{gate.pk}/").content.decode()
    assert 'name="stream_url"' in page and "disabled" in page.split('name="stream_url"')[1].split(">")[0]


def test_camera_page_warns_when_assignment_no_longer_holds(admin_client, site, gate):
    site["b"].licenses.all().delete()
    page = admin_client.get(f"/cameras/{gate.pk}/").content.decode()
    assert "This backup assignment no longer holds: Rule 2: backup server srv-b has no active license" in page
    response = admin_client.post(f"/cameras/{gate.pk}/", connection_data(gate, fps=12))
    assert response.status_code == 302  # an unrelated change is still accepted


def test_the_camera_list_searches_and_filters(admin_client, site, make_camera):
    from cameras.models import Codec

    make_camera(site["a"], site["b"], name="north-gate")
    make_camera(site["a"], name="yard", codec=Codec.H265)
    make_camera(site["b"], site["c"], name="south-gate", enabled=False)
    make_camera(site["other"], name="harbour")

    def shown(**query):
        page = admin_client.get("/cameras/", query).content.decode()
        return {name for name in ("north-gate", "yard", "south-gate", "harbour") if f'data-camera="{name}"' in page}

    assert shown() == {"north-gate", "yard", "south-gate", "harbour"}
    assert shown(q="GATE") == {"north-gate", "south-gate"}
    assert shown(q="srv-c") == {"south-gate"}  # a server's name finds the cameras it records or backs up
    assert shown(system=site["other"].system_id) == {"harbour"}
    assert shown(server=site["b"].pk) == {"north-gate", "south-gate"}
    assert shown(codec="h265") == {"yard"}
    assert shown(backup="without") == {"yard", "harbour"}
    assert shown(enabled="no") == {"south-gate"}
    assert shown(q="gate", enabled="yes") == {"north-gate"}
    assert "1 of 4 cameras match" in admin_client.get("/cameras/", {"q": "yard"}).content.decode()
    # Words that are no choice narrow nothing; an id that names no server finds no camera.
    assert shown(system="x", codec="vp9", backup="maybe", enabled="perhaps") == shown()
    assert shown(server="99999999999999999999") == shown(server=987654) == set()


def test_the_camera_list_pages_by_a_hundred_keeping_the_search(admin_client, site, make_camera):
    for number in range(105):
        make_camera(site["a"], name=f"lane-{number:03d}")
    first = admin_client.get("/cameras/", {"q": "lane"}).content.decode()
    assert first.count('data-camera="lane-') == 100 and "Page 1 of 2" in first
    assert 'href="?q=lane&page=2"' in first
    second = admin_client.get("/cameras/", {"q": "lane", "page": 2}).content.decode()
    assert second.count('data-camera="lane-') == 5 and 'data-camera="lane-104"' in second


def test_a_camera_is_deleted_from_its_page_and_audited(admin_client, admin_user, site, make_camera, viewer):
    from django.test import Client

    from accounts.models import AuditEntry

    camera = make_camera(site["a"], site["b"], name="gate")
    client = Client()
    client.force_login(viewer)
    assert "Delete gate" not in client.get(f"/cameras/{camera.pk}/general/").content.decode()
    assert client.post(f"/cameras/{camera.pk}/delete/").status_code == 403
    assert Camera.objects.filter(pk=camera.pk).exists()
    assert "Delete gate" in admin_client.get(f"/cameras/{camera.pk}/general/").content.decode()
    assert admin_client.get(f"/cameras/{camera.pk}/delete/").status_code == 405
    deleted = admin_client.post(f"/cameras/{camera.pk}/delete/", follow=True)
    assert "Camera gate deleted." in deleted.content.decode()
    assert not Camera.objects.filter(pk=camera.pk).exists()
    assert AuditEntry.objects.filter(action="deleted", object_type="cameras.camera", object_repr="gate",
                                     user=admin_user).exists()  # fmt: skip
