"""The Servers page in a real browser, at a laptop's 1366x768, against the real web server: the
Health column, and a multiserver system and a server added, changed and deleted from the pages."""

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from protocol import live
from redundancy.models import ServerState, ServerStatus
from servers.models import MultiserverSystem, Server
from servers.tests.test_mail_test import smtp_server  # noqa: F401  (fixture)
from testbed.accessibility import axe_violations
from testbed.browser import screenshot, sign_in
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]


def test_an_administrator_reads_health_and_adds_changes_and_deletes_a_server(site, web, browser_page):  # noqa: F811
    live.publish_heartbeat(live.client(), "srv-a", {}, ttl=600)
    ServerState.objects.create(server=site["a"], status=ServerStatus.UP, status_since=timezone.now())
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(LISTEN)
    sign_in(page, web, "admin", PASSWORD, "/servers/")
    health_a = page.text_content("tr[data-server=srv-a] td.health")
    assert "Up" in health_a and "heard" in health_a and "storage OK" in health_a
    assert "never heard" in page.text_content("tr[data-server=srv-b] td.health")
    screenshot(page, "servers")

    page.click("text=Add multiserver system")
    page.fill("#id_name", "Harbour")
    page.click("button:has-text('Add system')")
    harbour = MultiserverSystem.objects.get(name="Harbour")
    page.click(f"a[href='/servers/new/?system={harbour.pk}']")
    assert page.input_value("#id_system") == str(harbour.pk)
    page.fill("#id_name", "srv-harbour")
    page.fill("#id_address", "not a host!")
    page.click("button:has-text('Add server')")
    assert "This form was not saved" in page.text_content(".form-errors")
    assert not Server.objects.filter(name="srv-harbour").exists()
    page.fill("#id_address", "10.0.0.5")
    page.click("button:has-text('Add server')")
    page.wait_for_selector("nav.tabs >> text=Settings")
    server = Server.objects.get(name="srv-harbour")
    assert page.url.endswith(f"/servers/{server.pk}/")

    page.click("nav.tabs >> text=Settings")
    page.fill("#id_address", "10.0.0.6")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Server srv-harbour saved.")
    server.refresh_from_db()
    assert server.address == "10.0.0.6"
    page.goto(f"{web}/servers/{server.pk}/edit/")
    page.click("button:has-text('Delete srv-harbour')")  # the fixture's dialog handler confirms
    page.wait_for_selector("text=Server srv-harbour deleted.")
    assert not Server.objects.filter(pk=server.pk).exists()
    assert page.evaluate("window.cspViolations") == [] and errors == []


def test_send_test_mail_shows_the_smtp_servers_answer_in_place(site, web, browser_page, smtp_server):  # noqa: F811
    port, recorder = smtp_server
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    page = browser_page
    page.add_init_script(LISTEN)
    sign_in(page, web, "admin", PASSWORD, f"/servers/systems/{site['system'].pk}/mail/")
    page.fill("#id_smtp_host", "127.0.0.1")
    page.fill("#id_smtp_port", str(port))
    page.uncheck("#id_use_tls")
    page.fill("#id_recipients", "ops@example.com")
    page.evaluate("window.stillTheSamePage = true")
    page.click("button:has-text('Send test mail')")
    page.wait_for_selector(".test-mail:has-text('Test mail sent')", timeout=10_000)
    assert f"127.0.0.1:{port} accepted it: 250 2.0.0 Ok: queued as 7F3A2" in page.text_content(".test-mail")
    assert page.evaluate("window.stillTheSamePage") is True, "swapped by htmx, not reloaded"
    assert len(recorder.messages) == 1 and page.evaluate("window.cspViolations") == []
    assert axe_violations(page) == [], "the SMTP server's answer swapped in passes axe-core"
