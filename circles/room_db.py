"""How the live room calls the database from its event loop.

Channels runs every database call of a process on one thread. On PostgreSQL the
room uses a few threads instead, each borrowing a connection from the pool, so
one share waiting on a round trip (or on a circle's lock) no longer holds up
every other socket of the process. A socket's own frames still run one at a
time (the consumer awaits each). On SQLite, which writes one transaction at a
time anyway, the room keeps Channels' one thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection

_executor: ThreadPoolExecutor | None = None


class _RoomDatabaseCall(SyncToAsync):
    def thread_handler(self, loop, *args, **kwargs):
        # As channels' database_sync_to_async: the connection goes back to the pool.
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            close_old_connections()


def room_db(func):
    """`func`, awaitable, run on one of the room's database threads."""
    if connection.vendor != "postgresql":
        return database_sync_to_async(func)
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=getattr(settings, "ROOM_DATABASE_THREADS", 4),
            thread_name_prefix="room-db",
        )
    return _RoomDatabaseCall(func, thread_sensitive=False, executor=_executor)
