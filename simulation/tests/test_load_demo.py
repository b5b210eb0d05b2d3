from io import StringIO

from django.core.management import call_command

from cameras.models import Camera
from servers.models import Server


def load(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_demo_has_three_servers_and_nine_cameras_in_all_modes_three_left_for_the_proposal(db, tmp_path, settings):
    output = load(tmp_path, settings)
    assert "Loaded 'Demo site': 3 servers, 9 cameras." in output
    assert Server.objects.count() == 3
    modes = sorted(c.redundancy_mode for c in Camera.objects.with_servers())
    assert modes == ["constant"] * 2 + ["fast"] * 2 + ["none"] * 3 + ["normal"] * 2
    password_file = tmp_path / "demo-admin-password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert password_file.read_text().strip() not in output


def test_loading_the_demo_twice_changes_nothing(db, tmp_path, settings):
    load(tmp_path, settings)
    before = list(Camera.objects.values_list("name", "primary_server__name", "backup_server__name"))
    assert "already there; nothing changed" in load(tmp_path, settings)
    assert list(Camera.objects.values_list("name", "primary_server__name", "backup_server__name")) == before


def test_demo_cameras_mix_rtsp_h264_rtsp_h265_and_mjpeg_as_the_simulator_serves_them(db, tmp_path, settings):
    load(tmp_path, settings)
    streams = dict(Camera.objects.values_list("name", "codec"))
    assert sorted(streams.values()) == ["h264"] * 3 + ["h265"] * 3 + ["mjpeg"] * 3
    first = Camera.objects.get(name="cam-01")
    assert (first.codec, first.stream_url) == ("h264", "rtsp://127.0.0.1:8601/stream")
    assert first.onvif_url == "http://127.0.0.1:8600/onvif/1/media_service"  # asked for a keyframe at takeover
    assert Camera.objects.get(name="cam-03").stream_url == "http://127.0.0.1:8603/video.mjpg"
    assert Camera.objects.get(name="cam-03").onvif_url == ""


def test_a_demo_of_mjpeg_cameras_follows_the_simulator_when_loaded_again(db, tmp_path, settings):
    load(tmp_path, settings)
    for camera in Camera.objects.all():  # as an earlier version loaded it
        number = int(camera.name.split("-")[1])
        Camera.objects.filter(pk=camera.pk).update(stream_url=f"http://127.0.0.1:{8600 + number}/video.mjpg",
                                                   codec="mjpeg", onvif_url="")  # fmt: skip
    assert "now follow the simulator" in load(tmp_path, settings)
    assert Camera.objects.get(name="cam-02").stream_url == "rtsp://127.0.0.1:8602/stream"
    assert Camera.objects.get(name="cam-02").codec == "h265"
    assert Camera.objects.get(name="cam-02").onvif_url == "http://127.0.0.1:8600/onvif/2/media_service"
    assert "nothing changed" in load(tmp_path, settings)


def test_a_demo_of_rtsp_cameras_without_onvif_gets_their_addresses_when_loaded_again(db, tmp_path, settings):
    load(tmp_path, settings)
    Camera.objects.update(onvif_url="")  # as the version before ONVIF loaded it
    assert "now follow the simulator" in load(tmp_path, settings)
    assert Camera.objects.get(name="cam-05").onvif_url == "http://127.0.0.1:8600/onvif/5/media_service"
    assert Camera.objects.get(name="cam-06").onvif_url == ""  # MJPEG
