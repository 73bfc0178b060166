"""Live-room tests run against real daphne processes (tests/live_server.py).

The `redis` marker says a test needs Redis between processes; `make test` also
runs this folder on the embedded default (SQLite, in-memory layer) without them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections

from tests.live_server import start_daphne


@pytest.fixture
def room_server(transactional_db, tmp_path):
    """A daphne process on the test database, with a one-second tick.

    One per test, set up after the database fixture so that it stops before the
    tables are emptied: a server still sweeping while PostgreSQL truncates can
    deadlock the truncate."""
    server = start_daphne(tmp_path, extra_env={"ROOM_TICK_SECONDS": "1"})
    yield server
    server.stop()


@pytest.fixture
def two_servers(transactional_db, tmp_path):
    """Two daphne processes on the test database and the run's Redis, each sweeping
    every second. Stopped before the tables are emptied."""
    if not settings.REDIS_URL:
        pytest.fail("This test needs Redis between processes: set REDIS_URL (marker: redis).")
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_daphne, tmp_path, name=name) for name in ("a", "b")]
        servers = [future.result() for future in futures]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _close_connections_of_the_sync_thread():
    """sync_to_async in a test runs the ORM on asgiref's own thread, whose connection
    would otherwise stay open and keep the test database from being dropped."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
