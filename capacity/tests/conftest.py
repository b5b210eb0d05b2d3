import pytest

MJPEG = {"codec": "mjpeg", "width": 640, "height": 360, "fps": 10}


@pytest.fixture
def loaded(site, make_camera):
    """srv-a (max 10 Mbit/s) records four 2 Mbit/s cameras backed up by srv-b; srv-b records one of
    4 Mbit/s with motion detection backed up by srv-a; srv-c one camera without backup."""
    site["a"].max_inbound_mbps = 10
    site["a"].save()
    for n in range(4):
        make_camera(site["a"], site["b"], f"a-cam-{n}", expected_bitrate_kbps=2000, **MJPEG)
    make_camera(site["b"], site["a"], "b-cam", expected_bitrate_kbps=4000, analytics=["motion_detection"], **MJPEG)
    make_camera(site["c"], None, "c-cam", **MJPEG)
    return site
