"""The live room's origin check, against a real daphne on a random port.

protocol.md: the page's own origin only (scheme, host and port); a foreign,
`null` or missing Origin, or one that differs in scheme, host or port, is
refused at the handshake with HTTP 403, before anything else. Every refused
case signs in with a valid session to a circle the person belongs to, so the
403 can only come from the origin.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import websockets
from asgiref.sync import sync_to_async

from circles.models import CommunityGuidelines, RoomConnection
from circles.selectors import guidelines_current
from circles.services.sessions import session_open
from tests.room_client import RoomClient, session_key_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _guidelines(transactional_db):
    """A data migration publishes the first guidelines, but a transactional test
    empties every table when it ends: later tests publish them again."""
    return guidelines_current() or CommunityGuidelines.objects.create(
        text="## Guidelines\n\nBe kind.", summary_of_changes="First version."
    )


@dataclass
class Member:
    circle_id: int
    session_key: str


@pytest.fixture
def member(make_user, make_circle) -> Member:
    """A signed-in moderator of a circle with an open session."""
    moderator = make_user()
    circle = make_circle(moderator=moderator)
    session_open(circle_id=circle.pk, user=moderator)
    return Member(circle_id=circle.pk, session_key=session_key_for(moderator))


def _other_port(port: int) -> int:
    return port + 1 if port < 65535 else port - 1


# name -> a function of the server's port giving the Origin header (None: no header).
REFUSED_ORIGINS = {
    "foreign host": lambda port: "https://evil.example.test",
    "foreign host, same port": lambda port: f"http://evil.example.test:{port}",
    "null": lambda port: "null",
    "missing": lambda port: None,
    "other scheme": lambda port: f"https://127.0.0.1:{port}",
    "other port": lambda port: f"http://127.0.0.1:{_other_port(port)}",
    "no port (the scheme's default)": lambda port: "http://127.0.0.1",
    "look-alike host": lambda port: f"http://127.0.0.1.evil.test:{port}",
    "look-alike prefix": lambda port: f"http://evil-127.0.0.1:{port}",
    "another allowed host name": lambda port: f"http://localhost:{port}",
}


async def _handshake(url: str, member: Member, *, origin: str | None) -> None:
    client = await RoomClient.connect(
        url, member.circle_id, session_key=member.session_key, origin=origin
    )
    await client.close()  # only reached if the handshake succeeded


async def _wait_for_disconnects(circle_id: int, timeout: float = 5.0) -> None:
    """Let the server finish its disconnect handlers before it is stopped: a daphne
    told to stop while one runs hangs until it is killed (10 s)."""
    count = sync_to_async(RoomConnection.objects.filter(circle_id=circle_id).count)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await count() and loop.time() < deadline:
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_the_pages_own_origin_is_accepted(room_server, member):
    """A handshake whose Origin is the page's own (http://127.0.0.1:PORT) is accepted
    and gets the hello."""
    client = await RoomClient.connect(
        room_server.url, member.circle_id, session_key=member.session_key, origin=room_server.url
    )
    try:
        assert client.hello["type"] == "hello"
        assert client.hello["circle"]["id"] == member.circle_id
    finally:
        await client.close()
        await _wait_for_disconnects(member.circle_id)


@pytest.mark.asyncio
async def test_any_other_origin_is_refused_at_the_handshake(room_server, member):
    """A handshake whose Origin is not exactly the page's own (foreign, null, missing,
    other scheme, host or port, look-alike) is refused with HTTP 403 and never reaches
    the room, while the same cookie with the page's own origin gets in."""
    connections = sync_to_async(RoomConnection.objects.filter(circle_id=member.circle_id).count)
    wrong = []
    for case, make_origin in REFUSED_ORIGINS.items():
        origin = make_origin(room_server.port)
        try:
            await _handshake(room_server.url, member, origin=origin)
        except websockets.InvalidStatus as refused:
            if refused.response.status_code != 403:
                wrong.append(f"{case} ({origin!r}): HTTP {refused.response.status_code}")
        else:
            wrong.append(f"{case} ({origin!r}): accepted")
        # Refused before the consumer: no connection was ever registered for the room.
        if await connections():
            wrong.append(f"{case} ({origin!r}): reached the room")
            await _wait_for_disconnects(member.circle_id)
    assert not wrong, "Origins not refused with 403:\n" + "\n".join(wrong)

    # The same cookie and circle with the page's own origin do get in: the 403s were
    # the origin's doing.
    control = await RoomClient.connect(
        room_server.url, member.circle_id, session_key=member.session_key
    )
    try:
        assert control.hello["circle"]["id"] == member.circle_id
    finally:
        await control.close()
        await _wait_for_disconnects(member.circle_id)
