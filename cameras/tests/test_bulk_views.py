"""General settings → Cameras: the bulk backup table, its Set for checked and its Apply."""

import re

import pytest

from cameras.models import Camera
from testbed.permissions import grant


@pytest.fixture
def cameras(site, make_camera):
    return {
        "gate": make_camera(site["a"], site["b"], name="gate"),
        "yard": make_camera(site["a"], name="yard"),
        "dock": make_camera(site["b"], site["c"], name="dock"),
    }


URL = "/servers/settings/cameras/"


def test_general_cameras_lists_every_camera_with_valid_backups(admin_client, site, cameras, make_server):
    make_server("srv-nolic", site["system"], license=False)
    page = admin_client.get(URL).content.decode()
    for name in ("gate", "yard", "dock"):
        assert f'data-camera="{name}"' in page
    yard_select = page.split(f'name="backup-{cameras["yard"].pk}"')[1].split("</select>")[0]
    assert "srv-b" in yard_select and "srv-c" in yard_select
    assert "srv-a" not in yard_select and "srv-other" not in yard_select and "srv-nolic" not in yard_select


def rows(cameras, **choices):
    return {f"backup-{cameras[name].pk}": (server.pk if server else "") for name, server in choices.items()}


def test_apply_stores_all_rows(admin_client, site, cameras):
    data = {"action": "apply", **rows(cameras, gate=site["c"], yard=site["b"], dock=None)}
    response = admin_client.post(URL, data, follow=True)
    assert "the backup server of 3 camera(s) changed" in response.content.decode()
    stored = {c.name: c.backup_server for c in Camera.objects.all()}
    assert stored == {"gate": site["c"], "yard": site["b"], "dock": None}


def test_apply_with_one_bad_row_stores_nothing_and_marks_the_row(admin_client, site, cameras):
    data = {"action": "apply", **rows(cameras, gate=site["c"], yard=site["other"], dock=site["c"])}
    response = admin_client.post(URL, data, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was applied: 1 row(s) break a rule" in page
    yard_row = page.split('data-camera="yard"')[1].split("</tr>")[0]
    assert "has-error" in page.split('data-camera="yard"')[0].rsplit("<tr", 1)[1]
    assert "Rule 1" in yard_row and "srv-other" in yard_row
    assert Camera.objects.get(name="gate").backup_server == site["b"]


def test_apply_refuses_backup_equal_to_primary(admin_client, site, cameras):
    response = admin_client.post(URL, {"action": "apply", **rows(cameras, yard=site["a"])})
    assert response.status_code == 400
    assert "cannot also be its backup" in response.content.decode()
    assert Camera.objects.get(name="yard").backup_server is None


def test_apply_refuses_garbage_server_value(admin_client, cameras):
    response = admin_client.post(URL, {"action": "apply", f"backup-{cameras['yard'].pk}": "srv-b"})
    assert response.status_code == 400
    assert "Choose a server from the list" in response.content.decode()


def test_bulk_fill_changes_rows_but_stores_nothing(admin_client, site, cameras):
    data = {
        "action": "fill",
        "bulk_backup": site["c"].pk,
        "selected": [cameras["gate"].pk, cameras["yard"].pk],
        **rows(cameras, gate=site["b"], yard=None, dock=site["c"]),
    }
    page = admin_client.post(URL, data).content.decode()
    assert "Nothing is stored until you press Apply" in page
    gate_select = page.split(f'name="backup-{cameras["gate"].pk}"')[1].split("</select>")[0]
    assert f'value="{site["c"].pk}" selected' in gate_select
    assert Camera.objects.get(name="gate").backup_server == site["b"]
    assert Camera.objects.get(name="yard").backup_server is None


def test_viewer_sees_the_table_but_cannot_apply(client, viewer, site, cameras):
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    assert "disabled" in page and 'value="apply"' not in page
    response = client.post(URL, {"action": "apply", **rows(cameras, yard=site["b"])})
    assert response.status_code == 403
    assert Camera.objects.get(name="yard").backup_server is None
    client.force_login(grant(viewer, "change_camera"))
    assert client.post(URL, {"action": "apply", **rows(cameras, yard=site["b"])}).status_code == 302


def test_apply_refuses_backup_without_license(admin_client, site, cameras, make_server):
    unlicensed = make_server("srv-nolic", site["system"], license=False)
    response = admin_client.post(URL, {"action": "apply", **rows(cameras, yard=unlicensed)})
    assert response.status_code == 400
    assert "Rule 2: backup server srv-nolic has no active license" in response.content.decode()
    assert Camera.objects.get(name="yard").backup_server is None


def test_fill_without_checked_rows_says_so(admin_client, site, cameras):
    page = admin_client.post(URL, {"action": "fill", "bulk_backup": site["c"].pk}).content.decode()
    assert "Check the rows to change first." in page


def test_apply_without_changes_says_nothing_to_apply(admin_client, site, cameras):
    response = admin_client.post(URL, {"action": "apply", **rows(cameras, gate=site["b"])}, follow=True)
    assert "Nothing to apply: no row was changed." in response.content.decode()


def _select(page, name):
    return page.split(f'name="{name}"')[1].split("</select>")[0]


def _selected(page, name):
    """The label of the option shown in a select (the first one when none is marked selected)."""
    options = re.findall(r"<option ([^>]*)>([^<]*)</option>", _select(page, name))
    return next((label for attrs, label in options if "selected" in attrs), options[0][1])


def _row(page, camera):
    return page.split(f'data-camera="{camera}"')[1].split("</tr>")[0]


def test_bulk_select_starts_on_no_choice(admin_client, site, cameras):
    page = admin_client.get(URL).content.decode()
    assert _selected(page, "bulk_backup") == "— choose —"
    assert 'value="none">— none (remove the backup) —</option>' in _select(page, "bulk_backup")


def test_set_for_checked_without_a_choice_says_so_and_changes_no_row(admin_client, site, cameras):
    data = {"action": "fill", "bulk_backup": "", "selected": [cameras["gate"].pk, cameras["dock"].pk],
            **rows(cameras, gate=site["b"], yard=None, dock=site["c"])}  # fmt: skip
    response = admin_client.post(URL, data)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Choose a backup server for the checked rows first (or — none — to remove their backups)." in page
    assert _selected(page, f"backup-{cameras['gate'].pk}") == "srv-b"
    assert _selected(page, f"backup-{cameras['dock'].pk}") == "srv-c"
    assert Camera.objects.get(name="gate").backup_server == site["b"]


def test_set_for_checked_can_still_remove_backups(admin_client, site, cameras):
    data = {"action": "fill", "bulk_backup": "none", "selected": [cameras["gate"].pk],
            **rows(cameras, gate=site["b"], yard=None, dock=site["c"])}  # fmt: skip
    page = admin_client.post(URL, data).content.decode()
    assert "1 row(s) set." in page
    assert _selected(page, "bulk_backup") == "— none (remove the backup) —"
    assert _selected(page, f"backup-{cameras['gate'].pk}") == "— none —"
    assert Camera.objects.get(name="gate").backup_server == site["b"]  # nothing stored before Apply
    applied = admin_client.post(URL, {"action": "apply", **rows(cameras, gate=None, yard=None, dock=site["c"])})
    assert applied.status_code == 302
    assert Camera.objects.get(name="gate").backup_server is None


def test_set_for_checked_refuses_rows_that_would_break_a_rule(admin_client, site, cameras):
    data = {"action": "fill", "bulk_backup": site["a"].pk,
            "selected": [cameras["gate"].pk, cameras["yard"].pk, cameras["dock"].pk],
            **rows(cameras, gate=site["b"], yard=None, dock=site["c"])}  # fmt: skip
    response = admin_client.post(URL, data)
    page = response.content.decode()
    assert "1 row(s) set; 2 refused: gate, yard (each row says which rule it would break)." in page
    assert "(not valid)" not in page
    gate, yard = _row(page, "gate"), _row(page, "yard")
    assert "Rule 1: server srv-a is the primary server of camera gate and cannot also be its backup." in gate
    assert "Rule 1: server srv-a is the primary server of camera yard" in yard
    assert _selected(page, f"backup-{cameras['gate'].pk}") == "srv-b"  # left as it was
    assert _selected(page, f"backup-{cameras['yard'].pk}") == "— none —"
    assert _selected(page, f"backup-{cameras['dock'].pk}") == "srv-a"
    assert "Rule" not in _row(page, "dock")
    assert {c.name: c.backup_server for c in Camera.objects.all()} == {"gate": site["b"], "yard": None,
                                                                      "dock": site["c"]}  # fmt: skip


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nolic", "Rule 2: backup server srv-nolic has no active license"),
        ("other", "the backup must be in the same system"),
    ],
)
def test_set_for_checked_refuses_a_server_no_row_may_take(admin_client, site, cameras, make_server, target, message):
    server = make_server("srv-nolic", site["system"], license=False) if target == "nolic" else site["other"]
    data = {"action": "fill", "bulk_backup": server.pk, "selected": [cameras["gate"].pk, cameras["yard"].pk],
            **rows(cameras, gate=site["b"], yard=None, dock=site["c"])}  # fmt: skip
    page = admin_client.post(URL, data).content.decode()
    assert "0 row(s) set; 2 refused: gate, yard" in page
    assert message in _row(page, "gate") and message in _row(page, "yard")
    assert _selected(page, f"backup-{cameras['gate'].pk}") == "srv-b"
    assert Camera.objects.get(name="gate").backup_server == site["b"]
