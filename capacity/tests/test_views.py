"""The Capacity page, the calculator, proposals and capacity figures through the browser's requests."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import AuditEntry
from cameras.models import Camera
from servers.models import Server
from testbed.permissions import grant


def test_page_shows_each_server_with_normal_and_worst_case(admin_client, loaded):
    response = admin_client.get(reverse("capacity:page"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-server="srv-a"' in html
    # srv-a: own 8 Mbit/s; if srv-b fails, b-cam's 4 Mbit/s arrive: 12 of 10.
    assert "Backs up more than it can take: if srv-b fails, 1 camera(s) move here" in html
    assert "1 of srv-c&#x27;s camera(s) have no backup server" in html
    assert "How the figures are estimated" in html and "Kush gauge" in html


def test_page_filters_by_system_and_shows_pairs(admin_client, loaded):
    response = admin_client.get(reverse("capacity:page"), {"system": loaded["other"].system_id, "pairs": "1"})
    html = response.content.decode()
    assert 'data-server="srv-other"' in html and 'data-server="srv-a"' not in html
    assert "Worst two failures" in html


def test_chart_swaps_dimension(admin_client, loaded):
    response = admin_client.get(reverse("capacity:page"), {"dimension": "cameras"}, HTTP_HX_REQUEST="true",
                                HTTP_HX_TARGET="capacity-chart")  # fmt: skip
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="capacity-chart" data-dimension="cameras"')
    assert 'name="dimension" value="cameras" form="capacity-filter"' in html  # kept for the filter and Apply
    assert 'aria-label="cameras per server' in html


def test_calculator_estimates_and_refuses_bad_input(admin_client, db):
    url = reverse("capacity:calculator")
    ok = admin_client.get(url, {"codec": "h264", "width": 1920, "height": 1080, "fps": 25, "quality": "medium",
                                "retention_hours": 24, "analytics": ["motion_detection"]})  # fmt: skip
    assert ok.status_code == 200
    assert "3629 kbit/s (estimated" in ok.content.decode()
    bad = admin_client.get(url, {"codec": "vp9", "width": 0, "height": 1080, "fps": 500, "quality": "medium",
                                 "retention_hours": 0})  # fmt: skip
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "Select a valid choice. vp9 is not one of the available choices." in html
    assert "Width must be at least 16." in html
    assert "Frames per second cannot be more than 120." in html
    assert "Retention (hours) must be at least 1." in html


HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "proposal"}


def test_proposal_is_a_diff_and_apply_stores_it(admin_client, loaded):
    response = admin_client.post(reverse("capacity:proposal"), {"scope": "unassigned", "system": ""}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-camera="c-cam"' in html and "<del>" not in html
    camera = Camera.objects.get(name="c-cam")
    assert camera.backup_server is None
    applied = admin_client.post(reverse("capacity:apply"), _apply_form(html), **HTMX)
    assert applied.status_code == 200
    assert "the backup server of 1 camera(s) changed" in applied.content.decode()
    camera.refresh_from_db()
    assert camera.backup_server is not None
    # Through the one write path, so the audit log has it with who did it.
    entry = AuditEntry.objects.get(object_type="cameras.camera", object_id=str(camera.pk), action="changed")
    assert entry.username == "root" and entry.after == {"backup_server_id": camera.backup_server_id}


def test_the_page_opens_with_the_headline_and_the_chart_on_its_resource(admin_client, loaded):
    html = admin_client.get(reverse("capacity:page")).content.decode()
    assert "Does not fit: srv-a, inbound Mbit/s: 12 of 10 (120 %) after srv-b fails." in html
    assert 'data-server="srv-a" data-dimension="mbps" data-fits="no"' in html
    assert '<div id="capacity-chart" data-dimension="mbps"' in html
    loaded["b"].max_cameras = 3  # 1 own + 4 of srv-a's if it fails: 5 of 3
    loaded["b"].save()
    html = admin_client.get(reverse("capacity:page")).content.decode()
    assert "Does not fit: srv-b, cameras: 5 of 3 (167 %) after srv-a fails. Also over after a failure: srv-a." in html
    assert '<div id="capacity-chart" data-dimension="cameras"' in html
    assert '<a href="?dimension=cameras" hx-get="?dimension=cameras"' in html and 'aria-current="true">cameras' in html
    # A resource the operator chose wins over the headline's, and the filter keeps it.
    chosen = admin_client.get(reverse("capacity:page"), {"dimension": "storage_gb"}).content.decode()
    assert '<div id="capacity-chart" data-dimension="storage_gb"' in chosen
    assert 'name="dimension" value="storage_gb" form="capacity-filter"' in chosen
    assert 'form="capacity-filter"' not in html  # not chosen: a system picked next opens on its own headline


def test_without_capacity_figures_the_page_says_so_and_charts_bandwidth(admin_client, site, make_camera):
    make_camera(site["a"], site["b"], "gate")
    html = admin_client.get(reverse("capacity:page")).content.decode()
    assert "No capacity figures set: no server's load is checked against a limit." in html
    assert '<div id="capacity-chart" data-dimension="mbps"' in html


def test_the_page_shows_the_proposal_without_asking(admin_client, loaded):
    html = admin_client.get(reverse("capacity:page")).content.decode()
    assert 'data-testid="proposal"' in html and 'data-camera="c-cam"' in html
    assert '<a href="#proposal-card" data-testid="to-proposal">A proposal below changes 1 backup(s).</a>' in html


def test_apply_answers_with_the_new_state_of_the_page(admin_client, loaded):
    page = admin_client.get(reverse("capacity:page")).content.decode()
    form = _apply_form(page)
    assert form["scope"] == "unassigned" and form["system"] == ""
    applied = admin_client.post(reverse("capacity:apply"), {**form, "dimension": "cameras"}, **HTMX).content.decode()
    # The proposal's part in place: what was applied and the proposal for the new state (nothing left).
    assert applied.lstrip().startswith('<div id="proposal">')
    assert 'data-testid="applied"' in applied and 'data-testid="nothing-to-change"' in applied
    # Headline, chart (on the tab the operator had chosen) and table out of band, as a reload would show them.
    reloaded = admin_client.get(reverse("capacity:page"), {"dimension": "cameras"}).content.decode()
    for part in ("capacity-headline", "capacity-chart", "capacity-servers"):
        assert _part(applied, part).replace(' hx-swap-oob="true"', "") == _part(reloaded, part)
        assert _part(applied, part) != _part(page, part) or part == "capacity-headline"
    assert "1 of srv-c&#x27;s camera(s) have no backup server" in _part(page, "capacity-servers")
    assert "have no backup server" not in _part(applied, "capacity-servers")


def test_apply_without_script_stores_it_and_shows_the_page(admin_client, loaded):
    form = _apply_form(admin_client.get(reverse("capacity:page"), {"system": loaded["system"].pk}).content.decode())
    assert form["system"] == str(loaded["system"].pk)
    response = admin_client.post(reverse("capacity:apply"), form)
    assert response.status_code == 302 and response["Location"] == f"/capacity/?system={loaded['system'].pk}"
    assert Camera.objects.get(name="c-cam").backup_server is not None
    page = admin_client.get(response["Location"]).content.decode()
    assert "Applied: the backup server of 1 camera(s) changed." in page


def test_apply_refuses_a_rule_break_and_stores_nothing(admin_client, loaded):
    camera = Camera.objects.get(name="c-cam")
    response = admin_client.post(reverse("capacity:apply"), {f"assign-{camera.pk}": loaded["other"].pk}, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was applied" in html and "Rule 1" in html
    assert "hx-swap-oob" not in html  # nothing changed, so nothing else is swapped
    camera.refresh_from_db()
    assert camera.backup_server is None
    # Without script the whole page comes back with the refusal.
    page = admin_client.post(reverse("capacity:apply"), {f"assign-{camera.pk}": loaded["other"].pk})
    html = page.content.decode()
    assert page.status_code == 400 and "Rule 1" in html and "<h1>Capacity planner</h1>" in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Nothing to apply: the proposal named no camera."),
        ({"scope": "everything"}, "Select a valid choice. everything is not one of the available choices."),
    ],
)
def test_apply_refuses_what_is_not_a_proposal(admin_client, loaded, data, message):
    camera = Camera.objects.get(name="c-cam")
    if data:
        data = {**data, f"assign-{camera.pk}": loaded["b"].pk}
    response = admin_client.post(reverse("capacity:apply"), data, **HTMX)
    assert response.status_code == 400 and message in response.content.decode()
    assert Camera.objects.get(name="c-cam").backup_server is None


def test_the_demo_site_leaves_the_proposal_something_to_improve(admin_client, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    call_command("load_demo", stdout=StringIO())
    html = admin_client.get(reverse("capacity:page")).content.decode()
    assert "Fits: the tightest is srv-a, cameras: 5 of 8 (62 %) after srv-b fails." in html
    assert '<div id="capacity-chart" data-dimension="cameras"' in html
    # The three MJPEG cameras were left without backup; the proposal spreads them.
    proposed = dict(re.findall(r'<tr class="changed" data-camera="(cam-\d+)">.*?<ins>(srv-\w)</ins>', html, re.S))
    assert proposed == {"cam-03": "srv-b", "cam-06": "srv-a", "cam-09": "srv-a"}
    applied = admin_client.post(reverse("capacity:apply"), _apply_form(html), **HTMX).content.decode()
    assert "Fits: the tightest is srv-a, cameras: 6 of 8 (75 %) after srv-b fails." in applied
    assert not Camera.objects.filter(primary_server__system__name="Demo site", backup_server=None).exists()


def test_operators_without_camera_rights_cannot_propose(client, viewer, loaded):
    client.force_login(viewer)
    assert client.get(reverse("capacity:page")).status_code == 200
    assert client.post(reverse("capacity:proposal"), {"scope": "all"}).status_code == 403
    camera = Camera.objects.get(name="c-cam")
    assert client.post(reverse("capacity:apply"), {f"assign-{camera.pk}": loaded["a"].pk}).status_code == 403
    client.force_login(grant(viewer, "change_camera"))
    assert client.post(reverse("capacity:proposal"), {"scope": "all"}).status_code == 200


def test_server_page_shows_bitrates_side_by_side(admin_client, loaded):
    response = admin_client.get(reverse("capacity:server", args=[loaded["a"].pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-camera="a-cam-0"' in html and 'data-camera="b-cam"' in html  # own and backed up
    assert "configured" in html


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_inbound_mbps", "0", "Max inbound Mbit/s must be at least 1; leave it empty if it is not known yet"),
        ("storage_gb", "-5", "Storage (GB) must be at least 1"),
        ("cpu_budget_cores", "0", "The CPU budget must be at least 0.1"),
        ("max_cameras", "lots", "Enter a whole number."),
    ],
)
def test_invalid_capacity_figures_get_clear_messages_and_change_nothing(admin_client, loaded, field, value, message):
    server = loaded["a"]
    data = {"max_inbound_mbps": "10", "cpu_budget_cores": "", "storage_gb": "", "max_cameras": "",
            "retention_hours": "72", field: value}  # fmt: skip
    response = admin_client.post(reverse("capacity:server", args=[server.pk]), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    server.refresh_from_db()
    assert (server.max_inbound_mbps, server.storage_gb, server.max_cameras) == (10, None, None)


def test_capacity_figures_are_saved_by_those_who_may_change_servers(client, viewer, loaded):
    server = loaded["a"]
    url = reverse("capacity:server", args=[server.pk])
    data = {"max_inbound_mbps": "500", "cpu_budget_cores": "8", "storage_gb": "4000", "max_cameras": "64",
            "retention_hours": "168"}  # fmt: skip
    client.force_login(viewer)
    assert client.post(url, data).status_code == 403
    client.force_login(grant(viewer, "change_server"))
    response = client.post(url, data)
    assert response.status_code == 200 and "saved" in response.content.decode()
    server = Server.objects.get(pk=server.pk)
    assert (server.max_inbound_mbps, server.max_cameras, server.retention_hours) == (500, 64, 168)


def _part(html: str, element_id: str) -> str:
    """One of the page's swappable parts (each ends with its own unindented closing tag)."""
    start = html.index(f'<div id="{element_id}"')
    return html[start : html.index("\n</div>", start)]


def _apply_form(html: str) -> dict:
    """The fields of the page's Apply form, as the browser would send them."""
    form = html[html.index('action="/capacity/proposal/apply/"') :]
    form = form[: form.index("</form>")]
    return dict(re.findall(r'<input type="hidden" name="([\w-]+)" value="([^"]*)">', form))
