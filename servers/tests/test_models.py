from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from servers.models import License, MailSettings, RedundancySettings


def test_every_server_gets_redundancy_settings(make_server):
    server = make_server()
    assert RedundancySettings.objects.filter(server=server).exists()
    assert not server.redundancy.fast_redundancy


def test_license_activity_by_day(make_server):
    server = make_server(license=False)
    lic = License.objects.create(
        key="DAY-0001", server=server, ip_camera_channels=4, valid_from=date(2026, 1, 1), valid_until=date(2026, 1, 31)
    )
    assert not lic.is_active(date(2025, 12, 31))
    assert lic.is_active(date(2026, 1, 1))
    assert lic.is_active(date(2026, 1, 31))
    assert not lic.is_active(date(2026, 2, 1))
    assert list(License.objects.active(date(2026, 1, 15))) == [lic]
    assert list(License.objects.active(date(2026, 2, 1))) == []


def test_licensing_sums_active_licenses_only(make_server):
    server = make_server(channels=8)
    License.objects.create(
        key="OLD-0001",
        server=server,
        ip_camera_channels=100,
        valid_from=date(2020, 1, 1),
        valid_until=date(2020, 12, 31),
    )
    licensing = server.licensing()
    assert licensing.active and licensing.ip_camera_channels == 8 and licensing.analytics_channels == 4


def test_license_cannot_end_before_it_starts(make_server):
    lic = License(
        key="BACK-0001",
        server=make_server(),
        ip_camera_channels=1,
        valid_from=date(2026, 5, 1),
        valid_until=date(2026, 4, 1),
    )
    with pytest.raises(ValidationError, match="cannot end before it starts"):
        lic.full_clean()


@pytest.mark.parametrize("field, value", [("max_cameras", 0), ("storage_gb", 0), ("api_port", 70000)])
def test_capacity_figures_must_be_positive(make_server, field, value):
    server = make_server()
    setattr(server, field, value)
    with pytest.raises(ValidationError) as caught:
        server.full_clean()
    assert field in caught.value.message_dict


def test_mail_settings_need_recipients_and_transport(make_system, settings):
    settings.EMAIL_FROM_ENVIRONMENT = False
    mail = MailSettings(system=make_system(), recipients="ops@example.com, night@example.com")
    assert mail.recipient_list == ["ops@example.com", "night@example.com"]
    assert not mail.is_configured
    mail.smtp_host = "smtp.example.com"
    assert mail.is_configured
    mail.recipients = ""
    assert not mail.is_configured


def test_mail_recipients_are_validated(make_system):
    mail = MailSettings(system=make_system(), smtp_host="smtp.example.com", recipients="ops@example.com, nobody")
    with pytest.raises(ValidationError, match="'nobody' is not an email address"):
        mail.full_clean()


def test_mail_password_is_encrypted_at_rest(make_system):
    mail = MailSettings.objects.create(system=make_system(), smtp_host="smtp.example.com", password="planted-SMTP-pw")
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM servers_mailsettings WHERE system_id = %s", [mail.pk])
        stored = cursor.fetchone()[0]
    assert "planted-SMTP-pw" not in stored
    assert MailSettings.objects.get(pk=mail.pk).password == "planted-SMTP-pw"


@pytest.mark.parametrize("address", ["10.1.2.3", "video-1.site.example", "::1", "[fe80::1]", "srv"])
def test_server_addresses_accepted(make_server, address):
    server = make_server()
    server.address = address
    server.full_clean()


@pytest.mark.parametrize("address", ["::::", "[::1", "bad host", "-leading.example", "a" * 254, "999.1.1.1.1"])
def test_server_addresses_refused(make_server, address):
    server = make_server()
    server.address = address
    with pytest.raises(ValidationError, match="host name or an IP address"):
        server.full_clean()
