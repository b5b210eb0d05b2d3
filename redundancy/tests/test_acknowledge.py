"""Acknowledging an event: an operator says they have seen it, on the Events page (htmx or a plain form) or through
the API; who and when are kept and audited, the first acknowledgement stays, another system's event is not found."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import AuditAction, AuditEntry, SystemAccess
from accounts.roles import OPERATORS
from redundancy.models import Event, EventKind

AT = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


def _operator(name, system=None):
    user = User.objects.create_user(name, f"{name}@example.com", "a-long-test-passphrase")
    user.groups.add(Group.objects.get(name=OPERATORS))
    if system is not None:
        SystemAccess.objects.create(user=user, system=system)
    return User.objects.get(pk=user.pk)


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def events(site):
    mine = Event.objects.create(at=AT, kind=EventKind.SERVER_DOWN, server=site["a"], message="srv-a is down")
    theirs = Event.objects.create(at=AT, kind=EventKind.SERVER_DOWN, server=site["other"], message="other down")
    return {"mine": mine, "theirs": theirs}


def test_an_operator_acknowledges_an_event_and_the_page_shows_who_and_when(site, events):
    olga = _client(_operator("olga"))
    url = f"/events/{events['mine'].pk}/acknowledge/"
    cell = olga.post(url, {"note": "power cut in rack 3"}, HTTP_HX_REQUEST="true")
    assert cell.status_code == 200
    event = Event.objects.get(pk=events["mine"].pk)
    assert event.acknowledged_by_username == "olga" and event.acknowledgement_note == "power cut in rack 3"
    stamp = event.acknowledged_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    html = cell.content.decode()
    assert "Acknowledged by <strong>olga</strong>" in html and f'<time datetime="{stamp}"' in html
    assert "power cut in rack 3" in html and "Acknowledge</button>" not in html
    page = olga.get("/events/").content.decode()
    assert "Acknowledged by <strong>olga</strong>" in page and f'<time datetime="{stamp}"' in page
    entry = AuditEntry.objects.get(action=AuditAction.ACKNOWLEDGED)
    assert (entry.username, entry.object_type, entry.object_id) == ("olga", "redundancy.event", str(event.pk))
    assert entry.after["note"] == "power cut in rack 3"


def test_acknowledging_twice_keeps_the_first(site, events):
    url = f"/events/{events['mine'].pk}/acknowledge/"
    _client(_operator("olga")).post(url, {"note": "first"}, HTTP_HX_REQUEST="true")
    first = Event.objects.get(pk=events["mine"].pk).acknowledged_at
    again = _client(_operator("oscar")).post(url, {"note": "second"}, HTTP_HX_REQUEST="true")
    assert again.status_code == 200 and "already been acknowledged" in again.content.decode()
    assert "Acknowledged by <strong>olga</strong>" in again.content.decode()
    event = Event.objects.get(pk=events["mine"].pk)
    assert (event.acknowledged_by_username, event.acknowledgement_note, event.acknowledged_at) == ("olga", "first",
                                                                                                   first)  # fmt: skip
    assert AuditEntry.objects.filter(action=AuditAction.ACKNOWLEDGED).count() == 1


def test_another_systems_event_is_not_found(site, events):
    limited = _client(_operator("lena", site["system"]))
    assert limited.post(f"/events/{events['theirs'].pk}/acknowledge/").status_code == 404
    assert limited.post("/events/987654/acknowledge/").status_code == 404
    assert not Event.objects.filter(acknowledged_at__isnull=False).exists()
    assert limited.post(f"/events/{events['mine'].pk}/acknowledge/").status_code == 302


def test_only_a_post_with_its_csrf_token_acknowledges(site, events):
    olga = _operator("olga")
    url = f"/events/{events['mine'].pk}/acknowledge/"
    assert _client(olga).get(url).status_code == 405
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(olga)
    assert guarded.post(url).status_code == 403
    assert not Event.objects.filter(acknowledged_at__isnull=False).exists()
    page = guarded.get("/events/")
    token = page.cookies["csrftoken"].value
    assert guarded.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert Event.objects.get(pk=events["mine"].pk).acknowledged_by_username == "olga"


def test_a_user_who_only_watches_cannot_acknowledge(site, events, viewer):
    client = _client(viewer)
    assert client.post(f"/events/{events['mine'].pk}/acknowledge/").status_code == 403
    page = client.get("/events/").content.decode()
    assert "Acknowledge</button>" not in page and "Not acknowledged" in page
    assert not Event.objects.filter(acknowledged_at__isnull=False).exists()


def test_a_note_too_long_is_refused_in_words_and_nothing_is_stored(site, events):
    olga = _client(_operator("olga"))
    url = f"/events/{events['mine'].pk}/acknowledge/"
    refused = olga.post(url, {"note": "x" * 501}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 400
    assert "A note holds at most 500 characters (this one has 501)." in refused.content.decode()
    assert "Acknowledge</button>" in refused.content.decode()  # the button stays, to try again
    assert not Event.objects.filter(acknowledged_at__isnull=False).exists()
    assert not AuditEntry.objects.filter(action=AuditAction.ACKNOWLEDGED).exists()
    plain = olga.post(url, {"note": "x" * 501}, follow=True)
    assert "A note holds at most 500 characters" in plain.content.decode()


def test_a_plain_form_goes_back_to_the_page_it_came_from(site, events):
    olga = _client(_operator("olga"))
    back = "/events/?kind=server_down"
    answer = olga.post(f"/events/{events['mine'].pk}/acknowledge/?next=/events/%3Fkind%3Dserver_down")
    assert answer.status_code == 302 and answer["Location"] == back
    elsewhere = olga.post(f"/events/{events['mine'].pk}/acknowledge/?next=https://evil.example/")
    assert elsewhere["Location"] == "/events/"
    assert "had already acknowledged it" in olga.get("/events/").content.decode()


def test_unacknowledged_only(site, events):
    third = Event.objects.create(at=AT, kind=EventKind.SERVER_UP, server=site["b"], message="srv-b is up")
    olga = _operator("olga")
    events["mine"].acknowledge(olga)
    page = _client(olga).get("/events/", {"unacknowledged": "1"}).content.decode()
    assert "srv-b is up" in page and "srv-a is down" not in page
    assert 'name="unacknowledged" value="1" data-submit-on-change checked' in page
    third.acknowledge(olga)
    events["theirs"].acknowledge(olga)
    assert "No unacknowledged events." in _client(olga).get("/events/", {"unacknowledged": "1"}).content.decode()
    everything = _client(olga).get("/events/").content.decode()
    assert "srv-b is up" in everything and "srv-a is down" in everything


def test_the_acknowledgement_keeps_the_name_of_a_deleted_user(site, events):
    olga = _operator("olga")
    events["mine"].acknowledge(olga)
    olga.delete()
    event = Event.objects.get(pk=events["mine"].pk)
    assert event.acknowledged_by is None and event.acknowledged_by_username == "olga"


# -- the API --------------------------------------------------------------------------------------------


def test_the_api_acknowledges_an_event_once(site, events):
    url = f"/api/events/{events['mine'].pk}/acknowledge/"
    answer = _api(_operator("olga")).post(url, {"note": "seen"}, format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["acknowledged_by_username"] == "olga" and body["acknowledgement_note"] == "seen"
    assert body["acknowledged_at"] is not None
    again = _api(_operator("oscar")).post(url, {}, format="json")
    assert again.status_code == 200 and again.json()["acknowledged_by_username"] == "olga"
    assert again.json()["acknowledged_at"] == body["acknowledged_at"]
    assert AuditEntry.objects.filter(action=AuditAction.ACKNOWLEDGED, username="olga").count() == 1


def test_the_api_keeps_the_same_rules(site, events, viewer):
    limited = _api(_operator("lena", site["system"]))
    assert limited.post(f"/api/events/{events['theirs'].pk}/acknowledge/").status_code == 404
    assert limited.get(f"/api/events/{events['mine'].pk}/acknowledge/").status_code == 405
    assert _api(viewer).post(f"/api/events/{events['mine'].pk}/acknowledge/").status_code == 403
    refused = limited.post(f"/api/events/{events['mine'].pk}/acknowledge/", {"note": "x" * 501}, format="json")
    assert refused.status_code == 400 and "note" in refused.json()
    assert not Event.objects.filter(acknowledged_at__isnull=False).exists()
    assert APIClient().post(f"/api/events/{events['mine'].pk}/acknowledge/").status_code == 401


def test_the_api_lists_the_events_nobody_acknowledged(site, events):
    olga = _operator("olga")
    events["mine"].acknowledge(olga)
    api = _api(olga)
    assert [e["message"] for e in api.get("/api/events/", {"acknowledged": "false"}).json()["results"]] == [
        "other down"]  # fmt: skip
    acknowledged = api.get("/api/events/", {"acknowledged": "true"}).json()["results"]
    assert [(e["message"], e["acknowledged_by_username"]) for e in acknowledged] == [("srv-a is down", "olga")]


def test_the_schema_offers_the_acknowledge_action(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/events/{id}/acknowledge/"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/AcknowledgeRequest")
    assert "note" in schema["components"]["schemas"]["AcknowledgeRequest"]["properties"]
    assert "first acknowledgement" in operation["description"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "acknowledged_by_username" in schema["components"]["schemas"][answer.rsplit("/", 1)[1]]["properties"]
