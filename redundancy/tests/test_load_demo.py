from io import StringIO

from django.core.management import call_command

from cameras.models import Camera
from servers.models import Server


def load(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_demo_has_three_servers_and_nine_cameras_in_all_modes(db, tmp_path, settings):
    output = load(tmp_path, settings)
    assert "Loaded 'Demo site': 3 servers, 9 cameras." in output
    assert Server.objects.count() == 3
    modes = sorted(c.redundancy_mode for c in Camera.objects.with_servers())
    assert modes == ["constant"] * 4 + ["fast"] * 2 + ["normal"] * 3
    password_file = tmp_path / "demo-admin-password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert password_file.read_text().strip() not in output


def test_loading_the_demo_twice_changes_nothing(db, tmp_path, settings):
    load(tmp_path, settings)
    before = list(Camera.objects.values_list("name", "primary_server__name", "backup_server__name"))
    assert "already there; nothing changed" in load(tmp_path, settings)
    assert list(Camera.objects.values_list("name", "primary_server__name", "backup_server__name")) == before
