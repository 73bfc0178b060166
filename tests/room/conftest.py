"""Live-room tests run against real daphne processes (tests/live_server.py).

The `redis` marker says a test needs Redis between processes; `make test` also
runs this folder on the embedded default (SQLite, in-memory layer) without them.
"""

from __future__ import annotations

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from tests.live_server import start_daphne, wait_for_other_database_sessions_to_end


@pytest.fixture(scope="module")
def room_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """One daphne process on the test database (shared by a module's tests), with a
    one-second tick. Each test still asks for `transactional_db` for its own rows."""
    server = start_daphne(tmp_path_factory.mktemp("daphne"), extra_env={"ROOM_TICK_SECONDS": "1"})
    yield server
    server.stop()
    with django_db_blocker.unblock():
        wait_for_other_database_sessions_to_end()


@pytest.fixture(autouse=True)
def _close_connections_of_the_sync_thread():
    """sync_to_async in a test runs the ORM on asgiref's own thread, whose connection
    would otherwise stay open and keep the test database from being dropped."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
