"""Video lost, for Prometheus: per camera, the seconds of the last hour in which no server recorded it.

The Reports page's figure (``reading.histories`` → ``figures.camera_figures``: the recording index's holes while
the camera existed and was enabled, never an agent's counter), over the hour that ends at its reading, served by
the web tier's ``/metrics`` beside django-prometheus's request metrics. The index is read off the scrape's path:
a scrape serves the last reading and, once it is older than a minute, starts the next one on a thread of its own
(one at a time); only the process's first scrape waits for a reading, and that for a few seconds at most. A
database that does not answer, or answers slowly, so never holds a scrape up: the figure is left out until a
reading succeeds (a failed one is tried again after the same minute).
"""

import logging
import threading
import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cameras.models import Camera
from reports import figures, reading

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
READ_EVERY = 60.0  # seconds: the index is read again at most this often
FIRST_WAIT = 5.0  # seconds the process's first scrape waits for the first reading
NAME = "eocortex_video_lost_seconds"
HELP = "Seconds of the last hour in which no server recorded the camera, from the recording index (as Reports)."


class VideoLostCollector(Collector):
    def __init__(self, read_every: float = READ_EVERY, first_wait: float = FIRST_WAIT):
        self.read_every = read_every
        self.first_wait = first_wait
        self._lock = threading.Lock()
        self._reading: threading.Thread | None = None
        self._read_at: float | None = None  # when the last reading (good or failed) ended
        self._samples: list[tuple[str, str, float]] | None = None  # the last good reading's

    def describe(self):
        return [GaugeMetricFamily(NAME, HELP, labels=["camera", "primary"])]

    def collect(self):
        reading = self._start_reading()
        if reading is not None and self._samples is None:
            reading.join(self.first_wait)  # the first scrape of the process: a few seconds for the first figures
        samples = self._samples
        if samples is None:
            return
        family = GaugeMetricFamily(NAME, HELP, labels=["camera", "primary"])
        for camera, primary, seconds in samples:
            family.add_metric([camera, primary], seconds)
        yield family

    def _start_reading(self) -> threading.Thread | None:
        """The reading under way, one started now if the last is older than ``read_every``, or None."""
        with self._lock:
            if self._reading is not None and self._reading.is_alive():
                return self._reading
            if self._read_at is not None and time.monotonic() - self._read_at < self.read_every:
                return None
            self._reading = threading.Thread(target=self._read, name="video-lost", daemon=True)
            self._reading.start()
            return self._reading

    def _read(self) -> None:
        try:
            now = timezone.now()
            since = now - WINDOW
            cameras = Camera.objects.select_related("primary_server", "backup_server").order_by("pk")
            histories = reading.histories(cameras, since, now, now)
            start, end = since.timestamp(), now.timestamp()
            self._samples = [(str(h.camera_id), h.primary,
                              round(figures.camera_figures(h, start, end).lost_seconds, 3)) for h in histories]
        except Exception as exc:  # the database away, or anything else: the figure waits for the next reading
            log.warning("event=video_lost_not_read error=%s", type(exc).__name__)
            self._samples = None
        finally:
            self._read_at = time.monotonic()
            connection.close()  # this thread's own
