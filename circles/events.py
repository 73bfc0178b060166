"""Every send to the channel layer goes through here, and only after a commit.

Services call `broadcast_*` inside their transaction; the send happens in
`transaction.on_commit`, so nobody hears of a share that was not stored. A send
that fails is logged (without content) and swallowed: the share is stored, and
clients catch up through `tick` and `resume`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction
from django.utils.crypto import get_random_string

from circles.groups import ACCESS_GENERATION_KEY, access_epoch_key, circle_group, user_group

logger = logging.getLogger(__name__)

ACCESS_EPOCH_SECONDS = 24 * 3600
BROADCAST_FAILED = "room broadcast failed: %s to %s"


# The server's event loop, set when the ASGI application first runs (config/asgi.py).
_server_loop: asyncio.AbstractEventLoop | None = None
# Sends to one target keep their order; sends to different targets run side by side.
# Both dicts are only touched on the server's loop.
_target_locks: dict[str, asyncio.Lock] = {}
_target_waiting: dict[str, int] = {}


def remember_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def _send_now(target: str, event: dict, *, to_group: bool) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    send = layer.group_send if to_group else layer.send
    loop = _server_loop
    if loop is not None and loop.is_running() and not _on_loop(loop):
        # From a worker thread of the server: hand the send to the server's loop and
        # go on at once; the database thread never waits on Redis.
        _hand_to_loop(loop, send, target, event)
        return
    try:
        async_to_sync(send)(target, event)
    except Exception:
        # Never the event itself: it may carry what someone said.
        logger.exception(BROADCAST_FAILED, event.get("type"), target)


# Sends handed over by worker threads, in the order they came, waiting for the loop.
# One wake-up of the loop per batch, not one per send (profiling showed the
# per-send hand-over costing the loop more than the sends).
_handed: deque = deque()
_handed_lock = threading.Lock()
_handed_wakeup_pending = False
_running: set[asyncio.Task] = set()


def _hand_to_loop(loop: asyncio.AbstractEventLoop, send, target: str, event: dict) -> None:
    global _handed_wakeup_pending
    with _handed_lock:
        _handed.append((send, target, event))
        if _handed_wakeup_pending:
            return
        _handed_wakeup_pending = True
    loop.call_soon_threadsafe(_start_handed_sends)


def _start_handed_sends() -> None:
    """On the server's loop: start every handed send, in order (each target's lock
    keeps that order while they run)."""
    global _handed_wakeup_pending
    with _handed_lock:
        batch = list(_handed)
        _handed.clear()
        _handed_wakeup_pending = False
    for send, target, event in batch:
        task = asyncio.ensure_future(_send_in_order(send, target, event))
        _running.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(_running.discard)


async def _send_in_order(send, target: str, event: dict) -> None:
    lock = _target_locks.setdefault(target, asyncio.Lock())
    _target_waiting[target] = _target_waiting.get(target, 0) + 1
    try:
        async with lock:
            await send(target, event)
    except Exception:
        # Never the event itself: it may carry what someone said.
        logger.exception(BROADCAST_FAILED, event.get("type"), target)
    finally:
        _target_waiting[target] -= 1
        if not _target_waiting[target]:
            del _target_waiting[target]
            del _target_locks[target]


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _after_commit(target: str, event: dict, *, to_group: bool = True) -> None:
    transaction.on_commit(lambda: _send_now(target, event, to_group=to_group), robust=True)


def broadcast_to_circle(
    circle_id: int, frame: dict, *, access_version: int, event_type: str = "room.frame"
) -> None:
    """Send a frame to everyone in the room: `room.frame` for whole-state frames
    (presence, session, floor, balance), `room.message` for messages. `access_version`
    is the circle's at the time of writing: a consumer that knows an older one
    re-checks access first."""
    _after_commit(
        circle_group(circle_id),
        {"type": event_type, "frame": frame, "access_version": access_version},
    )


def notify_replaced(channel_names: list[str]) -> None:
    for name in channel_names:
        _after_commit(name, {"type": "room.replaced"}, to_group=False)


def notify_access_changed(user_id: int) -> None:
    """Ask every socket of this person to check its access again, now and on its next beat."""

    def bump_and_send() -> None:
        try:
            cache.set(access_epoch_key(user_id), get_random_string(12), ACCESS_EPOCH_SECONDS)
            cache.set(ACCESS_GENERATION_KEY, get_random_string(12), None)
        except Exception:
            logger.exception("could not bump the room access epoch")
        _send_now(user_group(user_id), {"type": "access.changed"}, to_group=True)

    transaction.on_commit(bump_and_send, robust=True)


def send_private(user_id: int, circle_id: int, frame: dict) -> None:
    """A frame for one person's sockets in one circle's room (a nudge, the balance)."""
    _after_commit(
        user_group(user_id), {"type": "room.private", "circle_id": circle_id, "frame": frame}
    )
