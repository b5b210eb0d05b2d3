"""Cameras → Connection → Test connection: the chosen server's agent opens the stream as the form has it (applied
or not) and the page shows what came; nothing is stored; only the user's systems."""

import base64
import re

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from accounts.models import AuditEntry, SystemAccess
from accounts.roles import ADMINISTRATORS
from cameras.models import Camera
from recording.serving import RecordingServer
from recording.tests.test_probe import SECRET, password_camera, picture_size  # noqa: F401  (a fixture)


@pytest.fixture
def agents_serving(site):
    """The HTTP servers of srv-a's and srv-b's agents (where Test connection is answered)."""
    served = [RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
              for server in (site["a"], site["b"])]  # fmt: skip
    for one in served:
        one.start()
    yield served
    for one in served:
        one.stop()


def form_data(camera, **changes):
    """The Connection tab's form as the browser posts it, with the camera's stored values."""
    data = {"stream_url": camera.stream_url, "sub_stream_url": camera.sub_stream_url, "onvif_url": camera.onvif_url,
            "username": "", "password": "", "codec": camera.codec, "rtsp_transport": camera.rtsp_transport,
            "width": camera.width, "height": camera.height, "fps": camera.fps, "quality": camera.quality,
            "expected_bitrate_kbps": camera.expected_bitrate_kbps, "primary_server": camera.primary_server_id,
            "backup_server": camera.backup_server_id or ""}  # fmt: skip
    return {name: "" if value is None else value for name, value in {**data, **changes}.items()}


def test_connection(client, camera, htmx=True, **changes):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("cameras:test-connection", args=[camera.pk]), form_data(camera, **changes), **headers)


test_connection.__test__ = False  # a helper, not a test


def shown_picture(page: str) -> tuple[int, int]:
    data = re.search(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert data, "the first picture is on the page"
    return picture_size(base64.b64decode(data.group(1)))


@pytest.mark.django_db(transaction=True)
def test_the_primary_tests_the_camera_and_the_page_shows_its_picture_and_figures(admin_client, site, agents_serving,
                                                                                   simulator, make_camera):  # fmt: skip
    sim = simulator(1, width=320, height=180, fps=5.0)
    camera = make_camera(site["a"], site["b"], stream_url=sim.url(1), codec="mjpeg", width=320, height=180, fps=5)
    response = test_connection(admin_client, camera)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Connected from srv-a" in page
    assert '<span class="measured-codec">MJPEG</span>' in page and "320×180" in page
    fps = float(re.search(r'class="measured-fps">([0-9.]+) fps', page).group(1))
    assert 4.0 <= fps <= 6.0
    assert shown_picture(page) == (320, 180)
    assert "differences" not in page, "what it sends is what is set"


@pytest.mark.django_db(transaction=True)
def test_the_backup_can_be_chosen_and_differences_from_the_settings_are_named(admin_client, site, agents_serving,
                                                                               simulator, make_camera):  # fmt: skip
    sim = simulator(1, width=320, height=180, fps=5.0)
    camera = make_camera(site["a"], site["b"], stream_url=sim.url(1), codec="h264")  # set to 1920x1080, 25 fps
    page = test_connection(admin_client, camera, test_server=site["b"].pk).content.decode()
    assert "Connected from srv-b" in page
    assert "The camera sends MJPEG; its codec is set to H.264." in page
    assert "The camera sends 320×180; its resolution is set to 1920×1080." in page
    assert "frames per second; 25 is set" in page


@pytest.mark.django_db(transaction=True)
def test_the_form_s_unsaved_values_are_tested_and_nothing_is_stored(admin_client, site, agents_serving, simulator,
                                                                    password_camera, make_camera):  # noqa: F811  # fmt: skip
    camera = make_camera(site["a"], stream_url="http://127.0.0.1:9/old.mjpg", codec="mjpeg")
    before = Camera.objects.get(pk=camera.pk)
    audited = AuditEntry.objects.count()
    page = test_connection(admin_client, camera, stream_url=password_camera.url, username="admin",
                           password=SECRET).content.decode()  # fmt: skip
    assert "Connected from srv-a" in page and "352×288" in page
    assert "stored nowhere: Apply stores these settings" in page
    after = Camera.objects.get(pk=camera.pk)
    assert (after.stream_url, after.username, after.password) == (before.stream_url, "", "")
    assert AuditEntry.objects.count() == audited


@pytest.mark.django_db(transaction=True)
def test_a_wrong_password_typed_is_told_in_words_and_the_stored_one_works(admin_client, site, agents_serving,
                                                                          password_camera, make_camera):  # noqa: F811  # fmt: skip
    camera = make_camera(site["a"], stream_url=password_camera.url, codec="mjpeg", username="admin", password=SECRET)
    wrong = test_connection(admin_client, camera, password="guess").content.decode()
    assert "No video from srv-a" in wrong and "The camera refuses the user name or password (HTTP 401)" in wrong
    stored = test_connection(admin_client, camera).content.decode()
    assert "Connected from srv-a" in stored, "an empty password field tests the stored one"
    assert SECRET not in stored and "guess" not in wrong


@pytest.mark.django_db(transaction=True)
def test_stored_credentials_go_only_to_the_address_they_were_given_for(admin_client, site, agents_serving,
                                                                       password_camera, make_camera):  # noqa: F811  # fmt: skip
    camera = make_camera(site["a"], stream_url=password_camera.url, codec="mjpeg", username="admin", password=SECRET)
    elsewhere = password_camera.url.replace("127.0.0.1", "localhost")
    response = test_connection(admin_client, camera, stream_url=elsewhere)
    page = response.content.decode()
    assert response.status_code == 400 and "Not tested" in page
    assert "Type the password again: the stream&#x27;s address changed" in page
    assert password_camera.refused == 0, "the camera at the new address was not sent the stored password"
    path_only = test_connection(admin_client, camera, stream_url=password_camera.url + "?resolution=cif")
    assert "Connected from srv-a" in path_only.content.decode(), "the same camera: the stored credentials go"


@pytest.mark.django_db(transaction=True)
def test_an_address_nothing_answers_and_an_agent_not_running_are_said_in_words(admin_client, site, agents_serving,
                                                                             make_camera):  # fmt: skip
    camera = make_camera(site["a"], site["b"], stream_url="rtsp://127.0.0.1:9/stream", codec="h264")
    refused = test_connection(admin_client, camera).content.decode()
    assert "No video from srv-a" in refused and "refuses connections" in refused
    down = test_connection(admin_client, camera, test_server=site["c"].pk).content.decode()
    assert "Not tested from srv-c" in down and "does not answer" in down and "is its agent running?" in down


@pytest.mark.django_db
def test_a_bad_address_is_refused_by_the_form_without_asking_an_agent(admin_client, site, make_camera):
    camera = make_camera(site["a"])
    response = test_connection(admin_client, camera, stream_url="ftp://camera/stream")
    assert response.status_code == 400
    assert "Not tested" in response.content.decode() and "Stream URLs must use rtsp, http or https" in (
        response.content.decode())


@pytest.mark.django_db
def test_another_system_s_camera_or_server_answers_not_found(client, site, make_camera):
    sam = User.objects.create_user("sam", "sam@example.com", "a-long-test-passphrase")
    sam.groups.add(Group.objects.get(name=ADMINISTRATORS))
    SystemAccess.objects.create(user=sam, system=site["system"])
    client.force_login(sam)
    mine, theirs = make_camera(site["a"]), make_camera(site["other"])
    assert test_connection(client, theirs).status_code == 404
    assert test_connection(client, mine, test_server=site["other"].pk).status_code == 404
    assert test_connection(client, mine, test_server="srv-a").status_code == 404


@pytest.mark.django_db
def test_who_may_only_look_cannot_test(client, viewer, site, make_camera):
    camera = make_camera(site["a"])
    client.force_login(viewer)
    assert test_connection(client, camera).status_code == 403
    assert "Test connection" not in client.get(reverse("cameras:connection", args=[camera.pk])).content.decode()


@pytest.mark.django_db
def test_the_connection_tab_offers_the_camera_s_system_s_servers_primary_first(admin_client, site, make_camera):
    camera = make_camera(site["b"], site["c"])
    page = admin_client.get(reverse("cameras:connection", args=[camera.pk])).content.decode()
    select = re.search(r'<select name="test_server".*?</select>', page, re.S).group(0)
    names = re.findall(r">(srv-[a-z]+)", select)
    assert names == ["srv-b", "srv-c", "srv-a"], "the primary first, then the backup; never another system's"
    assert "srv-b (primary)" in select and "srv-c (backup)" in select


@pytest.mark.django_db(transaction=True)
def test_without_script_the_tab_comes_back_with_the_result(admin_client, site, agents_serving, simulator,
                                                           make_camera):  # fmt: skip
    sim = simulator(1, width=320, height=180, fps=5.0)
    camera = make_camera(site["a"], stream_url=sim.url(1), codec="mjpeg")
    page = test_connection(admin_client, camera, htmx=False).content.decode()
    assert "<h1>" in page and "Connected from srv-a" in page and shown_picture(page) == (320, 180)
