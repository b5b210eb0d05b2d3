"""Send test mail: the settings as typed are tried against a real SMTP server on loopback (aiosmtpd),
and its answer is shown; nothing is stored."""

import pytest
from aiosmtpd.controller import Controller

from servers.models import MailSettings
from utilities.ports import free_port


class Recorder:
    """Accepts mail for anyone but nobody@; keeps what it was sent."""

    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 2.0.0 Ok: queued as 7F3A2"


@pytest.fixture
def smtp_server():
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, recorder
    controller.stop()


def _typed(port, **changes):
    return {"action": "test", "smtp_host": "127.0.0.1", "smtp_port": port, "username": "", "password": "",
            "from_email": "vms@example.com", "recipients": "ops@example.com", **changes}  # fmt: skip


def test_a_test_mail_goes_out_with_the_settings_as_typed_and_shows_the_servers_answer(admin_client, site,
                                                                                       smtp_server):  # fmt: skip
    port, recorder = smtp_server
    url = f"/servers/systems/{site['system'].pk}/mail/"
    assert "Send test mail" in admin_client.get(url).content.decode()
    page = admin_client.post(url, _typed(port, recipients="ops@example.com, nobody@example.com")).content.decode()
    assert "Test mail sent" in page
    assert f"The SMTP server at 127.0.0.1:{port} accepted it: 250 2.0.0 Ok: queued as 7F3A2" in page
    assert "it refused nobody@example.com (550 5.1.1" in page
    [(sender, recipients, content)] = recorder.messages
    assert sender == "vms@example.com" and recipients == ["ops@example.com"]
    assert "Subject: Test mail from the redundancy of Site" in content and "by root" in content
    assert not MailSettings.objects.filter(system=site["system"]).exists()  # tested, not stored


def test_a_test_mail_that_cannot_go_says_why_in_words(admin_client, site, smtp_server):
    port, recorder = smtp_server
    url = f"/servers/systems/{site['system'].pk}/mail/"
    stored = MailSettings.objects.create(system=site["system"], smtp_host="127.0.0.1", smtp_port=port,
                                         recipients="ops@example.com")  # fmt: skip
    cases = {
        "it does not offer STARTTLS": _typed(port, use_tls="on"),
        "nothing accepts connections on that port": _typed(free_port()),
        "refused every recipient: nobody@example.com (550": _typed(port, recipients="nobody@example.com"),
    }
    for words, typed in cases.items():
        page = admin_client.post(url, typed).content.decode()
        assert "Test mail not sent" in page and words in page, words
        assert "EMAIL_URL" not in page and "Traceback" not in page
    assert recorder.messages == []
    refused = admin_client.post(url, _typed(port, recipients="not an address"))
    assert refused.status_code == 400 and "Test mail" not in refused.content.decode()
    stored.refresh_from_db()
    assert stored.recipients == "ops@example.com" and stored.use_tls is True  # nothing typed was stored


def test_the_stored_password_goes_only_to_the_server_it_was_given_for(admin_client, site, smtp_server):
    port, recorder = smtp_server
    url = f"/servers/systems/{site['system'].pk}/mail/"
    MailSettings.objects.create(system=site["system"], smtp_host="smtp.example.com", smtp_port=587, username="vms",
                                password="stored-secret", recipients="ops@example.com")  # fmt: skip
    for action in ("test", "save"):
        refused = admin_client.post(url, _typed(port, action=action, username="vms"))
        assert refused.status_code == 400, action
        assert "Type the password again: the SMTP host and SMTP port changed" in refused.content.decode()
    assert recorder.messages == []
    stored = MailSettings.objects.get(system=site["system"])
    assert stored.smtp_host == "smtp.example.com" and stored.password == "stored-secret"
    kept = admin_client.post(url, {**_typed(587, action="save", username="vms"), "smtp_host": "smtp.example.com"})
    assert kept.status_code == 302  # the same server and user: the stored password is kept
    assert MailSettings.objects.get(system=site["system"]).password == "stored-secret"


def test_a_test_mail_through_the_sites_own_smtp_server_does_not_name_it(admin_client, site, settings, smtp_server):
    port, recorder = smtp_server
    settings.EMAIL_FROM_ENVIRONMENT = True  # EMAIL_URL=smtp://127.0.0.1:<port>
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    url = f"/servers/systems/{site['system'].pk}/mail/"
    page = admin_client.post(url, {"action": "test", "recipients": "ops@example.com", "smtp_port": 587}).content
    assert "Handed to the site&#x27;s mail." in page.decode() and "127.0.0.1" not in page.decode()
    assert len(recorder.messages) == 1


def test_a_test_mail_through_the_sites_own_mail(admin_client, site, settings, mailoutbox):
    settings.EMAIL_FROM_ENVIRONMENT = True  # the site's mail (EMAIL_URL; here Django's test outbox)
    url = f"/servers/systems/{site['system'].pk}/mail/"
    page = admin_client.post(url, {"action": "test", "recipients": "ops@example.com", "smtp_port": 587}).content
    assert "Test mail sent" in page.decode() and "Handed to the site&#x27;s mail." in page.decode()
    assert [m.to for m in mailoutbox] == [["ops@example.com"]]
