"""The room under faults: a daphne process killed mid-conversation, and Redis
restarted mid-conversation, with both channels-redis layers.

protocol.md, Delivery: every message gets the next seq, stored before it is
broadcast; delivery through the channel layer is at most once; the stored
sequence plus `tick` and `resume` make the room lossless, also across a Redis
restart. The clients here behave as the protocol asks a real client to: order
by seq, resume on a gap, on a tick ahead of them and on reconnect, and resend an
unanswered share with the same client_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import redis
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings

from circles.models import Circle, CommunityGuidelines, Message, RoomConnection
from circles.selectors import PRESENCE_LAPSE_SECONDS, guidelines_current
from circles.services.sessions import session_open
from tests.live_server import LiveServer, free_port, start_daphne
from tests.room_client import RoomClient, session_key_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

# Margins for a busy 2-core machine: each wait has a target of a second or two.
ANSWER_TIMEOUT = 8.0  # no answer to a share for this long: resend it (same client_id)
CATCH_UP_TIMEOUT = 20.0  # target ~2 s: a one-second tick, then one resume
RECONNECT_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def _guidelines(transactional_db):
    """A transactional test empties every table when it ends: publish them again."""
    return guidelines_current() or CommunityGuidelines.objects.create(
        text="## Guidelines\n\nBe kind.", summary_of_changes="First version."
    )


@pytest.fixture
def servers(transactional_db, tmp_path):
    """start(n, extra_env) -> n daphne processes, started together. All are stopped at
    teardown, before the tables are emptied (this fixture depends on transactional_db)."""
    started: list[LiveServer] = []

    def start(count: int, extra_env: dict) -> list[LiveServer]:
        with ThreadPoolExecutor(count) as pool:
            futures = [
                pool.submit(start_daphne, tmp_path, extra_env=extra_env, name=f"daphne{n}")
                for n in range(count)
            ]
            new = [future.result() for future in futures]
        started.extend(new)
        return new

    yield start
    for server in started:
        server.stop()


# A client as protocol.md asks clients to behave ------------------------------------


@dataclass
class Connection:
    client: RoomClient
    server: LiveServer
    seen: set[int] = field(default_factory=set)  # every seq this connection delivered
    client_ids: set[str] = field(default_factory=set)
    resume_after: int | None = None  # a resume is outstanding, asked from this seq
    alive: bool = True


class Peer:
    """One member's client: holds messages by seq, resumes from the last seq it holds
    (on a gap of more than a second, a tick ahead of it, and every reconnect), resends
    unanswered shares with the same client_id, reconnects to another server."""

    def __init__(self, name, *, session_key, circle_id, servers, gap_resume=True):
        self.name = name
        self.session_key = session_key
        self.circle_id = circle_id
        self.servers = servers
        self.gap_resume = gap_resume
        self.conn: Connection | None = None
        self.held: dict[int, dict] = {}  # seq -> message frame: what the client shows
        self.sent: dict[str, str] = {}  # client_id -> text
        self.resent: set[str] = set()
        self.refused: dict[str, dict] = {}
        self.errors_by_ref: dict[str, list[dict]] = defaultdict(list)
        self.other_errors: list[dict] = []
        self.closes: list[tuple[int, int | None]] = []  # (server port, close code)
        self.unsolicited_duplicates: list[str] = []
        self.requested_duplicates = 0  # resent while a resume asked for them: allowed
        self.conflicts: list[str] = []
        self.resumes: list[tuple[str, int]] = []  # (why, after)
        self.via: dict[str, set[int]] = defaultdict(set)  # history / live / resume -> seqs
        self.answer_timeouts = 0
        self.trace: list[str] = []  # what this client did and got, for failure reports
        self.stopping = False
        self._tasks: list[asyncio.Task] = []

    def __repr__(self) -> str:
        port = self.conn.server.port if self.conn else None
        return f"<Peer {self.name} on {port}>"

    # State ---------------------------------------------------------------------

    @property
    def mark(self) -> int:
        """The last seq held with nothing missing below it."""
        seq = 0
        while seq + 1 in self.held:
            seq += 1
        return seq

    def holdings(self) -> set[tuple[int, str]]:
        return {(seq, frame["text"]) for seq, frame in self.held.items()}

    # Connecting ----------------------------------------------------------------

    async def start(self, server: LiveServer) -> None:
        if not await self._connect(server, why="first"):
            raise AssertionError(f"{self.name} could not connect to {server.url}")
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._watch_gaps())]

    async def _connect(self, server: LiveServer, *, why: str) -> bool:
        try:
            client = await RoomClient.connect(
                server.url, self.circle_id, session_key=self.session_key
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed):
            return False
        conn = Connection(client, server)
        for frame in client.hello["history"]:
            conn.seen.add(frame["seq"])
            self._hold(conn, frame, via="history")
        self.conn = conn
        # History is the last 50: on a reconnect, or if more happened, ask for the rest.
        if why != "first" or client.hello["seq"] > self.mark:
            await self._resume(conn, why)
        return True

    async def _reconnect(self, lost: LiveServer) -> None:
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        others = [server for server in self.servers if server is not lost]
        while time.monotonic() < deadline:
            for server in [*others, lost]:
                if await self._connect(server, why="reconnect"):
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} could not reconnect within {RECONNECT_TIMEOUT} s")

    async def stop(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.conn is not None:
            await self.conn.client.close()

    # Receiving -----------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            conn = self.conn
            try:
                while True:
                    frame = json.loads(await conn.client.connection.recv())
                    await self._on_frame(conn, frame)
            except websockets.ConnectionClosed as closed:
                conn.alive = False
                if self.stopping:
                    return
                self.closes.append((conn.server.port, closed.rcvd.code if closed.rcvd else None))
                await self._reconnect(conn.server)

    def _note(self, conn: Connection, what: str) -> None:
        self.trace.append(f"{time.monotonic():.3f} port {conn.server.port}: {what}")

    async def _on_frame(self, conn: Connection, frame: dict) -> None:
        kind = frame.get("type")
        if kind in {"message", "resumed", "tick", "error"}:
            detail = {k: frame.get(k) for k in ("seq", "after", "count", "more", "code", "ref")}
            self._note(conn, f"got {kind} {detail}")
        if kind == "message":
            seq = frame["seq"]
            if seq in conn.seen:
                if frame.get("client_id") in self.resent:
                    pass  # the answer to a resend: the stored message, by design
                elif conn.resume_after is not None and seq > conn.resume_after:
                    self.requested_duplicates += 1
                else:
                    self.unsolicited_duplicates.append(
                        f"seq {seq} twice on one connection to port {conn.server.port}"
                    )
                    if len(self.unsolicited_duplicates) == 1:
                        self.first_duplicate_trace = self.trace[-30:]
            conn.seen.add(seq)
            self._hold(conn, frame, via="live" if conn.resume_after is None else "resume")
        elif kind == "resumed":
            if frame["more"]:
                await self._resume(conn, "more")
            else:
                conn.resume_after = None
        elif kind == "tick":
            if frame["seq"] > self.mark and conn.resume_after is None:
                await self._resume(conn, "tick")
        elif kind == "error":
            if frame.get("ref"):
                self.errors_by_ref[frame["ref"]].append(frame)
            else:
                self.other_errors.append(frame)
                conn.resume_after = None  # the only ref-less frame we send is resume

    def _hold(self, conn: Connection, frame: dict, *, via: str) -> None:
        seq = frame["seq"]
        known = self.held.get(seq)
        if known is not None and (known["id"], known["text"]) != (frame["id"], frame["text"]):
            self.conflicts.append(f"seq {seq}: {known['text']!r} then {frame['text']!r}")
        self.held[seq] = frame
        if known is None:
            self.via[via].add(seq)
        if frame.get("client_id"):
            conn.client_ids.add(frame["client_id"])

    async def _resume(self, conn: Connection, why: str) -> None:
        after = self.mark
        conn.resume_after = after
        self.resumes.append((why, after))
        self._note(conn, f"sent resume after={after} ({why})")
        with contextlib.suppress(websockets.ConnectionClosed):
            await conn.client.send({"type": "resume", "after": after})

    async def _watch_gaps(self) -> None:
        """A gap that lasts more than about a second: resume from the last seq held."""
        gap_since = None
        while True:
            await asyncio.sleep(0.2)
            conn = self.conn
            if not self.gap_resume or not conn.alive or not self.held:
                continue
            if self.mark < max(self.held):
                gap_since = gap_since or time.monotonic()
                if time.monotonic() - gap_since > 1.0 and conn.resume_after is None:
                    await self._resume(conn, "gap")
                    gap_since = None
            else:
                gap_since = None

    # Sharing -------------------------------------------------------------------

    async def _live_connection(self) -> Connection:
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        while self.conn is None or not self.conn.alive:
            assert time.monotonic() < deadline, f"{self.name} has no connection"
            await asyncio.sleep(0.02)
        return self.conn

    async def share(self, text: str) -> str:
        """Say something and wait until it comes back (live, or through resume); resend
        with the same client_id when the connection died first or nothing came back."""
        client_id = str(uuid.uuid4())
        self.sent[client_id] = text
        attempts = 0
        while True:
            conn = await self._live_connection()
            if attempts:
                self.resent.add(client_id)
            attempts += 1
            assert attempts <= 10, f"{self.name}: {text!r} never came back"
            errors_before = len(self.errors_by_ref[client_id])
            self._note(conn, f"sent say {client_id[:8]} (attempt {attempts})")
            try:
                await conn.client.say(text, client_id=client_id)
            except websockets.ConnectionClosed:
                await asyncio.sleep(0.05)
                continue
            deadline = time.monotonic() + ANSWER_TIMEOUT
            while (
                client_id not in conn.client_ids
                and conn.alive
                and len(self.errors_by_ref[client_id]) == errors_before
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.02)
            if client_id in conn.client_ids:
                return client_id
            if len(self.errors_by_ref[client_id]) > errors_before:
                error = self.errors_by_ref[client_id][-1]
                if error["code"] == "rate_limited":
                    await asyncio.sleep(error.get("retry_after") or 1)
                    continue
                self.refused[client_id] = error
                return client_id
            if conn.alive:
                self.answer_timeouts += 1  # nothing came back in time: resend


# Checks against the store ---------------------------------------------------------


def _stored_rows(circle_id: int) -> list[tuple[int, str, str | None]]:
    return [
        (seq, text, str(client_id) if client_id else None)
        for seq, text, client_id in Message.objects.filter(circle_id=circle_id)
        .order_by("seq")
        .values_list("seq", "text", "client_id")
    ]


def _latest_seq(circle_id: int) -> int:
    return Circle.objects.get(pk=circle_id).last_seq


async def _wait_until_everyone_holds_the_store(peers: list[Peer], circle_id: int) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while time.monotonic() < deadline:
        latest = await sync_to_async(_latest_seq)(circle_id)
        if all(set(peer.held) == set(range(1, latest + 1)) for peer in peers):
            return
        await asyncio.sleep(0.2)


async def _close_all(peers: list[Peer], circle_id: int) -> None:
    """Close every client, then let the servers finish their disconnect handlers: a
    daphne told to stop while one runs hangs until it is killed (10 s per server)."""
    await asyncio.gather(*(peer.stop() for peer in peers))
    count = sync_to_async(RoomConnection.objects.filter(circle_id=circle_id).count)
    deadline = time.monotonic() + 5
    while await count() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _problems_with_delivery(peers: list[Peer], rows: list[tuple[int, str, str | None]]) -> list:
    """Everything that breaks protocol.md's Delivery section, as readable lines."""
    problems = []
    seqs = [seq for seq, _text, _cid in rows]
    if seqs != list(range(1, len(rows) + 1)):
        problems.append(f"stored seqs are not 1..N without a gap: {seqs}")
    stored = {(seq, text) for seq, text, _cid in rows}
    by_client_id = defaultdict(list)
    for seq, _text, client_id in rows:
        if client_id:
            by_client_id[client_id].append(seq)
    for peer in peers:
        missing = sorted(stored - peer.holdings())
        extra = sorted(peer.holdings() - stored)
        if missing:
            problems.append(f"{peer.name} is missing {missing}")
        if extra:
            problems.append(f"{peer.name} holds what was never stored: {extra}")
        if peer.unsolicited_duplicates:
            problems.append(f"{peer.name}: {peer.unsolicited_duplicates}")
            problems.extend(["  leading up to the first:", *peer.first_duplicate_trace])
        if peer.conflicts:
            problems.append(f"{peer.name}: one seq, two messages: {peer.conflicts}")
        if peer.refused:
            problems.append(f"{peer.name}: shares refused: {list(peer.refused.values())}")
        for client_id, text in peer.sent.items():
            if client_id in peer.refused:
                continue
            found = by_client_id.get(client_id, [])
            if len(found) != 1:
                resent = "resent " if client_id in peer.resent else ""
                problems.append(f"{peer.name}: {resent}share {text!r} stored {len(found)} times")
    return problems


def _log_tails(servers: list[LiveServer], lines: int = 40) -> str:
    tails = []
    for server in servers:
        log = [line for line in server.log().splitlines() if '] "' not in line]  # no access log
        tails.append(f"--- daphne on port {server.port} ---\n" + "\n".join(log[-lines:]))
    return "\n".join(tails)


@dataclass
class Room:
    circle_id: int
    people: list[tuple[str, str]]  # (display name, session key)


def _make_room(make_user, make_circle, size: int) -> Room:
    people = [make_user(display_name=f"Member {n}") for n in range(size)]
    circle = make_circle(moderator=people[0], members=tuple(people[1:]))
    session_open(circle_id=circle.pk, user=people[0])
    return Room(circle.pk, [(person.display_name, session_key_for(person)) for person in people])


def _require_redis() -> None:
    if not settings.REDIS_URL:
        pytest.fail("This test needs Redis between processes: set REDIS_URL (marker: redis).")


# A process killed -------------------------------------------------------------------

KILL_MEMBERS = 6
KILL_SHARES_EACH = 10  # the say limit is 20 per 30 s, resends included


@pytest.mark.asyncio
async def test_a_process_killed_mid_conversation_loses_nothing_and_doubles_nothing(
    servers, make_user, make_circle
):
    """When one of two processes is SIGKILLed mid-conversation, every client ends up
    holding exactly the stored messages (none missing, none sent twice on one
    connection), every resent client_id is stored once, and the dead process's
    connections lapse from presence."""
    _require_redis()
    room = await sync_to_async(_make_room)(make_user, make_circle, KILL_MEMBERS)
    doomed, survivor = servers(2, {"ROOM_TICK_SECONDS": "1"})
    peers = [
        Peer(name, session_key=key, circle_id=room.circle_id, servers=[doomed, survivor])
        for name, key in room.people
    ]
    on_doomed = peers[0::2]
    for index, peer in enumerate(peers):
        await peer.start(doomed if index % 2 == 0 else survivor)

    killed_at = 0.0

    async def converse() -> None:
        """Rounds of everyone at once (the open floor's fair-share rules never refuse
        anyone); midway, the kill lands while a round's shares are in flight."""
        nonlocal killed_at
        for number in range(KILL_SHARES_EACH):
            shares = [
                asyncio.create_task(peer.share(f"{peer.name} shares #{number}")) for peer in peers
            ]
            if number == KILL_SHARES_EACH // 2:
                await asyncio.sleep(0.01)  # the says are on their way, the answers not yet
                doomed.stop(signal.SIGKILL)
                killed_at = time.monotonic()
            await asyncio.gather(*shares)

    try:
        await converse()
        await _wait_until_everyone_holds_the_store(peers, room.circle_id)
        rows = await sync_to_async(_stored_rows)(room.circle_id)
        problems = _problems_with_delivery(peers, rows)

        resent = set().union(*(peer.resent for peer in peers))
        if not resent:
            problems.append("no share was resent: the kill caught none in flight")
        for peer in peers:
            lost_to_kill = [port for port, _code in peer.closes if port == doomed.port]
            if peer in on_doomed and len(lost_to_kill) != 1:
                problems.append(f"{peer.name} on the killed process: closes {peer.closes}")
            if peer not in on_doomed and peer.closes:
                problems.append(f"{peer.name} on the survivor lost its connection: {peer.closes}")

        # Presence: the dead process's rows stop beating, lapse and are swept by the
        # survivor. Target: lapse (15 s) + a beat (5 s) after the kill; assert with 10 s more.
        count = sync_to_async(RoomConnection.objects.filter(circle_id=room.circle_id).count)
        deadline = killed_at + PRESENCE_LAPSE_SECONDS + 5 + 10
        while await count() != len(peers) and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        if (left := await count()) != len(peers):
            problems.append(f"{left} room connections after the sweep; expected {len(peers)}")
    finally:
        await _close_all(peers, room.circle_id)

    assert not problems, "\n".join(problems) + "\n" + _log_tails([survivor])
    # Sanity: the conversation ran, and every share is stored.
    assert len(rows) == 1 + KILL_MEMBERS * KILL_SHARES_EACH


# Redis restarted --------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test's own, so the run's shared Redis is never disturbed."""

    def __init__(self, log_dir):
        self.port = free_port()
        self.log_path = log_dir / f"redis-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        probe = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                return
            except redis.ConnectionError:
                assert self.process.poll() is None, self.log_path.read_text()
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
            finally:
                probe.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("layer", ["core", "pubsub"])
async def test_a_redis_restart_mid_conversation_loses_nothing_and_ends_no_connection(
    servers, private_redis, make_user, make_circle, layer
):
    """When Redis restarts mid-conversation, every share sent before, during and after
    it is stored once, no connection closes, and idle clients catch up through tick and
    resume until every client holds exactly the stored messages."""
    _require_redis()  # the test process itself still uses the run's shared Redis
    room = await sync_to_async(_make_room)(make_user, make_circle, 6)
    both = servers(
        2,
        {
            "REDIS_URL": private_redis.url,
            "REDIS_CHANNEL_LAYER": layer,
            "ROOM_TICK_SECONDS": "1",
        },
    )
    # On each process: two members who talk, one who only listens, and who relies on
    # ticks alone to notice what it missed.
    peers, talkers, listeners = [], [], []
    for index, (name, key) in enumerate(room.people):
        talks = index < 4
        peer = Peer(name, session_key=key, circle_id=room.circle_id, servers=both, gap_resume=talks)
        await peer.start(both[index % 2])
        peers.append(peer)
        (talkers if talks else listeners).append(peer)

    async def rounds(phase: str, count: int) -> None:
        """Rounds of every talker at once: the open floor's fair-share rules refuse none."""
        for number in range(count):
            await asyncio.gather(
                *(peer.share(f"{peer.name} {phase} #{number}") for peer in talkers)
            )

    try:
        await rounds("before", 2)
        heard_live_before = {peer.name: len(peer.via["live"]) for peer in peers}

        private_redis.stop()
        during = asyncio.create_task(rounds("during", 2))
        await asyncio.sleep(2)  # Redis is away for about two seconds, shares going on
        await asyncio.to_thread(private_redis.start)
        await during

        await rounds("after", 2)
        await _wait_until_everyone_holds_the_store(peers, room.circle_id)
        rows = await sync_to_async(_stored_rows)(room.circle_id)
        problems = _problems_with_delivery(peers, rows)
        for peer in peers:
            if peer.closes:
                problems.append(f"{peer.name}'s connection closed (port, code): {peer.closes}")
        for peer in listeners:
            # Whatever a listener did not hear live, it asked for after a tick.
            whys = {why for why, _after in peer.resumes}
            if not whys <= {"tick", "more"}:
                problems.append(f"{peer.name} resumed for {whys}, not only after ticks")
    finally:
        await _close_all(peers, room.circle_id)

    assert not problems, "\n".join(problems) + "\n" + _log_tails(both)
    assert len(rows) == 1 + len(talkers) * (2 + 2 + 2)
    assert all(heard_live_before.values()), "nothing was heard live before the restart"
