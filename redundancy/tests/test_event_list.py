"""The Events page: filters, a time range, the CSV of what the filters keep, and for administrators the
configuration changes of the audit log beside the events."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import Group, User
from django.test import Client

from accounts.models import AuditAction, AuditEntry, SystemAccess
from accounts.roles import ADMINISTRATORS, OPERATORS
from redundancy.models import Event, EventKind
from servers.models import License, MailSettings, MultiserverSystem, Server

AT = [datetime(2026, 11, 30, 8, 0, tzinfo=UTC), datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
      datetime(2026, 11, 30, 11, 0, tzinfo=UTC)]  # fmt: skip


def _events(site, camera):
    Event.objects.create(at=AT[0], kind=EventKind.SERVER_DOWN, server=site["a"], message="srv-a is down")
    Event.objects.create(at=AT[1], kind=EventKind.FAILOVER_COMPLETED, camera=camera, server=site["a"],
                         to_server=site["b"], mode="fast", message="gate recorded by srv-b")  # fmt: skip
    Event.objects.create(at=AT[2], kind=EventKind.SERVER_DOWN, server=site["b"], message="=HYPERLINK(\"x\") down")


def _shown(response):
    return [m for m in ("srv-a is down", "gate recorded by srv-b", "HYPERLINK") if m in response.content.decode()]


def test_a_time_range_keeps_the_events_inside_it(admin_client, site, make_camera):
    _events(site, make_camera(site["a"], site["b"], name="gate"))
    assert _shown(admin_client.get("/events/")) == ["srv-a is down", "gate recorded by srv-b", "HYPERLINK"]
    inside = admin_client.get("/events/", {"since": "2026-11-30T09:00", "until": "2026-11-30T11:00"})
    assert inside.status_code == 200 and _shown(inside) == ["gate recorded by srv-b"]  # until is exclusive
    assert 'value="2026-11-30T09:00"' in inside.content.decode()
    assert _shown(admin_client.get("/events/", {"since": "2026-11-30T09:30", "kind": "server_down"})) == ["HYPERLINK"]


def test_a_range_that_makes_no_sense_is_refused_in_words(admin_client, site, make_camera):
    _events(site, make_camera(site["a"], site["b"], name="gate"))
    for query, words in (({"since": "yesterday"}, "Since — Enter a valid date/time."),
                         ({"since": "2026-11-30T11:00", "until": "2026-11-30T09:00"}, "Until must come after since.")):
        refused = admin_client.get("/events/", query)
        assert refused.status_code == 400 and words in refused.content.decode(), query
        assert _shown(refused) == []
        csv_refused = admin_client.get("/events/", {**query, "format": "csv"})
        assert csv_refused.status_code == 400 and words.split(" — ")[-1] in csv_refused.content.decode()


def test_the_csv_holds_what_the_filters_keep_and_no_formula(admin_client, site, make_camera):
    _events(site, make_camera(site["a"], site["b"], name="gate"))
    page = admin_client.get("/events/", {"server": site["b"].pk}).content.decode()
    assert f'href="?server={site["b"].pk}&format=csv"' in page
    response = admin_client.get("/events/", {"server": site["b"].pk, "format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8" and "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response).decode())))
    assert rows[0] == ["time (UTC)", "event", "camera", "server", "to server", "mode", "what happened", "mail",
                       "acknowledged (UTC)", "acknowledged by", "acknowledgement note"]  # fmt: skip
    assert rows[1] == ["2026-11-30T11:00:00.000+00:00", "Server down", "", "srv-b", "", "",
                       "'=HYPERLINK(\"x\") down", "", "", "", ""]  # fmt: skip
    assert rows[2][:7] == ["2026-11-30T09:30:00.000+00:00", "Failover completed", "gate", "srv-a", "srv-b", "fast",
                           "gate recorded by srv-b"]  # fmt: skip
    assert len(rows) == 3  # srv-a's own down event is not srv-b's


def test_a_csv_cut_at_its_limit_says_so(admin_client, site, make_camera, monkeypatch):
    from redundancy import views

    _events(site, make_camera(site["a"], site["b"], name="gate"))
    monkeypatch.setattr(views, "CSV_LIMIT", 2)
    response = admin_client.get("/events/", {"format": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response).decode())))
    assert len(rows) == 4 and rows[-1] == ["Cut at 2 events: narrow the time range for the rest."]
    monkeypatch.setattr(views, "CSV_BATCH", 1)  # merged with the changes, read in slices
    merged = admin_client.get("/events/", {"format": "csv", "changes": "1", "until": "2026-12-01T00:00"})
    rows = list(csv.reader(io.StringIO(b"".join(merged).decode())))
    assert [row[-1] if len(row) == 1 else row[6] for row in rows[1:]] == [
        "'=HYPERLINK(\"x\") down", "gate recorded by srv-b", "Cut at 2 events: narrow the time range for the rest."]


def test_a_range_typed_in_the_browsers_local_time_is_read_in_it(admin_client, site, make_camera):
    _events(site, make_camera(site["a"], site["b"], name="gate"))
    # Berlin in November is UTC+1: 10:00 to 12:00 there is 09:00 to 11:00 UTC.
    berlin = {"since": "2026-11-30T10:00", "until": "2026-11-30T12:00", "zone": "Europe/Berlin"}
    local = admin_client.get("/events/", berlin)
    assert _shown(local) == ["gate recorded by srv-b"]
    assert "zone=Europe%2FBerlin" in local.content.decode()  # its pages and its CSV keep reading it so
    # In July Berlin is UTC+2: each date is read with its own offset (daylight saving time included).
    Event.objects.create(at=datetime(2026, 7, 1, 9, 30, tzinfo=UTC), kind=EventKind.SERVER_DOWN, server=site["c"],
                         message="summer down")  # fmt: skip
    summer = admin_client.get("/events/", {"since": "2026-07-01T11:30", "until": "2026-07-01T11:31",
                                           "zone": "Europe/Berlin"})  # fmt: skip
    assert "summer down" in summer.content.decode()
    unknown = admin_client.get("/events/", {"since": "2026-11-30T10:00", "zone": "Nowhere/City"})
    assert unknown.status_code == 400 and "time zone &#x27;Nowhere/City&#x27; is not known" in unknown.content.decode()
    assert admin_client.get("/events/", {"zone": "Nowhere/City"}).status_code == 200  # no range: nothing to read


def test_event_times_read_in_utc_without_script_and_carry_it_for_the_browser(admin_client, site, make_camera):
    _events(site, make_camera(site["a"], site["b"], name="gate"))
    page = admin_client.get("/events/").content.decode()
    assert ('<time datetime="2026-11-30T09:30:00.000Z" data-local="datetime" title="UTC 2026-11-30 09:30:00">'
            "2026-11-30 09:30:00 UTC</time>") in page  # fmt: skip


# -- configuration changes beside the events, for administrators ----------------------------------------------

CHANGE_AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def _changed(user_api, camera, **body):
    """A change of the camera through the API, dated between the second and third events."""
    assert user_api.patch(f"/api/cameras/{camera.pk}/", body, format="json").status_code == 200
    entry = AuditEntry.objects.filter(object_type="cameras.camera", object_id=str(camera.pk)).latest("id")
    AuditEntry.objects.filter(pk=entry.pk).update(at=CHANGE_AT)
    return entry


def _user(name, role, system=None):
    user = User.objects.create_user(name, f"{name}@example.com", "a-long-test-passphrase")
    user.groups.add(Group.objects.get(name=role))
    if system is not None:
        SystemAccess.objects.create(user=user, system=system)
    return User.objects.get(pk=user.pk)


def _order(html, *markers):
    """The markers in the order the page shows them (each must be there)."""
    assert all(marker in html for marker in markers), [m for m in markers if m not in html]
    return sorted(markers, key=html.index)


def test_an_administrator_sees_the_configuration_changes_among_the_events(admin_client, api, site, make_camera):
    gate = make_camera(site["a"], site["b"], name="gate")
    _events(site, gate)
    _changed(api, gate, backup_server=site["c"].pk)
    plain = admin_client.get("/events/").content.decode()
    assert "Include configuration changes" in plain and "root changed camera gate" not in plain
    page = admin_client.get("/events/", {"changes": "1"}).content.decode()
    markers = ("HYPERLINK", "root changed camera gate", "gate recorded by srv-b", "srv-a is down")
    assert _order(page, *markers) == list(markers)  # newest first, the change between its neighbours
    assert "Backup server: srv-b → srv-c" in page
    assert 'href="?changes=1&format=csv"' in page  # the CSV keeps them, as the pages do
    assert 'name="changes" value="1" data-submit-on-change checked' in page


def test_a_drain_is_shown_as_who_asked_for_it(admin_client, api, site):
    assert api.post(f"/api/servers/{site['b'].pk}/drain/").status_code == 202
    page = admin_client.get("/events/", {"changes": "1"}).content.decode()
    assert _order(page, "root started a drain of server srv-b", "srv-b is being drained")
    assert "Draining: no → yes" in page


def test_users_who_are_not_administrators_never_see_changes(client, api, site, make_camera, viewer):
    gate = make_camera(site["a"], site["b"], name="gate")
    _events(site, gate)
    _changed(api, gate, backup_server=site["c"].pk)
    for user in (viewer, _user("olga", OPERATORS)):
        client.force_login(user)
        page = client.get("/events/", {"changes": "1"}).content.decode()
        assert "gate recorded by srv-b" in page
        assert "root changed" not in page and "Include configuration changes" not in page, user
        rows = list(csv.reader(io.StringIO(b"".join(client.get("/events/", {"changes": "1", "format": "csv"}))
                                           .decode())))  # fmt: skip
        assert len(rows) == 4 and not any("Configuration change" in row for row in rows), user


def test_the_csv_holds_the_changes_when_the_page_does(admin_client, api, site, make_camera):
    gate = make_camera(site["a"], site["b"], name="gate")
    _events(site, gate)
    _changed(api, gate, backup_server=site["c"].pk)
    day = {"changes": "1", "format": "csv", "until": "2026-12-01T00:00"}  # not the site's own creation, now
    rows = list(csv.reader(io.StringIO(b"".join(admin_client.get("/events/", day)).decode())))
    assert [row[1] for row in rows[1:]] == ["Server down", "Configuration change", "Failover completed", "Server down"]
    assert rows[2][:7] == ["2026-11-30T10:00:00.000+00:00", "Configuration change", "gate", "", "", "",
                           "root changed camera gate: backup server: srv-b → srv-c"]  # fmt: skip
    without = list(csv.reader(io.StringIO(b"".join(admin_client.get("/events/", {"format": "csv"})).decode())))
    assert len(without) == 4


def test_secrets_are_never_shown(admin_client, api, site, make_camera):
    gate = make_camera(site["a"], site["b"], name="gate")
    _changed(api, gate, password="s3cret-camera-pass")
    mail = MailSettings.objects.create(system=site["system"], smtp_host="mail.example.com", password="smtp-pass-1")
    mail.password = "smtp-pass-2"
    mail.save()
    someone = User.objects.create_user("someone", "someone@example.com", "first-long-passphrase")
    someone.set_password("second-long-passphrase")
    someone.save()
    # An entry written by other code with a secret in clear is still masked by the page.
    AuditEntry.objects.create(at=CHANGE_AT, username="root", action=AuditAction.CHANGED, object_type="cameras.camera",
                              object_id=str(gate.pk), object_repr="gate", before={"password": ""},
                              after={"password": "plain-text-leak"})  # fmt: skip
    page = admin_client.get("/events/", {"changes": "1"}).content.decode()
    csv_text = b"".join(admin_client.get("/events/", {"changes": "1", "format": "csv"})).decode()
    for shown in (page, csv_text):
        for secret in ("s3cret-camera-pass", "smtp-pass", "plain-text-leak", "pbkdf2", someone.password):
            assert secret not in shown
    assert "Password: (none) → (new secret)" in page and "Password: (secret) → (new secret)" in page
    assert "Password: (none) → (secret)" in page  # the leaked value is shown as a mark only


def test_a_limited_administrator_sees_only_the_changes_of_their_systems(api, admin_client, site, make_camera):
    sam = _user("sam", ADMINISTRATORS, site["system"])
    mine, theirs = make_camera(site["a"], site["b"], name="mine"), make_camera(site["other"], name="theirs")
    _changed(api, mine, fps=12)
    _changed(api, theirs, fps=13)
    make_camera(site["a"], name="gone-here").delete()  # deleted: its system is read from what the entry kept
    Server.objects.create(name="srv-gone", system=site["other"].system, address="127.0.0.1").delete()
    License.objects.filter(server=site["other"]).update(ip_camera_channels=3)  # no signal: saved below
    License.objects.get(server=site["other"]).save()
    MultiserverSystem.objects.filter(pk=site["other"].system_id).get().save()
    User.objects.create_user("newcomer", "newcomer@example.com", "a-long-test-passphrase")
    client = Client()
    client.force_login(sam)
    page = client.get("/events/", {"changes": "1"}).content.decode()
    csv_text = b"".join(client.get("/events/", {"changes": "1", "format": "csv"})).decode()
    for shown in (page, csv_text):
        assert "root changed camera mine" in shown and "deleted camera gone-here" in shown
        for marker in ("theirs", "srv-gone", "srv-other", "Other site", "LIC-SRV-OTHER", "newcomer"):
            assert marker not in shown, marker
    everything = admin_client.get("/events/", {"changes": "1"}).content.decode()
    for marker in ("theirs", "srv-gone", "LIC-SRV-OTHER", "newcomer", "mine", "gone-here"):
        assert marker in everything, marker


def test_changes_keep_to_the_time_range_and_the_server(admin_client, api, site, make_camera):
    gate = make_camera(site["a"], site["b"], name="gate")
    _events(site, gate)
    _changed(api, gate, backup_server=site["c"].pk)
    assert api.patch(f"/api/servers/{site['c'].pk}/", {"max_inbound_mbps": 500}, format="json").status_code == 200
    AuditEntry.objects.filter(object_type="servers.server").update(at=AT[0])
    later = admin_client.get("/events/", {"changes": "1", "since": "2026-11-30T09:00"}).content.decode()
    assert "root changed camera gate" in later and "root changed server srv-c" not in later
    of_b = admin_client.get("/events/", {"changes": "1", "server": site["b"].pk}).content.decode()
    assert "root changed camera gate" in of_b and "root changed server srv-c" not in of_b  # gate was srv-b's
    of_c = admin_client.get("/events/", {"changes": "1", "server": site["c"].pk}).content.decode()
    assert "root changed camera gate" in of_c and "root changed server srv-c" in of_c
    kind = admin_client.get("/events/", {"changes": "1", "kind": "server_down"}).content.decode()
    assert "root changed" not in kind and "only events are shown" in kind


def test_pages_of_events_and_changes_merged(admin_client, site):
    start = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    Event.objects.bulk_create(Event(at=start + timedelta(minutes=2 * n), kind=EventKind.SERVER_DOWN, server=site["a"],
                                    message=f"event-{n:03}") for n in range(60))  # fmt: skip
    AuditEntry.objects.bulk_create(AuditEntry(
        at=start + timedelta(minutes=2 * n + 1), username="root", action=AuditAction.CHANGED,
        object_type="servers.server", object_id=str(site["a"].pk), object_repr="srv-a",
        before={"name": "srv-a"}, after={"name": f"change-{n:03}"}) for n in range(60))  # fmt: skip
    shown = []
    for number in (1, 2):
        query = {"changes": "1", "page": number, "until": "2026-12-01T00:00"}  # not the site's own creation
        page = admin_client.get("/events/", query).content.decode()
        assert f"Page {number} of 2" in page
        shown.append(re.findall(r"(event|change)-(\d{3})", page.split("<tbody>")[1]))
    assert len(shown[0]) == 100 and len(shown[1]) == 20
    expected = [(kind, f"{n:03}") for n in range(59, -1, -1) for kind in ("change", "event")]
    assert shown[0] + shown[1] == expected  # newest first, each once, the two kinds interleaved
