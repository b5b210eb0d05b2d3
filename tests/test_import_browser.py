"""Cameras → Import from CSV in a real browser against the real web server: a file with a bad row is previewed with
the reason on its line and creates nothing; the corrected file is previewed, created, and its cameras are listed."""

import pytest
from django.contrib.auth.models import User

from cameras.models import Camera
from testbed.accessibility import axe_violations
from testbed.browser import sign_in
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]

HEADER = "Name;Stream URL;Primary server;Backup server;User;Password"
SECRET = "planted-Camera-pw"


def upload(page, *rows):
    content = "\r\n".join([HEADER, *rows]).encode("utf-8-sig")  # as a spreadsheet saves "CSV UTF-8"
    page.set_input_files("#id_file", files=[{"name": "harbour.csv", "mimeType": "text/csv", "buffer": content}])
    page.click("button:has-text('Check the file')")
    page.wait_for_selector("#import-preview")


def test_an_operator_fixes_a_refused_file_and_creates_its_cameras(site, web, browser_page):  # noqa: F811
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(LISTEN)
    sign_in(page, web, "admin", PASSWORD, "/cameras/")
    page.click("text=Import from CSV")
    page.wait_for_selector("h1:has-text('Import cameras from CSV')")
    with page.expect_download() as download:
        page.click("text=Download a template")
    assert download.value.suggested_filename == "cameras-template.csv"

    good = f"quay-1;rtsp://10.0.0.1:554/main;srv-a;srv-b;admin;{SECRET}"
    upload(page, good, "quay-2;rtsp://10.0.0.2:554/main;srv-a;srv-other;;")
    summary = page.text_content("#import-preview .form-errors")
    assert "Nothing will be created: 1 of 2 rows cannot be created" in summary
    assert "line 3, Backup server: Rule 1: backup server srv-other is in multiserver system Other site" in summary
    assert "line 3" in page.text_content("#import-rows tr.has-error")
    assert page.locator("button:has-text('Create')").count() == 0
    assert SECRET not in page.content() and not Camera.objects.exists()
    assert axe_violations(page) == [], "the refused preview passes axe-core"

    upload(page, good, "quay-2;rtsp://10.0.0.2:554/main;srv-a;srv-c;;")
    assert "All 2 rows pass the rules" in page.text_content("#import-preview")
    assert "user and password set (not shown)" in page.text_content("#import-rows tr[data-line='2']")
    assert SECRET not in page.content() and axe_violations(page) == []
    page.click("button:has-text('Create 2 cameras')")
    page.wait_for_selector("text=2 cameras created from harbour.csv.")
    assert page.url == f"{web}/cameras/"
    assert "srv-c" in page.text_content("tr[data-camera=quay-2]")
    assert "srv-b" in page.text_content("tr[data-camera=quay-1]")
    assert Camera.objects.get(name="quay-1").password == SECRET
    assert page.evaluate("window.cspViolations") == [] and errors == []
