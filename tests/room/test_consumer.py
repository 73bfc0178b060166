"""The live room's consumer, end to end: real websockets to a real daphne process.

Every test here speaks the wire contract of docs/protocol.md (close codes, error
codes, frames) to this module's daphne (`room_server` below, one-second tick) and
checks what the database holds afterwards. ORM work runs in the test process
through sync_to_async; anything that must happen *inside* the server (sign-out,
leaving) goes through the server's own HTTP views, so it works on the embedded
default too, where the test process and daphne share neither cache nor channel
layer.

Timing: the machine may be a busy 2-core box, so "promptly" targets 2 s and the
assertions allow 5 s (PROMPT).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import pytest_asyncio
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.models import Session as DjangoSession
from django.urls import reverse
from django.utils.crypto import get_random_string

from circles.models import (
    Circle,
    Membership,
    MembershipStatus,
    Message,
    MessageKind,
    Role,
    RoomConnection,
    Session,
    SessionStatus,
)
from circles.selectors import guidelines_current
from circles.services.guidelines import guidelines_publish
from circles.services.memberships import membership_join, membership_remove
from circles.services.sessions import session_open
from tests.live_server import start_daphne
from tests.room_client import RoomClient, session_key_for

pytestmark = pytest.mark.django_db(transaction=True)

# What the issue asks for, written down here rather than read from the code.
SAY_LIMIT = 20  # say frames per member ...
LIMIT_WINDOW = 30  # ... per 30 s (a fixed window, counted in the server's cache)
OTHER_LIMIT = 60  # other counted frames (resume, open_session, ...) per 30 s
MAX_TEXT = 4000
HISTORY_SIZE = 50
RESUME_PAGE = 1000

# Target 2 s; assert 5 s, because the CI machine is a loaded 2-core box.
PROMPT = 5.0

# The test process and daphne share a cache and a channel layer only through Redis;
# on the embedded default these are deselected (make test-room-embedded: -m "not redis").
redis_only = pytest.mark.redis


# Helpers ---------------------------------------------------------------------------


class Live:
    """A RoomClient whose frames are read in the background, with arrival times, so a
    test can wait for frames on several sockets at once and see how a socket closed."""

    def __init__(self, client: RoomClient):
        self.client = client
        self.frames: list[dict] = list(client.frames)  # the hello
        loop = asyncio.get_running_loop()
        self.arrived: list[float] = [loop.time()] * len(self.frames)
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @property
    def hello(self) -> dict:
        return self.client.hello

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                raw = await self.client.connection.recv()
                self.frames.append(json.loads(raw))
                self.arrived.append(loop.time())
        except websockets.ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd else 1006
            self.closed.set()

    async def send(self, frame: dict) -> None:
        await self.client.send(frame)

    async def send_raw(self, data: str | bytes) -> None:
        await self.client.connection.send(data)

    async def say(self, text: str, **extra) -> str:
        return await self.client.say(text, **extra)

    def of_type(self, frame_type: str, *, since: int = 0, **match) -> list[dict]:
        return [
            frame
            for frame in self.frames[since:]
            if frame.get("type") == frame_type
            and all(frame.get(key) == value for key, value in match.items())
        ]

    def texts(self, *, since: int = 0) -> list[str]:
        return [frame["text"] for frame in self.of_type("message", since=since)]

    async def wait(
        self, frame_type: str, *, count: int = 1, since: int = 0, timeout: float = PROMPT, **match
    ) -> list[dict]:
        """At least `count` frames of this type (and these field values), after `since`."""
        deadline = time.monotonic() + timeout
        while True:
            closed = self.closed.is_set()  # before reading: frames come in before the close
            found = self.of_type(frame_type, since=since, **match)
            if len(found) >= count:
                return found
            if closed or time.monotonic() > deadline:
                state = f"closed {self.close_code}" if closed else "open"
                raise AssertionError(
                    f"{len(found)} of {count} {frame_type} frames matching {match} "
                    f"within {timeout} s (socket {state}); last of that type: "
                    f"{self.of_type(frame_type)[-3:]}; last frames: {self.frames[-3:]}"
                )
            await asyncio.sleep(0.01)

    async def one(self, frame_type: str, **kwargs) -> dict:
        return (await self.wait(frame_type, **kwargs))[0]

    async def wait_closed(self, timeout: float = PROMPT) -> int:
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"the socket was still open after {timeout} s") from None
        return self.close_code

    async def close(self) -> None:
        if not self.closed.is_set():
            await self.client.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class Room:
    """Opens sockets to the test server and closes them all at the end of the test."""

    def __init__(self, server):
        self.server = server
        self.sockets: list[Live] = []

    async def key(self, user) -> str:
        return await sync_to_async(session_key_for)(user)

    async def join(self, user, circle, *, session_key: str | None = None) -> Live:
        key = session_key or await self.key(user)
        client = await RoomClient.connect(self.server.url, circle.pk, session_key=key)
        live = Live(client)
        self.sockets.append(live)
        return live

    async def refused(self, circle_id: int, *, session_key: str | None) -> tuple[int, list]:
        """Connect, expecting the server to accept and then close: (close code, frames)."""
        client = await RoomClient.connect(
            self.server.url, circle_id, session_key=session_key, expect_hello=False
        )
        code = await client.closed_with(timeout=PROMPT)
        return code, client.frames

    async def close_all(self) -> None:
        for live in self.sockets:
            await live.close()


@pytest.fixture(scope="module")
def room_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """One daphne for this module (a one-second tick), instead of conftest's one per test:
    starting daphne for each of these tests would take most of the run. Each test leaves it
    idle before the tables are emptied (see `room`), so a flush never meets its work."""
    server = start_daphne(tmp_path_factory.mktemp("daphne"), extra_env={"ROOM_TICK_SECONDS": "1"})
    yield server
    server.stop()


@sync_to_async
def _connections_left() -> int:
    return RoomConnection.objects.count()


@sync_to_async
def _close_open_sessions() -> None:
    Session.objects.filter(status=SessionStatus.OPEN).update(status=SessionStatus.CLOSED)


@pytest_asyncio.fixture
async def room(room_server, transactional_db):
    """Sockets to the module's daphne. At the end: every socket closed, the server done
    with the disconnects, and no open session for its sweep to settle, so PostgreSQL can
    truncate the tables without the server holding locks (a deadlock otherwise)."""
    opened = Room(room_server)
    yield opened
    await opened.close_all()
    # A consumer that crashed (1011) never runs its disconnect: its row waits for the sweep.
    crashed = sum(live.close_code == 1011 for live in opened.sockets)
    deadline = time.monotonic() + 2.0
    while await _connections_left() > crashed and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await _close_open_sessions()
    await asyncio.sleep(0.1)  # a sweep that had already read them finishes


@pytest.fixture(autouse=True)
def _current_guidelines(transactional_db):
    """A transactional test's flush also empties the guidelines the migration published."""
    if guidelines_current() is None:
        guidelines_publish(text="Be kind. What is said in the circle stays in the circle.")


@pytest.fixture
def people(make_user, make_circle):
    """A moderator (alice), two members (bea, cara) and their circle, with no session."""
    alice = make_user(display_name="Alice")
    bea = make_user(display_name="Bea")
    cara = make_user(display_name="Cara")
    circle = make_circle(moderator=alice, members=(bea, cara))
    return alice, bea, cara, circle


@pytest.fixture
def in_session(people):
    """The same circle with a session open by alice (its system message has seq 1)."""
    alice, _bea, _cara, circle = people
    session_open(circle_id=circle.pk, user=alice)
    return people


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def post_to_server(server, path: str, session_key: str) -> int:
    """POST a form to the server as this signed-in session (with a CSRF pair); the status."""
    token = get_random_string(32)
    request = urllib.request.Request(  # noqa: S310 - our own test server
        f"{server.url}{path}",
        data=b"",
        method="POST",
        headers={
            "Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}; "
            f"{settings.CSRF_COOKIE_NAME}={token}",
            "X-CSRFToken": token,
        },
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def rate_window() -> int:
    return int(time.time() // LIMIT_WINDOW)


async def fresh_rate_window(needed: float = 5.0) -> None:
    """The limits count in fixed 30 s windows: start a burst with time left in one, so
    the burst's frames all fall in the same window and the counts come out exact (the
    long bursts also check whether a slow server crossed into the next window)."""
    left = LIMIT_WINDOW - time.time() % LIMIT_WINDOW
    if left < needed:
        await asyncio.sleep(left + 0.1)


@sync_to_async
def rows(**filters) -> list[Message]:
    return list(Message.objects.filter(**filters).order_by("seq"))


@sync_to_async
def count(**filters) -> int:
    return Message.objects.filter(**filters).count()


@sync_to_async
def latest_seq(circle) -> int:
    return Circle.objects.get(pk=circle.pk).last_seq


# Close codes -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_not_signed_in_is_closed_4401(room, people):
    """A socket with no session cookie, or one the server doesn't know, is accepted and then
    closed with 4401, before any hello."""
    *_, circle = people
    for session_key in (None, "x" * 32):
        code, frames = await room.refused(circle.pk, session_key=session_key)
        assert (session_key, code, frames) == (session_key, 4401, [])


@pytest.mark.asyncio
async def test_not_a_member_is_closed_4403(room, people, make_user):
    """Someone with no active membership (none, removed, banned or pending) is closed with
    4403."""
    *_, circle = people
    for status in (None, *(s for s in MembershipStatus if s != MembershipStatus.ACTIVE)):
        outsider = await sync_to_async(make_user)()
        if status is not None:
            await sync_to_async(Membership.objects.create)(
                circle=circle, user=outsider, status=status
            )
        code, frames = await room.refused(circle.pk, session_key=await room.key(outsider))
        assert (status, code, frames) == (status, 4403, [])


@pytest.mark.asyncio
async def test_no_such_circle_is_closed_4404(room, people):
    """A circle id that doesn't exist gets 4404."""
    alice, *_ = people
    code, frames = await room.refused(987_654_321, session_key=await room.key(alice))
    assert code == 4404
    assert frames == []


@pytest.mark.asyncio
async def test_guidelines_not_accepted_is_closed_4428(room, people, make_user):
    """An active member who hasn't accepted the current guidelines gets 4428."""
    *_, circle = people
    newcomer = await sync_to_async(make_user)(accepted=False)
    await sync_to_async(Membership.objects.create)(
        circle=circle, user=newcomer, status=MembershipStatus.ACTIVE
    )
    code, frames = await room.refused(circle.pk, session_key=await room.key(newcomer))
    assert code == 4428
    assert frames == []


@pytest.mark.asyncio
async def test_sign_out_closes_the_socket_4408(room, room_server, people):
    """Signing out (the server's own logout view) closes that sign-in's open socket with
    4408 within a few seconds, while another member's socket stays open."""
    _alice, bea, cara, circle = people
    key = await room.key(bea)
    socket = await room.join(bea, circle, session_key=key)
    other = await room.join(cara, circle)
    status = await asyncio.to_thread(post_to_server, room_server, reverse("account_logout"), key)
    assert status == 302
    assert not await sync_to_async(DjangoSession.objects.filter(session_key=key).exists)()
    # The issue asks for ~2-3 s; the socket hears of it at once through its user group.
    assert await socket.wait_closed(timeout=3.0) == 4408
    await asyncio.sleep(0.2)
    assert not other.closed.is_set()


@pytest.mark.asyncio
@pytest.mark.redis
@redis_only
async def test_sign_out_in_another_process_closes_the_socket_4408(room, people):
    """A sign-out handled by another process (session deleted, user_logged_out sent) closes
    the member's socket on daphne with 4408 within a few seconds."""
    _alice, bea, _cara, circle = people
    key = await room.key(bea)
    socket = await room.join(bea, circle, session_key=key)

    @sync_to_async
    def sign_out():
        store = DjangoSession.get_session_store_class()(session_key=key)
        store.delete()
        user_logged_out.send(sender=get_user_model(), request=None, user=bea)

    await sign_out()
    assert await socket.wait_closed(timeout=3.0) == 4408


@pytest.mark.asyncio
async def test_sixth_connection_replaces_the_oldest_4409(room, in_session):
    """A member's sixth open socket closes their oldest with 4409; the other five stay
    open and still receive messages."""
    _alice, bea, cara, circle = in_session
    key = await room.key(bea)
    sockets = []
    for _ in range(6):
        sockets.append(await room.join(bea, circle, session_key=key))
        await asyncio.sleep(0.01)  # distinct connected_at, so "oldest" is well defined
    assert await sockets[0].wait_closed() == 4409
    speaker = await room.join(cara, circle)
    await speaker.say("still here?")
    for socket in sockets[1:]:
        await socket.one("message", text="still here?")
        assert not socket.closed.is_set()


# Error codes -----------------------------------------------------------------------


UNREADABLE = [
    "this is not json",
    b'{"type": "say"}',  # a binary frame, whatever it holds
    "[1, 2, 3]",
    '"say"',
    "42",
    "null",
    '{"text": "no type"}',
    '{"type": 5}',
    '{"type": null}',
]


@pytest.mark.asyncio
async def test_unreadable_frames_are_invalid(room, in_session):
    """Each frame that isn't a JSON object with a string type (bad JSON, binary, array,
    scalar, no type) gets `invalid`; the socket keeps working and nothing is stored."""
    _alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    for raw in UNREADABLE:
        await socket.send_raw(raw)
    errors = await socket.wait("error", count=len(UNREADABLE))
    assert [(e["code"], "ref" in e, bool(e["detail"])) for e in errors] == [
        ("invalid", False, True)
    ] * len(UNREADABLE)
    await socket.send({"type": "resume", "after": 0})
    await socket.one("resumed", after=0)
    assert not socket.closed.is_set()
    assert await count(circle=circle) == 1  # only the session's opening line


@pytest.mark.asyncio
async def test_unknown_type_is_refused(room, in_session):
    """A frame of a type the room doesn't know gets `unknown_type`."""
    _alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    await socket.send({"type": "dance", "client_id": str(uuid.uuid4())})
    error = await socket.one("error")
    assert error["code"] == "unknown_type"
    assert not socket.closed.is_set()


def _cid(number: int) -> str:
    return f"c0ffee00-0000-4000-8000-{number:012d}"


# A say with missing or wrong fields, and the ref its error should carry.
MALFORMED_SAYS = [
    ({"client_id": _cid(1)}, _cid(1)),  # no text
    ({"text": 123, "client_id": _cid(2)}, _cid(2)),
    ({"text": ["a"], "client_id": _cid(3)}, _cid(3)),
    ({"text": None, "client_id": _cid(4)}, _cid(4)),
    ({"text": "hi", "client_id": "not-a-uuid"}, None),  # not a client_id: no ref echoed
    ({"text": "hi", "client_id": 12345}, None),  # not a string: nothing to refer to
    ({"text": "hi"}, None),  # no client_id
    ({"text": "", "client_id": _cid(5)}, _cid(5)),
    ({"text": "  \n\t ", "client_id": _cid(6)}, _cid(6)),
    ({"text": "\x00\x00", "client_id": _cid(7)}, _cid(7)),
    ({"text": "hi", "kind": "shout", "client_id": _cid(8)}, _cid(8)),
    ({"text": "hi", "kind": "system", "client_id": _cid(9)}, _cid(9)),
    ({"text": "hi", "kind": 7, "client_id": _cid(10)}, _cid(10)),
]


@pytest.mark.asyncio
async def test_malformed_says_are_invalid(room, in_session):
    """Each say with missing or wrong fields (text, client_id, kind) gets `invalid`, with
    ref = its client_id when that is a UUID, and nothing is stored."""
    _alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    for frame, _ref in MALFORMED_SAYS:
        await socket.send({"type": "say", **frame})
    errors = await socket.wait("error", count=len(MALFORMED_SAYS))
    assert [(e["code"], e.get("ref")) for e in errors] == [
        ("invalid", ref) for _frame, ref in MALFORMED_SAYS
    ]
    assert await count(circle=circle, author=bea) == 0
    assert await latest_seq(circle) == 1


@pytest.mark.asyncio
async def test_resume_with_bad_after_is_invalid(room, in_session):
    """A resume whose `after` is missing or isn't a non-negative integer (negative, string,
    float, bool, null) gets `invalid` and replays nothing."""
    _alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    mark = len(socket.frames)
    bad = [{}, {"after": -1}, {"after": "3"}, {"after": 1.5}, {"after": True}, {"after": None}]
    for fields in bad:
        await socket.send({"type": "resume", **fields})
    errors = await socket.wait("error", since=mark, count=len(bad))
    assert [e["code"] for e in errors] == ["invalid"] * len(bad)
    await asyncio.sleep(0.2)
    assert socket.of_type("message", since=mark) == []
    assert socket.of_type("resumed", since=mark) == []


@pytest.mark.asyncio
async def test_text_over_4000_characters_is_too_long(room, in_session):
    """A say of 4,001 characters gets `too_long` (ref = client_id) and is not stored; one of
    4,000 is stored and broadcast whole."""
    _alice, bea, cara, circle = in_session
    socket = await room.join(bea, circle)
    listener = await room.join(cara, circle)
    long_id = await socket.say("x" * (MAX_TEXT + 1))
    error = await socket.one("error", ref=long_id)
    assert error["code"] == "too_long"
    fits_id = await socket.say("y" * MAX_TEXT)
    heard = await listener.one("message", client_id=fits_id)
    assert heard["text"] == "y" * MAX_TEXT
    stored = await rows(circle=circle, author=bea)
    assert [(str(m.client_id), len(m.text)) for m in stored] == [(fits_id, MAX_TEXT)]


@pytest.mark.asyncio
async def test_more_than_20_says_in_30_seconds_are_rate_limited(room, in_session):
    """Past 20 says in the window, each say gets `rate_limited` with retry_after > 0 (ref =
    its client_id) and stores nothing."""
    _alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    await fresh_rate_window()
    first_window = rate_window()
    sent = [await socket.say(f"line {number}") for number in range(SAY_LIMIT + 5)]
    await socket.wait("message", count=SAY_LIMIT, timeout=15)
    assert rate_window() == first_window, "25 says took the server over 30 s"
    errors = await socket.wait("error", count=5)
    await asyncio.sleep(0.3)  # nothing more should come
    errors = socket.of_type("error")
    assert [error["code"] for error in errors] == ["rate_limited"] * 5
    assert [error["ref"] for error in errors] == sent[SAY_LIMIT:]
    for error in errors:
        assert 0 < error["retry_after"] <= LIMIT_WINDOW
    stored = await rows(circle=circle, author=bea)
    assert [str(m.client_id) for m in stored] == sent[:SAY_LIMIT]
    assert sorted(frame["client_id"] for frame in socket.of_type("message")) == sorted(
        sent[:SAY_LIMIT]
    )


@pytest.mark.asyncio
async def test_say_without_an_open_session_is_refused(room, people):
    """A say when no session is open gets `no_open_session` (ref = client_id); the draft is
    not stored."""
    _alice, bea, _cara, circle = people
    socket = await room.join(bea, circle)
    assert socket.hello["session"] is None
    client_id = await socket.say("is anyone here?")
    error = await socket.one("error", ref=client_id)
    assert error["code"] == "no_open_session"
    assert await count(circle=circle) == 0
    assert await latest_seq(circle) == 0


@pytest.mark.asyncio
async def test_facilitation_note_by_a_non_facilitator_is_forbidden(room, in_session):
    """A facilitation note from a member who isn't the session's facilitator gets
    `forbidden` and isn't stored, while the facilitator's own note goes out."""
    alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    facilitator = await room.join(alice, circle)
    client_id = await socket.say("let's breathe", kind="facilitation")
    error = await socket.one("error", ref=client_id)
    assert error["code"] == "forbidden"
    assert await count(circle=circle, author=bea) == 0
    note_id = await facilitator.say("let's breathe together", kind="facilitation")
    heard = await socket.one("message", client_id=note_id)
    assert heard["kind"] == MessageKind.FACILITATION
    assert heard["author"] == {"member_id": alice.pk, "name": "Alice"}


@pytest.mark.asyncio
async def test_plain_member_may_not_open_or_close_the_session(room, people):
    """open_session and close_session from a plain member (neither moderator nor
    facilitator) each get `forbidden`, and the session's state doesn't change."""
    alice, bea, _cara, circle = people
    socket = await room.join(bea, circle)
    await socket.send({"type": "open_session"})
    error = await socket.one("error")
    assert error["code"] == "forbidden"
    assert not await sync_to_async(Session.objects.filter(circle=circle).exists)()
    assert await count(circle=circle) == 0

    await sync_to_async(session_open)(circle_id=circle.pk, user=alice)
    await socket.send({"type": "close_session"})
    errors = await socket.wait("error", count=2)
    assert errors[1]["code"] == "forbidden"
    statuses = await sync_to_async(list)(
        Session.objects.filter(circle=circle).values_list("status", flat=True)
    )
    assert statuses == [SessionStatus.OPEN]
    assert await count(circle=circle) == 1


# Visibility ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_messages_never_reach_a_non_member(room, in_session, make_user, make_circle):
    """A non-member's socket to the circle is closed (4403) before any message, and their
    socket in another circle never carries this circle's messages."""
    _alice, bea, cara, circle = in_session
    outsider = await sync_to_async(make_user)()
    elsewhere = await sync_to_async(make_circle)(moderator=outsider)
    outside = await room.join(outsider, elsewhere)
    code, frames = await room.refused(circle.pk, session_key=await room.key(outsider))
    assert code == 4403
    assert frames == []
    speaker = await room.join(bea, circle)
    listener = await room.join(cara, circle)
    await speaker.say("for this circle only")
    await listener.one("message", text="for this circle only")
    await asyncio.sleep(0.5)
    assert outside.of_type("message") == []


@pytest.mark.asyncio
async def test_removed_member_is_disconnected_and_hears_nothing_after(room, in_session):
    """A member removed mid-session is closed with 4403 promptly and receives none of the
    messages posted after the removal."""
    alice, bea, cara, circle = in_session
    speaker = await room.join(bea, circle)
    removed = await room.join(cara, circle)
    moderator = await room.join(alice, circle)
    await speaker.say("before the removal")
    await removed.one("message", text="before the removal")

    membership = await sync_to_async(Membership.objects.get)(circle=circle, user=cara)
    await sync_to_async(membership_remove)(actor=alice, membership=membership, reason="test")
    removed_at = time.monotonic()
    after = [f"after the removal {number}" for number in range(4)]
    for number, text in enumerate(after):  # two speakers, so the floor's cooldown stays out
        await (speaker if number % 2 == 0 else moderator).say(text)

    code = await removed.wait_closed(timeout=PROMPT)  # the issue asks for 2 s
    took = time.monotonic() - removed_at
    assert code == 4403
    assert took < PROMPT
    for text in after:  # they were really sent, and the room heard them
        await moderator.one("message", text=text)
    assert set(removed.texts()) & set(after) == set()
    assert removed.texts() == ["before the removal"]


@pytest.mark.asyncio
@pytest.mark.redis
@redis_only
async def test_removed_member_is_disconnected_without_any_traffic(room, in_session):
    """A member removed by another process is closed with 4403 within a couple of seconds
    even when nobody says anything."""
    alice, _bea, cara, circle = in_session
    removed = await room.join(cara, circle)
    membership = await sync_to_async(Membership.objects.get)(circle=circle, user=cara)
    await sync_to_async(membership_remove)(actor=alice, membership=membership, reason="test")
    assert await removed.wait_closed(timeout=PROMPT) == 4403  # target 2 s


@pytest.mark.asyncio
async def test_leaving_closes_the_socket(room, room_server, in_session):
    """A member who leaves the circle (the server's leave view) has their socket closed
    with 4403."""
    _alice, bea, _cara, circle = in_session
    key = await room.key(bea)
    socket = await room.join(bea, circle, session_key=key)
    path = reverse("circles:leave", args=[circle.slug])
    status = await asyncio.to_thread(post_to_server, room_server, path, key)
    assert status == 302
    assert not await sync_to_async(Membership.objects.filter(circle=circle, user=bea).exists)()
    assert await socket.wait_closed(timeout=PROMPT) == 4403


@pytest.mark.asyncio
async def test_late_joiner_sees_nothing_from_before_they_joined(room, in_session, make_user):
    """A member who joined after messages were posted sees none of them, in the hello's
    history or through resume, but sees what came after."""
    _alice, bea, _cara, circle = in_session
    speaker = await room.join(bea, circle)
    before = [await speaker.say(f"before {number}") for number in range(3)]
    await speaker.wait("message", count=3)
    newcomer = await sync_to_async(make_user)()
    membership = await sync_to_async(membership_join)(circle=circle, user=newcomer)
    assert membership.visible_after_seq == 4

    late = await room.join(newcomer, circle)
    assert late.hello["history"] == []
    assert late.hello["seq"] == 4
    after = await speaker.say("after you joined")
    heard = await late.one("message", client_id=after)
    assert heard["seq"] == 5

    mark = len(late.frames)
    await late.send({"type": "resume", "after": 0})
    resumed = await late.one("resumed", since=mark)
    replayed = late.of_type("message", since=mark)
    assert [frame["seq"] for frame in replayed] == [5]
    assert resumed == {"type": "resumed", "after": 0, "count": 1, "more": False}
    assert set(before) & {frame["client_id"] for frame in late.of_type("message")} == set()

    again = await room.join(newcomer, circle)
    assert [frame["seq"] for frame in again.hello["history"]] == [5]


# Delivery --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_seq_increases_without_gaps_across_members(room, in_session):
    """Messages from different members, sent at once, get seq 2, 3, 4 ... with no gaps,
    stored and broadcast alike."""
    alice, bea, cara, circle = in_session
    a = await room.join(alice, circle)
    b = await room.join(bea, circle)
    listener = await room.join(cara, circle)
    # Three each: the open floor's cooldown starts at a fourth share in a row.
    await asyncio.gather(
        *(a.say(f"alice {n}") for n in range(3)), *(b.say(f"bea {n}") for n in range(3))
    )
    heard = await listener.wait("message", count=6)
    assert sorted(frame["seq"] for frame in heard) == list(range(2, 8))
    stored = await rows(circle=circle)
    assert [m.seq for m in stored] == list(range(1, 8))
    assert await latest_seq(circle) == 7
    by_seq = {m.seq: (m.author_id, m.text) for m in stored}
    for frame in heard:
        assert by_seq[frame["seq"]] == (frame["author"]["member_id"], frame["text"])
    # Each author's own messages keep their sending order.
    alice_seqs = [m.seq for m in stored if m.author_id == alice.pk]
    assert [by_seq[s][1] for s in alice_seqs] == [f"alice {n}" for n in range(3)]


@pytest.mark.asyncio
async def test_say_is_idempotent_on_client_id(room, in_session):
    """Resending a say with the same client_id answers with the stored message (same id and
    seq, even after the session closed) and stores nothing twice."""
    _alice, bea, cara, circle = in_session
    socket = await room.join(bea, circle)
    listener = await room.join(cara, circle)
    client_id = await socket.say("only once, please")
    first = await socket.one("message", client_id=client_id)
    await listener.one("message", client_id=client_id)

    await socket.say("a different text this time", client_id=client_id)
    answers = await socket.wait("message", count=2, client_id=client_id)
    assert answers[1] == first
    assert await count(circle=circle, client_id=client_id) == 1

    await _close_open_sessions()  # the session is over: a new share would be refused
    await socket.say("only once, please", client_id=client_id)
    answers = await socket.wait("message", count=3, client_id=client_id)
    assert answers[2] == first
    await asyncio.sleep(0.3)
    assert len(listener.of_type("message", client_id=client_id)) == 1  # no second broadcast
    assert await count(circle=circle, client_id=client_id) == 1
    assert await count(circle=circle, author=bea) == 1


@pytest.mark.asyncio
async def test_resume_replays_exactly_what_came_after(room, in_session):
    """resume after=N replays the visible messages with seq > N in order, then `resumed`
    with their count and more=false."""
    _alice, bea, cara, circle = in_session
    speaker = await room.join(bea, circle)
    for number in range(5):
        await speaker.say(f"line {number}")
    await speaker.wait("message", count=5)  # seq 2..6
    reader = await room.join(cara, circle)
    mark = len(reader.frames)
    await reader.send({"type": "resume", "after": 3})
    resumed = await reader.one("resumed", since=mark)
    replayed = reader.of_type("message", since=mark)
    assert [(frame["seq"], frame["text"]) for frame in replayed] == [
        (4, "line 2"),
        (5, "line 3"),
        (6, "line 4"),
    ]
    assert resumed == {"type": "resumed", "after": 3, "count": 3, "more": False}

    mark = len(reader.frames)
    await reader.send({"type": "resume", "after": 6})
    resumed = await reader.one("resumed", since=mark)
    assert reader.of_type("message", since=mark) == []
    assert resumed == {"type": "resumed", "after": 6, "count": 0, "more": False}


@sync_to_async
def fill_circle(circle, author, how_many: int) -> int:
    """Store `how_many` more shares in the circle's open session, as message_post would
    number them; the circle's last seq afterwards."""
    circle = Circle.objects.get(pk=circle.pk)
    session = Session.objects.get(circle=circle, status=SessionStatus.OPEN)
    start = circle.last_seq
    Message.objects.bulk_create(
        Message(
            circle=circle,
            session=session,
            seq=start + number,
            author=author,
            text=f"filler {start + number}",
            kind=MessageKind.SHARE,
            client_id=uuid.uuid4(),
        )
        for number in range(1, how_many + 1)
    )
    Circle.objects.filter(pk=circle.pk).update(last_seq=start + how_many)
    return start + how_many


@pytest.mark.asyncio
async def test_hello_and_resume_page_through_many_messages(room, in_session):
    """With 1,006 messages, hello carries the last 50 oldest first and seq 1006; resume pages
    at 1,000 (more=true) and the second call brings the last 6 (more=false)."""
    _alice, bea, cara, circle = in_session
    last = await fill_circle(circle, bea, 1005)
    assert last == 1006
    reader = await room.join(cara, circle)
    history = reader.hello["history"]
    assert [frame["seq"] for frame in history] == list(range(last - HISTORY_SIZE + 1, last + 1))
    assert history[-1]["text"] == "filler 1006"
    assert reader.hello["seq"] == last

    mark = len(reader.frames)
    await reader.send({"type": "resume", "after": 0})
    resumed = await reader.one("resumed", since=mark, timeout=15)
    assert resumed == {"type": "resumed", "after": 0, "count": RESUME_PAGE, "more": True}
    page = reader.of_type("message", since=mark)
    assert [frame["seq"] for frame in page] == list(range(1, RESUME_PAGE + 1))

    mark = len(reader.frames)
    await reader.send({"type": "resume", "after": RESUME_PAGE})
    resumed = await reader.one("resumed", since=mark)
    assert resumed == {"type": "resumed", "after": RESUME_PAGE, "count": 6, "more": False}
    page = reader.of_type("message", since=mark)
    assert [frame["seq"] for frame in page] == list(range(RESUME_PAGE + 1, last + 1))


@pytest.mark.asyncio
async def test_hello_describes_the_room(room, in_session):
    """hello carries the protocol, the member, the circle, the open session, an open floor,
    the presence, the history (the opening line) and the latest seq."""
    alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    hello = socket.hello
    assert hello["protocol"] == 1
    assert hello["you"] == {"member_id": bea.pk, "name": "Bea", "role": Role.MEMBER}
    assert hello["circle"] == {"id": circle.pk, "name": circle.name}
    assert hello["session"]["status"] == SessionStatus.OPEN
    assert hello["session"]["facilitator"] == {"member_id": alice.pk, "name": "Alice"}
    assert hello["floor"]["type"] == "floor"
    assert hello["floor"]["mode"] == "open"
    assert {"member_id": bea.pk, "name": "Bea", "role": Role.MEMBER, "hand_raised": False} in (
        hello["presence"]["members"]
    )
    assert [(m["seq"], m["kind"], m["author"]) for m in hello["history"]] == [
        (1, MessageKind.SYSTEM, None)
    ]
    assert hello["seq"] == 1

    facilitator = await room.join(alice, circle)
    assert facilitator.hello["you"]["role"] == "facilitator"


@pytest.mark.asyncio
async def test_tick_carries_the_latest_seq(room, in_session):
    """A tick arrives about every second (the test server's setting) with the circle's
    latest seq."""
    _alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    tick = await socket.one("tick", timeout=PROMPT)
    assert tick["seq"] == 1
    assert "v" in tick
    client_id = await socket.say("one more")
    heard = await socket.one("message", client_id=client_id)
    mark = len(socket.frames)
    tick = await socket.one("tick", since=mark, timeout=PROMPT)
    assert tick["seq"] == heard["seq"] == 2 == await latest_seq(circle)


# Session frames --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_open_session_broadcasts_session_and_system_message(room, people):
    """open_session by a moderator broadcasts `session` {open, facilitator} and a system
    message; a second open_session while it's open gets an error and opens nothing."""
    alice, bea, _cara, circle = people
    moderator = await room.join(alice, circle)
    member = await room.join(bea, circle)
    await moderator.send({"type": "open_session"})
    session = await member.one("session")
    assert session["status"] == SessionStatus.OPEN
    assert session["facilitator"] == {"member_id": alice.pk, "name": "Alice"}
    line = await member.one("message")
    assert line["kind"] == MessageKind.SYSTEM
    assert line["author"] is None
    assert line["seq"] == 1
    assert line["session"] == session["id"]
    assert "Alice" in line["text"]

    await moderator.send({"type": "open_session"})
    error = await moderator.one("error")
    assert error["code"] == "invalid"
    sessions = await sync_to_async(list)(
        Session.objects.filter(circle=circle).values_list("pk", "status", "facilitator_id")
    )
    assert sessions == [(session["id"], SessionStatus.OPEN, alice.pk)]
    assert await count(circle=circle) == 1


@pytest.mark.asyncio
async def test_close_session_by_the_facilitator_broadcasts_closed(room, in_session):
    """close_session by the facilitator broadcasts `session` closed and a system message;
    closing again gets `no_open_session`."""
    alice, bea, _cara, circle = in_session
    facilitator = await room.join(alice, circle)
    member = await room.join(bea, circle)
    await facilitator.send({"type": "close_session"})
    session = await member.one("session")
    assert session["status"] == SessionStatus.CLOSED
    assert session["facilitator"] == {"member_id": alice.pk, "name": "Alice"}
    line = await member.one("message")
    assert (line["kind"], line["seq"], line["author"]) == (MessageKind.SYSTEM, 2, None)
    stored = await sync_to_async(Session.objects.get)(pk=session["id"])
    assert stored.status == SessionStatus.CLOSED
    assert stored.closed_by_id == alice.pk

    await facilitator.send({"type": "close_session"})
    error = await facilitator.one("error")
    assert error["code"] == "no_open_session"


# Bad input -------------------------------------------------------------------------


def malformed_frames(how_many: int) -> list[tuple[str | bytes, str]]:
    """A mix of bad frames and the error code each should get, given the limits: say-typed
    and resume-typed frames are counted (20 and 60 per window), the rest are not."""
    kinds = [
        ("not json at all {", None),
        (b"\x00\x01binary", None),
        ("[1, 2]", None),
        ('{"no": "type"}', None),
        ('{"type": 7}', None),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "say", "text": 5, "client_id": "bad"}', "say"),
        ('{"type": "say", "text": "hi", "client_id": "not-a-uuid"}', "say"),
        ('{"type": "resume", "after": -5}', "resume"),
        ('{"type": "resume", "after": "ten"}', "resume"),
    ]
    says = resumes = 0
    frames = []
    for number in range(how_many):
        raw, what = kinds[number % len(kinds)]
        if what is None:
            code = "invalid"
        elif what == "say":
            says += 1
            code = "invalid" if says <= SAY_LIMIT else "rate_limited"
        elif what == "resume":
            resumes += 1
            code = "invalid" if resumes <= OTHER_LIMIT else "rate_limited"
        else:
            code = what
        frames.append((raw, code))
    return frames


@pytest.mark.asyncio
async def test_thousand_malformed_frames_each_get_an_error(room, in_session):
    """1,000 malformed frames on one socket each get an error frame (in order, with the
    code the limits predict), store nothing, and the room keeps delivering afterwards."""
    _alice, bea, cara, circle = in_session
    noisy = await room.join(bea, circle)
    speaker = await room.join(cara, circle)
    plan = malformed_frames(1000)
    await fresh_rate_window(needed=8)
    first_window = rate_window()
    for raw, _code in plan:
        await noisy.send_raw(raw)
    errors = await noisy.wait("error", count=len(plan), timeout=60)
    codes = [error["code"] for error in errors]
    assert len(codes) == len(plan)
    if rate_window() == first_window:
        assert codes == [code for _raw, code in plan]
    else:  # a very slow server crossed into the next window: its counts started again
        for (raw, planned), code in zip(plan, codes, strict=True):
            counted = isinstance(raw, str) and ('"say"' in raw or '"resume"' in raw)
            allowed = {"invalid", "rate_limited"} if counted else {planned}
            assert code in allowed, (raw, code)
    assert not noisy.closed.is_set()

    client_id = await speaker.say("still listening?")
    await noisy.one("message", client_id=client_id)
    assert await count(circle=circle, author=bea) == 0
    assert await latest_seq(circle) == 2


@pytest.mark.asyncio
async def test_deeply_nested_json_is_invalid(room, in_session):
    """A frame of deeply nested JSON (well under the size limit) gets `invalid`, and the
    socket stays open."""
    _alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    await socket.send_raw("[" * 100_000 + "]" * 100_000)
    error = await socket.one("error")
    assert error["code"] == "invalid"
    assert not socket.closed.is_set()


@pytest.mark.asyncio
async def test_say_with_an_unhashable_kind_is_invalid(room, in_session):
    """A say whose kind is a list or an object gets `invalid` (ref = its client_id), and
    the socket stays open."""
    _alice, bea, _cara, circle = in_session
    socket = await room.join(bea, circle)
    first = await socket.say("hi", kind=["share"])
    second = await socket.say("hi", kind={"a": 1})
    errors = await socket.wait("error", count=2)
    assert [(e["code"], e["ref"]) for e in errors] == [("invalid", first), ("invalid", second)]
    assert not socket.closed.is_set()
    assert await count(circle=circle, author=bea) == 0


@pytest.mark.asyncio
async def test_lone_surrogates_are_invalid(room, in_session):
    """A say holding a lone surrogate (valid JSON, not encodable as UTF-8) in its text or
    its client_id gets `invalid`, stores nothing, and the socket stays open."""
    _alice, bea, _cara, circle = in_session
    cases = [("broken \\ud800 text", _cid(11)), ("fine text", "\\udc00")]
    for text, client_id in cases:
        socket = await room.join(bea, circle)
        await socket.send_raw(f'{{"type": "say", "text": "{text}", "client_id": "{client_id}"}}')
        error = await socket.one("error")
        assert (text, error["code"]) == (text, "invalid")
        assert not socket.closed.is_set()
    assert await count(circle=circle, author=bea) == 0
    assert await latest_seq(circle) == 1


@pytest.mark.asyncio
async def test_two_mebibyte_frame_drops_only_that_connection(room, room_server, in_session):
    """A 2 MiB frame makes daphne drop that connection (1009 or 1006), while a fresh
    connection works afterwards."""
    _alice, bea, cara, circle = in_session
    big = await room.join(bea, circle)
    await big.send_raw("x" * (2 * 1024 * 1024))
    assert await big.wait_closed(timeout=10) in {1009, 1006}
    assert room_server.process.poll() is None

    again = await room.join(bea, circle)
    listener = await room.join(cara, circle)
    client_id = await again.say("back again")
    await listener.one("message", client_id=client_id)


# Flood -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_flood_is_rate_limited_and_others_still_get_through(room, in_session):
    """1,000 says in about a second from one member: all past the 20th are refused with
    rate_limited, at most 20 are stored, and another member's messages sent meanwhile
    reach a third member promptly."""
    alice, bea, cara, circle = in_session
    flooder = await room.join(alice, circle)
    speaker = await room.join(bea, circle)
    listener = await room.join(cara, circle)
    await fresh_rate_window(needed=8)
    first_window = rate_window()
    loop = asyncio.get_running_loop()

    async def flood() -> None:
        for batch in range(20):
            for number in range(50):
                await flooder.say(f"flood {batch}-{number}")
            await asyncio.sleep(0.05)

    sent_at: dict[str, float] = {}

    async def speak() -> None:
        # Three, spread over the flood: a fourth could meet the floor's fair-share cooldown.
        for number in range(3):
            await asyncio.sleep(0.3)
            text = f"calm words {number}"
            sent_at[text] = loop.time()
            await speaker.say(text)

    await asyncio.gather(flood(), speak())
    for text, sent in sent_at.items():
        await listener.one("message", text=text, timeout=15)
        index = next(
            i
            for i, frame in enumerate(listener.frames)
            if frame.get("type") == "message" and frame.get("text") == text
        )
        # Target 2 s; assert 5 s (a loaded 2-core machine).
        assert listener.arrived[index] - sent < PROMPT, text

    # Every say is answered: refused (rate_limited, or the open floor's cooldown) or stored.
    deadline = time.monotonic() + 60
    while True:
        stored = await count(circle=circle, author=alice)
        refused = flooder.of_type("error")
        if stored + len(refused) >= 1000 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    windows = rate_window() - first_window + 1  # 1 unless the server was very slow
    limited = [error for error in refused if error["code"] == "rate_limited"]
    others = [error for error in refused if error["code"] != "rate_limited"]
    assert stored + len(refused) == 1000
    assert stored <= SAY_LIMIT * windows
    assert len(limited) >= 1000 - SAY_LIMIT * windows
    if windows == 1:
        assert stored <= SAY_LIMIT
        assert len(limited) == 1000 - SAY_LIMIT
    assert all(error["retry_after"] > 0 for error in refused)
    assert {error["code"] for error in others} <= {"cooldown"}
    assert await count(circle=circle, author=bea) == 3


# Presence --------------------------------------------------------------------------


def present(*people_and_roles) -> list[dict]:
    return [
        {"member_id": person.pk, "name": person.display_name, "role": role, "hand_raised": False}
        for person, role in people_and_roles
    ]


@pytest.mark.asyncio
async def test_presence_follows_who_is_connected(room, people):
    """presence lists the connected members (id, name, role, hand down) and is sent again
    when someone joins or leaves."""
    alice, bea, _cara, circle = people
    moderator = await room.join(alice, circle)
    assert moderator.hello["presence"]["members"] == present((alice, Role.MODERATOR))

    mark = len(moderator.frames)
    member = await room.join(bea, circle)
    both = present((alice, Role.MODERATOR), (bea, Role.MEMBER))
    await moderator.one("presence", since=mark, members=both)
    assert member.hello["presence"]["members"] == both

    mark = len(moderator.frames)
    await member.close()
    await moderator.one("presence", since=mark, members=present((alice, Role.MODERATOR)))
