"""Records bound for the database, kept on disk until the database has them.

An agent must keep recording while the database is away: segment index entries and
analytics events are appended to a spool file first and written in batches; a failed
write leaves them in the spool for the next attempt, also across a restart of the agent.
Replays are harmless: segments are unique by path, events by camera, server, module and start.
"""

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from django.db import DatabaseError, close_old_connections, connection

from cameras.models import Camera
from recording.models import AnalyticsEvent, Segment

log = logging.getLogger(__name__)


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Outbox:
    def __init__(self, spool: Path):
        self.spool = spool
        self._lock = threading.Lock()
        self._pending: list[dict] = []
        try:
            self.spool.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("event=spool_unwritable path=%s error=%s", self.spool, exc.strerror)
        if self.spool.exists():
            for line in self.spool.read_text().splitlines():
                try:
                    self._pending.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("event=spool_line_unreadable path=%s", self.spool)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def pending_paths(self) -> set[str]:
        with self._lock:
            return {item["path"] for item in self._pending if item["kind"] == "segment"}

    def put(self, kind: str, record: dict) -> None:
        item = {"kind": kind, **record}
        with self._lock:
            self._pending.append(item)
            self._save(lambda: self._append(json.dumps(item) + "\n"))

    def flush(self, server_id: int) -> int:
        """Write what is pending; returns how many records went in (0 when the database is away)."""
        with self._lock:
            batch = list(self._pending)
        if not batch:
            return 0
        try:
            close_old_connections()
            # A camera deleted meanwhile keeps no index: its rows would only block the rest.
            cameras = set(Camera.objects.filter(pk__in={r["camera_id"] for r in batch}).values_list("pk", flat=True))
            batch_known = [r for r in batch if r["camera_id"] in cameras]
            Segment.objects.bulk_create(
                [
                    Segment(
                        camera_id=r["camera_id"],
                        server_id=server_id,
                        started_at=_when(r["started_at"]),
                        ended_at=_when(r["ended_at"]),
                        frame_count=r["frame_count"],
                        size_bytes=r["size_bytes"],
                        path=r["path"],
                    )  # fmt: skip
                    for r in batch_known
                    if r["kind"] == "segment"
                ],
                ignore_conflicts=True,
            )
            # An episode comes twice (started, then ended): the later report completes the row.
            events = {}
            for r in batch_known:
                if r["kind"] == "analytics":
                    events[(r["camera_id"], r["module"], r["started_at"])] = r
            AnalyticsEvent.objects.bulk_create(
                [
                    AnalyticsEvent(
                        camera_id=r["camera_id"],
                        server_id=server_id,
                        module=r["module"],
                        started_at=_when(r["started_at"]),
                        ended_at=_when(r["ended_at"]) if r["ended_at"] else None,
                        peak_score=r["peak_score"],
                    )  # fmt: skip
                    for r in events.values()
                ],
                update_conflicts=True,
                unique_fields=["camera", "server", "module", "started_at"],
                update_fields=["ended_at", "peak_score"],
            )
        except DatabaseError as exc:
            log.warning("event=index_deferred pending=%s error=%s", len(batch), exc)
            connection.close()
            return 0
        with self._lock:
            self._pending = self._pending[len(batch) :]
            pending = "".join(json.dumps(item) + "\n" for item in self._pending)
            self._save(lambda: self._replace(pending))
        return len(batch)

    def _replace(self, text: str) -> None:
        """The spool rewritten whole or not at all: a full disk must not leave it truncated."""
        fresh = self.spool.with_suffix(".tmp")
        fresh.write_text(text)
        os.replace(fresh, self.spool)

    def _append(self, line: str) -> None:
        with self.spool.open("a") as spool:
            spool.write(line)

    def _save(self, write) -> None:
        """Keep the spool on disk when the disk lets us; in memory the records still reach the database."""
        try:
            write()
        except OSError as exc:
            log.warning("event=spool_unwritable path=%s error=%s", self.spool, exc.strerror)
