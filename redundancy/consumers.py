"""The live status page's websocket: the engine's events as they happen, and the whole status
every second, so the page shows the truth within a second and never needs a reload."""

import asyncio
import contextlib
import logging
import time

import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts.permissions import LIVE
from accounts.scope import allowed_systems
from recording import live
from redundancy.notifications import events_group
from redundancy.status import current_status

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds
UNAUTHENTICATED = 4401
FORBIDDEN = 4403  # signed in, but without the right to see servers, cameras and events
TOO_MANY_SOCKETS = 4429
REJOIN_EVERY = 60.0  # seconds; well inside the channel layer's group expiry

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
    """Each user holds at most LIVE_SOCKETS_PER_USER live sockets (each recomputes the status every
    second). Without Redis there is no channel layer either: the socket is let through."""
    now = time.time()
    try:
        return bool(live.client().eval(_TAKE_PLACE, 1, live.key("live-sockets", user_id), channel, now,
                                       now - 3 * REJOIN_EVERY, settings.LIVE_SOCKETS_PER_USER))  # fmt: skip
    except redis.RedisError:
        return True


def _give_place(user_id: int, channel: str) -> None:
    with contextlib.suppress(redis.RedisError):
        live.client().zrem(live.key("live-sockets", user_id), channel)


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
        # Object-level: the socket carries only the servers, cameras and events of the user's systems.
        self.systems = await database_sync_to_async(allowed_systems)(user)
        await self.channel_layer.group_add(events_group(), self.channel_name)
        await self.accept()
        self._status_due = asyncio.Event()
        self._pusher = asyncio.create_task(self._push_status())

    async def disconnect(self, code):
        if getattr(self, "_placed", False):
            await sync_to_async(_give_place)(self.scope["user"].pk, self.channel_name)
        pusher = getattr(self, "_pusher", None)
        if pusher is not None:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        await self.channel_layer.group_discard(events_group(), self.channel_name)

    async def redundancy_events(self, message):
        """Engine events: to the page at once, and the status they changed right after them."""
        for event in message["events"]:
            if self.systems is not None and event.get("system") not in self.systems:
                continue
            await self.send_json({"type": "event", "event": event})
        self._status_due.set()

    async def _push_status(self):
        joined = asyncio.get_running_loop().time()
        while True:
            if asyncio.get_running_loop().time() - joined > REJOIN_EVERY:
                # Group membership expires (so dead sockets drop out); a live one renews it.
                await self.channel_layer.group_add(events_group(), self.channel_name)
                await sync_to_async(_take_place)(self.scope["user"].pk, self.channel_name)  # renews its place
                joined = asyncio.get_running_loop().time()
            try:
                await self.send_json({"type": "status", "status": await self._status()})
            except Exception:  # the page resynchronises from /api/status/ on its own; keep the socket
                log.warning("event=live_status_failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_due.wait(), STATUS_EVERY)
            self._status_due.clear()

    @database_sync_to_async
    def _status(self):
        # Read again each time: a limit given or taken away applies within a second, not at reconnect.
        self.systems = allowed_systems(self.scope["user"], fresh=True)
        return current_status(systems=self.systems)
