"""The live status page's websocket: the whole status once, then only what changes.

On connect the socket sends the status of the user's systems, as the engine published it
(``redundancy.status``; a large one in parts: "status", then "status_part" messages), then each
delta of those systems as the engine sends it, with its system's version, and the engine's events at
once. A page that meets a version that is not the next one asks for the whole status again
(``{"type": "resync"}``). A quiet second sends nothing: the page ages a silent server itself, from
when it was last heard and the status's time (Redis's clock). While one of its
systems is not published (no engine leads it yet), the socket sends the status computed on the spot
every second instead, as the status API does then.
"""

import asyncio
import contextlib
import json
import logging
import math
import time
import weakref

import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from prometheus_client import Gauge

from accounts.models import SystemAccess
from accounts.permissions import LIVE
from accounts.querysets import allowed_systems
from protocol import live
from redundancy.notifications import events_group
from redundancy.status import current_status, mark_watched, published_status, status_group, systems_with_servers

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds: the computed status while nothing is published
SCOPE_EVERY = 3.0  # seconds: a limit given or taken away applies this soon, not at reconnect
RESYNC_EVERY = 1.0  # seconds: a page asks for the whole status at most this often
UNAUTHENTICATED = 4401
FORBIDDEN = 4403  # signed in, but without the right to see servers, cameras and events
TOO_MANY_SOCKETS = 4429
REJOIN_EVERY = 60.0  # seconds; well inside the channel layer's group expiry
# The web server refuses to send a message over 1 MiB (Daphne's websocket_max_message_size): a larger
# status goes in parts, its rows spread over "status_part" messages after the first.
STATUS_PART_BYTES = 512 * 1024

# Counted from accept to disconnect, on this process (/metrics): a socket refused before accept is not.
LIVE_SOCKETS = Gauge("eocortex_web_live_sockets", "Live status websockets open on this web process",
                     multiprocess_mode="livesum")  # fmt: skip

# Take a place for a socket of this user unless all are taken; places not renewed for a while
# (a web process that died with its sockets) are given back first.
_TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], 600)
return 1
"""


def _take_place(user_id: int, channel: str) -> bool:
    """Each user holds at most LIVE_SOCKETS_PER_USER live sockets: each one reads and sends the whole status
    when it opens or falls behind (megabytes on a large site), and computes it every second while nothing is
    published. Without Redis there is no channel layer either: the socket is let through."""
    now = time.time()
    try:
        return bool(live.client().eval(_TAKE_PLACE, 1, live.key("live-sockets", user_id), channel, now,
                                       now - 3 * REJOIN_EVERY, settings.LIVE_SOCKETS_PER_USER))  # fmt: skip
    except redis.RedisError:
        return True


def _give_place(user_id: int, channel: str) -> None:
    with contextlib.suppress(redis.RedisError):
        live.client().zrem(live.key("live-sockets", user_id), channel)


def _renew(user_id: int, channel: str) -> None:
    _take_place(user_id, channel)
    with contextlib.suppress(redis.RedisError):
        mark_watched(live.client())


def _read_scopes(users) -> tuple[dict[int, set[int] | None], set[int]]:
    """Each user's limit (as ``allowed_systems`` reads it: None for the whole site) and the systems that
    have servers, in two queries for every socket of the process."""
    limits: dict[int, set[int] | None] = {user.pk: None for user in users}
    limited = [user.pk for user in users if not user.is_superuser]
    for user_id, system_id in SystemAccess.objects.filter(user__in=limited).values_list("user_id", "system_id"):
        limits[user_id] = (limits[user_id] or set()) | {system_id}
    return limits, systems_with_servers()


class _ScopeWatch:
    """Reads the scope of every open socket of this process every SCOPE_EVERY seconds, in two queries
    whatever their number, and tells the sockets whose scope changed."""

    def __init__(self):
        self.sockets: set[LiveConsumer] = set()
        self.task: asyncio.Task | None = None

    def add(self, consumer: "LiveConsumer") -> None:
        self.sockets.add(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.sockets:
            await asyncio.sleep(SCOPE_EVERY)
            sockets = list(self.sockets)
            try:
                limits, known = await database_sync_to_async(_read_scopes)([s.scope["user"] for s in sockets])
            except Exception:  # the next round reads again
                log.warning("event=live_scope_failed", exc_info=True)
                continue
            for consumer in sockets:
                if consumer not in self.sockets:
                    continue
                limit = limits[consumer.scope["user"].pk]
                try:
                    await consumer.apply_scope(limit, known if limit is None else limit)
                except Exception:
                    log.warning("event=live_scope_not_applied", exc_info=True)


_watches: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ScopeWatch]" = weakref.WeakKeyDictionary()


def _scope_watch() -> _ScopeWatch:
    loop = asyncio.get_running_loop()
    if loop not in _watches:
        _watches[loop] = _ScopeWatch()
    return _watches[loop]


def _split(rows: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    return {"servers": [row for kind, row in rows if kind == "servers"],
            "cameras": [row for kind, row in rows if kind == "cameras"]}  # fmt: skip


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        if not await database_sync_to_async(user.has_perms)(LIVE):
            await self.close(code=FORBIDDEN)
            return
        if not await sync_to_async(_take_place)(user.pk, self.channel_name):
            log.warning("user=%s event=live_socket_refused reason=too_many", user.pk)
            await self.close(code=TOO_MANY_SOCKETS)
            return
        self._placed = True
        self.versions: dict[int, int] = {}  # system → the version of it the page has
        self.computed = False
        self._lock = asyncio.Lock()  # one send of the status at a time, deltas after it
        self._resent = float("-inf")
        self._status_due = asyncio.Event()
        # Object-level: the socket carries only the servers, cameras and events of the user's systems.
        self.systems, self.watching = await database_sync_to_async(self._scope)()
        await self.channel_layer.group_add(events_group(), self.channel_name)
        for system_id in self.watching:
            await self.channel_layer.group_add(status_group(system_id), self.channel_name)
        await self.accept()
        LIVE_SOCKETS.inc()
        self._counted = True
        try:
            async with self._lock:
                await self._send_status(mark=True)  # after joining: no delta falls between the two
        except BaseException:  # a socket that fails here is never told it disconnected: give back what it took
            await self.disconnect(None)
            raise
        self._pusher = asyncio.create_task(self._keep_alive())
        _scope_watch().add(self)

    async def disconnect(self, code):
        if getattr(self, "_counted", False):
            self._counted = False  # once, whatever calls disconnect again
            LIVE_SOCKETS.dec()
        with contextlib.suppress(RuntimeError):
            _scope_watch().sockets.discard(self)
        if getattr(self, "_placed", False):
            await sync_to_async(_give_place)(self.scope["user"].pk, self.channel_name)
        pusher = getattr(self, "_pusher", None)
        if pusher is not None:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        await self.channel_layer.group_discard(events_group(), self.channel_name)
        for system_id in getattr(self, "watching", ()):
            await self.channel_layer.group_discard(status_group(system_id), self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "resync":
            wait = self._resent + RESYNC_EVERY - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with self._lock:
                await self._send_status()

    async def redundancy_events(self, message):
        """Engine events: to the page at once (the deltas of the status they changed follow)."""
        for event in message["events"]:
            if self.systems is not None and event.get("system") not in self.systems:
                continue
            await self.send_json({"type": "event", "event": event})
        if self.computed:
            self._status_due.set()

    async def status_delta(self, message):
        """The rows of one system that changed, as the engine published them."""
        system_id = message["system"]
        if system_id not in self.watching:
            return
        async with self._lock:
            known = self.versions.get(system_id)
            if known is not None and message["version"] <= known:
                return  # already in the status the page was sent
            if known is None or message.get("resync"):
                await self._send_status()  # published since the page's status was read, or too large to send
                return
            self.versions[system_id] = message["version"]
            await self.send_json({"type": "delta", **{name: message[name] for name in (
                "system", "version", "at", "servers", "cameras", "removed_servers", "removed_cameras")}})  # fmt: skip

    async def _keep_alive(self):
        loop = asyncio.get_running_loop()
        joined = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_due.wait(), STATUS_EVERY)
            self._status_due.clear()
            try:
                if loop.time() - joined > REJOIN_EVERY:
                    # Group membership expires (so dead sockets drop out); a live one renews it.
                    for group in [events_group(), *map(status_group, self.watching)]:
                        await self.channel_layer.group_add(group, self.channel_name)
                    await sync_to_async(_renew)(self.scope["user"].pk, self.channel_name)
                    joined = loop.time()
                if self.computed:
                    async with self._lock:
                        await self._send_status()
            except Exception:  # the page resynchronises from /api/status/ on its own; keep the socket
                log.warning("event=live_status_failed", exc_info=True)

    async def apply_scope(self, systems: set[int] | None, watching: set[int]):
        """The user's limit and the systems the socket follows as read now: a change sends the whole status."""
        if systems == self.systems and watching == self.watching:
            return
        for system_id in watching - self.watching:
            await self.channel_layer.group_add(status_group(system_id), self.channel_name)
        for system_id in self.watching - watching:
            await self.channel_layer.group_discard(status_group(system_id), self.channel_name)
        self.systems, self.watching = systems, watching
        async with self._lock:
            await self._send_status()

    def _scope(self) -> tuple[set[int] | None, set[int]]:
        """The user's limit (None: the whole site) and the systems whose deltas the socket takes."""
        systems = allowed_systems(self.scope["user"], fresh=True)
        return systems, systems_with_servers() if systems is None else set(systems)

    async def _send_status(self, mark: bool = False):
        """The whole status of the socket's systems, with their versions; the caller holds ``_lock``."""
        status, published = await database_sync_to_async(self._read)(mark)
        self._resent = time.monotonic()
        self.computed = not published
        self.versions = {int(system): version for system, version in status["versions"].items()}
        text = json.dumps({"type": "status", "status": status})
        if len(text) <= STATUS_PART_BYTES:
            await self.send(text_data=text)
            return
        rows = [("servers", row) for row in status["servers"]] + [("cameras", row) for row in status["cameras"]]
        size = math.ceil(len(rows) / (math.ceil(len(text) / STATUS_PART_BYTES) + 1))
        parts = [_split(rows[start : start + size]) for start in range(0, len(rows), size)]
        systems = sorted({row["system_id"] for row in status["servers"]})
        await self.send(text_data=json.dumps({"type": "status", "status": {**status, **parts[0]}, "parts": len(parts),
                                              "systems": systems}))  # fmt: skip
        for part in parts[1:]:
            await self.send(text_data=json.dumps({"type": "status_part", **part}))

    def _read(self, mark: bool) -> tuple[dict, bool]:
        r = live.client()
        status = None
        try:
            if mark:
                mark_watched(r)  # before the read: whatever is published after it is sent as a delta
            status = published_status(r, self.systems, systems_with_servers())
        except redis.RedisError:
            pass
        if status is not None:
            return status, True
        return current_status(systems=self.systems), False
