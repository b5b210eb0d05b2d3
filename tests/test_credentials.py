"""A planted camera password (and SMTP password) never leaves the encrypted columns: not in API
responses, pages, error pages, logs, events, mail, the audit log or the Redis live state."""

import logging

import pytest
from django.core import mail
from django.db import connection
from rest_framework.test import APIClient

from cameras.models import Camera
from protocol import live
from recording.ingest import CameraFeed, HttpIngest
from recording.streamcopy import RtspIngest
from redundancy.models import Event
from redundancy.tests.test_engine import World
from servers.models import MailSettings
from testbed.waiting import wait_for
from utilities.ports import free_ports

PASSWORD = "Planted-Pw-4419"
USERNAME = "planted-user-77"
SMTP_PASSWORD = "Planted-Smtp-5521"
pytestmark = pytest.mark.django_db(transaction=True)


def _assert_clean(text: str, where: str) -> None:
    for secret in (PASSWORD, USERNAME, SMTP_PASSWORD):
        assert secret not in text, f"{secret!r} found in {where}"


def test_planted_credentials_appear_nowhere(site, admin_user, admin_client, caplog, capfd, settings):
    free_port = free_ports(1)[0]
    caplog.set_level(logging.DEBUG)
    settings.EMAIL_FROM_ENVIRONMENT = True
    api = APIClient()
    api.force_authenticate(admin_user)
    created = api.post("/api/cameras/", {"name": "vault", "stream_url": f"http://127.0.0.1:{free_port}/video.mjpg",
                                         "codec": "mjpeg", "primary_server": site["a"].pk,
                                         "backup_server": site["b"].pk, "username": USERNAME,
                                         "password": PASSWORD}, format="json")  # fmt: skip
    assert created.status_code == 201
    camera = Camera.objects.get(name="vault")
    assert camera.password == PASSWORD  # stored, and readable by the application
    with connection.cursor() as cursor:  # but encrypted at rest
        cursor.execute("SELECT username, password FROM cameras_camera WHERE id = %s", [camera.pk])
        _assert_clean(str(cursor.fetchone()), "the database row")
    MailSettings.objects.create(system=site["system"], recipients="ops@example.com", from_email="vms@example.com",
                                username="mailer", password=SMTP_PASSWORD)  # fmt: skip
    site["b"].redundancy.email_notifications = True
    site["b"].redundancy.save()

    seen = [("create response", created.content.decode())]
    # Refusals must not echo what was typed either.
    refused = api.patch(f"/api/cameras/{camera.pk}/", {"password": PASSWORD, "fps": 0}, format="json")
    assert refused.status_code == 400
    seen.append(("API refusal", refused.content.decode()))
    form = admin_client.post(f"/cameras/{camera.pk}/", {"stream_url": "ftp://nowhere", "password": PASSWORD,
                                                         "username": USERNAME})  # fmt: skip
    assert form.status_code == 400
    seen.append(("form refusal", form.content.decode()))

    # A failover with mail and events.
    world = World(site)
    world.beat("srv-a", "srv-b")
    world.tick()
    world.now += 31
    world.beat("srv-b")
    world.tick()
    assert Event.objects.filter(camera=camera, kind="failover_started").exists()
    assert world.send_mail() == 1
    assert len(mail.outbox) == 1
    seen += [("mail", mail.outbox[0].subject + mail.outbox[0].body)]
    seen += [("events", str(list(Event.objects.values_list("message", flat=True))))]

    # An agent's ingest of the camera failing against a closed loopback port, with its logs.
    feed = CameraFeed(camera.pk, camera.name, camera.stream_url, camera.username, camera.password, "mjpeg", ())
    # The same camera over RTSP, as PyAV opens it: FFmpeg's own messages name the URL they were given.
    rtsp_feed = CameraFeed(camera.pk, camera.name, f"rtsp://127.0.0.1:{free_ports(1)[0]}/stream", camera.username,
                           camera.password, "h264", ())  # fmt: skip
    for worker in (HttpIngest(feed, lambda *a: None, 0.5, 0.5), RtspIngest(rtsp_feed, lambda *a: None, 0.5, 0.5)):
        worker.start()
        wait_for(lambda w=worker: w.stats.state == "lost", 10, message="the ingest giving up on the closed port")
        worker.stop()
        worker.join(5)
    seen.append(("repr of the feed", repr(feed)))

    for url in ["/api/cameras/", f"/api/cameras/{camera.pk}/", "/api/status/", "/api/events/", "/api/audit/",
                "/api/capacity/", "/api/schema/", "/api/systems/", "/api/servers/"]:  # fmt: skip
        seen.append((url, api.get(url).content.decode()))
    pages = ["/cameras/", f"/cameras/{camera.pk}/", f"/cameras/{camera.pk}/general/", "/live/", "/servers/",
             f"/cameras/{camera.pk}/timeline/", f"/servers/{site['a'].pk}/", "/servers/settings/cameras/", "/events/",
             "/capacity/", f"/capacity/servers/{site['a'].pk}/", f"/servers/systems/{site['system'].pk}/mail/",
             f"/admin/cameras/camera/{camera.pk}/change/", "/admin/accounts/auditentry/",
             f"/admin/servers/mailsettings/{site['system'].pk}/change/"]  # fmt: skip
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        seen.append((url, response.content.decode()))
    redis = live.client()
    seen.append(("Redis", str([(key, redis.dump(key)) for key in redis.scan_iter(f"{settings.LIVE_KEY_PREFIX}*")])))
    out, err = capfd.readouterr()
    seen += [("logs", caplog.text), ("stdout", out), ("stderr", err)]
    for where, text in seen:
        _assert_clean(text, where)


def _new_camera_form(url, **changes):
    return {"name": "pasted", "enabled": "on", "failover_priority": "normal", "stream_url": url, "codec": "h264",
            "width": 1280, "height": 720, "fps": 15, "quality": "high", **changes}  # fmt: skip


def test_credentials_pasted_into_the_stream_url_go_to_their_fields(site, admin_client):
    url = f"rtsp://{USERNAME}:{PASSWORD.replace('-', '%2D')}@127.0.0.1:8554/lobby?channel=1"
    response = admin_client.post("/cameras/new/", _new_camera_form(url, primary_server=site["a"].pk))
    assert response.status_code == 302
    camera = Camera.objects.get(name="pasted")
    assert camera.stream_url == "rtsp://127.0.0.1:8554/lobby?channel=1"
    assert (camera.username, camera.password) == (USERNAME, PASSWORD)
    _assert_clean(admin_client.get(f"/cameras/{camera.pk}/").content.decode(), "the camera page")
    # The Connection tab: a URL pasted with other credentials replaces the stored ones.
    data = {"stream_url": "rtsp://admin:Other-Pw-1@127.0.0.1:8554/lobby", "codec": "h264", "width": 1280,
            "height": 720, "fps": 15, "quality": "high", "primary_server": site["a"].pk,
            "backup_server": ""}  # fmt: skip
    assert admin_client.post(f"/cameras/{camera.pk}/", data).status_code == 302
    camera.refresh_from_db()
    stored = (camera.stream_url, camera.username, camera.password)
    assert stored == ("rtsp://127.0.0.1:8554/lobby", "admin", "Other-Pw-1")


def test_a_refused_form_never_renders_the_credentials_of_its_stream_url(site, admin_client):
    url = f"rtsp://{USERNAME}:{PASSWORD}@127.0.0.1:8554/lobby"
    response = admin_client.post("/cameras/new/", _new_camera_form(url, primary_server=site["a"].pk, fps=0))
    assert response.status_code == 400
    page = response.content.decode()
    _assert_clean(page, "the refused form")
    assert 'value="rtsp://127.0.0.1:8554/lobby"' in page
    assert "taken out of the stream URL" in page and not Camera.objects.filter(name="pasted").exists()


def test_the_api_moves_credentials_out_of_the_stream_url(site, admin_user):
    api = APIClient()
    api.force_authenticate(admin_user)
    body = {"name": "pasted", "stream_url": f"http://{USERNAME}:{PASSWORD}@127.0.0.1:8080/video.mjpg",
            "codec": "mjpeg", "primary_server": site["a"].pk}  # fmt: skip
    created = api.post("/api/cameras/", body, format="json")
    assert created.status_code == 201, created.content
    _assert_clean(created.content.decode(), "the create response")
    assert created.json()["stream_url"] == "http://127.0.0.1:8080/video.mjpg" and created.json()["has_credentials"]
    camera = Camera.objects.get(name="pasted")
    assert (camera.username, camera.password) == (USERNAME, PASSWORD)
    # Typed fields that disagree with the URL's are refused, and nothing changes.
    clash = api.patch(f"/api/cameras/{camera.pk}/", {"stream_url": "http://someone:Else-Pw-2@127.0.0.1:8080/v",
                                                     "username": "another"}, format="json")  # fmt: skip
    assert clash.status_code == 400 and "username" in clash.json()
    camera.refresh_from_db()
    assert camera.stream_url == "http://127.0.0.1:8080/video.mjpg" and camera.username == USERNAME


CREDENTIAL_URLS = [
    f"http://127.0.0.1:8080/video.cgi?user=admin&pwd={PASSWORD}",
    f"rtsp://127.0.0.1:554/stream;user=admin;password={PASSWORD}",
    f"rtsp://127.0.0.1:554/live?channel=1&Password={PASSWORD}",
    f"http://127.0.0.1/cgi-bin/mjpg?auth={PASSWORD}",
]


@pytest.mark.parametrize("url", CREDENTIAL_URLS)
def test_credentials_in_a_stream_urls_parameters_are_refused_and_never_shown(site, admin_client, admin_user, url):
    page = admin_client.post("/cameras/new/", _new_camera_form(url, primary_server=site["a"].pk))
    assert page.status_code == 400
    _assert_clean(page.content.decode(), "the refused form")
    assert "user name and password fields" in page.content.decode()
    api = APIClient()
    api.force_authenticate(admin_user)
    refused = api.post("/api/cameras/", {"name": "pasted", "stream_url": url, "codec": "h264",
                                         "primary_server": site["a"].pk}, format="json")  # fmt: skip
    assert refused.status_code == 400 and "stream_url" in refused.json()
    _assert_clean(refused.content.decode(), "the API refusal")
    assert not Camera.objects.filter(name="pasted").exists()


def test_ordinary_stream_url_parameters_are_kept(site, admin_client):
    url = "rtsp://127.0.0.1:554/cam/realmonitor?channel=1&subtype=0"
    assert admin_client.post("/cameras/new/", _new_camera_form(url, primary_server=site["a"].pk)).status_code == 302
    assert Camera.objects.get(name="pasted").stream_url == url


def test_stored_credentials_go_only_to_the_camera_they_were_given_for(site, admin_client, admin_user):
    """A stream URL moved to another host, port or scheme without the credentials typed again is refused on
    the Connection tab and in the API, and nothing changes; a new path on the same camera keeps them."""
    camera = Camera.objects.create(name="gate", stream_url="rtsp://10.0.0.7/live", primary_server=site["a"],
                                   username=USERNAME, password=PASSWORD)  # fmt: skip
    tab = {"codec": "h264", "width": 1280, "height": 720, "fps": 15, "quality": "high",
           "primary_server": site["a"].pk, "backup_server": ""}  # fmt: skip
    for moved in ("rtsp://10.0.0.8/live", "rtsp://10.0.0.7:8554/live", "http://10.0.0.7/live"):
        refused = admin_client.post(f"/cameras/{camera.pk}/", {**tab, "stream_url": moved})
        assert refused.status_code == 400, moved
        assert "Type the password again: the stream&#x27;s address changed" in refused.content.decode()
    # The sub stream and the ONVIF address get the same credentials: another host than the camera's is refused.
    for field, elsewhere, what in (("sub_stream_url", "rtsp://10.0.0.66/sub", "the sub stream&#x27;s address"),
                                   ("onvif_url", "http://10.0.0.66/onvif/device_service", "the ONVIF address")):
        refused = admin_client.post(f"/cameras/{camera.pk}/", {**tab, "stream_url": camera.stream_url,
                                                               field: elsewhere})  # fmt: skip
        assert refused.status_code == 400, field
        assert f"Type the password again: {what} changed" in refused.content.decode()
    api = APIClient()
    api.force_authenticate(admin_user)
    for body in ({"stream_url": "rtsp://10.0.0.8/live"}, {"sub_stream_url": "rtsp://10.0.0.66/sub"},
                 {"onvif_url": "http://10.0.0.66/onvif/device_service"}):  # fmt: skip
        patched = api.patch(f"/api/cameras/{camera.pk}/", body, format="json")
        assert patched.status_code == 400 and set(patched.json()) == {"username", "password"}, body
    camera.refresh_from_db()
    assert (camera.stream_url, camera.username, camera.password) == ("rtsp://10.0.0.7/live", USERNAME, PASSWORD)
    assert camera.sub_stream_url == camera.onvif_url == ""
    # On the camera's own host they are the camera's: its sub stream and ONVIF service.
    same_host = {**tab, "stream_url": camera.stream_url, "sub_stream_url": "rtsp://10.0.0.7/sub",
                 "onvif_url": "http://10.0.0.7/onvif/device_service"}  # fmt: skip
    assert admin_client.post(f"/cameras/{camera.pk}/", same_host).status_code == 302

    # The same camera on another path keeps them; another camera with them typed again takes them.
    assert admin_client.post(f"/cameras/{camera.pk}/", {**tab, "stream_url": "rtsp://10.0.0.7/sub"}).status_code == 302
    retyped = {**tab, "stream_url": "rtsp://10.0.0.8/live", "username": USERNAME, "password": PASSWORD}
    assert admin_client.post(f"/cameras/{camera.pk}/", retyped).status_code == 302
    cleared = api.patch(f"/api/cameras/{camera.pk}/", {"stream_url": "rtsp://10.0.0.9/live", "username": "",
                                                       "password": ""}, format="json")  # fmt: skip
    assert cleared.status_code == 200, cleared.content
    camera.refresh_from_db()
    assert (camera.stream_url, camera.username, camera.password) == ("rtsp://10.0.0.9/live", "", "")
