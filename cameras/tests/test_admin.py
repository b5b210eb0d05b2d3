from cameras.models import Camera


def test_admin_camera_pages_and_mode_filter(admin_client, site, make_camera):
    camera = make_camera(site["a"], site["b"], name="porch", password="planted-Camera-pw")
    make_camera(site["a"], name="alone")
    listing = admin_client.get("/admin/cameras/camera/?mode=normal").content.decode()
    assert "porch" in listing and "alone" not in listing
    change = admin_client.get(f"/admin/cameras/camera/{camera.pk}/change/").content.decode()
    assert "planted-Camera-pw" not in change


def test_admin_refuses_invalid_backup(admin_client, site, make_camera):
    camera = make_camera(site["a"], name="porch")
    data = {
        "name": "porch",
        "enabled": "on",
        "stream_url": camera.stream_url,
        "username": "",
        "password": "",
        "codec": "h264",
        "width": 1920,
        "height": 1080,
        "fps": 25,
        "quality": "medium",
        "expected_bitrate_kbps": "",
        "primary_server": site["a"].pk,
        "backup_server": site["other"].pk,
        "failover_priority": "normal",
    }
    response = admin_client.post(f"/admin/cameras/camera/{camera.pk}/change/", data)
    assert response.status_code == 200 and "Rule 1" in response.content.decode()
    assert Camera.objects.get(pk=camera.pk).backup_server is None


def test_admin_action_removes_backups(admin_client, site, make_camera):
    cameras = [make_camera(site["a"], site["b"]) for _ in range(2)]
    response = admin_client.post(
        "/admin/cameras/camera/", {"action": "remove_backup", "_selected_action": [c.pk for c in cameras]}
    )
    assert response.status_code == 302
    assert not Camera.objects.filter(backup_server__isnull=False).exists()
