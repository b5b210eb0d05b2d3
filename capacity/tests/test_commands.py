"""capacity_report and propose_backups."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cameras.models import Camera


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_capacity_report_prints_the_table_and_warnings(loaded):
    text = _run("capacity_report", "--system", "Site", "--pairs")
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("srv-a "))
    assert "8.0/10" in row and "srv-b" in row and "12.0/10" in row and "120%" in row
    assert "srv-other" not in text
    assert any(line.startswith("ERROR   srv-a: Backs up more than it can take") for line in lines)
    assert "Does not fit: srv-a, inbound Mbit/s: 12 of 10 (120 %) after srv-b fails." in lines  # the page's headline


def test_capacity_report_json_matches_the_api(loaded, api):
    report = json.loads(_run("capacity_report", "--json"))
    assert report == api.get("/api/capacity/").json()


def test_capacity_report_names_an_unknown_system(loaded):
    with pytest.raises(CommandError, match="No multiserver system 'Nowhere'. Known: Other site, Site."):
        _run("capacity_report", "--system", "Nowhere")


def test_propose_backups_prints_then_applies(loaded):
    text = _run("propose_backups")
    assert "c-cam: primary srv-c, backup none -> srv-" in text
    assert "Nothing stored" in text
    assert Camera.objects.get(name="c-cam").backup_server is None
    text = _run("propose_backups", "--all", "--apply")
    assert "Stored" in text
    assert not Camera.objects.filter(backup_server__isnull=True).exists()
