"""Browser tests: Debian's Chromium, driven by Playwright's sync API, against a real daphne.

Run these on their own, in their own pytest process (`pytest tests/browser`, or
`make test-browser`), never in the same run as the other tests: see below.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from circles.models import CommunityGuidelines
from circles.selectors import guidelines_current
from tests.live_server import PROJECT_ROOT, LiveServer, start_daphne
from tests.room_client import session_key_for

# Playwright's sync API runs its own asyncio event loop in the test's thread (it
# drives the browser from a greenlet). Django's ORM sees a running event loop in
# the current thread and refuses synchronous queries with SynchronousOnlyOperation,
# even though the test's own code never runs inside a coroutine. The fixtures and
# the test here do ORM calls between page actions (make a circle, check the rows
# the server wrote), so switch that guard off: it only affects this pytest
# process, which is why browser tests are never run alongside the others.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
# Playwright's default is 30 s; a page here answers in well under a second, so
# 15 s is a generous margin for a busy CI machine and still fails in good time.
TIMEOUT_MS = 15_000
ROOM_CONNECTED = "You're in the room."
expect.set_options(timeout=TIMEOUT_MS)
MAIL_SEPARATOR = b"\n" + b"-" * 79 + b"\n"
_live_servers = pytest.StashKey[list]()
_call_failed = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config, items):
    """Browser tests leave Playwright's event loop behind: refuse to share a run."""
    here = Path(__file__).resolve().parent
    strangers = [item for item in items if here not in Path(str(item.path)).resolve().parents]
    if strangers and any(item.get_closest_marker("browser") for item in items):
        raise pytest.UsageError(
            "Browser tests must run in their own pytest process: `pytest tests/browser` "
            "(make test-browser), and the rest with `pytest --ignore=tests/browser`."
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test shows the log of every daphne it started."""
    report = yield
    if report.when == "call":
        item.stash[_call_failed] = report.failed
    if report.failed:
        for server in item.stash.get(_live_servers, []):
            report.sections.append((f"daphne log ({server.log_path.name})", server.log()))
    return report


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(
            f"CI: Debian's Chromium is missing at {CHROMIUM}; the CI image must install it "
            "(apt-get install -y chromium). Browser tests never skip.",
            pytrace=False,
        )
    pytest.fail(
        f"Debian's Chromium is missing at {CHROMIUM}. Install it with "
        "`apt-get install -y chromium` (Playwright's own browser download does not "
        "work here). Browser tests never skip.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium_path: Path) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def page(request, browser: Browser, artifacts_dir: Path) -> Iterator[Page]:
    """A fresh context (no cookies, no storage) and one page in it. When the test
    fails, the page as it was is saved as failure.png beside the other screenshots."""
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    if request.node.stash.get(_call_failed, False):
        try:
            page.screenshot(path=str(artifacts_dir / "failure.png"), full_page=True)
        except Exception as error:  # the browser may be what failed
            (artifacts_dir / "failure.txt").write_text(f"No screenshot: {error}\n")
    context.close()


@pytest.fixture
def artifacts_dir(request) -> Path:
    """test-artifacts/browser/<test name>/, emptied at the start of the test."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screenshot(artifacts_dir: Path):
    """shoot(page, "label"): a full-page screenshot, numbered in the order taken."""
    taken: list[Path] = []

    def shoot(page: Page, label: str) -> Path:
        slug = re.sub(r"[^\w.-]+", "-", label)
        path = artifacts_dir / f"{len(taken) + 1:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        return path

    return shoot


@pytest.fixture
def guidelines(transactional_db) -> CommunityGuidelines:
    """The current guidelines. A data migration publishes the first version, but a
    transactional test empties every table when it ends, so later tests make it again."""
    return guidelines_current() or CommunityGuidelines.objects.create(
        text="## Guidelines\n\nBe kind.", summary_of_changes="First version."
    )


@pytest.fixture
def mail_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    return folder


@pytest.fixture
def daphne_server(
    request, transactional_db, guidelines, tmp_path: Path, mail_dir: Path, artifacts_dir: Path
) -> Iterator[LiveServer]:
    """A real daphne in its own process, sharing the test database, mailing to files.

    Depends on transactional_db so it stops before the tables are emptied.
    """
    server = start_daphne(
        tmp_path,
        extra_env={
            "EMAIL_URL": f"file://{mail_dir}",
            # The child inherits this process's environment; keep Django's
            # async-safety guard on in the server (an empty value means "off").
            "DJANGO_ALLOW_ASYNC_UNSAFE": "",
        },
        name="browser-daphne",
    )
    request.node.stash.setdefault(_live_servers, []).append(server)
    yield server
    server.stop()
    shutil.copy(server.log_path, artifacts_dir / server.log_path.name)


class Mailbox:
    """The folder Django's file-based email backend writes to, in the server process."""

    def __init__(self, folder: Path):
        self.folder = folder

    def messages(self) -> list[Message]:
        found = []
        for path in sorted(self.folder.glob("*.log")):
            for chunk in path.read_bytes().split(MAIL_SEPARATOR):
                if chunk.strip():
                    found.append(email.message_from_bytes(chunk))
        return found

    def wait_for(self, *, to: str, timeout: float = 10.0) -> Message:
        """The newest message to this address. The server sends it before it answers,
        but a busy machine gets a few seconds' grace."""
        deadline = time.monotonic() + timeout
        while True:
            found = [message for message in self.messages() if to in (message["To"] or "")]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                seen = [(message["To"], message["Subject"]) for message in self.messages()]
                raise AssertionError(f"No mail to {to} within {timeout} s; mail seen: {seen}")
            time.sleep(0.1)

    @staticmethod
    def text_of(message: Message) -> str:
        """Every text part of the message, decoded."""
        texts = []
        for part in message.walk():
            if part.get_content_maintype() != "text":
                continue
            payload = part.get_payload(decode=True) or b""
            texts.append(payload.decode(part.get_content_charset() or "utf-8", errors="replace"))
        return "\n".join(texts)


@pytest.fixture
def mailbox(mail_dir: Path) -> Mailbox:
    return Mailbox(mail_dir)


def open_room_page(
    browser: Browser, *, site: str, user, url: str, viewport: dict, dialogs: list[str]
) -> tuple[BrowserContext, Page]:
    """A fresh context signed in as this user (a session made through Django's session
    engine, set as the cookie), on `url`, once the room says it is connected. Any
    dialog at all is recorded: one would be markup run as script."""
    context = browser.new_context(locale="en-GB", viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_key_for(user), "url": site}]
    )
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    expect(page.locator("#room-status")).to_have_text(ROOM_CONNECTED)
    return context, page
