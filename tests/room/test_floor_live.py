"""Turn-taking on real daphne processes: the sweep passes the floor on when a turn's
time runs out, and members racing each other on two processes never break the
floor (docs/turn-taking.md, Time and Consistency).

Afterwards every test reads the floor log from the database and replays it through
the policy (circles/floor_replay.py): each stored state must come out again.

Timing: the machine may be a busy 2-core box; where the target is 2 s the
assertions allow 5 s (PROMPT).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from circles import policy
from circles.floor_codec import floor_from_json
from circles.floor_replay import LogEntry, replay_floor_log
from circles.models import (
    Circle,
    CircleFloorSettings,
    FloorLogEntry,
    Message,
    MessageKind,
    RoomConnection,
)
from circles.services.sessions import session_open
from tests.live_server import LiveServer
from tests.room_client import RoomClient, session_key_for

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = 5.0  # target 2 s; allowed 5 s on a loaded CI machine
TURN_SECONDS = 3  # below the form's minimum of 30: written straight to the row
SAY_BUDGET = 18  # say frames per member in any 31 s (the server allows 20 per 30 s window)
OTHER_BUDGET = 55  # other frames per member in any 31 s (the server allows 60)


# Helpers ----------------------------------------------------------------------------------


class Budget:
    """A client-side sliding window, so the test stays inside the server's rate limits."""

    def __init__(self, count: int, seconds: float = 31.0):
        self.count, self.seconds = count, seconds
        self.sent: deque[float] = deque()

    def take(self) -> bool:
        now = time.monotonic()
        while self.sent and now - self.sent[0] > self.seconds:
            self.sent.popleft()
        if len(self.sent) >= self.count:
            return False
        self.sent.append(now)
        return True


@dataclass
class Member:
    """One member's socket: every frame read in the background, the newest floor kept."""

    member_id: int
    name: str
    server: LiveServer
    client: RoomClient
    floor: dict | None = None
    floors: list[tuple[datetime, dict]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    closed: websockets.ConnectionClosed | None = None
    says: Budget = field(default_factory=lambda: Budget(SAY_BUDGET))
    others: Budget = field(default_factory=lambda: Budget(OTHER_BUDGET))
    reader: asyncio.Task | None = None
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # say -> its message or error

    def start(self) -> None:
        self.floor = self.client.hello["floor"]
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = json.loads(await self.client.connection.recv())
                if frame["type"] == "floor":
                    self.floors.append((datetime.now(UTC), frame))
                    if self.floor is None or frame["v"] > self.floor["v"]:
                        self.floor = frame
                elif frame["type"] == "error":
                    self.errors.append(frame)
                ref = frame.get("client_id") if frame["type"] == "message" else frame.get("ref")
                if ref in self.sent_at:
                    self.latencies.append(time.monotonic() - self.sent_at.pop(ref))
        except websockets.ConnectionClosed as closed:
            self.closed = closed

    @property
    def speaking(self) -> bool:
        speaker = (self.floor or {}).get("speaker")
        return speaker is not None and speaker["member_id"] == self.member_id

    async def send(self, frame: dict) -> bool:
        budget = self.says if frame["type"] == "say" else self.others
        if not budget.take():
            return False
        if "client_id" in frame:
            self.sent_at[frame["client_id"]] = time.monotonic()
        await self.client.send(frame)
        return True

    async def wait_floor(self, test, timeout: float) -> tuple[datetime, dict]:
        """The first floor frame (already read or still to come) that passes `test`."""
        deadline = time.monotonic() + timeout
        while True:
            for arrived, frame in self.floors:
                if test(frame):
                    return arrived, frame
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: no matching floor frame within {timeout} s; "
                    f"last: {self.floors[-1:]}"
                )
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.client.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


@dataclass
class Crowd:
    circle_id: int
    session_id: int
    people: list[tuple[int, str, str]]  # (member id, name, session key); the first facilitates


def _crowd(make_user, make_circle, *, size: int, **floor_settings) -> Crowd:
    """A circle of `size` members, its floor settings written straight to the row
    (model validators don't run on save), and an open session facilitated by the first."""
    people = [make_user(display_name=f"Member {n:02}") for n in range(size)]
    circle = make_circle(moderator=people[0], members=tuple(people[1:]), capacity=20)
    CircleFloorSettings.objects.create(circle=circle, **floor_settings)
    session = session_open(circle_id=circle.pk, user=people[0])
    return Crowd(
        circle.pk,
        session.pk,
        [(person.pk, person.display_name, session_key_for(person)) for person in people],
    )


async def _connect(crowd: Crowd, servers: list[LiveServer]) -> list[Member]:
    """Everyone connects (so everyone is present), spread over the servers in turn."""

    async def one(index: int, person) -> Member:
        member_id, name, key = person
        server = servers[index % len(servers)]
        client = await RoomClient.connect(server.url, crowd.circle_id, session_key=key)
        member = Member(member_id, name, server, client)
        member.start()
        return member

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(crowd.people))))


async def _wait_for_disconnects(circle_id: int, timeout: float = 5.0) -> int:
    """Let the servers finish their disconnect handlers before they are stopped (a
    daphne told to stop while one runs hangs until it is killed). Returns how many
    connections are still registered."""
    count = sync_to_async(RoomConnection.objects.filter(circle_id=circle_id).count)
    deadline = time.monotonic() + timeout
    while (left := await count()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


async def _close_all(members: list[Member], circle_id: int) -> None:
    for member in members:
        await member.close()
    await _wait_for_disconnects(circle_id)


def _log(session_id: int) -> list[LogEntry]:
    rows = FloorLogEntry.objects.filter(floor__session_id=session_id).order_by("version")
    return [LogEntry(row.version, row.action, row.input, row.at, row.state) for row in rows]


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def _speaker(frame: dict) -> int | None:
    return frame["speaker"]["member_id"] if frame["speaker"] else None


def _no_server_errors(servers: list[LiveServer]) -> None:
    """Nothing the floor does failed on any server: no consumer crashed ("Exception
    inside application"), no sweep failed, no deadlock was detected."""
    for server in servers:
        log = server.log()
        for sign in ("Exception inside application", "room sweep failed", "deadlock detected"):
            assert sign not in log, f"daphne on {server.port}: {sign}\n{log[-4000:]}"


# The timer -----------------------------------------------------------------------------------


async def _timer_scenario(crowd: Crowd, servers: list[LiveServer]) -> None:
    """A holds the floor, B waits, nobody acts: the sweep hands the floor to B on time,
    exactly once, whichever process sweeps first."""
    members = await _connect(crowd, servers)
    try:
        _fay, a, b, *_rest = members
        await a.send({"type": "hand", "raised": True})
        _at, a_turn = await a.wait_floor(lambda f: _speaker(f) == a.member_id, PROMPT)
        await b.send({"type": "hand", "raised": True})
        await b.wait_floor(
            lambda f: (
                _speaker(f) == a.member_id and [q["member_id"] for q in f["queue"]] == [b.member_id]
            ),
            PROMPT,
        )
        ends = _parse(a_turn["turn_ends_at"])
        assert datetime.now(UTC) < ends, "B's hand went up after A's turn had ended"

        arrived, b_turn = await b.wait_floor(
            lambda f: _speaker(f) == b.member_id, TURN_SECONDS + PROMPT + 1
        )
        late = (arrived - ends).total_seconds()
        # Target: within 2 s of turn_ends_at (the sweep runs every second); assert 5 s
        # because CI runs on a loaded 2-core machine.
        assert late <= PROMPT, f"B got the floor {late:.1f} s after A's turn ended"
        assert _parse(b_turn["turn_ends_at"]) > ends
        assert b_turn["queue"] == []
        # Everyone hears it, on both processes.
        for member in members:
            await member.wait_floor(lambda f: _speaker(f) == b.member_id, PROMPT)
        errors = [(m.name, e) for m in members for e in m.errors]
        assert errors == []
        _no_server_errors(servers)
    finally:
        await _close_all(members, crowd.circle_id)

    entries = await sync_to_async(_log)(crowd.session_id)
    assert [entry.version for entry in entries] == list(range(1, len(entries) + 1))
    replay_floor_log(entries)
    moves = [
        (before, after)
        for before, after in itertools.pairwise(entries)
        if before.state["speaker"] != after.state["speaker"]
    ]
    from_a = [after for before, after in moves if before.state["speaker"] == a.member_id]
    to_b = [after for before, after in moves if after.state["speaker"] == b.member_id]
    assert len(from_a) == 1, f"A's turn ended {len(from_a)} times: {from_a}"
    assert len(to_b) == 1, f"B was given the floor {len(to_b)} times"
    [handover] = from_a
    assert handover is to_b[0], "the floor went from A to B in one transition"
    assert handover.action == "settle", "nobody acted: the sweep moved the floor"
    assert handover.at >= ends
    # No double advance: B's turn, if it ended yet, ran its full length.
    after_b = [e for e in entries if e.version > handover.version]
    for entry in after_b:
        if entry.state["speaker"] != b.member_id:
            assert (entry.at - handover.at).total_seconds() >= TURN_SECONDS
            break
    turns = floor_from_json(entries[-1].state).turns_taken
    assert (turns.get(a.member_id), turns.get(b.member_id)) == (1, 1)


@pytest.fixture
def timer_crowd(make_user, make_circle) -> Crowd:
    return _crowd(
        make_user,
        make_circle,
        size=4,
        default_mode="queue",
        turn_seconds=TURN_SECONDS,
        turn_warning_seconds=1,
    )


@pytest.mark.asyncio
async def test_the_sweep_passes_the_floor_on_when_a_turn_runs_out(room_server, timer_crowd):
    """On one process (the embedded default too): when A's turn runs out with B's hand
    up and nobody acting, B gets the floor within 5 s (target 2 s) of turn_ends_at,
    in exactly one logged transition, and the log replays."""
    await asyncio.wait_for(_timer_scenario(timer_crowd, [room_server]), 60)


@pytest.mark.redis
@pytest.mark.asyncio
async def test_two_processes_sweeping_pass_the_floor_on_exactly_once(two_servers, timer_crowd):
    """Two daphne processes both sweep every second: when A's turn runs out, B (on the
    other process) gets the floor within 5 s (target 2 s) of turn_ends_at, and the log
    holds exactly one transition from A to B: no double advance."""
    await asyncio.wait_for(_timer_scenario(timer_crowd, two_servers), 60)


# A speaker who leaves while the server is busy ------------------------------------------------

LOCK_SECONDS = 14  # longer than daphne's 10 s for a closed socket's consumer to finish
GRACE_SECONDS = 5  # disconnect_grace_seconds, written straight to the row


def _hold_the_circle(circle_id: int, held: threading.Event, seconds: float) -> None:
    """Keep the circle's row locked (on SQLite: the database's write lock), as a long
    transaction elsewhere would: every floor act on the circle waits meanwhile."""
    try:
        with transaction.atomic():
            Circle.objects.select_for_update().get(pk=circle_id)
            held.set()
            time.sleep(seconds)
    finally:
        connection.close()


@pytest.fixture
def busy_crowd(make_user, make_circle) -> Crowd:
    return _crowd(
        make_user,
        make_circle,
        size=3,
        default_mode="queue",
        turn_seconds=600,
        disconnect_grace_seconds=GRACE_SECONDS,
    )


@pytest.mark.asyncio
async def test_a_speaker_dropped_while_the_server_is_busy_loses_the_floor(room_server, busy_crowd):
    """A speaker whose socket closes while their last frame waits for the database
    stops counting as present (their consumer is closed by daphne after 10 s; presence
    lapses 15 s after the last beat), so after the disconnect grace the floor passes to
    the waiting hand, long before the 10-minute turn would end."""
    members = await _connect(busy_crowd, [room_server])
    _fay, a, b = members
    holder = None
    try:
        await a.send({"type": "hand", "raised": True})
        await a.wait_floor(lambda f: _speaker(f) == a.member_id, PROMPT)
        await b.send({"type": "hand", "raised": True})
        await b.wait_floor(lambda f: [q["member_id"] for q in f["queue"]] == [b.member_id], PROMPT)

        held = threading.Event()
        holder = threading.Thread(
            target=_hold_the_circle, args=(busy_crowd.circle_id, held, LOCK_SECONDS)
        )
        holder.start()
        assert await asyncio.to_thread(held.wait, PROMPT)
        await a.send({"type": "hand", "raised": False})  # waits for the circle's lock
        await asyncio.sleep(0.5)
        await a.close()  # ... and the member goes, while it waits
        left_at = time.monotonic()
        await asyncio.to_thread(holder.join)

        # Closed normally, A would be absent at once; here the consumer is stuck until
        # daphne gives up on it (10 s), then the last beat lapses (15 s), then the grace.
        budget = 10 + 15 + GRACE_SECONDS + PROMPT + 5
        try:
            await b.wait_floor(
                lambda f: _speaker(f) == b.member_id, budget - (time.monotonic() - left_at)
            )
        except AssertionError:
            rows = await sync_to_async(list)(
                RoomConnection.objects.filter(user_id=a.member_id).values_list("seen_at", flat=True)
            )
            raise AssertionError(
                f"{budget} s after A left, A still holds the floor; A's room connections "
                f"were last seen at {[str(seen) for seen in rows]} (now {datetime.now(UTC)}): "
                "the consumer daphne closed keeps beating"
            ) from None
    finally:
        if holder is not None:
            await asyncio.to_thread(holder.join)
        await _close_all(members, busy_crowd.circle_id)
    assert "took too long to shut down" in room_server.log(), (
        "daphne did not have to close A's consumer: the test did not set up what it checks"
    )


# The race -------------------------------------------------------------------------------------


RACE_TURN_SECONDS = 4


async def _act_randomly(
    member: Member, until: float, rng: random.Random, phase: str, *, quiet: bool = False
) -> None:
    """hand, pass and say in random order with small random pauses; the speaker mostly
    says something, the others mostly raise a hand. Now and then a speaker falls silent
    past the end of their turn (RACE_TURN_SECONDS), so time takes it; a `quiet`
    member always does."""
    number = 0
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.15, 0.9))
        if member.closed is not None:
            return
        if member.speaking and (quiet or rng.random() < 0.15):
            await asyncio.sleep(RACE_TURN_SECONDS + 1)
            continue
        weights = (6, 2, 1) if member.speaking else (2, 1, 3)
        act = rng.choices(["say", "pass", "hand"], weights)[0]
        if act == "say":
            number += 1
            await member.send(
                {
                    "type": "say",
                    "text": f"{member.name}, {phase} #{number}" + "." * rng.randint(0, 40),
                    "client_id": str(uuid.UUID(int=rng.getrandbits(128))),
                }
            )
        elif act == "pass":
            await member.send({"type": "pass"})
        else:
            await member.send({"type": "hand", "raised": rng.random() < 0.85})


async def _facilitate(fay: Member, others: list[Member], until, rng, *, grant: bool) -> None:
    """The facilitator also moves the floor on now and then, and gives it out of turn;
    at times they hold back long enough for a silent speaker's turn to run out."""
    while time.monotonic() < until:
        quiet_spell = rng.random() < 0.4
        await asyncio.sleep(RACE_TURN_SECONDS + 2 if quiet_spell else rng.uniform(1.5, 4))
        if grant and rng.random() < 0.5:
            await fay.send({"type": "grant", "member": rng.choice(others).member_id})
        else:
            await fay.send({"type": "next"})


def _snapshot(session_id: int) -> tuple[list[LogEntry], list[tuple[int, str]]]:
    """The floor log and the stored shares as of one moment (a server may still be
    working through frames sent before the sockets closed)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            connection.cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # On SQLite the immediate transaction holds the write lock: nothing changes.
        entries = _log(session_id)
        stored = list(
            Message.objects.filter(session_id=session_id, kind=MessageKind.SHARE)
            .order_by("seq")
            .values_list("author_id", "text")
        )
    return entries, stored


def _check_race(crowd: Crowd, *, phases: set[str]) -> dict:
    """Everything the log and the store must agree on. Returns counts for the report."""
    entries, stored = _snapshot(crowd.session_id)
    assert [entry.version for entry in entries] == list(range(1, len(entries) + 1))
    # 1. Every state replays.
    outcomes = replay_floor_log(entries)
    assert len(outcomes) == len(entries) - 1
    assert {entry.state["mode"] for entry in entries} == phases  # never the open floor

    # 2. Every accepted share is a stored message, and every stored share was accepted,
    #    in the same order (both happen under the circle's lock, in one transaction).
    shares = [
        (index, entry)
        for index, entry in enumerate(entries)
        if entry.action == "share" and entry.input["kind"] == MessageKind.SHARE
    ]
    logged_authors = [entry.input["member"] for _index, entry in shares]
    assert Counter(logged_authors) == Counter(author for author, _text in stored)
    assert logged_authors == [author for author, _text in stored]
    assert [entry.input["characters"] for _index, entry in shares] == [
        len(text) for _author, text in stored
    ]

    # 3. No share from anyone but the speaker: before each accepted share the member
    #    held the floor, in the previous state itself or once time had been applied to
    #    it (a turn that ran out gives the floor to the next hand inside the same
    #    transition); and afterwards they still hold it or have just finished.
    direct = 0
    for index, entry in shares:
        member = entry.input["member"]
        before = floor_from_json(entries[index - 1].state)
        if before.speaker == member:
            direct += 1
        present = frozenset(entry.input["present"])
        settled = policy.settle(before, now=entry.at, present=present).floor
        assert settled.speaker == member, (
            f"v{entry.version}: a share from {member} accepted while "
            f"{settled.speaker} held the floor ({settled.mode})"
        )
        after = entry.state
        assert after["speaker"] == member or after["tallies"]["last_speaker"] == member
    # 4. Turns that ran out: a transition after the previous speaker's turn_ends_at
    #    that took the floor from them (the sweep's, or whichever act came first).
    timed_out = 0
    for previous, entry in itertools.pairwise(entries):
        ends = previous.state["turn_ends_at"]
        speaker = previous.state["speaker"]
        if speaker is not None and ends is not None and datetime.fromisoformat(ends) <= entry.at:
            timed_out += entry.state["speaker"] != speaker
    return {
        "entries": len(entries),
        "timed_out": timed_out,
        "shares": len(shares),
        "shares_with_speaker_in_previous_state": direct,
        "actions": Counter(entry.action for entry in entries),
        "modes": Counter(entry.state["mode"] for entry in entries),
    }


def _spread(values: list[float]) -> dict | None:
    """Median, 95th percentile and worst of some latencies, in seconds."""
    if not values:
        return None
    values = sorted(values)
    pick = lambda q: round(values[min(len(values) - 1, int(len(values) * q))], 2)  # noqa: E731
    return {"n": len(values), "p50": pick(0.5), "p95": pick(0.95), "max": round(values[-1], 2)}


async def _race(crowd: Crowd, servers: list[LiveServer], *, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    members = await _connect(crowd, servers)
    fay, quiet = members[0], members[1]
    report: dict = {}
    try:
        # Queue mode: hands up, passes, says, the timer and the budget, all at once.
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(
                _act_randomly(m, until, random.Random(rng.random()), "queue", quiet=m is quiet)
                for m in members
            ),
            _facilitate(fay, members[1:], until, random.Random(rng.random()), grant=True),
        )
        report["say_latency_queue"] = _spread([x for m in members for x in m.latencies])
        for member in members:
            member.latencies.clear()
        # Round mode: the talking piece, raced the same way. Under this load the server
        # may still be working through a backlog of frames: wait as long as it takes.
        started = time.monotonic()
        assert await fay.send({"type": "mode", "mode": "round"})
        await fay.wait_floor(lambda f: f["mode"] == "round", 90)
        report["mode_change_seconds"] = round(time.monotonic() - started, 1)
        until = time.monotonic() + seconds * 2 / 3
        await asyncio.gather(
            *(
                _act_randomly(m, until, random.Random(rng.random()), "round", quiet=m is quiet)
                for m in members
            ),
            _facilitate(fay, members[1:], until, random.Random(rng.random()), grant=False),
        )
        closed = [m.name for m in members if m.closed is not None]
        assert closed == [], f"connections lost during the race: {closed}"
        report["say_latency_round"] = _spread([x for m in members for x in m.latencies])
        _no_server_errors(servers)
    finally:
        for member in members:
            await member.close()
    codes = Counter(error["code"] for m in members for error in m.errors)
    report["errors"] = codes
    assert "rate_limited" not in codes, "the test broke the rate limits it should keep"
    assert set(codes) <= {"not_your_turn", "not_found"}, codes

    counts = await sync_to_async(_check_race)(crowd, phases={"queue", "round"})
    # Not a vacuous race: people spoke, passed, were timed out and went around.
    assert counts["shares"] >= 5, counts
    assert counts["actions"]["pass"] >= 3, counts
    assert counts["timed_out"] >= 1, counts
    assert counts["modes"]["round"] >= 3, counts
    print(f"race: {counts | report}")  # shown with -s
    # Everyone left: within daphne's 10 s to close a busy socket's consumer plus the
    # 15 s presence lapse, nobody is still counted as present.
    left = await _wait_for_disconnects(crowd.circle_id, timeout=60)
    assert left == 0, (
        f"{left} members still present a minute after every socket closed (ghost presence; "
        "see test_a_speaker_dropped_while_the_server_is_busy_loses_the_floor)"
    )


def _race_crowd(make_user, make_circle, *, size: int) -> Crowd:
    """A circle in queue mode with short turns, so time takes some of them."""
    return _crowd(
        make_user,
        make_circle,
        size=size,
        default_mode="queue",
        turn_seconds=RACE_TURN_SECONDS,
        turn_messages=2,
        turn_warning_seconds=1,
    )


@pytest.fixture
def race_crowd(make_user, make_circle) -> Crowd:
    return _race_crowd(make_user, make_circle, size=20)


@pytest.mark.redis
@pytest.mark.asyncio
async def test_twenty_members_racing_on_two_processes_never_break_the_floor(
    two_servers, race_crowd
):
    """Twenty members on two processes raise hands, pass and say at random for 30 s in
    queue mode, then 20 s in round mode, while the facilitator moves the floor on and
    both processes sweep: the floor log replays state by state, its accepted shares are
    exactly the stored messages, and every accepted share came from the speaker."""
    await asyncio.wait_for(_race(race_crowd, two_servers, seconds=30, seed=20), 300)


@pytest.fixture
def small_crowd(make_user, make_circle) -> Crowd:
    return _race_crowd(make_user, make_circle, size=6)


@pytest.mark.asyncio
async def test_six_members_racing_on_one_process_never_break_the_floor(room_server, small_crowd):
    """The same race, smaller and on one process (so also on the embedded default,
    SQLite with immediate transactions): the log replays and matches the store."""
    await asyncio.wait_for(_race(small_crowd, [room_server], seconds=18, seed=6), 150)
