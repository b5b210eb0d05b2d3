"""The planner's figures on small systems computed by hand."""

from datetime import timedelta

import pytest
from django.utils import timezone

from capacity.estimates import estimate, ingest_cores
from capacity.inputs import load_site
from capacity.planner import plan
from protocol import live
from recording.models import StreamHealth
from servers.models import License

HD = {"width": 1920, "height": 1080, "fps": 25}


def test_h264_estimate_matches_the_kush_gauge():
    est = estimate("h264", 1920, 1080, 25, "medium")
    assert est.stream_kbps == pytest.approx(3628.8)  # 1920 x 1080 x 25 x 0.07 bit
    assert est.stream_source == "estimated"
    assert estimate("h264", 1920, 1080, 25, "high").stream_kbps == pytest.approx(7257.6)
    assert estimate("h265", 1920, 1080, 25, "medium").stream_kbps == pytest.approx(3628.8 * 0.6)


def test_mjpeg_storage_per_day_follows_the_bitrate():
    est = estimate("mjpeg", 640, 360, 10, configured_kbps=1000)
    assert est.stream_source == "configured"
    assert est.recorded_kbps == 1000
    assert est.storage_gb_per_day == pytest.approx(10.8)  # 1 Mbit/s x 86 400 s / 8 = 10.8 GB


def test_h264_over_rtsp_is_recorded_as_its_own_stream():
    est = estimate("h264", 1920, 1080, 25, configured_kbps=4000)
    assert est.stream_kbps == 4000
    assert est.recorded_kbps == pytest.approx(4000 * 1.031)
    # A measured stream is the stream itself (the agent measures the packets it copies).
    measured = estimate("h265", 1920, 1080, 25, configured_kbps=4000, measured_kbps=2500.0, measured_fps=25.0)
    assert (measured.stream_kbps, measured.stream_source) == (2500.0, "measured")
    assert measured.recorded_kbps == pytest.approx(2500 * 1.031)


def test_measured_bitrate_wins_and_is_shown_beside_the_others():
    est = estimate("mjpeg", 320, 180, 2, configured_kbps=200, measured_kbps=150.0, measured_fps=2.0)
    assert (est.stream_kbps, est.stream_source) == (150.0, "measured")
    assert est.estimated_kbps == pytest.approx(320 * 180 * 2 * 1.0 / 1000)
    assert est.configured_kbps == 200


def test_analytics_cost_cpu_only_where_they_run():
    est = estimate("mjpeg", 1920, 1080, 25, analytics=("motion_detection",))
    # 25 frames x (0.30 ms + 0.68 ms per megapixel x 2.07 megapixels) = 0.043 cores
    assert est.analytics_cores["motion_detection"] == pytest.approx(0.0427, abs=0.0005)
    assert est.cores_on_primary == pytest.approx(est.ingest_cores + est.analytics_cores["motion_detection"])


@pytest.fixture
def hand_system(make_system, make_server, make_camera):
    """A is primary for a1, a2 (backed up by B, normal mode) and a3 (backed up by C, constant);
    B is primary for b1 (backed up by A); C is primary for c1 (no backup)."""
    system = make_system("Hand")
    a = make_server("A", system, max_inbound_mbps=10, cpu_budget_cores=4, storage_gb=5000, max_cameras=5)
    b = make_server("B", system, max_inbound_mbps=20, max_cameras=3)
    c = make_server("C", system, constant=True)
    cams = {
        "a1": make_camera(
            a, b, "a1", codec="h264", analytics=["motion_detection"], stream_url="rtsp://127.0.0.1/a1", **HD
        ),  # fmt: skip
        "a2": make_camera(a, b, "a2", codec="mjpeg", width=640, height=360, fps=10, expected_bitrate_kbps=2000),
        "a3": make_camera(
            a,
            c,
            "a3",
            codec="mjpeg",
            width=640,
            height=360,
            fps=10,
            expected_bitrate_kbps=1000,
            analytics=["tamper_detection"],
        ),  # fmt: skip
        "b1": make_camera(
            b,
            a,
            "b1",
            codec="mjpeg",
            width=640,
            height=360,
            fps=10,
            expected_bitrate_kbps=4000,
            analytics=["motion_detection"],
        ),  # fmt: skip
        "c1": make_camera(c, None, "c1", codec="mjpeg", width=640, height=360, fps=10, expected_bitrate_kbps=500),
    }
    return {"A": a, "B": b, "C": c, **cams}


def _by_name(capacity_plan):
    return {p.server.name: p for p in capacity_plan.servers}


def test_figures_of_a_hand_computed_system(hand_system):
    plans = _by_name(plan(load_site(), pairs=True))
    a, b, c = plans["A"], plans["B"], plans["C"]
    # A: own a1 (3.6288) + a2 (2) + a3 (1) Mbit/s; if B fails, b1 (4) comes.
    assert a.normal.figures.mbps == pytest.approx(6.6288)
    assert a.normal.figures.cameras == 3
    assert a.worst.failed == ("B",)
    assert a.worst.figures.mbps == pytest.approx(10.6288)
    assert a.worst.moved == 1
    # B: primary for b1 and backup for a1, a2: if A fails, 3.6288 + 2 arrive.
    assert b.normal.figures.mbps == pytest.approx(4)
    assert b.worst.failed == ("A",) and b.worst.moved == 2
    assert b.worst.figures.mbps == pytest.approx(9.6288)
    # C backs up a3 in constant mode: counted in its normal load, nothing more moves there.
    assert c.normal.figures.mbps == pytest.approx(1.5)
    assert c.normal.figures.cameras == 2
    assert c.worst is None
    assert c.backed_up_constant == 1
    # Storage over the 72 h retention: C records c1 (0.5) and a3 (1) Mbit/s = 0.675 GB an hour.
    assert c.normal.figures.storage_gb == pytest.approx(1.5 * 1000 / 8 * 3600 / 1e9 * 72 * 1e6 / 1e3)
    assert c.normal.figures.storage_gb == pytest.approx(48.6)


def test_analytics_are_counted_on_the_primary_only(hand_system):
    site = load_site()
    plans = _by_name(plan(site))
    est = site.estimates
    a1, a2, a3, b1, c1 = (est[hand_system[n].pk] for n in ("a1", "a2", "a3", "b1", "c1"))
    a, b, c = plans["A"], plans["B"], plans["C"]
    assert a.normal.figures.cores == pytest.approx(a1.cores_on_primary + a2.ingest_cores + a3.cores_on_primary)
    # b1's motion detection stays with B when it moves to A; a1's motion detection does not follow it to B.
    assert a.worst.figures.cores == pytest.approx(a.normal.figures.cores + b1.ingest_cores)
    assert b.worst.figures.cores == pytest.approx(b1.cores_on_primary + a1.ingest_cores + a2.ingest_cores)
    assert c.normal.figures.cores == pytest.approx(c1.ingest_cores + a3.ingest_cores)  # no tamper detection on C
    assert a1.ingest_cores == pytest.approx(ingest_cores("h264", 1920, 1080, 25))
    # Stream copy: 25 x 0.30 ms, and one 1080p keyframe decoded every 30 s (5.2 ms/megapixel x 2.07).
    assert a1.ingest_cores == pytest.approx(0.0079, abs=0.0001)
    # Its motion detection needs every frame decoded, on the primary only: 25 x 3.0 ms/megapixel x 2.07.
    assert a1.analytics_decode_cores == pytest.approx(0.1555, abs=0.0005)
    assert a1.cores_on_primary == pytest.approx(a1.ingest_cores + a1.analytics_decode_cores
                                                + a1.analytics_cores["motion_detection"])  # fmt: skip


def test_an_h264_camera_over_http_is_re_encoded_and_costs_what_that_costs():
    over_http = estimate("h264", 1920, 1080, 25, transport="http")
    assert over_http.ingest_cores == pytest.approx(0.281, abs=0.001)  # 25 x (0.44 + (3.0 + 2.21) x 2.07) ms
    assert over_http.recorded_kbps == pytest.approx(1920 * 1080 * 25 * 1.27 / 1000)
    over_rtsp = estimate("h264", 1920, 1080, 25)
    assert over_rtsp.recorded_kbps == pytest.approx(over_rtsp.stream_kbps * 1.031)  # MPEG-TS around the stream


def test_worst_single_failure_is_named_and_checked_against_capacity(hand_system):
    plans = _by_name(plan(load_site()))
    a = plans["A"]
    assert a.worst.utilisation["mbps"] == pytest.approx(1.06288)
    assert a.worst.over == ["mbps"]
    texts = [w.text for w in a.warnings if w.level == "error"]
    assert any("if B fails, 1 camera(s) move here" in t and "inbound Mbit/s 10.6 of 10.0" in t for t in texts)
    assert not plans["B"].worst.over
    # C has no capacity figures at all: said, not guessed.
    assert any("no capacity figures" in w.text for w in plans["C"].warnings)
    # c1 has no backup: C's operator is told.
    assert any("1 of C's camera(s) have no backup server" in w.text for w in plans["C"].warnings)


def test_worst_pair_adds_the_two_largest_moves(make_system, make_server, make_camera):
    system = make_system("Pairs")
    s = make_server("S", system, max_inbound_mbps=100)
    others = {n: make_server(n, system) for n in ("P", "Q", "R")}
    for name, mbps in (("P", 5000), ("Q", 7000), ("R", 3000)):
        make_camera(others[name], s, f"{name}-cam", codec="mjpeg", expected_bitrate_kbps=mbps)
    plans = _by_name(plan(load_site(), pairs=True))
    assert plans["S"].worst.failed == ("Q",)
    assert set(plans["S"].worst_pair.failed) == {"P", "Q"}
    assert plans["S"].worst_pair.figures.mbps == pytest.approx(12)
    assert plans["S"].worst_pair.moved == 2
    assert _by_name(plan(load_site())).get("S").worst_pair is None  # only when asked


def test_never_moved_and_disabled_cameras_add_no_failover_load(make_system, make_server, make_camera):
    system = make_system("Never")
    p, s = make_server("P1", system), make_server("S1", system)
    make_camera(p, s, "stays", codec="mjpeg", expected_bitrate_kbps=3000, failover_priority="never")
    make_camera(p, s, "off", codec="mjpeg", expected_bitrate_kbps=3000, enabled=False)
    plans = _by_name(plan(load_site()))
    assert plans["S1"].worst is None
    assert plans["P1"].normal.figures.mbps == pytest.approx(3)  # the disabled camera is not ingested
    assert plans["P1"].licenses.camera_channels == 2  # but both hold a channel


def test_measured_bitrate_drives_the_load(hand_system):
    camera = hand_system["a2"]
    StreamHealth.objects.create(camera=camera, server=hand_system["A"], state="streaming", fps=10,
                                bitrate_kbps=3000, reported_at=timezone.now())  # fmt: skip
    site = load_site()
    assert site.estimates[camera.pk].stream_source == "measured"
    assert _by_name(plan(site))["A"].normal.figures.mbps == pytest.approx(7.6288)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("over_channels", "is primary for 3 camera(s) but licensed for 2 IP camera channel(s)"),
        ("backup_only_without_camera_license", "only backs up cameras, but holds no license for an IP camera"),
        ("expired", "expired on"),
        ("no_active", "has no active license"),
        ("analytics", "2 of X's camera(s) run analytics, but it is licensed for 1 analytics channel(s)"),
    ],
)
def test_license_rules(setup, expected, make_system, make_server, make_camera):
    system = make_system("Licenses")
    x = make_server("X", system, channels=4)
    y = make_server("Y", system, channels=4)
    lic = License.objects.get(server=x)
    today = timezone.localdate()
    if setup == "over_channels":
        for n in range(3):
            make_camera(x, name=f"x{n}")
        License.objects.filter(pk=lic.pk).update(ip_camera_channels=2)
    elif setup == "backup_only_without_camera_license":
        make_camera(y, x, "y0")
        License.objects.filter(pk=lic.pk).update(ip_camera_channels=0)
    elif setup == "expired":
        License.objects.filter(pk=lic.pk).update(valid_until=today - timedelta(days=1))
    elif setup == "no_active":
        make_camera(x, name="x0")
        License.objects.filter(pk=lic.pk).update(valid_until=today - timedelta(days=1))
    elif setup == "analytics":
        make_camera(x, name="x0", analytics=["motion_detection"])
        make_camera(x, name="x1", analytics=["tamper_detection"])
        License.objects.filter(pk=lic.pk).update(analytics_channels=1)
    warnings = _by_name(plan(load_site()))["X"].warnings
    assert any(expected in w.text for w in warnings), [w.text for w in warnings]


def test_a_licensed_healthy_server_has_no_license_warning(hand_system):
    warnings = _by_name(plan(load_site()))["B"].warnings
    assert not [w for w in warnings if "Rule 2" in w.text or "License" in w.text]


def test_a_sub_stream_costs_its_primary_both_connections_and_analytics_at_its_resolution(
    make_system, make_server, make_camera
):
    system = make_system("Sub")
    primary, backup = make_server("P", system), make_server("B", system)
    camera = make_camera(primary, backup, "with-sub", codec="h264", stream_url="rtsp://127.0.0.1/main",
                         sub_stream_url="rtsp://127.0.0.1/sub", expected_bitrate_kbps=4000,
                         analytics=["motion_detection"], **HD)  # fmt: skip
    site = load_site()
    est = site.estimates[camera.pk]
    main_only = estimate("h264", 1920, 1080, 25, configured_kbps=4000, analytics=("motion_detection",))
    # The sub stream at 640x360 and the camera's 25 fps, H.264 as the camera: 640 x 360 x 25 x 0.07 bit.
    assert (est.sub_stream_kbps, est.sub_stream_source) == (pytest.approx(403.2), "estimated")
    assert est.kbps_on_primary == pytest.approx(4403.2)
    # Decoding for analytics at 640x360 (0.23 megapixels), not 1080p: 25 x 3.0 ms x 0.23 against 0.1555.
    assert est.analytics_decode_cores == pytest.approx(0.0173, abs=0.0002)
    assert main_only.analytics_decode_cores == pytest.approx(0.1555, abs=0.0005)
    assert est.analytics_cores["motion_detection"] < main_only.analytics_cores["motion_detection"] / 2
    assert est.cores_on_primary < main_only.cores_on_primary
    plans = _by_name(plan(site))
    assert plans["P"].normal.figures.mbps == pytest.approx(4.4032), "both connections on the primary"
    assert plans["P"].normal.figures.cores == pytest.approx(est.cores_on_primary)
    # A backup reads the main stream only, without analytics, and records the same bytes.
    assert plans["B"].worst.figures.mbps == pytest.approx(4.0)
    assert plans["B"].worst.figures.cores == pytest.approx(main_only.ingest_cores)
    assert plans["P"].normal.figures.storage_gb == pytest.approx(plans["B"].worst.figures.storage_gb)


def test_a_sub_stream_the_agent_measured_is_counted_as_measured(make_system, make_server, make_camera, redis_client):
    system = make_system("Measured sub")
    primary = make_server("P", system)
    camera = make_camera(primary, None, "mjpeg-sub", codec="h264", stream_url="rtsp://127.0.0.1/main",
                         sub_stream_url="http://127.0.0.1/sub.mjpg", analytics=["motion_detection"], **HD)  # fmt: skip
    estimated = load_site().estimates[camera.pk]
    assert estimated.sub_stream_source == "estimated"
    assert estimated.sub_stream_kbps == pytest.approx(640 * 360 * 25 * 1.0 / 1000)  # MJPEG over HTTP
    report = {"state": "streaming", "fps": 5.0, "bitrate_kbps": 800.0,
              "sub_stream": {"state": "streaming", "fps": 5.0, "bitrate_kbps": 300.0, "codec": "mjpeg",
                             "width": 320, "height": 180}}  # fmt: skip
    live.publish_stream_reports(redis_client, "P", {camera.pk: report}, ttl=30)
    est = load_site().estimates[camera.pk]
    assert (est.sub_stream_kbps, est.sub_stream_source) == (300.0, "measured")
    # An MJPEG sub stream is decoded for analytics only: 5 frames x 2.48 ms/megapixel x 0.0576 megapixels.
    assert est.analytics_decode_cores == pytest.approx(5 * 0.00248 * 0.0576)
    assert _by_name(plan(load_site()))["P"].normal.figures.mbps == pytest.approx(
        (est.stream_kbps + 300.0) / 1000
    )
