"""One heartbeat per process for all of its room sockets.

Each socket used to run its own loop: a cache read every second, a heartbeat
UPDATE every five, a tick query every fifteen, all queued on the process's one
database thread (2,000 sockets: 2,000 cache reads a second before anyone spoke).
The hub does each of those once per process, for every socket it holds, and
hands each socket what concerns it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import get_random_string

from circles import selectors
from circles.groups import ACCESS_GENERATION_KEY, access_epoch_key
from circles.room_db import room_db
from circles.selectors import RoomRefusal
from circles.services.room import room_beat_many

logger = logging.getLogger(__name__)
db = room_db
GROUPS_REJOIN_SECONDS = 3600


def _setting(name: str, default: float) -> float:
    return getattr(settings, name, default)


class RoomHub:
    def __init__(self) -> None:
        self.sockets: dict[str, object] = {}  # channel name -> RoomConsumer
        self.task: asyncio.Task | None = None
        # Set in the cache when this process last joined its sockets' groups.
        self.groups_mark = f"room:groups-joined:{uuid.uuid4().hex}"
        self.slots = itertools.count()  # which slice of the ticks a socket is in
        self.access_generation: object = None  # the last one read: nobody's moved since
        self.groups_joined_at = time.monotonic()

    def add(self, consumer) -> None:
        consumer.hub_slot = next(self.slots)
        self.sockets[consumer.channel_name] = consumer
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self.run())

    def remove(self, consumer) -> None:
        self.sockets.pop(getattr(consumer, "channel_name", None), None)

    def live(self) -> list:
        return [socket for socket in self.sockets.values() if not socket.closing]

    async def run(self) -> None:
        last_beat = time.monotonic()
        round_number = 0
        while True:
            every = _setting("ROOM_ACCESS_CHECK_SECONDS", 1.0)
            await asyncio.sleep(every)
            now = time.monotonic()
            beat_due = now - last_beat >= _setting("ROOM_BEAT_SECONDS", 5)
            # Each socket gets its tick every ROOM_TICK_SECONDS, but not all at once:
            # each round ticks one slice, so the loop never stalls on thousands of sends.
            slices = max(1, round(_setting("ROOM_TICK_SECONDS", 15) / every))
            round_number += 1
            live = self.live()
            this_slice = round_number % slices
            steps = (
                (self.check_access, live),
                (self.beat, live if beat_due else []),
                (self.tick, [socket for socket in live if socket.hub_slot % slices == this_slice]),
            )
            for step, sockets in steps:
                if not sockets:
                    continue
                try:
                    await step(sockets)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A database or cache hiccup must not end the room: next time.
                    logger.exception("room heartbeat failed: %s", step.__name__)
            if beat_due:
                last_beat = now

    async def check_access(self, sockets: list) -> None:
        """One cache read for every socket's access epoch: a socket whose epoch moved
        checks its sign-in and membership again at once. Sockets due a full check are
        checked together (three queries for all); any that fail check on their own,
        which closes them with the right code."""
        now = time.monotonic()
        epochs = await self.read_moved_epochs(sockets)
        full_every = _setting("ROOM_FULL_CHECK_SECONDS", 30)
        due = []
        for socket in sockets:
            epoch = epochs.get(access_epoch_key(socket.user.pk)) if epochs is not None else None
            if epochs is not None and epoch != socket.access_epoch:
                socket.access_epoch = epoch
                socket.last_full_check = now
                socket.start_access_check()
            elif now - socket.last_full_check >= full_every:
                socket.last_full_check = now
                due.append(socket)
        if not due:
            return
        allowed = await db(selectors.room_sockets_still_allowed)(
            sockets=[
                (socket.channel_name, socket.user.pk, socket.circle_id, socket.session_key)
                for socket in due
            ]
        )
        for socket in due:
            if socket.channel_name not in allowed:
                socket.start_access_check()

    async def read_moved_epochs(self, sockets: list) -> dict | None:
        """Every socket's access epoch, or None when nobody's access moved since the
        last read: one key (the generation every change moves) read each second,
        the sockets' own keys only after it moved."""
        try:
            generation = await cache.aget(ACCESS_GENERATION_KEY)
            if generation is None:  # never set, or Redis restarted: start one
                await cache.aadd(ACCESS_GENERATION_KEY, get_random_string(12), None)
                generation = await cache.aget(ACCESS_GENERATION_KEY)
            elif generation == self.access_generation:
                return None
            keys = {access_epoch_key(socket.user.pk) for socket in sockets}
            epochs = await db(cache.get_many)(list(keys))
        except Exception:
            logger.warning("room access epochs unreadable; the full checks go on")
            return None
        self.access_generation = generation
        return epochs

    async def beat(self, sockets: list) -> None:
        """Groups joined again if Redis forgot them, and one UPDATE keeping every
        socket of this process present; replaced ones close with 4409."""
        if await self.groups_forgotten():
            await asyncio.gather(*(socket.join_groups() for socket in sockets))
        replaced = await db(room_beat_many)(
            connections={
                socket.channel_name: (socket.circle_id, socket.user.pk) for socket in sockets
            }
        )
        for socket in sockets:
            if socket.channel_name in replaced:
                await socket.close_with(RoomRefusal.REPLACED)

    async def groups_forgotten(self) -> bool:
        """Has the channel layer forgotten this process's groups? A restarted Redis
        forgets everything, this process's mark in the cache (on the same Redis, from
        REDIS_URL) included: one read per beat instead of re-joining every socket's
        groups (two Redis calls each) every five seconds. Once in a while the groups
        are joined again anyway, before the layer's own group expiry."""
        overdue = time.monotonic() - self.groups_joined_at >= GROUPS_REJOIN_SECONDS
        try:
            forgotten = overdue or await cache.aget(self.groups_mark) is None
            if forgotten:
                await cache.aset(self.groups_mark, True, timeout=None)
        except Exception:
            logger.warning("room hub mark unreadable; joining the groups again")
            forgotten = True
        if forgotten:
            self.groups_joined_at = time.monotonic()
        return forgotten

    async def tick(self, sockets: list) -> None:
        """The latest seq and floor version of every circle here, in one read."""
        ticks = await db(selectors.room_ticks)(circle_ids={socket.circle_id for socket in sockets})
        for socket in sockets:
            seq, version = ticks.get(socket.circle_id, (0, 0))
            await socket.send_json({"type": "tick", "seq": seq, "v": version})


hub = RoomHub()
