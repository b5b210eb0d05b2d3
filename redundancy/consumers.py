"""The live status page's websocket: the engine's events as they happen, and the whole status
every second, so the page shows the truth within a second and never needs a reload."""

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.scope import allowed_systems
from redundancy.notifications import EVENTS_GROUP
from redundancy.status import current_status

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds
UNAUTHENTICATED = 4401
REJOIN_EVERY = 60.0  # seconds; well inside the channel layer's group expiry


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        # Object-level: the socket carries only the servers, cameras and events of the user's systems.
        self.systems = await database_sync_to_async(allowed_systems)(user)
        await self.channel_layer.group_add(EVENTS_GROUP, self.channel_name)
        await self.accept()
        self._status_due = asyncio.Event()
        self._pusher = asyncio.create_task(self._push_status())

    async def disconnect(self, code):
        pusher = getattr(self, "_pusher", None)
        if pusher is not None:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        await self.channel_layer.group_discard(EVENTS_GROUP, self.channel_name)

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
                await self.channel_layer.group_add(EVENTS_GROUP, self.channel_name)
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
