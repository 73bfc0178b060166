"""One circle's room served by two daphne processes that share Redis and PostgreSQL.

Members spread over both processes talk at once; each hears every message,
exactly once, and the stored sequence has no gap (protocol.md, Delivery).
Arrival order across processes may differ from seq order: the client orders by seq.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
import websockets
from asgiref.sync import sync_to_async

from circles.models import Circle, Message, RoomConnection
from circles.services.sessions import session_open
from tests.live_server import LiveServer
from tests.room_client import RoomClient, session_key_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

MEMBERS = 6
MESSAGES_EACH = 10  # 60 in all; the say limit is 20 per 30 s per member


@dataclass
class Circle6:
    circle_id: int
    people: list[tuple[str, str]]  # (name, session key)


@pytest.fixture
def circle_of_six(make_user, make_circle) -> Circle6:
    people = [make_user(display_name=f"Member {n}") for n in range(MEMBERS)]
    circle = make_circle(moderator=people[0], members=tuple(people[1:]))
    session_open(circle_id=circle.pk, user=people[0])
    return Circle6(circle.pk, [(p.display_name, session_key_for(p)) for p in people])


@dataclass
class Listener:
    """Everything one connection receives, in arrival order."""

    name: str
    server: LiveServer
    client: RoomClient
    live: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    closed: websockets.ConnectionClosed | None = None

    @property
    def history(self) -> list[dict]:
        return self.client.hello["history"]

    def seqs(self) -> set[int]:
        return {m["seq"] for m in self.history} | {m["seq"] for m in self.live}

    def has_client_id(self, client_id: str) -> bool:
        return any(m["client_id"] == client_id for m in self.live)

    async def listen(self) -> None:
        try:
            while True:
                frame = json.loads(await self.client.connection.recv())
                if frame["type"] == "message":
                    self.live.append(frame)
                elif frame["type"] == "error":
                    self.errors.append(frame)
        except websockets.ConnectionClosed as closed:
            self.closed = closed


async def _share(listener: Listener, text: str) -> None:
    """Say something and wait until it comes back."""
    client_id = await listener.client.say(text)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10  # target well under 1 s; generous for a 2-core machine
    while not listener.has_client_id(client_id):
        assert not listener.errors, f"{listener.name} was refused: {listener.errors}"
        assert listener.closed is None, f"{listener.name} lost its connection"
        assert loop.time() < deadline, f"{text!r} never came back"
        await asyncio.sleep(0.01)


async def _wait_for_disconnects(circle_id: int, timeout: float = 5.0) -> None:
    """Let the servers finish their disconnect handlers before they are stopped: a
    daphne told to stop while one runs hangs until it is killed (10 s per server)."""
    count = sync_to_async(RoomConnection.objects.filter(circle_id=circle_id).count)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await count() and loop.time() < deadline:
        await asyncio.sleep(0.05)


def _stored(circle_id: int) -> tuple[int, list[tuple[int, str]]]:
    last_seq = Circle.objects.get(pk=circle_id).last_seq
    rows = list(
        Message.objects.filter(circle_id=circle_id).order_by("seq").values_list("seq", "text")
    )
    return last_seq, rows


@pytest.mark.asyncio
async def test_members_on_two_processes_each_hear_every_message_exactly_once(
    two_servers, circle_of_six
):
    """Six members on two processes, sixty interleaved messages: every member holds
    exactly the stored messages, none twice, and the stored seqs run 1..N with no gap."""
    listeners = []
    for index, (name, key) in enumerate(circle_of_six.people):
        server = two_servers[index % 2]
        client = await RoomClient.connect(server.url, circle_of_six.circle_id, session_key=key)
        listeners.append(Listener(name, server, client))
    tasks = [asyncio.create_task(listener.listen()) for listener in listeners]
    try:
        # In rounds, everyone at once: the open floor's fair-share rules (no more than
        # four in a row, no more than twice one's share) never refuse anyone.
        for number in range(MESSAGES_EACH):
            await asyncio.gather(
                *(_share(listener, f"{listener.name} says #{number}") for listener in listeners)
            )

        last_seq, rows = await sync_to_async(_stored)(circle_of_six.circle_id)
        # Wait for the last broadcasts to land everywhere (target: well under 1 s).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline and any(len(lst.seqs()) < last_seq for lst in listeners):
            await asyncio.sleep(0.05)
    finally:
        for listener in listeners:
            await listener.client.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _wait_for_disconnects(circle_of_six.circle_id)

    # The store: the session's opening line plus every share, seqs 1..N without a gap.
    assert last_seq == MEMBERS * MESSAGES_EACH + 1
    assert [seq for seq, _text in rows] == list(range(1, last_seq + 1))
    assert len({text for _seq, text in rows}) == len(rows), "a message was stored twice"
    db_texts = [text for _seq, text in rows]

    for listener in listeners:
        where = f"{listener.name} on port {listener.server.port}"
        assert listener.errors == [], where
        live_seqs = [m["seq"] for m in listener.live]
        history_seqs = [m["seq"] for m in listener.history]
        # No duplicates: none twice live, none both in the hello's history and live.
        assert len(live_seqs) == len(set(live_seqs)), f"{where}: a seq arrived twice"
        assert not set(live_seqs) & set(history_seqs), f"{where}: history and live overlap"
        # No loss: exactly the stored messages.
        assert listener.seqs() == set(range(1, last_seq + 1)), (
            f"{where}: missing {sorted(set(range(1, last_seq + 1)) - listener.seqs())}"
        )
        # Ordered by seq (as the client does), the texts are the store's, in its order.
        held = sorted(listener.history + listener.live, key=lambda m: m["seq"])
        assert [m["text"] for m in held] == db_texts, where
