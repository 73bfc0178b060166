"""Real daphne processes for tests: a separate process each, on a free port.

A server forked from a test process that has run async code can hang the
websocket handshake, so servers are started with subprocess, never fork. They
share the test run's database (by name) and its Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_database_url() -> str:
    """The address of the database the test run made (not the one it was given)."""
    database = settings.DATABASES["default"]
    name = database["NAME"]  # pytest-django has already switched to the test name
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{name}"
    user = database.get("USER") or ""
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{name}"


@dataclass
class LiveServer:
    port: int
    process: subprocess.Popen
    log_path: Path
    env: dict = field(repr=False, default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_daphne(
    log_dir: Path, *, extra_env: dict | None = None, name: str = "daphne"
) -> LiveServer:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": test_database_url(),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log_path = log_dir / f"{name}-{port}.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "config.serve",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(port=port, process=process, log_path=log_path, env=env)
    _wait_until_serving(server)
    return server


def _wait_until_serving(server: LiveServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"daphne exited early:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"daphne did not start within {timeout} s:\n{server.log()}")
