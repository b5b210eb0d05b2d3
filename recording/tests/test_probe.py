"""Test connection on the agent: one open of a real (simulated) camera, the figures it really sends and its
first picture, or why nothing came, in words; the agent's endpoint, signed and sealed, bounded."""

import time

import cv2
import numpy as np
import pytest
import requests

from recording import probe, remote, signing
from recording.ingest import CameraFeed
from recording.models import Segment
from recording.probe import ProbeSettings, probe_stream
from recording.serving import RecordingServer
from recording.tests.auth_camera import PasswordCamera
from utilities.ports import free_ports

SECRET = "s3cret-pass"


def feed(url: str, codec: str = "mjpeg", username: str = "", password: str = "") -> CameraFeed:
    return CameraFeed(7, "cam-7", url, username, password, codec, ())


def picture_size(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the first picture is a JPEG that decodes"
    return image.shape[1], image.shape[0]


@pytest.fixture
def password_camera():
    camera = PasswordCamera("admin", SECRET)
    yield camera
    camera.close()


# -- what a camera really sends ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_mjpeg_camera_s_codec_resolution_and_measured_frame_rate(simulator):
    sim = simulator(1, width=320, height=180, fps=5.0)
    started = time.monotonic()
    result = probe_stream(feed(sim.url(1)), timeout=4.0, measure_seconds=2.0)
    assert result.ok, result
    assert (result.codec, result.width, result.height) == ("mjpeg", 320, 180)
    assert 4.0 <= result.fps <= 6.0, "five frames a second, as they came"
    assert result.frames >= 8 and 1.5 <= result.measured_seconds <= 2.1
    assert result.bitrate_kbps > 0 and result.first_picture_seconds < 4.0
    assert picture_size(result.jpeg) == (320, 180)
    assert time.monotonic() - started < 4.0
    assert not Segment.objects.exists(), "a test records nothing"


@pytest.mark.django_db
def test_an_h264_camera_is_measured_from_its_first_keyframe_and_its_picture_decoded(simulator):
    sim = simulator(1, width=640, height=360, fps=10.0, codecs=("h264",), gop_seconds=1.0)
    result = probe_stream(feed(sim.url(1), "h264"), timeout=5.0, measure_seconds=2.0)
    assert result.ok, result
    assert (result.codec, result.width, result.height) == ("h264", 640, 360)
    assert 8.0 <= result.fps <= 12.0
    assert picture_size(result.jpeg) == (640, 360)
    assert result.first_picture_seconds <= 1.5, "a keyframe comes within the camera's GOP (1 s)"


@pytest.mark.django_db
def test_the_frame_rate_is_what_comes_not_what_the_settings_say(simulator):
    sim = simulator(1, width=320, height=180, fps=2.0)
    result = probe_stream(feed(sim.url(1), "mjpeg"), timeout=4.0, measure_seconds=2.5)
    assert result.ok and 1.5 <= result.fps <= 2.5, result


def test_a_camera_with_a_password_opens_with_it_and_refuses_a_wrong_one_in_words(password_camera):
    right = probe_stream(feed(password_camera.url, username="admin", password=SECRET), timeout=4.0)
    assert right.ok and (right.width, right.height) == (352, 288), right
    wrong = probe_stream(feed(password_camera.url, username="admin", password="guess"), timeout=4.0)
    assert not wrong.ok
    assert wrong.detail == "the camera refuses the user name or password (HTTP 401)"
    none = probe_stream(feed(password_camera.url), timeout=4.0)
    assert none.detail == "the camera asks for a user name and password (HTTP 401)"
    assert "guess" not in wrong.detail and "admin" not in wrong.detail and "://" not in wrong.detail


def test_a_web_page_is_not_a_video_stream(password_camera):
    result = probe_stream(feed(password_camera.page_url), timeout=4.0)
    assert not result.ok
    assert result.detail == "the address answers, but not with a video stream (it sends text/html)"


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_nothing_listening_is_said_at_once(scheme):
    url = f"{scheme}://127.0.0.1:{free_ports(1)[0]}/stream"
    started = time.monotonic()
    result = probe_stream(feed(url, "h264" if scheme == "rtsp" else "mjpeg"), timeout=4.0)
    assert not result.ok and "refuse" in result.detail, result
    assert time.monotonic() - started < 2.0


@pytest.mark.django_db
def test_a_wrong_path_is_no_stream_there(simulator):
    sim = simulator(1)
    result = probe_stream(feed(sim.url(1).replace("video.mjpg", "video2.mjpg")), timeout=4.0)
    assert result.detail == "the camera has no stream at that path (HTTP 404)"


@pytest.mark.django_db
@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_a_camera_that_accepts_and_sends_nothing_times_out_within_the_bound(simulator, codec):
    sim = simulator(1, codecs=(codec,)) if codec != "mjpeg" else simulator(1)
    sim.set_state(1, "stalled")
    started = time.monotonic()
    result = probe_stream(feed(sim.url(1), codec), timeout=2.0)
    assert not result.ok and "2 s" in result.detail, result
    assert time.monotonic() - started < 3.5


# -- the agent's endpoint ------------------------------------------------------------------------------


@pytest.fixture
def agent_server(site):
    """srv-b's agent's HTTP server (the one of its recordings), answering Test connection."""
    server = site["b"]
    served = RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
    served.start()
    yield served
    served.stop()


@pytest.mark.django_db
def test_the_agent_answers_what_it_opened_for_the_web_application(agent_server, simulator):
    sim = simulator(1, width=320, height=180, fps=5.0)
    result = remote.probe_camera(agent_server.server, 7, ProbeSettings(sim.url(1), codec="mjpeg", timeout=3.0))
    assert result.ok and (result.codec, result.width, result.height) == ("mjpeg", 320, 180), result
    assert picture_size(result.jpeg) == (320, 180)


@pytest.mark.django_db
def test_the_agent_answers_the_camera_s_refusal_in_words(agent_server, password_camera):
    settings = ProbeSettings(password_camera.url, "admin", "guess", "mjpeg", timeout=3.0)
    result = remote.probe_camera(agent_server.server, 7, settings)
    assert not result.ok and "HTTP 401" in result.detail


@pytest.mark.django_db
def test_the_agent_opens_nothing_without_a_valid_token_and_seal(agent_server, site, simulator):
    sim = simulator(1)
    server = agent_server.server
    base = f"{remote.base_url(server)}/probe/7/"
    body = probe.sealed_settings(ProbeSettings(sim.url(1), codec="mjpeg"), server.name, 7)
    token = signing.token(server.name, 7)
    assert requests.post(base, data=body, timeout=5).status_code == 403, "no token"
    assert requests.post(f"{base}?token={signing.token(server.name, 8)}", data=body, timeout=5).status_code == 403
    other = probe.sealed_settings(ProbeSettings(sim.url(1), codec="mjpeg"), site["a"].name, 7)
    assert requests.post(f"{base}?token={token}", data=other, timeout=5).status_code == 403, "sealed for srv-a"
    stale = probe.sealed_settings(ProbeSettings(sim.url(1)), server.name, 7, clock=lambda: time.time() - 120)
    assert requests.post(f"{base}?token={token}", data=stale, timeout=5).status_code == 403, "expired"
    forged = b'{"stream_url": "http://127.0.0.1/"}'
    assert requests.post(f"{base}?token={token}", data=forged, timeout=5).status_code == 403, "not sealed"
    assert sim.simulator.cameras[1].frames_sent == 0, "nothing was opened"


@pytest.mark.django_db
def test_tests_at_once_are_bounded_and_said_so(agent_server, simulator):
    sim = simulator(1)
    for _ in range(2):
        assert agent_server.probe_slots.acquire(blocking=False)
    try:
        with pytest.raises(remote.Unreachable, match="testing other connections now"):
            remote.probe_camera(agent_server.server, 7, ProbeSettings(sim.url(1), codec="mjpeg"))
    finally:
        for _ in range(2):
            agent_server.probe_slots.release()


@pytest.mark.django_db
def test_a_server_whose_agent_is_not_running_is_named(site):
    with pytest.raises(remote.Unreachable, match=r"the video server srv-c does not answer at 127\.0\.0\.1:\d+"):
        remote.probe_camera(site["c"], 7, ProbeSettings("http://127.0.0.1:9/video.mjpg", codec="mjpeg"))


def test_the_settings_never_print_their_password():
    assert SECRET not in repr(ProbeSettings("rtsp://127.0.0.1/x", "admin", SECRET))


# -- RTSP cameras the simulator does not offer (GStreamer, in a process of their own) -------------------


@pytest.fixture
def gst_camera():
    from recording.tests.gst_camera import GstCamera

    started = []

    def start(kind):
        started.append(GstCamera(kind))
        return started[-1]

    yield start
    for camera in started:
        camera.close()


@pytest.mark.process
def test_an_rtsp_camera_with_a_password_opens_with_it_and_a_wrong_one_is_said(gst_camera):
    from recording.tests.gst_camera import PASSWORD, USERNAME

    camera = gst_camera("h264-password")
    right = probe_stream(feed(camera.url, "h264", USERNAME, PASSWORD), timeout=5.0)
    assert right.ok and (right.codec, right.width, right.height) == ("h264", 320, 240), right
    assert picture_size(right.jpeg) == (320, 240)
    wrong = probe_stream(feed(camera.url, "h264", USERNAME, "guess"), timeout=5.0)
    assert wrong.detail == "the camera refuses the user name or password (RTSP 401 or 403)"
    assert probe_stream(feed(camera.url, "h264"), timeout=5.0).detail == (
        "the camera asks for a user name and password (RTSP 401 or 403)")


@pytest.mark.process
def test_an_rtsp_camera_in_a_codec_not_recorded_is_said(gst_camera):
    camera = gst_camera("vp8")
    result = probe_stream(feed(camera.url, "h264"), timeout=5.0)
    assert not result.ok
    assert result.detail == "the camera sends video in a codec not recorded here (over RTSP: H.264 and H.265)"


def test_a_connection_s_cause_is_found_in_its_chain_without_its_message():
    import errno

    from recording.probe import _connection_words

    def wrapped(cause: Exception) -> Exception:
        try:
            try:
                raise cause
            except OSError as exc:
                raise requests.exceptions.ConnectionError("http://admin:pw@10.9.9.9/ failed") from exc
        except requests.exceptions.ConnectionError as exc:
            return exc

    no_route = wrapped(OSError(errno.EHOSTUNREACH, "No route to host"))
    assert _connection_words(no_route) == "no route to the camera's address from this server"
    assert "refused" in _connection_words(wrapped(ConnectionRefusedError()))
    assert "pw" not in _connection_words(wrapped(OSError(errno.EIO, "I/O error")))


@pytest.mark.django_db
def test_an_agent_that_accepts_and_never_answers_does_not_hold_the_page(site):
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog) and never answers
    server = site["c"]
    server.api_port = listener.getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(remote.Unreachable, match=r"srv-c did not answer within 6\.5 s"):
            remote.probe_camera(server, 7, ProbeSettings("http://127.0.0.1:9/video.mjpg", timeout=0.5))
    finally:
        listener.close()
    assert time.monotonic() - started < 8.0


@pytest.mark.django_db
def test_a_stream_that_is_not_jpeg_pictures_is_said(simulator):
    sim = simulator(1)
    sim.set_state(1, "garbage")  # multipart, as an MJPEG camera's, of random bytes
    result = probe_stream(feed(sim.url(1)), timeout=3.0)
    assert result.detail == ("the camera answers (multipart/x-mixed-replace), but what it sends cannot be read as "
                             "MJPEG pictures")


@pytest.mark.django_db
def test_a_request_whose_body_never_comes_is_let_go(agent_server, simulator):
    import socket

    server = agent_server.server
    sender = socket.create_connection((server.address, server.api_port), timeout=10)
    sender.sendall(f"POST /probe/7/?token={signing.token(server.name, 7)} HTTP/1.1\r\nHost: x\r\n"
                   "Content-Length: 1000\r\n\r\n".encode())  # fmt: skip
    started = time.monotonic()
    try:
        assert sender.recv(100) == b"", "the agent closes the connection"
    finally:
        sender.close()
    assert time.monotonic() - started < 7.0
    sim = simulator(1)
    assert remote.probe_camera(server, 7, ProbeSettings(sim.url(1), codec="mjpeg", timeout=3.0)).ok
