"""A video server's archive as its agent keeps it: what a killed agent left unindexed is indexed
again at start, what is past the server's retention is deleted as recording goes on.

Retention is read from the database at each sweep (an operator may shorten it while the agent
runs) and sets how often the sweep comes: a retention of minutes (a test site, a soak) is swept
every tenth of it, so the disk holds about 1.1 retentions of video, never an extra ten minutes.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from django.db import DatabaseError, connection

from recording.models import Segment
from recording.outbox import Outbox
from recording.segments import remove_file, unindexed_segments
from servers.models import Server

log = logging.getLogger(__name__)

SWEEP_AT_MOST_EVERY = 600.0
SWEEP_AT_LEAST_EVERY = 5.0


def sweep_interval(retention_hours: float) -> float:
    """Seconds between two sweeps for a retention: a tenth of it, within 5 s and 10 min."""
    return min(SWEEP_AT_MOST_EVERY, max(SWEEP_AT_LEAST_EVERY, retention_hours * 3600 / 10))


class Archive:
    def __init__(self, server: Server, storage: Path, outbox: Outbox, clock: Callable[[], float]):
        self.server = server
        self.storage = storage
        self.outbox = outbox
        self.clock = clock
        self.swept_at: float | None = None  # none yet: the first sweep is due once the agent runs

    @property
    def due(self) -> bool:
        return self.swept_at is None or self.clock() - self.swept_at >= sweep_interval(self.server.retention_hours)

    def recover(self) -> int:
        """Index the segments a killed agent left open (or could not index before it died); returns how many."""
        spooled = self.outbox.pending_paths()
        try:
            known = set(Segment.objects.filter(server=self.server).values_list("path", flat=True))
        except DatabaseError:
            connection.close()
            return 0
        max_age = self.server.retention_hours * 3600
        found = 0
        for record in unindexed_segments(self.storage, self.server.name, known | spooled, self.clock(), max_age):
            self.outbox.put("segment", record.as_dict())
            found += 1
        return found

    def expire(self) -> int:
        """Delete this server's segments past its retention, files and index rows; returns how many went."""
        self.swept_at = self.clock()
        try:
            retention = Server.objects.filter(pk=self.server.pk).values_list("retention_hours", flat=True).first()
            if retention is not None:
                self.server.retention_hours = retention
            cutoff = datetime.fromtimestamp(self.clock() - self.server.retention_hours * 3600, UTC)
            old = list(Segment.objects.filter(server=self.server, ended_at__lt=cutoff).values_list("pk", "path"))
            for _, path in old:
                remove_file(path)
            Segment.objects.filter(pk__in=[pk for pk, _ in old]).delete()
        except DatabaseError:
            connection.close()
            return 0
        if old:
            log.info("server=%s event=segments_expired count=%s", self.server.name, len(old))
        return len(old)
