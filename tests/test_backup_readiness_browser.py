"""Backup readiness in a real browser, against the real web server: the camera page asks for a check (htmx,
under the Content-Security-Policy), and the Live page's tile warns of a failed check as its event arrives and
lets go when the next one passes, without a reload."""

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection

from recording.models import BackupCheck
from recording.readiness import BackupReadiness, CheckResult
from testbed.browser import sign_in
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]


def test_a_check_asked_for_on_the_camera_page_and_its_warning_live(site, make_camera, web, browser_page):  # noqa: F811
    camera = make_camera(site["a"], site["b"], name="gate")
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    page = browser_page
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(LISTEN)
    sign_in(page, web, "operator", PASSWORD, f"/cameras/{camera.pk}/")
    page.wait_for_selector("#backup-check")
    assert "never checked" in page.text_content("#backup-check")
    page.evaluate("window.stillTheSamePage = true")
    page.click("#backup-check button")
    page.wait_for_selector("#backup-check:has-text('a check is asked for')", timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True, "swapped by htmx, not reloaded"
    assert BackupCheck.objects.get(camera=camera, server=site["b"]).requested_at is not None
    # srv-b's agent checks it (here: stored as it would); the part, polled while asked for, shows the result.
    checker = BackupReadiness(site["b"], ingesting=dict)

    def store(result):  # on a thread of its own, as the agent's checker (this one runs Playwright's event loop)
        seen = BackupCheck.objects.filter(camera=camera).first()  # the request it read: done with this check
        thread = threading.Thread(target=lambda: (checker.store(camera, result, seen), connection.close()))
        thread.start()
        thread.join(timeout=10)

    store(CheckResult(True, keyframe_seconds=0.7))
    page.wait_for_selector("#backup-check:has-text('ready (keyframe after 0.7 s)')", timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.evaluate("window.cspViolations") == []

    page.goto(f"{web}/live/")
    page.wait_for_selector("#connection.ok", timeout=15_000)
    warning = f"#tile-{camera.pk} [data-field=backup-check]"
    assert page.is_hidden(warning)
    store(CheckResult(False, "the camera's port refuses connections"))
    page.wait_for_selector(f"{warning}:has-text('srv-b cannot open gate')", state="visible", timeout=10_000)
    store(CheckResult(True, keyframe_seconds=0.4))
    page.wait_for_selector(warning, state="hidden", timeout=10_000)
    page.goto(f"{web}/backup-checks/")
    assert "ready (keyframe after 0.4 s)" in page.text_content("#backup-checks")
    assert page.evaluate("window.cspViolations") == [] and errors == []
