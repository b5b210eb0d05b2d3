"""Cameras → Import from CSV: the preview checks every row as the Add camera page would, Create checks again and
creates all or nothing."""

import html
import logging

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditAction, AuditEntry, SystemAccess
from accounts.roles import ADMINISTRATORS
from cameras import imports
from cameras.models import Camera
from servers.models import License
from testbed.permissions import grant

HEADER = "name,stream URL,primary server,backup server,user,password,analytics,enabled"
PLANTED = "planted-Camera-pw"


def csv_file(*rows, header=HEADER, encoding="utf-8", name="cameras.csv"):
    return SimpleUploadedFile(name, "\r\n".join([header, *rows]).encode(encoding), content_type="text/csv")


def good_rows(count=3, primary="srv-a", backup="srv-b"):
    return [f"gate-{n},rtsp://10.0.0.{n}:554/main,{primary},{backup},admin,{PLANTED},Motion detection,yes"
            for n in range(1, count + 1)]  # fmt: skip


def text(response) -> str:
    return html.unescape(response.content.decode())


def preview(client, upload):
    return client.post("/cameras/import/", {"file": upload})


def create(client, page):
    token = page.content.decode().split('name="token" value="')[1].split('"')[0]
    return client.post("/cameras/import/create/", {"token": token})


def test_a_good_file_is_previewed_then_created_all_audited(admin_client, admin_user, site, caplog):
    caplog.set_level(logging.DEBUG)
    page = preview(admin_client, csv_file(*good_rows(3)))
    body = text(page)
    assert page.status_code == 200
    assert "All 3 rows pass the rules" in body and "Create 3 cameras" in body
    for n in (1, 2, 3):
        assert f"gate-{n}" in body and f"rtsp://10.0.0.{n}:554/main" in body
    assert "user and password set (not shown)" in body and PLANTED not in body and "admin," not in body
    assert not Camera.objects.exists() and not AuditEntry.objects.filter(object_type="cameras.camera").exists()
    assert all(PLANTED not in str(session.get_decoded()) for session in Session.objects.all()), "kept encrypted"

    response = create(admin_client, page)
    assert response.status_code == 302 and response.url == "/cameras/"
    cameras = Camera.objects.order_by("name")
    assert [c.name for c in cameras] == ["gate-1", "gate-2", "gate-3"]
    assert all(c.primary_server == site["a"] and c.backup_server == site["b"] for c in cameras)
    assert all(c.password == PLANTED and c.username == "admin" and c.analytics == ["motion_detection"]
               for c in cameras)  # fmt: skip
    entries = AuditEntry.objects.filter(action=AuditAction.CREATED, object_type="cameras.camera")
    assert sorted(e.object_repr for e in entries) == ["gate-1", "gate-2", "gate-3"]
    assert {e.username for e in entries} == {admin_user.username}
    assert all(e.after["password"] == "(secret)" for e in entries)
    listing = admin_client.get("/cameras/").content.decode()
    assert "3 cameras created from cameras.csv." in listing and "gate-3" in listing
    assert PLANTED not in caplog.text


@pytest.mark.parametrize(
    "row, message",
    [
        ("gate-2,rtsp://10.0.0.2/main,srv-a,srv-other,,,,", "line 3, backup server: Rule 1: backup server srv-other "
                                                           "is in multiserver system Other site"),
        ("gate-2,rtsp://10.0.0.2/main,srv-a,srv-a,,,,", "line 3, backup server: Rule 1: server srv-a is the primary"),
        ("gate-2,rtsp://10.0.0.2/main,srv-nowhere,,,,,", "line 3, primary server: no server of your systems has "
                                                        "this name: write it as the Servers page does."),
        ("gate-2,rtsp://10.0.0.2/main,srv-a,srv-x,,,,", "line 3, backup server: no server of your systems has this "
                                                       "name"),
        ("gate-2,ftp://10.0.0.2/main,srv-a,,,,,", "line 3, stream URL: Stream URLs must use rtsp, http or https"),
        ("gate-2,rtsp://not a host/main,srv-a,,,,,", "line 3, stream URL: Enter a valid stream URL"),
        ("gate-1,rtsp://10.0.0.2/main,srv-a,,,,,", "line 3, name: camera gate-1 is also on line 2 of this file."),
        ("stored,rtsp://10.0.0.2/main,srv-a,,,,,", "line 3, name: a camera named stored already exists."),
        ("gate-2,rtsp://10.0.0.2/main,srv-a,,,,face recognition,", "line 3, analytics: write Motion detection or "
                                                                  "Tampering detection, several separated by |."),
        ("gate-2,rtsp://10.0.0.2/main,srv-a,,,,,maybe", "line 3, enabled: write yes or no."),
        (",rtsp://10.0.0.2/main,srv-a,,,,,", "line 3, name: This field is required."),
        ("gate-2,rtsp://10.0.0.2/main,srv-a,srv-b,,,,yes,extra", "line 3 has 9 values but the header names 8 columns"),
        ("gate-2,rtsp://10.0.0.2/main,srv-a", "line 3 has 3 values but the header names 8 columns"),
        ("gate-2,rtsp://10.0.0.2/main,srv-a,srv-nolicense,,,,", "line 3, backup server: Rule 2: backup server "
                                                               "srv-nolicense has no active license"),
    ],
)
def test_one_bad_row_creates_nothing_and_says_why_on_its_line(admin_client, site, make_server, make_camera, row,
                                                              message):  # fmt: skip
    make_server("srv-nolicense", site["system"], license=False)
    make_camera(site["c"], name="stored")
    page = preview(admin_client, csv_file("gate-1,rtsp://10.0.0.1/main,srv-a,srv-b,,,,", row, "gate-3,"
                                          "rtsp://10.0.0.3/main,srv-a,,,,,"))  # fmt: skip
    body = text(page)
    assert page.status_code == 400
    assert message in body
    assert "Nothing will be created: 1 of 3 rows cannot be created" in body
    assert "Create " not in body.split('id="import-rows"')[0].split("Nothing will be created")[1]
    assert set(Camera.objects.values_list("name", flat=True)) == {"stored"}
    # Nothing waits to be created: a Create posted anyway (a stale or forged form) creates nothing.
    response = admin_client.post("/cameras/import/create/", {"token": "anything"})
    assert response.status_code == 302 and set(Camera.objects.values_list("name", flat=True)) == {"stored"}


def test_license_channels_taken_by_earlier_rows_refuse_the_next(admin_client, site):
    License.objects.filter(server=site["a"]).update(ip_camera_channels=2)
    page = preview(admin_client, csv_file(*good_rows(3, backup="")))
    body = text(page)
    assert page.status_code == 400
    assert ("line 4, primary server: Rule 2: primary server srv-a is licensed for 2 IP camera channel(s) and all are "
            "in use; camera gate-3 needs one more.") in body  # fmt: skip
    assert body.count("has-error") == 1 and not Camera.objects.exists()


def test_a_preview_writes_nothing_and_locks_nothing(admin_client, site):
    """Checking 2000 rows must not hold the database's write lock (the engine and the agents write meanwhile): the
    earlier rows' license channels are counted in memory, not by storing them and rolling back."""
    License.objects.filter(server=site["a"]).update(ip_camera_channels=2)
    with CaptureQueriesContext(connection) as queries:
        page = preview(admin_client, csv_file(*good_rows(3)))
    assert page.status_code == 400 and "camera gate-3 needs one more" in text(page), "rule 2 counts earlier rows"
    # (The test runs inside a transaction, so Django checks the model's constraint within a savepoint: reads only.)
    writes = [q["sql"] for q in queries if q["sql"].lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE",
              "ROLLBACK", "BEGIN") or "FOR UPDATE" in q["sql"].upper()]  # fmt: skip
    assert [sql for sql in writes if "django_session" not in sql] == [], "only the session (the file for Create)"
    assert not Camera.objects.exists()


def test_a_row_whose_values_shifted_is_refused_as_such_and_shows_no_cell(admin_client, site):
    secret = "Planted-S3cret"
    page = preview(admin_client, csv_file(f"Gate, north,rtsp://10.0.0.1/main,srv-a,srv-b,admin,{secret},Motion "
                                          "detection,yes"))  # fmt: skip
    body = text(page)
    assert page.status_code == 400
    assert "line 2 has 9 values but the header names 8 columns: a value holding the separator must be in double " \
           "quotes" in body  # fmt: skip
    assert secret not in page.content.decode() and secret.lower() not in body.lower()
    assert "line 2, " not in body, "no per-cell errors for a row whose cells are not under their columns"


@pytest.mark.parametrize("column", [2, 3, 6, 7])  # primary server, backup server, analytics, enabled
def test_an_error_names_the_column_never_the_cell(admin_client, site, column):
    cells = ["gate-1", "rtsp://10.0.0.1/main", "srv-a", "", "admin", "", "", "yes"]
    cells[column] = "Planted-S3cret"
    page = preview(admin_client, csv_file(",".join(cells)))
    assert page.status_code == 400
    assert f"line 2, {HEADER.split(',')[column]}: " in text(page) and "Planted-S3cret" not in page.content.decode()


def test_a_password_in_the_stream_url_goes_to_its_field_and_is_not_shown(admin_client, site):
    row = f"gate-1,rtsp://viewer:{PLANTED}@10.0.0.1:554/main,srv-a,,,,,"
    page = preview(admin_client, csv_file(row))
    assert page.status_code == 200 and PLANTED not in text(page)
    assert "rtsp://10.0.0.1:554/main" in text(page)
    create(admin_client, page)
    camera = Camera.objects.get()
    assert (camera.stream_url, camera.username, camera.password) == ("rtsp://10.0.0.1:554/main", "viewer", PLANTED)


def test_a_refused_row_never_shows_its_password(admin_client, site):
    page = preview(admin_client, csv_file(f"gate-1,ftp://10.0.0.1/main,srv-a,,admin,{PLANTED},,"))
    body = text(page)
    assert page.status_code == 400 and PLANTED not in body
    assert "type it again" not in body, "the form's note for a person typing is not a file's error"


@pytest.mark.parametrize(
    "change",
    ["server_deleted", "camera_created", "license_used_up"],
)
def test_a_file_that_became_bad_since_its_preview_creates_nothing(admin_client, site, make_server, make_camera,
                                                                  change):  # fmt: skip
    spare = make_server("srv-spare", site["system"])
    rows = [*good_rows(2), "gate-3,rtsp://10.0.0.3/main,srv-a,srv-spare,,,,"]
    page = preview(admin_client, csv_file(*rows))
    assert page.status_code == 200
    if change == "server_deleted":
        spare.delete()
        expected = "line 4, backup server: no server of your systems has this name"
    elif change == "camera_created":
        make_camera(site["c"], name="gate-2")
        expected = "line 3, name: a camera named gate-2 already exists."
    else:
        License.objects.filter(server=site["a"]).update(ip_camera_channels=2)
        expected = "line 4, primary server: Rule 2: primary server srv-a is licensed for 2 IP camera channel(s)"
    response = create(admin_client, page)
    body = text(response)
    assert response.status_code == 409
    assert "no longer pass" in body and expected in body
    assert set(Camera.objects.values_list("name", flat=True)) <= {"gate-2"} and not Camera.objects.filter(
        name__in=["gate-1", "gate-3"]).exists()  # fmt: skip


@pytest.mark.parametrize("backup", ["", "srv-b"])
def test_a_license_that_ends_between_the_check_and_the_save_creates_nothing(admin_client, site, monkeypatch, backup):
    page = preview(admin_client, csv_file(*good_rows(3, backup=backup)))
    check_rows = imports._check

    def then_a_license_ends(*args):  # as if someone changed the licenses while Create checked the rows
        result = check_rows(*args)
        monkeypatch.setattr(imports, "_check", check_rows)
        License.objects.filter(server=site["b" if backup else "a"]).update(**(
            {"valid_until": "2000-01-01"} if backup else {"ip_camera_channels": 2}))  # fmt: skip
        return result

    monkeypatch.setattr(imports, "_check", then_a_license_ends)
    response = create(admin_client, page)
    body = text(response)
    assert response.status_code == 409 and "no longer pass" in body
    if backup:
        assert "line 2, backup server: Rule 2: backup server srv-b has no active license" in body
    else:
        assert "line 4, primary server: Rule 2: primary server srv-a is licensed for 2 IP camera channel(s)" in body
        assert body.count("has-error") == 1
    assert not Camera.objects.exists() and not AuditEntry.objects.filter(object_type="cameras.camera").exists()


def test_a_camera_stored_by_someone_else_during_create_leaves_nothing_created(admin_client, site, make_camera,
                                                                               monkeypatch):  # fmt: skip
    page = preview(admin_client, csv_file(*good_rows(3)))
    make_camera(site["c"], name="gate-3")
    # As if another request stored gate-3 after this one judged its rows: the database refuses the third.
    monkeypatch.setattr(imports.RowForm, "validate_unique", lambda form: None)
    response = create(admin_client, page)
    assert response.status_code == 409 and "Another change to the cameras was stored" in text(response)
    assert list(Camera.objects.values_list("name", flat=True)) == ["gate-3"]


def test_an_upload_without_a_file_asks_for_one(admin_client, site):
    response = admin_client.post("/cameras/import/")
    assert response.status_code == 400 and "Choose a CSV file to upload." in text(response)


def test_create_answers_only_for_the_file_last_previewed(admin_client, site):
    first = preview(admin_client, csv_file(*good_rows(1)))
    preview(admin_client, csv_file("other-1,rtsp://10.0.0.9/main,srv-a,,,,,"))
    response = create(admin_client, first)
    assert response.status_code == 302 and response.url == "/cameras/import/"
    assert not Camera.objects.exists()
    assert "nothing was created" in admin_client.get("/cameras/import/").content.decode()


@pytest.mark.parametrize(
    "content, names",
    [
        ("\ufeffname;stream URL;Primary Server\r\ncam-ä;rtsp://10.0.0.1/a;srv-a\r\n".encode(), ["cam-ä"]),
        (b"NAME,Stream_URL,primary\ncam-1,rtsp://10.0.0.1/a,SRV-A\n", ["cam-1"]),
        (b'Camera Name;RTSP URL;Server;Analytics\n"cam;1";rtsp://10.0.0.1/a;srv-a;Motion detection | tamper\n\n',
         ["cam;1"]),  # fmt: skip
        (b'name,stream,primary server,enabled,\ncam-1,"rtsp://10.0.0.1/a",srv-a,no,\n', ["cam-1"]),
    ],
)
def test_encodings_delimiters_and_header_spellings(admin_client, site, content, names):
    page = preview(admin_client, SimpleUploadedFile("c.csv", content))
    assert page.status_code == 200, text(page)
    create(admin_client, page)
    assert list(Camera.objects.values_list("name", flat=True)) == names


def test_cells_are_read_as_an_operator_writes_them(admin_client, site):
    content = (b"name,stream,primary server,resolution,codec,fps,priority,enabled,analytics\ncam-1,rtsp://10.0.0.1/a,"
               b"srv-a,1280x720,HEVC,12,never,no,motion|Tampering detection\n")  # fmt: skip
    create(admin_client, preview(admin_client, SimpleUploadedFile("c.csv", content)))
    camera = Camera.objects.get()
    assert (camera.width, camera.height, camera.codec, camera.fps) == (1280, 720, "h265", 12)
    assert (camera.failover_priority, camera.enabled) == ("never", False)
    assert camera.analytics == ["motion_detection", "tamper_detection"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"name,stream URL,primary server\ncam-\xe9,rtsp://10.0.0.1/a,srv-a\n", "The file is not UTF-8 text (line 2"),
        (b"name,stream URL\ncam-1,rtsp://10.0.0.1/a\n", "Missing column: primary server."),
        (b"name,stream URL,primary server,bakup server\ncam-1,rtsp://10.0.0.1/a,srv-a,srv-b\n",
         'Unknown column: "bakup server" (column 4).'),
        (b"name,stream URL,primary server,login,user\n", 'Columns that say the same: "login" and '
                                                         '"user"'),
        (b"name,stream URL,primary server\n", "holds no camera"),
        (b"", "The file is empty"),
    ],
)
def test_a_file_that_cannot_be_read_says_why(admin_client, site, content, message):
    page = preview(admin_client, SimpleUploadedFile("c.csv", content))
    assert page.status_code == 400 and message in text(page)
    assert not Camera.objects.exists()


def test_files_over_the_limits_are_refused_in_words(admin_client, site, monkeypatch):
    big = b"name,stream URL,primary server\n" + b"x" * imports.MAX_BYTES
    assert "The file is larger than 1 MB" in preview(admin_client, SimpleUploadedFile("c.csv", big)).content.decode()
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    page = preview(admin_client, csv_file(*good_rows(4)))
    assert page.status_code == 400 and "more than 3 cameras" in text(page)
    assert not Camera.objects.exists()


def test_a_file_of_exactly_the_limit_is_checked_and_created(admin_client, site, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 4)
    page = preview(admin_client, csv_file(*good_rows(4), "", " , ,"))  # blank lines are no cameras
    assert page.status_code == 200 and "Create 4 cameras" in text(page)
    assert create(admin_client, page).status_code == 302
    assert Camera.objects.count() == 4


@pytest.fixture
def limited(site, client, make_camera):
    sam = User.objects.create_user("sam", "sam@example.com", "a-long-test-passphrase")
    sam.groups.add(Group.objects.get(name=ADMINISTRATORS))
    SystemAccess.objects.create(user=sam, system=site["system"])
    make_camera(site["other"], name="theirs")
    client.force_login(sam)
    return client


def test_a_limited_user_names_only_servers_of_their_systems(limited, site):
    page = preview(limited, csv_file("mine,rtsp://10.0.0.1/a,srv-other,,,,,", "mine-2,rtsp://10.0.0.2/a,srv-a,"
                                     "srv-other,,,,", "theirs,rtsp://10.0.0.3/a,srv-a,,,,,"))  # fmt: skip
    body = text(page)
    assert "line 2, primary server: no server of your systems has this name" in body
    assert "line 3, backup server: no server of your systems has this name" in body
    assert "line 4, name: This name is not available." in body and "already exists" not in body
    assert "Other site" not in body
    template = limited.get("/cameras/import/template.csv").content.decode()
    assert "srv-other" not in template and "srv-a" in template
    assert set(Camera.objects.values_list("name", flat=True)) == {"theirs"}


def test_only_users_who_may_add_cameras_import(client, viewer, site):
    client.force_login(viewer)
    assert client.get("/cameras/import/").status_code == 403
    assert preview(client, csv_file(*good_rows(1))).status_code == 403
    assert "Import from CSV" not in client.get("/cameras/").content.decode()
    client.force_login(grant(viewer, "add_camera"))
    assert client.get("/cameras/import/").status_code == 200
    assert "Import from CSV" in client.get("/cameras/").content.decode()


def test_the_template_is_a_file_the_import_takes(admin_client, site):
    response = admin_client.get("/cameras/import/template.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8" and "attachment" in response["Content-Disposition"]
    header, example = text(response).splitlines()
    assert header.startswith("name,stream URL,") and "srv-a,srv-b" in example
    page = preview(admin_client, SimpleUploadedFile("template.csv", response.content))
    assert page.status_code == 200, text(page)
    assert create(admin_client, page).status_code == 302
    camera = Camera.objects.get()
    assert (camera.name, camera.backup_server, camera.analytics) == ("Gate 1", site["b"], ["motion_detection"])


def test_a_value_under_a_column_without_a_name_refuses_its_row(admin_client, site):
    page = preview(admin_client, csv_file("cam-1,rtsp://10.0.0.1/a,srv-a,", "cam-2,rtsp://10.0.0.2/a,srv-a,srv-b",
                                          header="name,stream URL,primary server,"))  # fmt: skip
    assert page.status_code == 400
    assert "line 3, column 4 has a value but no name in the header." in text(page)
    assert text(page).count("has a value but no name") == 2 and not Camera.objects.exists()  # summary and row
