from django.db import connection

from cameras.models import Camera


def test_camera_credentials_are_encrypted_at_rest(site, make_camera):
    camera = make_camera(site["a"], username="operator7", password="planted-Camera-pw")
    with connection.cursor() as cursor:
        cursor.execute("SELECT username, password FROM cameras_camera WHERE id = %s", [camera.pk])
        username, password = cursor.fetchone()
    assert "operator7" not in username and "planted-Camera-pw" not in password
    loaded = Camera.objects.get(pk=camera.pk)
    assert (loaded.username, loaded.password) == ("operator7", "planted-Camera-pw")
    assert loaded.has_credentials


def test_camera_without_credentials_stores_empty(site, make_camera):
    camera = make_camera(site["a"])
    assert not Camera.objects.get(pk=camera.pk).has_credentials
