"""The Capacity page's headline: the server and resource tightest in the worst single failure, on planned sites."""

import pytest

from capacity.headline import amount, tightest
from capacity.inputs import load_site
from capacity.planner import plan

TWO_MBIT = {"codec": "mjpeg", "width": 640, "height": 360, "fps": 10, "expected_bitrate_kbps": 2000}


def headline(system=None):
    return tightest(plan(load_site(system.pk if system else None)))


def figures(server, **values):
    for name, value in values.items():
        setattr(server, name, value)
    server.save()


@pytest.fixture
def two_each_way(site, make_camera):
    """srv-a records two 2 Mbit/s cameras backed up by srv-b; srv-b two backed up by srv-a; srv-c one, no backup."""
    for n in range(2):
        make_camera(site["a"], site["b"], f"a-{n}", **TWO_MBIT)
        make_camera(site["b"], site["a"], f"b-{n}", **TWO_MBIT)
    make_camera(site["c"], None, "c-0", **TWO_MBIT)
    return site


def test_tight_cameras_name_the_server_the_resource_and_the_failure(two_each_way):
    figures(two_each_way["a"], max_cameras=5, max_inbound_mbps=1000)
    figures(two_each_way["b"], max_cameras=16, max_inbound_mbps=1000)
    top = headline(two_each_way["system"])
    assert (top.server, top.dimension, top.failed, top.fits) == ("srv-a", "cameras", ("srv-b",), True)
    assert top.text == "Fits: the tightest is srv-a, cameras: 4 of 5 (80 %) after srv-b fails."


def test_tight_bandwidth_is_named_in_the_pages_words(two_each_way):
    figures(two_each_way["a"], max_cameras=64, max_inbound_mbps=1000)
    figures(two_each_way["b"], max_cameras=64, max_inbound_mbps=10)  # 4 own + 4 from srv-a = 8 of 10
    top = headline(two_each_way["system"])
    assert (top.server, top.dimension) == ("srv-b", "mbps")
    assert top.text == "Fits: the tightest is srv-b, inbound Mbit/s: 8 of 10 (80 %) after srv-a fails."


def test_tight_storage_counts_the_retention_of_the_server_that_records(two_each_way):
    # 2 Mbit/s is 0.9 GB an hour; 24 hours of four cameras (two own, two of srv-b's) is 86.4 GB.
    figures(two_each_way["a"], storage_gb=100, retention_hours=24, max_inbound_mbps=1000, max_cameras=64)
    top = headline(two_each_way["system"])
    assert (top.server, top.dimension) == ("srv-a", "storage_gb")
    assert top.text == "Fits: the tightest is srv-a, storage GB: 86.4 of 100 (86 %) after srv-b fails."


def test_a_server_no_failure_reaches_is_judged_on_its_own_load(two_each_way):
    figures(two_each_way["c"], max_cameras=2)
    top = headline(two_each_way["system"])
    assert (top.server, top.failed, top.moves_here) == ("srv-c", (), False)
    assert top.text == ("Fits: the tightest is srv-c, cameras: 1 of 2 (50 %) with nothing failed; "
                        "no failure moves cameras to it.")  # fmt: skip


def test_a_failure_that_does_not_fit_is_said_first(two_each_way):
    figures(two_each_way["a"], max_inbound_mbps=7)  # 4 own + 4 = 8 of 7 if srv-b fails
    figures(two_each_way["b"], max_cameras=5)  # 4 of 5: a higher share of nothing short
    figures(two_each_way["c"], max_cameras=1)  # 1 of 1: full, still fits
    top = headline(two_each_way["system"])
    assert not top.fits and top.short_after_failure == ("srv-a",)
    assert top.text == "Does not fit: srv-a, inbound Mbit/s: 8 of 7 (114 %) after srv-b fails."


def test_a_server_over_with_nothing_failed_comes_before_any_failure(two_each_way):
    figures(two_each_way["a"], max_inbound_mbps=5)  # 8 of 5 after srv-b fails: a higher share...
    figures(two_each_way["b"], max_inbound_mbps=3)  # ...but srv-b is short today: 4 of 3
    top = headline(two_each_way["system"])
    assert top.short_now == ("srv-b",) and top.short_after_failure == ("srv-a",)
    assert (top.server, top.failed) == ("srv-b", ())
    assert top.text == "Over capacity already: srv-b, inbound Mbit/s: 4 of 3 (133 %) with nothing failed."


def test_other_servers_short_are_named_too(two_each_way):
    figures(two_each_way["a"], max_inbound_mbps=3)
    figures(two_each_way["b"], max_inbound_mbps=2)
    assert headline(two_each_way["system"]).text == (
        "Over capacity already: srv-b, inbound Mbit/s: 4 of 2 (200 %) with nothing failed. "
        "Also over with nothing failed: srv-a."
    )


def test_without_any_capacity_figure_there_is_no_headline(two_each_way):
    assert headline(two_each_way["system"]) is None


@pytest.mark.parametrize(("value", "words"), [(16, "16"), (1000, "1,000"), (812.4, "812"), (48.62, "48.6"),
                                              (8.0, "8"), (0.0277, "0.03"), (2.5, "2.5")])  # fmt: skip
def test_figures_read_as_an_operator_writes_them(value, words):
    assert amount(value) == words
