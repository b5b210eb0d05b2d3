"""The Events page: filters, a time range, and the CSV of what the filters keep."""

import csv
import io
from datetime import UTC, datetime

from redundancy.models import Event, EventKind

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
