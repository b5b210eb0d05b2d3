"""The live status page's websocket: the engine's events as they happen, and the whole status
every second, so the page shows the truth within a second and never needs a reload."""

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from redundancy.notifications import EVENTS_GROUP
from redundancy.status import current_status

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds
UNAUTHENTICATED = 4401


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        await self.channel_layer.group_add(EVENTS_GROUP, self.channel_name)
        await self.accept()
        self._pusher = asyncio.create_task(self._push_status())

    async def disconnect(self, code):
        pusher = getattr(self, "_pusher", None)
        if pusher is not None:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        await self.channel_layer.group_discard(EVENTS_GROUP, self.channel_name)

    async def redundancy_event(self, message):
        """An engine event: to the page at once, with the status it changed."""
        await self.send_json({"type": "event", "event": message["event"]})
        await self.send_json({"type": "status", "status": await self._status()})

    async def _push_status(self):
        while True:
            try:
                await self.send_json({"type": "status", "status": await self._status()})
            except Exception:  # the page resynchronises from /api/status/ on its own; keep the socket
                log.warning("event=live_status_failed", exc_info=True)
            await asyncio.sleep(STATUS_EVERY)

    @database_sync_to_async
    def _status(self):
        return current_status()
