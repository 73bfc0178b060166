"""The floor services, driven directly (no websockets): circles/services/floor.py,
messages.py and sessions.py against docs/turn-taking.md.

Presence is what the services read from RoomConnection rows, so a member is made
"present" by giving them a fresh row. Broadcasts are after-commit callbacks; a
test's transaction never commits, so nothing is sent anywhere.

Tests that need time to pass use `clock`, which replaces django.utils.timezone.now
(every service reads the time through it) with a clock the test moves by hand.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from circles.consumers import hello_frame
from circles.floor_replay import LogEntry, ReplayMismatch, replay_floor_log
from circles.models import (
    AuditAction,
    AuditEntry,
    Circle,
    CircleFloorSettings,
    FloorLogEntry,
    FloorState,
    Membership,
    Message,
    MessageKind,
    RoomConnection,
    Session,
    SessionVoice,
)
from circles.services import floor as floor_services
from circles.services.errors import ServiceError
from circles.services.floor import (
    floor_grant,
    floor_next,
    floor_nudge,
    floor_pass,
    floor_pause,
    floor_raise_hand,
    floor_set_mode,
    floor_settle,
)
from circles.services.messages import message_post
from circles.services.room import room_connect
from circles.services.sessions import session_close, session_open

pytestmark = pytest.mark.django_db

# What one accepted share costs on the open floor, whoever is present and however long
# the session has run (counted in the test below, listed there query by query).
# A share's statements (the circle's lock, the read, then the writes: one statement on
# PostgreSQL, four on SQLite), and the savepoint pair its transaction becomes inside a
# test's own transaction (in production: BEGIN and COMMIT, which are not statements).
SHARE_QUERIES = {"postgresql": 1 + 1 + 1, "sqlite": 1 + 1 + 4}


# Helpers ---------------------------------------------------------------------------


class Clock:
    """The time every service sees; moved only by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move on; every live connection keeps beating meanwhile (stays present)."""
        self.now += timedelta(seconds=seconds)
        RoomConnection.objects.update(seen_at=self.now)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    return clock


def be_present(circle: Circle, *users) -> None:
    """A live room connection for each: they count as participants now."""
    for user in users:
        RoomConnection.objects.update_or_create(
            channel_name=f"test.{circle.pk}.{user.pk}",
            defaults={"circle": circle, "user": user, "seen_at": timezone.now()},
        )


def leave(circle: Circle, user) -> None:
    RoomConnection.objects.filter(circle=circle, user=user).delete()


def say(circle: Circle, user, text: str = "Something I want to share.", **extra):
    return message_post(
        circle_id=circle.pk, user=user, text=text, client_id=uuid.uuid4(), **extra
    ).message


def refused(call, *args, **kwargs) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call(*args, **kwargs)
    return caught.value


def floor_row(circle: Circle) -> FloorState:
    return FloorState.objects.get(session__circle=circle, session__status="open")


def log_of(circle: Circle) -> list[FloorLogEntry]:
    return list(FloorLogEntry.objects.filter(floor__session__circle=circle).order_by("version"))


def log_entries(rows: list[FloorLogEntry]) -> list[LogEntry]:
    return [LogEntry(row.version, row.action, row.input, row.at, row.state) for row in rows]


@dataclass
class Room:
    circle: Circle
    facilitator: object
    members: list

    @property
    def everyone(self) -> list:
        return [self.facilitator, *self.members]


@pytest.fixture
def make_room(make_user, make_circle):
    """A circle with a facilitator (its moderator) and members, all present, and
    (unless told otherwise) an open session with the floor in `mode`."""

    def make(*, members: int = 3, mode: str = "open", present: bool = True, open_now=True, **kw):
        facilitator = make_user(display_name="Fay")
        people = [make_user(display_name=f"Member {chr(65 + n)}") for n in range(members)]
        circle = make_circle(moderator=facilitator, members=tuple(people), capacity=20)
        CircleFloorSettings.objects.create(circle=circle, default_mode=mode, **kw)
        if present:
            be_present(circle, facilitator, *people)
        if open_now:
            session_open(circle_id=circle.pk, user=facilitator)
        return Room(circle, facilitator, people)

    return make


# Opening the floor -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["open", "queue", "round"])
def test_session_open_creates_the_floor_from_the_circle_settings(make_room, mode):
    """Opening a session creates its floor at version 1, in the circle's default mode
    and with its numbers, and logs one "open" entry with who was present."""
    room = make_room(mode=mode, turn_seconds=90, turn_messages=3, open_now=False)
    session_open(circle_id=room.circle.pk, user=room.facilitator)

    row = floor_row(room.circle)
    assert row.version == 1
    assert row.mode == mode
    assert row.settings["turn_seconds"] == 90
    assert row.settings["turn_messages"] == 3
    if mode == "round":  # the piece starts going around at once
        assert row.speaker_id in {person.pk for person in room.everyone}
        assert sorted(row.round_order) == sorted(person.pk for person in room.everyone)
    else:
        assert row.speaker_id is None

    [entry] = log_of(room.circle)
    assert (entry.version, entry.action) == (1, "open")
    assert entry.input == {
        "mode": mode,
        "present": sorted(person.pk for person in room.everyone),
    }
    assert entry.state["version"] == 1
    assert entry.state["mode"] == mode


def test_a_circle_without_floor_settings_opens_on_the_open_floor(make_user, make_circle):
    """With no CircleFloorSettings row the defaults apply: open floor, 120 s turns."""
    facilitator = make_user()
    circle = make_circle(moderator=facilitator)
    session_open(circle_id=circle.pk, user=facilitator)
    row = floor_row(circle)
    assert (row.version, row.mode) == (1, "open")
    assert row.settings["turn_seconds"] == 120
    assert row.settings["consecutive_cap"] == 4


# One transition, one version, one log entry -----------------------------------------


def _transitions(room: Room):
    """Acts that each change a queue-mode floor, with the action each logs."""
    fay, (a, b, c) = room.facilitator, room.members
    circle_id = room.circle.pk
    return [
        ("hand", lambda: floor_raise_hand(circle_id=circle_id, user=a, raised=True)),  # A speaks
        ("hand", lambda: floor_raise_hand(circle_id=circle_id, user=b, raised=True)),
        ("hand", lambda: floor_raise_hand(circle_id=circle_id, user=c, raised=True)),
        ("hand", lambda: floor_raise_hand(circle_id=circle_id, user=c, raised=False)),
        ("share", lambda: say(room.circle, a)),
        ("pass", lambda: floor_pass(circle_id=circle_id, user=a)),  # B speaks
        ("grant", lambda: floor_grant(circle_id=circle_id, user=fay, member_id=c.pk)),
        ("next", lambda: floor_next(circle_id=circle_id, user=fay)),
        ("pause", lambda: floor_pause(circle_id=circle_id, user=fay, paused=True, minutes=5)),
        ("pause", lambda: floor_pause(circle_id=circle_id, user=fay, paused=False, minutes=None)),
        ("mode", lambda: floor_set_mode(circle_id=circle_id, user=fay, mode="round")),
        ("mode", lambda: floor_set_mode(circle_id=circle_id, user=fay, mode="open")),
    ]


def test_each_transition_bumps_the_version_by_one_and_logs_it_once(make_room):
    """Every act that changes the floor raises its version by exactly one and appends
    exactly one log entry, carrying that version, the action and the present members."""
    room = make_room(mode="queue")
    present = sorted(person.pk for person in room.everyone)
    for action, act in _transitions(room):
        before = floor_row(room.circle).version
        entries_before = FloorLogEntry.objects.count()
        act()
        row = floor_row(room.circle)
        assert row.version == before + 1, action
        assert FloorLogEntry.objects.count() == entries_before + 1, action
        entry = log_of(room.circle)[-1]
        assert (entry.version, entry.action) == (row.version, action)
        assert entry.state["version"] == row.version
        assert entry.input["present"] == present
    assert [entry.version for entry in log_of(room.circle)] == list(range(1, row.version + 1))


def test_acts_that_change_nothing_write_nothing(make_room):
    """Lowering a hand that isn't up, raising one that is, resuming an unpaused floor
    and choosing the mode it already has change nothing: no new version, no log."""
    room = make_room(mode="queue")
    fay, (a, b, _c) = room.facilitator, room.members
    circle_id = room.circle.pk
    floor_raise_hand(circle_id=circle_id, user=a, raised=True)  # A speaks
    floor_raise_hand(circle_id=circle_id, user=b, raised=True)
    row = floor_row(room.circle)
    version, entries = row.version, FloorLogEntry.objects.count()

    floor_raise_hand(circle_id=circle_id, user=b, raised=True)  # already up
    floor_raise_hand(circle_id=circle_id, user=room.members[2], raised=False)  # never up
    floor_pause(circle_id=circle_id, user=fay, paused=False, minutes=None)  # not paused
    floor_set_mode(circle_id=circle_id, user=fay, mode="queue")  # already queue
    floor_grant(circle_id=circle_id, user=fay, member_id=a.pk)  # already speaking
    floor_settle(circle_id=circle_id)  # nothing is due

    row.refresh_from_db()
    assert row.version == version
    assert FloorLogEntry.objects.count() == entries
    assert [hand["member_id"] for hand in row.hands] == [b.pk]
    assert row.speaker_id == a.pk


def test_a_refused_act_writes_nothing(make_room):
    """A pass from someone who doesn't hold the floor is refused (not_your_turn) and
    leaves the floor, its hands and its log exactly as they were."""
    room = make_room(mode="queue")
    a, b, _c = room.members
    floor_raise_hand(circle_id=room.circle.pk, user=a, raised=True)
    version, entries = floor_row(room.circle).version, FloorLogEntry.objects.count()
    error = refused(floor_pass, circle_id=room.circle.pk, user=b)
    assert error.code == "not_your_turn"
    assert floor_row(room.circle).version == version
    assert FloorLogEntry.objects.count() == entries


# Facilitator only --------------------------------------------------------------------


def _facilitator_acts(circle_id: int, target):
    return {
        "next": lambda user: floor_next(circle_id=circle_id, user=user),
        "grant": lambda user: floor_grant(circle_id=circle_id, user=user, member_id=target.pk),
        "mode": lambda user: floor_set_mode(circle_id=circle_id, user=user, mode="round"),
        "pause": lambda user: floor_pause(circle_id=circle_id, user=user, paused=True, minutes=2),
        "nudge": lambda user: floor_nudge(circle_id=circle_id, user=user, member_id=target.pk),
    }


@pytest.mark.parametrize("act", ["next", "grant", "mode", "pause", "nudge"])
@pytest.mark.parametrize("who", ["member", "other_moderator", "outsider"])
def test_facilitator_acts_are_refused_to_anyone_else(make_room, make_user, act, who):
    """next, grant, mode, pause and nudge are the session's facilitator's alone: anyone
    else (a member, another moderator, an outsider) gets "forbidden" and nothing changes."""
    room = make_room(mode="queue")
    a, b, _c = room.members
    floor_raise_hand(circle_id=room.circle.pk, user=a, raised=True)  # A speaks
    floor_raise_hand(circle_id=room.circle.pk, user=b, raised=True)
    if who == "member":
        actor = a
    elif who == "other_moderator":
        actor = room.members[2]
        actor.memberships.filter(circle=room.circle).update(role="moderator")
    else:
        actor = make_user()
    row = floor_row(room.circle)
    version, entries = row.version, FloorLogEntry.objects.count()
    audits = AuditEntry.objects.count()

    error = refused(_facilitator_acts(room.circle.pk, b)[act], actor)

    assert error.code == "forbidden"
    row.refresh_from_db()
    assert (row.version, row.mode, row.paused, row.speaker_id) == (version, "queue", False, a.pk)
    assert FloorLogEntry.objects.count() == entries
    assert AuditEntry.objects.count() == audits


@pytest.mark.parametrize(
    ("act", "action"),
    [
        ("next", AuditAction.FLOOR_NEXT),
        ("grant", AuditAction.FLOOR_GRANT),
        ("mode", AuditAction.FLOOR_MODE),
        ("pause", AuditAction.FLOOR_PAUSE),
    ],
)
def test_facilitator_acts_are_logged_for_the_circle(make_room, act, action):
    """grant, next, mode and pause by the facilitator each write one AuditEntry naming
    the act (and, for grant, who got the floor)."""
    room = make_room(mode="queue")
    a, b, _c = room.members
    floor_raise_hand(circle_id=room.circle.pk, user=a, raised=True)
    floor_raise_hand(circle_id=room.circle.pk, user=b, raised=True)
    before = set(AuditEntry.objects.values_list("pk", flat=True))

    _facilitator_acts(room.circle.pk, room.members[2])[act](room.facilitator)

    [entry] = AuditEntry.objects.exclude(pk__in=before)
    assert entry.action == action
    assert entry.actor_id == room.facilitator.pk
    assert entry.circle_id == room.circle.pk
    if act == "grant":
        assert entry.subject_id == room.members[2].pk
        assert floor_row(room.circle).speaker_id == room.members[2].pk
    if act == "mode":
        assert entry.reason == "round"


def test_resuming_is_logged_as_a_resume(make_room):
    """Lifting a pause writes a floor_resume AuditEntry."""
    room = make_room(mode="open")
    floor_pause(circle_id=room.circle.pk, user=room.facilitator, paused=True, minutes=None)
    floor_pause(circle_id=room.circle.pk, user=room.facilitator, paused=False, minutes=None)
    actions = list(AuditEntry.objects.order_by("created_at", "id").values_list("action", flat=True))
    assert actions[-2:] == [AuditAction.FLOOR_PAUSE, AuditAction.FLOOR_RESUME]


def test_a_nudge_is_private_and_its_words_stay_out_of_the_audit_log(make_room, monkeypatch):
    """A nudge goes to the one member only; the audit log says a note was sent (action
    "nudge", to whom) but never what it said; the floor is untouched."""
    room = make_room(mode="open")
    target = room.members[1]
    sent = []
    monkeypatch.setattr(
        floor_services, "send_private", lambda *args: sent.append(args), raising=True
    )
    note = "Maybe give Member A some room to finish, thank you kindly"
    version = floor_row(room.circle).version

    floor_nudge(circle_id=room.circle.pk, user=room.facilitator, member_id=target.pk, text=note)

    [(to, circle_id, frame)] = sent
    assert (to, circle_id) == (target.pk, room.circle.pk)
    assert frame["type"] == "nudge"
    assert frame["text"] == note
    [entry] = AuditEntry.objects.filter(action=AuditAction.NUDGE)
    assert (entry.actor_id, entry.subject_id) == (room.facilitator.pk, target.pk)
    assert note not in entry.reason
    assert "room to finish" not in entry.reason
    assert floor_row(room.circle).version == version


def test_a_nudge_to_someone_outside_the_circle_is_refused(make_room, make_user):
    """The facilitator can only nudge members of the circle (not_found), and nothing is
    logged."""
    room = make_room(mode="open")
    error = refused(
        floor_nudge, circle_id=room.circle.pk, user=room.facilitator, member_id=make_user().pk
    )
    assert error.code == "not_found"
    assert not AuditEntry.objects.filter(action=AuditAction.NUDGE).exists()


# Shares against the floor -------------------------------------------------------------


def test_in_queue_mode_only_the_speaker_may_share(make_room):
    """On a raised-hands floor a share from anyone but the speaker is refused
    (not_your_turn): no Message is stored and the circle's seq does not move."""
    room = make_room(mode="queue")
    a, b, _c = room.members
    floor_raise_hand(circle_id=room.circle.pk, user=a, raised=True)  # A speaks
    floor_raise_hand(circle_id=room.circle.pk, user=b, raised=True)
    last_seq = Circle.objects.get(pk=room.circle.pk).last_seq
    messages = Message.objects.count()

    error = refused(say, room.circle, b, "Can I come in here?")

    assert error.code == "not_your_turn"
    assert Message.objects.count() == messages
    assert Circle.objects.get(pk=room.circle.pk).last_seq == last_seq
    # The speaker's share is taken, and takes the next seq.
    message = say(room.circle, a, "Thank you for waiting.")
    assert message.seq == last_seq + 1


def test_in_queue_mode_the_turn_ends_when_its_message_budget_is_spent(make_room):
    """The speaker's share that spends the turn's budget is stored, and the floor goes
    straight on to the next waiting hand."""
    room = make_room(mode="queue", turn_messages=2)
    a, b, _c = room.members
    floor_raise_hand(circle_id=room.circle.pk, user=a, raised=True)
    floor_raise_hand(circle_id=room.circle.pk, user=b, raised=True)
    say(room.circle, a, "one")
    assert floor_row(room.circle).speaker_id == a.pk
    say(room.circle, a, "two")
    row = floor_row(room.circle)
    assert row.speaker_id == b.pk
    assert row.turn_messages_left == 2
    assert log_of(room.circle)[-1].action == "share"
    assert refused(say, room.circle, a, "three").code == "not_your_turn"


def test_on_the_open_floor_the_fifth_share_in_a_row_waits_while_someone_else_is_here(
    make_room,
):
    """Four shares in a row are fine; the fifth, with another member present, is refused
    with "cooldown" and a retry_after, and is not stored."""
    room = make_room(mode="open", members=1)
    (a,) = room.members
    for number in range(4):
        say(room.circle, a, f"share {number}")
    last_seq = Circle.objects.get(pk=room.circle.pk).last_seq
    messages = Message.objects.count()

    error = refused(say, room.circle, a, "and one more")

    assert error.code == "cooldown"
    assert error.retry_after is not None
    assert 0 < error.retry_after <= 30
    assert Message.objects.count() == messages
    assert Circle.objects.get(pk=room.circle.pk).last_seq == last_seq
    # Someone else sharing ends the run.
    say(room.circle, room.facilitator, "Thank you, A.")
    say(room.circle, a, "and one more")


def test_on_the_open_floor_a_member_alone_is_never_held_back(make_room):
    """With nobody else present, the consecutive limit doesn't apply: a sixth share in a
    row is stored."""
    room = make_room(mode="open", members=1, present=False)
    (a,) = room.members
    be_present(room.circle, a)
    for number in range(6):
        say(room.circle, a, f"thinking aloud {number}")
    assert Message.objects.filter(author=a, kind=MessageKind.SHARE).count() == 6


def test_on_the_open_floor_the_cooldown_lifts_after_the_wait(make_room, clock):
    """The member held back after four in a row may share again once 30 s have passed."""
    room = make_room(mode="open", members=1)
    (a,) = room.members
    for number in range(4):
        say(room.circle, a, f"share {number}")
    clock.advance(10)
    error = refused(say, room.circle, a, "five")
    assert error.code == "cooldown"
    assert error.retry_after == pytest.approx(20, abs=0.01)
    clock.advance(20)
    say(room.circle, a, "five")


def test_while_paused_only_the_facilitators_notes_are_taken(make_room):
    """A paused floor refuses shares ("paused") but takes the facilitator's facilitation
    notes; a facilitation note from anyone else is forbidden."""
    room = make_room(mode="open")
    a = room.members[0]
    floor_pause(circle_id=room.circle.pk, user=room.facilitator, paused=True, minutes=None)
    messages = Message.objects.count()

    assert refused(say, room.circle, a, "hello?").code == "paused"
    assert refused(say, room.circle, room.facilitator, "a share, not a note").code == "paused"
    forbidden = refused(say, room.circle, a, "I facilitate now", kind=MessageKind.FACILITATION)
    assert forbidden.code == "forbidden"
    assert Message.objects.count() == messages

    note = say(
        room.circle,
        room.facilitator,
        "Let's take a breath together.",
        kind=MessageKind.FACILITATION,
    )
    assert note.kind == MessageKind.FACILITATION
    assert Message.objects.count() == messages + 1


def test_facilitation_notes_never_count_as_shares(make_room):
    """A facilitation note neither needs the floor (queue mode, nobody speaking) nor
    counts toward the facilitator's shares."""
    room = make_room(mode="queue")
    say(room.circle, room.facilitator, "Welcome, everyone.", kind=MessageKind.FACILITATION)
    row = floor_row(room.circle)
    assert row.tallies.get("shares", {}) == {}


# Closing: the voice balance ---------------------------------------------------------


def test_session_close_stores_each_voice_and_the_gini_of_shares(make_room):
    """Shares 3, 1, 0, 0 among four participants are stored as 75 %, 25 %, 0 %, 0 % with
    their characters, and the session's Gini is 0.625, worked out by hand:
    sum over ordered pairs |xi - xj| = 2 * (1 + 1 + 3 + 3 + 2) = 20, divided by
    2 * n^2 * mean = 2 * 16 * 1 = 32."""
    room = make_room(mode="open")
    fay, (a, b, c) = room.facilitator, room.members
    for text in ("one", "three", "fiver"):
        say(room.circle, a, text)
    say(room.circle, b, "sixsix")
    say(room.circle, fay, "A note from the facilitator.", kind=MessageKind.FACILITATION)

    session = session_close(circle_id=room.circle.pk, user=fay)

    session.refresh_from_db()
    assert session.status == "closed"
    assert session.gini == pytest.approx(0.625)
    voices = {voice.member_id: voice for voice in SessionVoice.objects.filter(session=session)}
    assert set(voices) == {fay.pk, a.pk, b.pk, c.pk}
    expected = {
        a.pk: (3, 3 + 5 + 5, 0.75),
        b.pk: (1, 6, 0.25),
        c.pk: (0, 0, 0.0),
        fay.pk: (0, 0, 0.0),
    }
    for member, (messages, characters, share) in expected.items():
        voice = voices[member]
        assert (voice.messages, voice.characters) == (messages, characters)
        assert voice.share == pytest.approx(share)
    assert voices[a.pk].display_name == "Member A"


def test_session_close_counts_floor_time_up_to_the_close(make_room, clock):
    """Floor seconds are the time each member held the floor, the speaker's running
    turn counted up to the moment the session closes."""
    room = make_room(mode="queue")
    fay, (a, b, _c) = room.facilitator, room.members
    floor_raise_hand(circle_id=room.circle.pk, user=a, raised=True)
    floor_raise_hand(circle_id=room.circle.pk, user=b, raised=True)
    clock.advance(40)
    floor_pass(circle_id=room.circle.pk, user=a)  # B speaks
    clock.advance(25)
    session = session_close(circle_id=room.circle.pk, user=fay)
    seconds = dict(
        SessionVoice.objects.filter(session=session).values_list("member_id", "floor_seconds")
    )
    assert seconds[a.pk] == pytest.approx(40)
    assert seconds[b.pk] == pytest.approx(25)
    assert seconds[fay.pk] == 0
    session.refresh_from_db()
    assert session.gini == 0  # nobody shared: every voice equal


def test_everyone_present_at_any_time_counts_in_the_balance(make_room):
    """A member who came and went during the session still has a row in the balance."""
    room = make_room(mode="open", members=2)
    a, b = room.members
    leave(room.circle, b)
    say(room.circle, a, "hello")
    session = session_close(circle_id=room.circle.pk, user=room.facilitator)
    assert set(
        SessionVoice.objects.filter(session=session).values_list("member_id", flat=True)
    ) == {
        room.facilitator.pk,
        a.pk,
        b.pk,
    }
    assert Session.objects.get(pk=session.pk).gini == pytest.approx(2 / 3)


# Replaying the log ---------------------------------------------------------------------


def _scripted_session(room: Room, clock: Clock) -> None:
    """A session that goes through every kind of transition, time included."""
    circle, fay = room.circle, room.facilitator
    a, b, c, d = room.members
    cid = circle.pk
    leave(circle, d)  # D arrives later

    floor_raise_hand(circle_id=cid, user=a, raised=True)  # A speaks at once
    clock.advance(1)
    floor_raise_hand(circle_id=cid, user=b, raised=True)
    clock.advance(1)
    floor_raise_hand(circle_id=cid, user=c, raised=True)
    assert refused(say, circle, c, "me?").code == "not_your_turn"
    clock.advance(5)
    say(circle, a, "first")
    clock.advance(5)
    say(circle, a, "second: the budget of two is spent")
    assert floor_row(circle).speaker_id == b.pk  # fewest turns, then the earliest hand
    floor_raise_hand(circle_id=cid, user=a, raised=True)  # one turn already: after C
    clock.advance(50)
    floor_settle(circle_id=cid)  # the reminder: 10 s left
    clock.advance(11)
    floor_settle(circle_id=cid)  # B's time is up: C
    assert floor_row(circle).speaker_id == c.pk
    say(circle, c, "C here")
    floor_pass(circle_id=cid, user=c)  # A, the only hand
    assert floor_row(circle).speaker_id == a.pk
    floor_grant(circle_id=cid, user=fay, member_id=b.pk)  # out of order
    floor_raise_hand(circle_id=cid, user=c, raised=True)
    floor_next(circle_id=cid, user=fay)  # C
    # The speaker drops out: after 15 s away the turn ends.
    leave(circle, c)
    clock.advance(2)
    floor_settle(circle_id=cid)
    clock.advance(16)
    floor_settle(circle_id=cid)
    assert floor_row(circle).speaker_id is None
    be_present(circle, c)
    # A timed pause lifts itself; a refused share in the same moment is logged.
    floor_raise_hand(circle_id=cid, user=b, raised=True)  # B speaks
    floor_pause(circle_id=cid, user=fay, paused=True, minutes=1)
    say(circle, fay, "Breathe.", kind=MessageKind.FACILITATION)
    assert refused(say, circle, b, "paused?").code == "paused"
    clock.advance(61)
    assert refused(say, circle, c, "my turn?").code == "not_your_turn"  # share_refused
    floor_set_mode(circle_id=cid, user=fay, mode="queue", settings={"turn_messages": 3})
    # A round, with D joining part-way.
    floor_set_mode(circle_id=cid, user=fay, mode="round")
    for step in range(20):
        row = floor_row(circle)
        if row.mode != "round":
            break
        holder = next(person for person in room.everyone if person.pk == row.speaker_id)
        if step == 1:
            be_present(circle, d)
        clock.advance(3)
        if step % 3 == 0:
            say(circle, holder, f"round share {step}")
        floor_pass(circle_id=cid, user=holder)
    assert floor_row(circle).mode == "queue"  # the round ended and went back
    floor_set_mode(circle_id=cid, user=fay, mode="open")
    for number in range(4):
        say(circle, d, f"open {number}")
    assert refused(say, circle, d, "open 4").code == "cooldown"
    say(circle, a, "A's turn on the open floor")


def test_the_floor_log_replays_through_the_policy_to_every_stored_state(make_room, clock):
    """A scripted session (hands, shares, budget, timer, reminder, pass, grant, next,
    a speaker dropping out, a timed pause, settings, a round, the open floor's limits):
    the log's versions run 1..N, and replaying it through the policy reproduces each
    stored state exactly, the last one being the floor's current row."""
    room = make_room(
        mode="queue", members=4, turn_seconds=60, turn_messages=2, turn_warning_seconds=10
    )
    _scripted_session(room, clock)

    rows = log_of(room.circle)
    assert [row.version for row in rows] == list(range(1, len(rows) + 1))
    assert {row.action for row in rows} == {
        "open",
        "hand",
        "share",
        "share_refused",
        "settle",
        "pass",
        "grant",
        "next",
        "pause",
        "mode",
    }
    outcomes = replay_floor_log(log_entries(rows))
    assert len(outcomes) == len(rows) - 1
    # The replay ends where the database is.
    current = floor_services.floor_current(circle_id=room.circle.pk)
    assert outcomes[-1].floor == current
    assert current.version == rows[-1].version
    # Shares in the log are the shares stored, in the same order.
    logged = [
        row.input["member"]
        for row in rows
        if row.action == "share" and row.input["kind"] == MessageKind.SHARE
    ]
    stored = list(
        Message.objects.filter(circle=room.circle, kind=MessageKind.SHARE)
        .order_by("seq")
        .values_list("author_id", flat=True)
    )
    assert logged == stored


def test_the_replay_catches_a_tampered_state(make_room, clock):
    """The replay is a real check: one changed field in one stored state is reported."""
    room = make_room(
        mode="queue", members=4, turn_seconds=60, turn_messages=2, turn_warning_seconds=10
    )
    _scripted_session(room, clock)
    entries = log_entries(log_of(room.circle))
    middle = len(entries) // 2
    tampered = dict(entries[middle].state, speaker=room.members[3].pk + 1000)
    entries[middle] = replace(entries[middle], state=tampered)
    with pytest.raises(ReplayMismatch, match=f"version {entries[middle].version}"):
        replay_floor_log(entries)


# Query counts ---------------------------------------------------------------------------


def _earlier_shares(room: Room, count: int) -> None:
    """`count` shares through the service, taking turns so no limit applies."""
    present = list(RoomConnection.objects.filter(circle=room.circle).values_list("user", flat=True))
    speakers = [person for person in room.everyone if person.pk in present]
    for number in range(count):
        say(room.circle, speakers[number % len(speakers)], f"earlier {number}")


@pytest.mark.parametrize("present_count", [3, 12])
@pytest.mark.parametrize("history", [5, 200])
def test_a_share_costs_the_same_queries_whoever_is_here_and_however_long_it_ran(
    make_room, django_assert_num_queries, django_capture_on_commit_callbacks, present_count, history
):
    """One accepted share on the open floor costs SHARE_QUERIES statements with 3 or
    12 members present and after 5 or 200 earlier messages:

    SAVEPOINT; the circle's row, locked; the open floor with its session, who is
    present, the membership and any earlier copy of the message, in one query; the
    floor's row, its log entry, the circle's seq and the message (one statement on
    PostgreSQL); RELEASE SAVEPOINT. The facilitator's balance names the people from
    the process's memory of names.
    """
    room = make_room(mode="open", members=12, present=False)
    be_present(room.circle, *room.everyone[:present_count])
    _earlier_shares(room, history - 1)  # plus the opening line
    assert Message.objects.filter(circle=room.circle).count() == history
    speaker = room.everyone[present_count - 1]

    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        django_assert_num_queries(SHARE_QUERIES[connection.vendor] + 2),
    ):
        say(room.circle, speaker, "Counting queries, gently.")

    # Broadcasts wait for the commit: the facilitator's balance and the message. The
    # open floor looks the same after a share, so no `floor` frame goes out.
    assert len(callbacks) == 2
    assert Message.objects.filter(circle=room.circle).count() == history + 1


# Arriving in the room: a fixed number of queries, however long the circle has talked.
HELLO_QUERIES = 4


@pytest.mark.parametrize("mode", ["open", "queue"])
@pytest.mark.parametrize("history", [5, 200])
def test_hello_costs_the_same_queries_however_long_the_history(
    make_room, django_assert_num_queries, mode, history
):
    """The hello frame: the latest seq; the open session with its facilitator and
    floor; the last 50 visible messages with their authors; who is present (roles
    read beside them, hands from the floor already read). Names on the floor come
    from the process's memory of names, read once before."""
    room = make_room(mode="open", members=6)
    _earlier_shares(room, history - 1)
    if mode == "queue":
        floor_set_mode(circle_id=room.circle.pk, user=room.facilitator, mode="queue")
        floor_raise_hand(circle_id=room.circle.pk, user=room.members[0], raised=True)
        floor_raise_hand(circle_id=room.circle.pk, user=room.members[1], raised=True)
    membership = Membership.objects.select_related("circle").get(
        circle=room.circle, user=room.members[2]
    )
    hello_frame(membership=membership, user=room.members[2])  # names remembered

    with django_assert_num_queries(HELLO_QUERIES):
        hello = hello_frame(membership=membership, user=room.members[2])

    assert len(hello["history"]) == min(history, 50)
    assert hello["seq"] == history
    assert len(hello["presence"]["members"]) == 7
    if mode == "queue":
        assert hello["floor"]["speaker"]["name"] == "Member A"
        raised = {
            person["member_id"] for person in hello["presence"]["members"] if person["hand_raised"]
        }
        assert room.members[1].pk in raised


# Connecting: a fixed number of queries, however many are already in the room.
CONNECT_QUERIES = 5


@pytest.mark.parametrize("present_count", [3, 12])
def test_connecting_costs_the_same_queries_however_many_are_here(
    make_room, django_assert_num_queries, present_count
):
    """Registering a connection: the new row; the member's live connections (locked,
    to replace any past five); who is present, with their roles (the hands read from
    the open floor); the floor told that presence moved. Plus the savepoint pair of
    its transaction inside the test's own."""
    room = make_room(mode="queue", members=12, present=False)
    be_present(room.circle, *room.everyone[:present_count])
    newcomer = room.everyone[present_count]
    with django_assert_num_queries(CONNECT_QUERIES + 2):
        room_connect(
            circle_id=room.circle.pk,
            user_id=newcomer.pk,
            channel_name="test.newcomer",
            access_version=room.circle.access_version,
        )
    assert RoomConnection.objects.filter(circle=room.circle).count() == present_count + 1
    assert floor_row(room.circle).presence_serial > floor_row(room.circle).settled_serial
