"""What a real daphne process writes to its log during a whole conversation.

Sign up over HTTP (a confirmation mail goes to disk), confirm the email, follow
an invite link with a query string, agree to the guidelines, join, then talk in
the live room. The server's whole output (daphne's access log, Python logging,
stdout and stderr) must carry none of the secrets that passed through it, and
must still carry the redacted access-log lines, so the test fails if logging
disappears altogether.
"""

from __future__ import annotations

import asyncio
import email
import re
import urllib.parse
import uuid
from email import policy
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from circles.models import (
    CommunityGuidelines,
    Membership,
    MembershipStatus,
    Message,
    RoomConnection,
)
from circles.selectors import guidelines_current
from circles.services.sessions import session_open
from tests.http_client import Browser
from tests.live_server import start_daphne
from tests.room_client import RoomClient, session_key_for

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "Lantern-Orchard-Tide-4817"
QUERY_VALUE = "campaign-qs-7f3k9q"
CONFIRM_LINK = re.compile(r"https?://[^\s\"'<>]+/accounts/confirm-email/([^\s\"'<>/]+)/")
MAIL_SEPARATOR = b"\n" + b"-" * 79 + b"\n"


@pytest.fixture(autouse=True)
def _guidelines(transactional_db):
    """A transactional test empties every table when it ends: publish them again."""
    return guidelines_current() or CommunityGuidelines.objects.create(
        text="## Guidelines\n\nBe kind.", summary_of_changes="First version."
    )


@pytest.fixture
def mail_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    return folder


@pytest.fixture
def mailing_server(transactional_db, tmp_path: Path, mail_dir: Path):
    """A daphne process whose mail lands in files; stopped before the tables are emptied."""
    server = start_daphne(tmp_path, extra_env={"EMAIL_URL": f"file://{mail_dir}"}, name="logs")
    yield server
    server.stop()


def _mail_bodies(folder: Path) -> list[str]:
    """Every mail Django's file backend wrote, as decoded text."""
    bodies = []
    for path in sorted(folder.iterdir()):
        for chunk in path.read_bytes().split(MAIL_SEPARATOR):
            if not chunk.strip():
                continue
            message = email.message_from_bytes(chunk, policy=policy.default)
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    bodies.append(part.get_content())
    return bodies


async def _wait_for_mail(folder: Path, timeout: float = 10.0) -> list[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        bodies = await asyncio.to_thread(_mail_bodies, folder)
        if bodies:
            return bodies
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail arrived in {folder}")


@pytest.mark.asyncio
async def test_a_whole_conversation_leaves_no_secret_in_the_servers_log(
    mailing_server, mail_dir, make_user, make_circle
):
    """After a sign-up, an email confirmation, an invite link with a query string and a
    conversation, the server's log holds no message text, session key, invite token,
    confirmation key, password or query value, and does hold the redacted request lines."""
    server = mailing_server
    moderator = await sync_to_async(make_user)(display_name="Steady Harbour")
    circle = await sync_to_async(make_circle)(moderator=moderator)
    await sync_to_async(session_open)(circle_id=circle.pk, user=moderator)
    moderator_key = await sync_to_async(session_key_for)(moderator)
    newcomer_email = f"newcomer-{uuid.uuid4().hex[:8]}@example.test"
    browser = Browser(server)

    # Sign up: the account waits for its email to be confirmed.
    status, _url, page = await asyncio.to_thread(browser.get, "/accounts/signup/")
    assert status == 200
    status, url, page = await asyncio.to_thread(
        browser.post,
        "/accounts/signup/",
        {
            "display_name": "Quiet Lantern",
            "email": newcomer_email,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "age_confirmed": "on",
        },
        csrf_from=page,
    )
    assert status == 200
    assert url.endswith("/accounts/confirm-email/"), url

    # The confirmation key, from the mail on disk; then the link, as a person would.
    bodies = await _wait_for_mail(mail_dir)
    found = next((CONFIRM_LINK.search(body) for body in bodies if CONFIRM_LINK.search(body)), None)
    assert found, f"no confirmation link in the mail:\n{bodies}"
    confirmation_key = found.group(1)
    confirm_path = f"/accounts/confirm-email/{confirmation_key}/"
    status, _url, page = await asyncio.to_thread(browser.get, confirm_path)
    assert status == 200
    status, _url, page = await asyncio.to_thread(browser.post, confirm_path, {}, csrf_from=page)
    assert status == 200

    # The invite link, with a query string; the guidelines come first, then the join.
    invite_path = f"/circles/invite/{circle.invite_token}/"
    status, url, page = await asyncio.to_thread(browser.get, f"{invite_path}?utm={QUERY_VALUE}")
    assert status == 200
    assert "/guidelines/" in url, url
    current = await sync_to_async(guidelines_current)()
    next_url = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["next"][0]
    status, url, page = await asyncio.to_thread(
        browser.post,
        "/guidelines/",
        {"version": current.version, "agree": "on", "next": next_url},
        csrf_from=page,
    )
    assert status == 200
    assert invite_path in url, url
    status, _url, _page = await asyncio.to_thread(browser.post, invite_path, {}, csrf_from=page)
    assert status == 200
    newcomer_membership = await sync_to_async(
        Membership.objects.filter(circle=circle, status=MembershipStatus.ACTIVE)
        .exclude(user=moderator)
        .first
    )()
    assert newcomer_membership is not None, "the invite did not let the newcomer in"
    # A wrong invite token is a secret-shaped path too (a 404).
    wrong_token = f"wrong-{uuid.uuid4().hex}"
    status, _url, _page = await asyncio.to_thread(browser.get, f"/circles/invite/{wrong_token}/")
    assert status == 404

    # The conversation, on the newcomer's own session cookie and the moderator's.
    newcomer_key = browser.cookie(settings.SESSION_COOKIE_NAME)
    assert newcomer_key
    newcomer = await RoomClient.connect(server.url, circle.pk, session_key=newcomer_key)
    steady = await RoomClient.connect(server.url, circle.pk, session_key=moderator_key)
    texts = [f"secret-text-XYZ-{n}-{uuid.uuid4().hex[:6]}" for n in range(6)]
    try:
        for number, text in enumerate(texts):
            speaker, hearer = (newcomer, steady) if number % 2 == 0 else (steady, newcomer)
            await speaker.say(text)
            await hearer.receive("message", timeout=10, text=text)
    finally:
        await newcomer.close()
        await steady.close()
        # Let the disconnects finish: a daphne stopped during one hangs for 10 s.
        count = sync_to_async(RoomConnection.objects.filter(circle_id=circle.pk).count)
        for _ in range(100):
            if not await count():
                break
            await asyncio.sleep(0.05)
    stored = await sync_to_async(
        lambda: set(Message.objects.filter(circle=circle).values_list("text", flat=True))
    )()
    assert set(texts) <= stored

    server.stop()
    log = server.log()
    secrets = {
        **{f"message text {n}": text for n, text in enumerate(texts)},
        **{f"session key {n}": key for n, key in enumerate(sorted(browser.session_keys))},
        "the moderator's session key": moderator_key,
        "the invite token": circle.invite_token,
        "a wrong invite token": wrong_token,
        "the confirmation key": confirmation_key,
        "the query string's value": QUERY_VALUE,
        "the password": PASSWORD,
    }
    leaked = [f"{what}: {value!r}" for what, value in secrets.items() if value in log]
    assert not leaked, "Secrets in the server's log:\n" + "\n".join(leaked) + "\n\n" + log

    # Logging is there, redacted: the request lines were written, secrets replaced.
    for expected in (
        '"GET /circles/invite/[redacted]/?[redacted]"',
        '"POST /circles/invite/[redacted]/"',
        '"GET /accounts/confirm-email/[redacted]/"',
        '"POST /accounts/confirm-email/[redacted]/"',
        '"GET /guidelines/?[redacted]"',
        '"WSCONNECT /ws/circles/',
    ):
        assert expected in log, f"{expected} is not in the log:\n{log}"
