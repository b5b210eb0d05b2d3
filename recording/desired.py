"""Which cameras a server ingests when nothing has failed: the configuration's baseline."""

from django.db.models import Q

from cameras.models import Camera
from redundancy.decisions import ingests


def baseline_camera_ids(server) -> set[int]:
    """What it records at rest (``decisions.ingests``): its own enabled cameras, plus the enabled
    cameras it backs up in constant mode (a second connection that records all the time)."""
    cameras = Camera.objects.with_servers().filter(Q(primary_server=server) | Q(backup_server=server), enabled=True)
    return {
        camera.pk
        for camera in cameras
        if server.pk in ingests(camera.primary_server_id, camera.backup_server_id, camera.redundancy_mode)
    }
