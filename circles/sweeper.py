"""The periodic sweep: lapsed presence, then every open floor (turns that ran out,
timed pauses, speakers gone too long), even when nobody acts.

daphne has no ASGI lifespan events, so the sweep starts the first time the ASGI
application is called (config/asgi.py), on every process. Each sweep is safe to
run on several processes at once: rows are deleted (or locked) once.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from circles.services.floor import floor_sweep
from circles.services.room import presence_sweep

logger = logging.getLogger(__name__)

_task: asyncio.Task | None = None


def start_once() -> None:
    """Start the sweep in this process's event loop, if it isn't running yet."""
    global _task
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(_sweep_forever())


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(getattr(settings, "ROOM_SWEEP_SECONDS", 1.0))
        try:
            await database_sync_to_async(_sweep_once)()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("room sweep failed; trying again")


def _sweep_once() -> None:
    presence_sweep()
    floor_sweep()
