"""Cameras → Connection → Test connection in a real browser at 1366x768, against the real web server and a
real agent's HTTP server: the picture and the measured figures shown in place, then an address nothing answers
said in words; nothing stored."""

import pytest
from django.contrib.auth.models import User

from cameras.models import Camera
from recording.serving import RecordingServer
from testbed.accessibility import axe_violations
from testbed.browser import screenshot, sign_in
from tests.test_csp_browser import LISTEN
from tests.test_live_browser import PASSWORD, browser_page, web  # noqa: F401  (fixtures)
from utilities.ports import free_ports

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def agent_of_a(site):
    served = RecordingServer(site["a"], site["a"].storage_dir, "127.0.0.1", site["a"].api_port)
    served.start()
    yield served
    served.stop()


def test_an_operator_tests_a_camera_s_connection_and_then_a_bad_address(site, web, browser_page, agent_of_a,  # noqa: F811
                                                                          simulator, make_camera):  # fmt: skip
    sim = simulator(1, width=640, height=360, fps=10.0, codecs=("h264",), gop_seconds=1.0)
    camera = make_camera(site["a"], site["b"], name="Gate", stream_url=sim.url(1), codec="h264", width=640,
                         height=360, fps=10)  # fmt: skip
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(LISTEN)
    sign_in(page, web, "admin", PASSWORD, f"/cameras/{camera.pk}/")
    assert page.input_value("#id_test_server") == str(site["a"].pk), "the primary by default"
    page.evaluate("window.stillTheSamePage = true")
    page.click("button:has-text('Test connection')")
    page.wait_for_selector(".connection-result:has-text('Connected from srv-a')", timeout=20_000)
    result = page.text_content(".connection-result")
    assert "H.264" in result and "640×360" in result, result
    fps = float(page.text_content(".measured-fps").split()[0])
    assert 8.0 <= fps <= 12.0
    size = page.evaluate("(() => { const i = document.querySelector('img.first-picture');"
                         " return [i.complete, i.naturalWidth, i.naturalHeight]; })()")  # fmt: skip
    assert size == [True, 640, 360], "the first picture, decoded by the browser"
    assert page.evaluate("window.stillTheSamePage") is True, "swapped in place by htmx, not reloaded"
    page.locator("#connection-test").scroll_into_view_if_needed()
    screenshot(page, "test-connection")
    assert axe_violations(page) == [], "the result swapped in passes axe-core"

    page.fill("#id_stream_url", f"rtsp://127.0.0.1:{free_ports(1)[0]}/stream")
    page.click("button:has-text('Test connection')")
    page.wait_for_selector(".connection-result:has-text('No video from srv-a')", timeout=20_000)
    assert "refuses connections" in page.text_content(".connection-result")
    assert page.query_selector("img.first-picture") is None
    assert axe_violations(page) == []
    assert Camera.objects.get(pk=camera.pk).stream_url == sim.url(1), "a test stores nothing"
    assert page.evaluate("window.cspViolations") == [] and errors == []
