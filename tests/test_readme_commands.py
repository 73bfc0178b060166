"""`make run`, the README's first command, serves the site with demo data."""

import os
import signal
import subprocess
import time
import urllib.request

from tests.live_server import PROJECT_ROOT, free_port

PAGES = ["/", "/circles/", "/accounts/signup/"]


def test_make_run_serves_the_home_circles_and_signup_pages_within_two_minutes(tmp_path):
    port = free_port()
    log_path = tmp_path / "make-run.log"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        statuses = _wait_for_pages(port, deadline=time.monotonic() + 120, process=process)
        assert statuses == dict.fromkeys(PAGES, 200), log_path.read_text()
        circles = urllib.request.urlopen(f"http://127.0.0.1:{port}/circles/").read().decode()
        assert "Demo circle" in circles
        output = log_path.read_text()
        assert "demo1@example.com" in output
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def _wait_for_pages(port: int, *, deadline: float, process) -> dict[str, int]:
    statuses: dict[str, int] = {}
    while time.monotonic() < deadline and process.poll() is None:
        try:
            for page in PAGES:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5) as r:
                    statuses[page] = r.status
            return statuses
        except OSError:
            time.sleep(0.5)
    return statuses
