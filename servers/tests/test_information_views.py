"""A server's Information tab and its Backup (redundancy) section: preview, apply, mail set-up."""

import pytest
from django.core import mail

from servers.models import MailSettings, RedundancySettings
from testbed.permissions import grant


def test_pages_need_login(client, site, make_camera):
    gate = make_camera(site["a"], site["b"], name="gate")
    for url in [
        "/servers/settings/cameras/",
        f"/servers/{site['a'].pk}/",
        "/servers/",
        "/cameras/",
        "/servers/licenses/",
        f"/cameras/{gate.pk}/",
    ]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_server_information_shows_backup_section_and_warnings(admin_client, site, make_server, make_camera):
    fast = make_server("srv-f", site["system"], fast=True)
    make_camera(site["a"], fast, name="hall")
    page = admin_client.get(f"/servers/{fast.pk}/").content.decode()
    assert "Backup (redundancy)" in page and "hall" in page
    assert "Fast redundancy must also be enabled on primary server(s) srv-a" in page


def test_backup_section_applies_flags(admin_client, site, make_camera):
    server = site["b"]
    site["a"].redundancy.fast_redundancy = True
    site["a"].redundancy.save()
    make_camera(site["a"], server, name="hall")
    response = admin_client.post(
        f"/servers/{server.pk}/backup-settings/", {"fast_redundancy": "on"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "settings of srv-b applied" in response.content.decode()
    assert "In fast mode a short outage" in response.content.decode()
    server.redundancy.refresh_from_db()
    assert server.redundancy.fast_redundancy and not server.redundancy.constant_redundancy


def test_email_without_mail_settings_opens_the_mail_form(admin_client, site, settings):
    settings.EMAIL_FROM_ENVIRONMENT = False
    server = site["b"]
    response = admin_client.post(
        f"/servers/{server.pk}/backup-settings/", {"email_notifications": "on"}, HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    mail_url = f"/servers/systems/{site['system'].pk}/mail/?enable_for={server.pk}"
    assert "needs working mail settings" in page and mail_url in page
    server.redundancy.refresh_from_db()
    assert not server.redundancy.email_notifications
    # Without HTMX the browser is sent to the same form.
    response = admin_client.post(f"/servers/{server.pk}/backup-settings/", {"email_notifications": "on"})
    assert response.status_code == 302 and response["Location"] == mail_url
    form = admin_client.get(mail_url).content.decode()
    assert "Email notifications for <strong>srv-b</strong>" in form


def test_saving_mail_settings_turns_notifications_on(admin_client, site, settings):
    settings.EMAIL_FROM_ENVIRONMENT = False
    server = site["b"]
    url = f"/servers/systems/{site['system'].pk}/mail/"
    bad = admin_client.post(url, {"enable_for": server.pk, "smtp_port": 587, "recipients": "ops@example.com"})
    assert bad.status_code == 400 and "need at least one recipient and an SMTP host" in bad.content.decode()
    assert not RedundancySettings.objects.get(server=server).email_notifications
    good = admin_client.post(
        url,
        {
            "enable_for": server.pk,
            "smtp_host": "smtp.example.com",
            "smtp_port": 587,
            "use_tls": "on",
            "from_email": "vms@example.com",
            "recipients": "ops@example.com",
            "password": "planted-SMTP-pw",
        },
    )
    assert good.status_code == 302
    assert RedundancySettings.objects.get(server=server).email_notifications
    assert MailSettings.objects.get(system=site["system"]).password == "planted-SMTP-pw"
    assert "planted-SMTP-pw" not in admin_client.get(url).content.decode()
    assert mail.outbox == []


def test_unknown_server_is_404(admin_client, db):
    assert admin_client.get("/servers/987654/").status_code == 404
    assert admin_client.post("/servers/987654/backup-settings/", {}).status_code == 404


def test_analytics_are_listed_on_the_primary_only(admin_client, site, make_camera):
    make_camera(site["a"], site["b"], name="hall", analytics=["motion_detection"])
    primary_page = admin_client.get(f"/servers/{site['a'].pk}/").content.decode()
    backup_page = admin_client.get(f"/servers/{site['b'].pk}/").content.decode()
    assert "Motion detection" in primary_page.split("Cameras backed up by")[0]
    assert "Motion detection" not in backup_page


def test_htmx_is_told_to_show_refusals(admin_client, site):
    page = admin_client.get(f"/servers/{site['a'].pk}/").content.decode()
    assert '{"code": "400", "swap": true}' in page


def test_backup_settings_refresh_the_camera_modes(admin_client, site, make_camera):
    make_camera(site["a"], site["b"], name="hall")
    site["a"].redundancy.fast_redundancy = True
    site["a"].redundancy.save()
    page = admin_client.post(
        f"/servers/{site['b'].pk}/backup-settings/", {"fast_redundancy": "on"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    backed_up = page.split("Cameras backed up by srv-b")[1]
    assert 'badge fast">fast' in backed_up.split("</table>")[0]


def test_mail_settings_cannot_switch_notifications_on_without_the_redundancy_permission(client, viewer, site,
                                                                                        settings):  # fmt: skip
    settings.EMAIL_FROM_ENVIRONMENT = False
    client.force_login(grant(viewer, "change_mailsettings"))
    client.post(
        f"/servers/systems/{site['system'].pk}/mail/",
        {"enable_for": site["b"].pk, "smtp_host": "smtp.example.com", "smtp_port": 587,
         "from_email": "vms@example.com", "recipients": "ops@example.com"},
    )  # fmt: skip
    assert MailSettings.objects.filter(system=site["system"]).exists()
    assert not RedundancySettings.objects.get(server=site["b"]).email_notifications


@pytest.fixture
def mail_ready(site, settings):
    settings.EMAIL_FROM_ENVIRONMENT = False
    return MailSettings.objects.create(system=site["system"], smtp_host="smtp.example.com",
                                       recipients="ops@example.com")  # fmt: skip


EMAIL_AND_CONSTANT = {"email_notifications": "on", "constant_redundancy": "on"}


def _flags(server):
    settings = RedundancySettings.objects.get(server=server)
    return settings.email_notifications, settings.constant_redundancy, settings.fast_redundancy


def test_email_and_constant_are_applied_together_with_a_message_for_each(admin_client, site, make_camera,
                                                                         mail_ready):  # fmt: skip
    make_camera(site["a"], site["b"], name="hall")
    url = f"/servers/{site['b'].pk}/backup-settings/"
    response = admin_client.post(url, EMAIL_AND_CONSTANT, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Backup (redundancy) settings of srv-b applied" in page
    assert "Sending email notifications: turned on." in page
    assert "Constant redundancy: turned on." in page
    assert "Fast redundancy" not in page.split('id="backup-applied"')[1].split("</ul>")[0]  # unchanged: not named
    assert "No email is sent in constant redundancy mode." in page
    assert _flags(site["b"]) == (True, True, False)


def test_email_without_mail_settings_stores_nothing_and_says_why_for_each_part(admin_client, site, settings):
    settings.EMAIL_FROM_ENVIRONMENT = False
    url = f"/servers/{site['b'].pk}/backup-settings/"
    response = admin_client.post(url, EMAIL_AND_CONSTANT, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    page = response.content.decode()
    summary = page.split('class="form-errors"')[1].split("</div>")[0]
    assert "This form was not saved" in summary
    assert "Sending email notifications</a> — Needs working mail settings for Site" in summary
    assert "Constant redundancy</a> — Not stored" in summary
    assert "Fast redundancy" not in summary
    assert _flags(site["b"]) == (False, False, False)
    # The mail setup opens and carries the whole change, so saving it applies the change whole.
    mail_url = f"/servers/systems/{site['system'].pk}/mail/?enable_for={site['b'].pk}&amp;constant_redundancy=on"
    assert mail_url in page
    form = admin_client.get(mail_url.replace("&amp;", "&")).content.decode()
    assert "constant redundancy turns on" in form


def test_saving_the_mail_setup_applies_the_pending_change_whole(admin_client, site, settings):
    settings.EMAIL_FROM_ENVIRONMENT = False
    url = f"/servers/systems/{site['system'].pk}/mail/"
    bad = admin_client.post(url, {"enable_for": site["b"].pk, "constant_redundancy": "on", "smtp_port": 587})
    assert bad.status_code == 400
    assert _flags(site["b"]) == (False, False, False)
    good = admin_client.post(url, {"enable_for": site["b"].pk, "constant_redundancy": "on",
                                   "smtp_host": "smtp.example.com", "smtp_port": 587,
                                   "recipients": "ops@example.com"}, follow=True)  # fmt: skip
    assert _flags(site["b"]) == (True, True, False)
    page = good.content.decode()
    assert "Sending email notifications: turned on." in page and "Constant redundancy: turned on." in page


def _preview(client, server, **ticked):
    data = {"preview": "1", **{name: "on" for name, on in ticked.items() if on}}
    return client.get(f"/servers/{server.pk}/", data, HTTP_HX_REQUEST="true")


def test_preview_warns_of_constant_mode_before_apply_and_stores_nothing(admin_client, site, make_camera, mail_ready):
    make_camera(site["a"], site["b"], name="hall")
    response = _preview(admin_client, site["b"], email_notifications=True, constant_redundancy=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.startswith('<div id="backup-preview"')
    assert "No email is sent in constant redundancy mode." in page
    assert "Constant redundancy doubles the bandwidth taken from each of the 1 camera(s)" in page
    assert "Apply turns on: sending email notifications, constant redundancy." in page
    assert _flags(site["b"]) == (False, False, False)


def test_preview_says_fast_mode_needs_the_primary_too(admin_client, site, make_camera):
    make_camera(site["a"], site["b"], name="hall")
    page = _preview(admin_client, site["b"], fast_redundancy=True).content.decode()
    assert "Fast redundancy must also be enabled on primary server(s) srv-a" in page
    lonely = _preview(admin_client, site["c"], fast_redundancy=True).content.decode()
    assert "Fast mode works only where the primary server of a camera has fast redundancy on too." in lonely
    assert _flags(site["b"]) == _flags(site["c"]) == (False, False, False)


def test_preview_says_email_needs_mail_settings(admin_client, site, settings):
    settings.EMAIL_FROM_ENVIRONMENT = False
    page = _preview(admin_client, site["b"], email_notifications=True, fast_redundancy=True).content.decode()
    assert "Apply stores nothing until the mail settings of Site work" in page
    assert "Needs working mail settings for Site" in page
    assert _flags(site["b"]) == (False, False, False)


def test_preview_of_the_stored_state_has_no_change(admin_client, site, make_server, make_camera):
    fast = make_server("srv-f", site["system"], fast=True)
    make_camera(site["a"], fast, name="hall")
    page = _preview(admin_client, fast, fast_redundancy=True).content.decode()
    assert "Apply changes nothing" in page
    assert "Fast redundancy must also be enabled on primary server(s) srv-a" in page


def test_the_section_asks_for_a_preview_when_a_box_changes(admin_client, site):
    page = admin_client.get(f"/servers/{site['b'].pk}/").content.decode()
    section = page.split('id="backup-section"')[1]
    assert 'hx-trigger="change"' in section and 'hx-target="#backup-preview"' in section
    assert '"preview": "1"' in section.replace("&quot;", '"')
