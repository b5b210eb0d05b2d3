"""Video lost, for Prometheus: per camera, the seconds of the last hour in which no server recorded it.

The Reports page's figure (``reading.histories`` → ``figures.camera_figures``: the recording index's holes while
the camera existed and was enabled, never an agent's counter), over the hour that ends at the scrape, served by
the web tier's ``/metrics`` beside django-prometheus's request metrics. Read at most once a minute per process
(a few aggregated queries whatever the number of cameras); a database that does not answer leaves the metric out
of that scrape rather than failing the page.
"""

import logging
import threading
import time
from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cameras.models import Camera
from reports import figures, reading

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
READ_EVERY = 60.0  # seconds: the index is read again at most this often
NAME = "eocortex_video_lost_seconds"
HELP = "Seconds of the last hour in which no server recorded the camera, from the recording index (as Reports)."


class VideoLostCollector(Collector):
    def __init__(self, read_every: float = READ_EVERY):
        self.read_every = read_every
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._samples: list[tuple[str, str, float]] = []

    def describe(self):
        return [GaugeMetricFamily(NAME, HELP, labels=["camera", "primary"])]

    def collect(self):
        samples = self._read()
        if samples is None:
            return
        family = GaugeMetricFamily(NAME, HELP, labels=["camera", "primary"])
        for camera, primary, seconds in samples:
            family.add_metric([camera, primary], seconds)
        yield family

    def _read(self) -> list[tuple[str, str, float]] | None:
        with self._lock:
            if self._read_at is not None and time.monotonic() - self._read_at < self.read_every:
                return self._samples
            now = timezone.now()
            since = now - WINDOW
            cameras = Camera.objects.select_related("primary_server", "backup_server").order_by("pk")
            try:
                histories = reading.histories(cameras, since, now, now)
            except DatabaseError as exc:
                log.warning("event=video_lost_not_read error=%s", type(exc).__name__)
                return None
            start, end = since.timestamp(), now.timestamp()
            self._samples = [(str(h.camera_id), h.primary, round(figures.camera_figures(h, start, end).lost_seconds, 3))
                             for h in histories]  # fmt: skip
            self._read_at = time.monotonic()
            return self._samples
