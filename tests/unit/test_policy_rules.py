"""Table tests for every turn-taking rule and default number (docs/turn-taking.md).

Pure policy: no database, the clock and presence passed in. Times are seconds
after T0; members are small integers (A, B, C, ...).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from circles.policy import (
    Floor,
    FloorSettings,
    Hand,
    Kind,
    Mode,
    Nudge,
    QueueEntry,
    Refusal,
    VoiceRow,
    gini,
    grant,
    hand,
    new_floor,
    next_in_queue,
    next_turn,
    pass_turn,
    pause,
    queue_order,
    set_mode,
    settle,
    share,
    voice_balance,
)

T0 = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)
A, B, C, D, E = 1, 2, 3, 4, 5
LETTERS = {letter: number for number, letter in enumerate("ABCDEFGHIJKLM", start=1)}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Room:
    """One session's floor and who is present, moved by the policy's transitions."""

    def __init__(
        self,
        mode: Mode = Mode.OPEN,
        present=(A, B, C),
        settings: FloorSettings | None = None,
        floor: Floor | None = None,
    ):
        self.present = set(present)
        self.floor = floor or new_floor(
            settings=settings or FloorSettings(), mode=mode, now=T0, present=self.present
        )

    def _go(self, function, seconds, **kwargs):
        outcome = function(self.floor, now=at(seconds), present=frozenset(self.present), **kwargs)
        self.floor = outcome.floor
        return outcome

    def share(self, member, seconds, *, kind=Kind.SHARE, characters=10):
        return self._go(share, seconds, member_id=member, kind=kind, characters=characters)

    def raise_hand(self, member, seconds):
        return self._go(hand, seconds, member_id=member, raised=True)

    def lower_hand(self, member, seconds):
        return self._go(hand, seconds, member_id=member, raised=False)

    def pass_(self, member, seconds):
        return self._go(pass_turn, seconds, member_id=member)

    def next(self, seconds):
        return self._go(next_turn, seconds)

    def grant(self, member, seconds):
        return self._go(grant, seconds, member_id=member)

    def mode(self, mode, seconds, settings=None):
        return self._go(set_mode, seconds, mode=mode, settings=settings)

    def pause(self, seconds, minutes=None):
        return self._go(pause, seconds, paused=True, minutes=minutes)

    def resume(self, seconds):
        return self._go(pause, seconds, paused=False)

    def settle(self, seconds):
        return self._go(settle, seconds)

    def holders(self, seconds, *, ending="pass"):
        """Let each holder of the round end their turn in turn; who held the piece, in order."""
        held = []
        while self.floor.round is not None:
            assert len(held) < 50, "the round never ends"
            holder = self.floor.speaker
            held.append(holder)
            if ending == "pass":
                self.pass_(holder, seconds)
            else:
                self.next(seconds)
        return held


def queue_room(*order, present=(A, B, C, D), settings=None, seconds=0):
    """A queue where the first member holds the floor and the others wait, raised in order."""
    room = Room(Mode.QUEUE, present=present, settings=settings)
    for member in order:
        room.raise_hand(member, seconds)
    if room.floor.speaker is None:  # without auto-advance
        room.next(seconds)
    assert room.floor.speaker == order[0]
    return room


def waiting(floor: Floor) -> list[int]:
    return [entry.member_id for entry in queue_order(floor)]


def members(word: str) -> tuple[int, ...]:
    return tuple(LETTERS[letter] for letter in word)


# Open floor: the consecutive limit -------------------------------------------

ok = None  # accepted


@pytest.mark.parametrize(
    ("present", "script"),
    [
        pytest.param(
            {A, B},
            [(A, 0, ok), (A, 1, ok), (A, 2, ok), (A, 3, ok), (A, 5, 28.0)],
            id="fifth-in-a-row-waits-30s-from-the-last",
        ),
        pytest.param(
            {A, B},
            [(A, 0, ok), (A, 1, ok), (A, 2, ok), (A, 3, ok), (A, 32.5, 0.5)],
            id="just-before-30s-still-waits",
        ),
        pytest.param(
            {A},
            [(A, second, ok) for second in range(10)],
            id="alone-no-cap",
        ),
        pytest.param(
            {A, B},
            [(A, 0, ok), (A, 1, ok), (A, 2, ok), (B, 3, ok)]
            + [(A, second, ok) for second in (4, 5, 6, 7)]
            + [(A, 8, 29.0)],
            id="another-member-sharing-resets-the-run",
        ),
        pytest.param(
            {A, B},
            [(A, second, ok) for second in (0, 1, 2, 3)]
            + [(A, second, ok) for second in (33, 34, 35, 36)]
            + [(A, 37, 29.0)],
            id="after-30s-allowed-again-and-the-count-restarts",
        ),
        pytest.param(
            {A, B},
            [(A, second, ok) for second in (0, 1, 2, 3)]
            + [(A, 10, 23.0), (A, 20, 13.0), (A, 33, ok)],
            id="refused-attempts-neither-extend-the-run-nor-restart-the-clock",
        ),
        pytest.param(
            {A, B},
            [(A, 0, ok), (A, 1, ok), (A, 2, ok), (A, 60, ok), (A, 61, 29.0)],
            id="in-a-row-counts-messages-not-time",
        ),
    ],
)
def test_open_floor_consecutive_limit(present, script):
    """After 4 shares in a row while someone else is present, a member waits until another
    member shares or 30 s pass; the refusal is `cooldown` with retry_after = 30 - elapsed."""
    room = Room(Mode.OPEN, present=present)
    for member, second, expected in script:
        before = room.floor
        outcome = room.share(member, second)
        if expected is ok:
            assert outcome.accepted, (member, second, outcome.refusal)
        else:
            assert outcome.refusal == Refusal("cooldown", "consecutive", pytest.approx(expected))
            assert outcome.effects == (Nudge(member, "consecutive", pytest.approx(expected)),)
            assert outcome.floor == before  # nothing stored, no version bump


def test_consecutive_limit_starts_when_someone_else_arrives():
    """A member who shared 4 in a row alone must wait once someone else is present."""
    room = Room(Mode.OPEN, present={A})
    for second in range(6):
        assert room.share(A, second).accepted
    room.present.add(B)
    assert room.share(A, 10).refusal == Refusal("cooldown", "consecutive", pytest.approx(25.0))


def test_facilitation_notes_never_count_and_are_never_refused():
    """Facilitation notes are exempt from the floor's limits and do not break or extend a run."""
    room = Room(Mode.OPEN, present={A, B})
    for second in range(8):
        assert room.share(A, second, kind=Kind.FACILITATION).accepted
    assert room.floor.shares == {}
    for second in (10, 11, 12, 13):
        assert room.share(A, second).accepted
    assert room.share(A, 14, kind=Kind.FACILITATION).accepted
    assert room.share(A, 15).refusal == Refusal("cooldown", "consecutive", pytest.approx(28.0))


# Open floor: the share limit -------------------------------------------------


def window_floor(window: str, *, last_a: float, settings: FloorSettings | None = None) -> Floor:
    """An open floor whose last shares (oldest first) are `window`; A last shared at `last_a`."""
    ids = members(window)
    return Floor(
        version=5,
        recent_shares=ids,
        last_share_at={A: at(last_a)},
        shares={member: ids.count(member) for member in set(ids)},
        run_member=ids[-1],
        run_length=1,
        settings=settings or FloorSettings(),
    )


@pytest.mark.parametrize(
    ("window", "present", "attempt", "expected"),
    [
        pytest.param("ABACADA", 4, 10, 26.0, id="4-of-7-with-4-present-waits"),
        pytest.param("ABACADA", 4, 35, 1.0, id="29s-after-still-waits"),
        pytest.param("ABACADA", 4, 36, ok, id="30s-after-allowed"),
        pytest.param("ABACA", 4, 10, ok, id="3-shares-below-the-minimum-of-4"),
        pytest.param("ABACADAB", 4, 10, ok, id="exactly-2x-fair-is-not-more"),
        pytest.param("ABABABA", 2, 10, ok, id="4-of-7-fair-half"),
        pytest.param("ABABABA", 3, 10, ok, id="4-of-7-fair-third"),
        pytest.param("ABABABA", 4, 10, 26.0, id="4-of-7-fair-quarter"),
        pytest.param("ABABABA", 6, 10, 26.0, id="4-of-7-fair-sixth"),
        pytest.param("AAAABCDEFGHIJKLBCDEF", 12, 10, 26.0, id="4-of-20-with-12-present"),
        pytest.param("AAAABCDEFGHIJKLBCDEF", 8, 10, ok, id="4-of-20-with-8-present"),
        pytest.param("ABCABADA", 2, 10, ok, id="fair-share-counts-those-present-now"),
    ],
)
def test_open_floor_share_limit(window, present, attempt, expected):
    """In the last 20 shares, a member holding more than 2 x the fair share (1 / present) and
    at least 4 of them waits 30 s from their last share (`cooldown`, reason `share`)."""
    floor = replace(window_floor(window, last_a=6), participants_ever=frozenset(range(1, 9)))
    outcome = share(
        floor,
        member_id=A,
        kind=Kind.SHARE,
        characters=5,
        now=at(attempt),
        present=frozenset(range(1, present + 1)),
    )
    if expected is ok:
        assert outcome.accepted
        assert outcome.floor.shares[A] == floor.shares[A] + 1
    else:
        assert outcome.refusal == Refusal("cooldown", "share", pytest.approx(expected))
        assert outcome.effects == (Nudge(A, "share", pytest.approx(expected)),)
        assert outcome.floor.shares == floor.shares
        assert outcome.floor.recent_shares == floor.recent_shares
        assert outcome.floor.characters == floor.characters


@pytest.mark.parametrize(
    ("share_window", "expected"),
    [
        pytest.param(20, ok, id="default-window-of-20-forgets-the-oldest"),
        pytest.param(21, 27.0, id="a-window-of-21-still-holds-it"),
    ],
)
def test_share_limit_counts_only_the_last_shares_of_the_window(share_window, expected):
    """Only the last `share_window` shares count: once an old share of A falls out, A may share."""
    settings = FloorSettings(share_window=share_window)
    floor = window_floor("AAAABCDEFGHIJKLBCDEF", last_a=0, settings=settings)
    present = frozenset(range(1, 14))
    pushed = share(
        floor, member_id=LETTERS["M"], kind=Kind.SHARE, characters=1, now=at(2), present=present
    )
    assert pushed.accepted
    assert len(pushed.floor.recent_shares) == min(21, share_window)
    outcome = share(
        pushed.floor, member_id=A, kind=Kind.SHARE, characters=1, now=at(3), present=present
    )
    if expected is ok:
        assert outcome.accepted
    else:
        assert outcome.refusal == Refusal("cooldown", "share", pytest.approx(expected))


# Queue: how long a turn lasts ------------------------------------------------


@pytest.mark.parametrize("turn_seconds", [120, 45])
def test_a_queue_turn_ends_after_its_seconds(turn_seconds):
    """A turn lasts at most turn_seconds (120 by default); then the next hand gets the floor."""
    settings = FloorSettings(turn_seconds=turn_seconds)
    room = queue_room(A, B, settings=settings)
    assert room.floor.turn_ends_at == at(turn_seconds)
    assert room.settle(turn_seconds - 0.5).floor.speaker == A
    outcome = room.settle(turn_seconds)
    assert outcome.turn_ended == (A,)
    assert room.floor.speaker == B
    assert room.floor.floor_seconds[A] == pytest.approx(turn_seconds)


@pytest.mark.parametrize("turn_messages", [6, 3, 1])
def test_a_queue_turn_ends_after_its_messages(turn_messages):
    """A turn lasts at most turn_messages shares (6 by default); the last one ends it."""
    room = queue_room(A, B, settings=FloorSettings(turn_messages=turn_messages))
    for count in range(1, turn_messages):
        assert room.share(A, count).accepted
        assert room.floor.speaker == A
        assert room.floor.turn_messages_left == turn_messages - count
    last = room.share(A, turn_messages)
    assert last.accepted
    assert last.turn_ended == (A,)
    assert room.floor.speaker == B
    assert room.floor.shares[A] == turn_messages


@pytest.mark.parametrize("ending", ["pass", "next", "disconnect"])
def test_a_queue_turn_ends_early(ending):
    """A turn ends early on pass, on the facilitator's next, or after a 15 s disconnect."""
    room = queue_room(A, B)
    if ending == "pass":
        outcome = room.pass_(A, 10)
    elif ending == "next":
        outcome = room.next(10)
    else:
        room.present.discard(A)
        room.settle(10)
        outcome = room.settle(25)
    assert outcome.turn_ended == (A,)
    assert room.floor.speaker == B
    assert room.floor.turns_taken == {A: 1, B: 1}


def test_disconnect_is_measured_from_when_settle_first_sees_the_speaker_missing():
    """The 15 s of absence start when a settle first sees the speaker missing, and reset when
    the speaker is seen again."""
    room = queue_room(A, B)
    room.present.discard(A)  # gone since second 5, but nobody looks until 10
    room.settle(10)
    assert room.floor.speaker_absent_since == at(10)
    assert room.settle(24.9).floor.speaker == A
    room.present.add(A)
    assert room.settle(26).floor.speaker_absent_since is None
    room.present.discard(A)
    room.settle(30)
    assert room.settle(44).floor.speaker == A
    assert room.settle(45).turn_ended == (A,)
    assert room.floor.speaker == B


def test_only_the_speaker_shares_in_a_queue():
    """In queue mode a share from anyone but the speaker is refused and stores nothing."""
    room = queue_room(A, B)
    before = room.floor
    outcome = room.share(B, 1)
    assert outcome.refusal == Refusal("not_your_turn", "queue_not_your_turn")
    assert outcome.floor == before


def test_the_queue_has_no_open_floor_limits_for_the_speaker():
    """The speaker of a queue may use the whole turn budget even in a crowded room."""
    room = queue_room(A, B, present=range(1, 9))
    for second in range(5):
        assert room.share(A, second).accepted


# Queue: the order ------------------------------------------------------------


def queue_floor(hands, *, turns=None, seconds=None, last=None, speaker=None) -> Floor:
    """A queue floor with these hands ((member, raised second[, behind]) in raise order)."""
    return Floor(
        mode=Mode.QUEUE,
        speaker=speaker,
        last_speaker=last,
        hands=tuple(
            Hand(h[0], at(h[1]), frozenset(h[2]) if len(h) > 2 else frozenset()) for h in hands
        ),
        turns_taken=turns or {},
        floor_seconds=seconds or {},
    )


@pytest.mark.parametrize(
    ("hands", "turns", "seconds", "expected"),
    [
        pytest.param(
            [(A, 0), (B, 1), (C, 2)], {A: 2, B: 0, C: 1}, {}, [B, C, A], id="fewest-turns"
        ),
        pytest.param(
            [(A, 0), (B, 1), (C, 2)],
            {A: 1, B: 1, C: 1},
            {A: 90.0, B: 30.0, C: 60.0},
            [B, C, A],
            id="then-least-floor-time",
        ),
        pytest.param([(B, 0), (C, 1), (A, 2)], {}, {}, [B, C, A], id="then-earliest-hand"),
        pytest.param(
            [(A, 0), (B, 1), (C, 2)],
            {A: 1, B: 1},
            {A: 10.0, B: 5.0},
            [C, B, A],
            id="all-three-keys",
        ),
        pytest.param(
            [(A, 0), (B, 1)],
            {A: 1, B: 2},
            {A: 500.0, B: 0.0},
            [A, B],
            id="turns-before-floor-time",
        ),
    ],
)
def test_queue_order(hands, turns, seconds, expected):
    """Waiting hands sort by turns taken (fewest first), floor time (least first), then
    when the hand went up (earliest first)."""
    assert waiting(queue_floor(hands, turns=turns, seconds=seconds)) == expected


def test_queue_entries_carry_the_numbers_for_their_reasons():
    """Each queue entry carries its turns (the words: "no turn yet", "one turn so far"),
    floor time and raise time."""
    floor = queue_floor([(A, 0), (B, 1)], turns={B: 1}, seconds={B: 42.0})
    assert queue_order(floor) == [
        QueueEntry(member_id=A, turns=0, floor_seconds=0.0, raised_at=at(0)),
        QueueEntry(member_id=B, turns=1, floor_seconds=42.0, raised_at=at(1)),
    ]


def test_the_speaker_is_not_in_the_queue():
    """The member holding the floor is never listed as waiting."""
    floor = queue_floor([(A, 0), (B, 1)], speaker=A)
    assert waiting(floor) == [B]


@pytest.mark.parametrize(
    ("hands", "turns", "last", "present", "expected"),
    [
        pytest.param([(A, 0), (B, 1)], {}, None, {A, B}, A, id="first-hand"),
        pytest.param([(A, 0), (B, 1)], {}, None, {B}, B, id="absent-hands-are-passed-over"),
        pytest.param([(A, 0), (B, 1)], {}, None, set(), None, id="nobody-here"),
        pytest.param([(A, 0), (B, 1)], {A: 1, B: 3}, A, {A, B}, B, id="never-twice-in-a-row"),
        pytest.param([(A, 0)], {A: 1}, A, {A, B}, A, id="again-when-nobody-else-waits"),
        pytest.param([(A, 0), (B, 1)], {A: 1}, A, {A}, A, id="again-when-the-other-is-away"),
        pytest.param(
            [(A, 0), (B, 1), (C, 2)], {A: 1, B: 5}, A, {A, B, C}, C, id="the-next-after-the-last"
        ),
    ],
)
def test_next_in_queue(hands, turns, last, present, expected):
    """The next speaker is the first present waiting hand, never the member who just spoke
    while someone else waits."""
    floor = queue_floor(hands, turns=turns, last=last)
    assert next_in_queue(floor, frozenset(present)) == expected


def test_the_member_who_just_spoke_never_goes_twice_in_a_row_while_someone_waits():
    """A, who just spoke, raises again with fewer turns than B, yet B gets the floor first;
    with nobody else waiting A may go again."""
    room = Room(Mode.QUEUE, present={A, B, C}, settings=FloorSettings(auto_advance=False))
    room.raise_hand(A, 0)
    room.next(0)
    room.floor = replace(room.floor, turns_taken={A: 1, B: 3})
    room.raise_hand(B, 1)
    room.pass_(A, 2)
    room.raise_hand(A, 3)
    assert waiting(room.floor) == [A, B]
    room.next(4)
    assert room.floor.speaker == B
    room.pass_(B, 5)
    room.next(6)
    assert room.floor.speaker == A
    room.pass_(A, 7)
    room.raise_hand(A, 8)
    room.next(9)
    assert room.floor.speaker == A


def test_the_speakers_own_raise_waits_behind_everyone_already_waiting():
    """A speaker who raises their hand during their turn waits behind every hand already up,
    even with fewer turns; hands raised later still sort by the usual keys."""
    room = queue_room(A, B, present={A, B, C})
    room.floor = replace(room.floor, turns_taken={A: 1, B: 3})
    room.raise_hand(A, 5)
    assert room.floor.hand_of(A).behind == frozenset({B})
    room.raise_hand(C, 6)
    assert waiting(room.floor) == [C, B]  # A still speaks
    assert waiting(replace(room.floor, speaker=None)) == [C, B, A]
    held = []
    for second in (7, 8, 9):
        room.next(second)
        held.append(room.floor.speaker)
    assert held == [C, B, A]


def test_waiting_behind_ends_when_those_hands_got_the_floor():
    """A speaker's raise waits behind the hands that were up then, not behind a later raise
    of the same member after that member had the floor."""
    floor = queue_floor(
        [(A, 2, {B}), (B, 10)],  # B's hand of second 1 is gone: B spoke and raised again
        turns={A: 1, B: 4},
        last=C,
    )
    assert waiting(floor) == [A, B]
    assert next_in_queue(floor, frozenset({A, B, C})) == A


def test_waiting_behind_counts_only_members_present_to_take_the_floor():
    """A raise waiting behind a member who has left the room is not held back by that
    absent member when the floor is given."""
    floor = queue_floor([(B, 1), (A, 2, {B}), (D, 3)], turns={A: 1, B: 9, D: 5}, last=C)
    assert waiting(floor) == [D, B, A]  # B's hand is still up: A waits behind it
    assert next_in_queue(floor, frozenset({A, C, D})) == A  # but B is not here


# Queue: hands, auto-advance, next and grant ----------------------------------


def test_a_speakers_hand_drops_when_they_get_the_floor():
    """Whoever is given the floor (advance, next or grant) no longer has a hand up."""
    room = Room(Mode.QUEUE, present={A, B, C, D}, settings=FloorSettings(auto_advance=False))
    for member in (A, B, C):
        room.raise_hand(member, 0)
    room.next(1)
    assert room.floor.speaker == A
    assert [h.member_id for h in room.floor.hands] == [B, C]
    room.grant(C, 2)
    assert room.floor.speaker == C
    assert [h.member_id for h in room.floor.hands] == [B]


@pytest.mark.parametrize("target", [Mode.OPEN, Mode.ROUND, Mode.QUEUE])
def test_hands_stay_raised_across_mode_changes(target):
    """Changing the mode keeps every raised hand, in order."""
    room = queue_room(A, B, C, present={A, B, C, D})
    room.floor = replace(room.floor, settings=FloorSettings(auto_advance=False))
    room.pass_(A, 1)
    room.mode(target, 2)
    assert [h.member_id for h in room.floor.hands] == [B, C]
    room.mode(Mode.OPEN, 3)
    assert [h.member_id for h in room.floor.hands] == [B, C]


def test_hands_are_kept_through_a_whole_round():
    """A round offers the piece to members with hands up without lowering them: after the
    round the queue hands are still there."""
    room = queue_room(A, B, C, present={A, B, C})
    room.floor = replace(room.floor, settings=FloorSettings(auto_advance=False))
    room.mode(Mode.ROUND, 1)
    assert room.holders(2) == [A, B, C, A, B, C]  # nobody shared: everyone offered twice
    assert room.floor.mode == Mode.QUEUE
    assert [h.member_id for h in room.floor.hands] == [B, C]


@pytest.mark.parametrize("auto_advance", [True, False])
def test_auto_advance(auto_advance):
    """With auto-advance (the default) an idle floor goes at once to the first hand; without
    it the idle floor waits for the facilitator's next."""
    room = queue_room(A, B, settings=FloorSettings(auto_advance=auto_advance))
    room.pass_(A, 10)
    assert room.floor.speaker == (B if auto_advance else None)
    room.settle(70)
    assert room.floor.speaker == (B if auto_advance else None)
    if not auto_advance:
        room.next(80)
        assert room.floor.speaker == B
    room.pass_(B, 90)
    room.raise_hand(C, 100)
    assert room.floor.speaker == (C if auto_advance else None)


@pytest.mark.parametrize("auto_advance", [True, False])
def test_a_turn_running_out_without_auto_advance_leaves_the_floor_idle(auto_advance):
    """A turn that runs out hands the floor on only under auto-advance."""
    room = queue_room(A, B, settings=FloorSettings(auto_advance=auto_advance))
    room.settle(120)
    assert room.floor.speaker == (B if auto_advance else None)
    assert room.floor.last_speaker == A


@pytest.mark.parametrize("mode", [Mode.OPEN, Mode.ROUND])
def test_grant_is_for_queues_only(mode):
    """The facilitator may grant the floor only in queue mode."""
    room = Room(mode, present={A, B, C})
    before = room.floor
    outcome = room.grant(B, 1)
    assert outcome.refusal == Refusal("invalid", "grant_in_queue")
    assert outcome.floor == before


def test_grant_gives_the_floor_out_of_order():
    """A grant ends the current turn and gives the floor to anyone present, even past the queue;
    the others keep waiting."""
    room = queue_room(A, B, present={A, B, C})
    room.floor = replace(room.floor, turns_taken={A: 1, C: 3})
    outcome = room.grant(C, 5)
    assert outcome.accepted
    assert outcome.turn_ended == (A,)
    assert room.floor.speaker == C
    assert room.floor.turns_taken[C] == 4
    assert waiting(room.floor) == [B]


@pytest.mark.parametrize(
    ("member", "refusal"),
    [(D, Refusal("not_found", "not_here")), (A, None)],
    ids=["absent-member", "the-speaker-already"],
)
def test_grant_that_changes_nothing(member, refusal):
    """A grant to an absent member is refused; a grant to the speaker is a no-op."""
    room = queue_room(A, B, present={A, B, C})
    before = room.floor
    outcome = room.grant(member, 1)
    assert outcome.refusal == refusal
    assert outcome.floor == before


# Queue: the nudge 30 s before a turn ends ------------------------------------


@pytest.mark.parametrize(
    ("looks", "nudges"),
    [
        pytest.param([89], [], id="too-early"),
        pytest.param([90], [30], id="at-30s-left"),
        pytest.param([100], [20], id="late-look-says-what-is-left"),
        pytest.param([90, 95, 100, 119], [30], id="once-per-turn"),
        pytest.param([80, 91, 119.5], [29], id="first-look-inside-the-last-30s"),
    ],
)
def test_turn_ending_nudge(looks, nudges):
    """30 s before a turn ends the speaker gets one `turn_ending` nudge, once per turn."""
    room = queue_room(A, B)
    seen = []
    for second in looks:
        effects = room.settle(second).effects
        seen.extend(effect.seconds for effect in effects if effect.reason == "turn_ending")
        assert all(effect.member_id == A for effect in effects)
    assert seen == nudges


def test_a_turn_shorter_than_the_warning_is_nudged_as_it_is_given_by_a_settle():
    """When a settle ends a turn and gives a 20 s turn, the new speaker is nudged in that same
    settle, so settling again at the same instant changes nothing."""
    room = queue_room(A, B, settings=FloorSettings(turn_seconds=20))
    outcome = room.settle(20)
    assert outcome.turn_ended == (A,)
    assert outcome.effects == (Nudge(B, "turn_ending", 20),)
    again = room.settle(20)
    assert again.floor == outcome.floor
    assert again.effects == ()


def test_every_turn_gets_its_own_nudge():
    """The next speaker is nudged again near the end of their own turn."""
    room = queue_room(A, B)
    assert room.settle(90).effects == (Nudge(A, "turn_ending", 30),)
    room.pass_(A, 100)
    assert room.settle(189).effects == ()
    assert room.settle(190).effects == (Nudge(B, "turn_ending", 30),)


# Round: the talking piece ----------------------------------------------------


def test_the_round_starts_with_a_different_member_each_time():
    """The first seat rotates from round to round over everyone present, the facilitator
    included (here the facilitator is A, the lowest id)."""
    room = Room(Mode.OPEN, present={A, B, C})
    firsts = []
    for number in range(4):
        room.mode(Mode.ROUND, number * 10)
        firsts.append(room.floor.round.order[0])
        assert room.floor.speaker == room.floor.round.order[0]
        for member in list(room.floor.round.order):
            room.share(member, number * 10 + 1)
            room.pass_(member, number * 10 + 1)
        assert room.floor.round is None
    assert firsts == [A, B, C, A]


def test_a_round_started_with_nobody_here_does_not_count_for_the_rotation():
    """A round asked for while nobody is present never starts, so the next round still starts
    with the next member."""
    room = Room(Mode.OPEN, present={A, B})
    room.mode(Mode.ROUND, 0)
    assert room.holders(1) == [A, B, A, B]
    room.present.clear()
    room.mode(Mode.ROUND, 2)
    assert room.floor.mode == Mode.OPEN
    assert room.floor.round is None
    room.present |= {A, B}
    room.mode(Mode.ROUND, 3)
    assert room.floor.round.order == (B, A)


def test_the_holder_may_share_several_times_within_the_budget():
    """The holder keeps the piece for several shares until the message budget is spent."""
    room = Room(Mode.ROUND, present={A, B, C})
    assert room.floor.speaker == A
    for second in range(5):
        assert room.share(A, second).accepted
        assert room.floor.speaker == A
    outcome = room.share(A, 5)
    assert outcome.turn_ended == (A,)
    assert room.floor.speaker == B
    assert room.floor.round.passed == ()


@pytest.mark.parametrize("ending", ["pass", "next", "budget", "disconnect"])
def test_a_round_turn_without_a_share_counts_as_passed(ending):
    """A holder whose turn ends without a share (pass, next, time, 15 s gone) has passed."""
    room = Room(Mode.ROUND, present={A, B, C})
    if ending == "pass":
        room.pass_(A, 5)
    elif ending == "next":
        room.next(5)
    elif ending == "budget":
        room.settle(120)
    else:
        room.present.discard(A)
        room.settle(5)
        room.settle(20)
    assert room.floor.speaker == B
    assert room.floor.round.passed == (A,)


def test_a_round_turn_with_a_share_is_not_passed():
    """A holder who shared then passes is not offered the piece again."""
    room = Room(Mode.ROUND, present={A, B, C})
    room.share(A, 1)
    room.pass_(A, 2)
    assert room.floor.round.passed == ()


def test_only_the_holder_shares_in_a_round():
    """In a round a share from anyone but the holder is refused."""
    room = Room(Mode.ROUND, present={A, B, C})
    assert room.share(B, 1).refusal == Refusal("not_your_turn", "round_not_holder")


def test_those_who_passed_are_offered_the_piece_once_more_at_the_end():
    """After everyone held the piece once, those who passed are offered it once more, in
    the same order; then the round ends."""
    room = Room(Mode.OPEN, present={A, B, C, D})
    room.mode(Mode.ROUND, 0)
    held = []
    for member, shares in [(A, 0), (B, 1), (C, 0), (D, 2), (A, 1), (C, 0)]:
        assert room.floor.speaker == member
        held.append(member)
        for _ in range(shares):
            room.share(member, 1)
        room.pass_(member, 2)
    assert held == [A, B, C, D, A, C]
    assert room.floor.round is None
    assert room.floor.speaker is None
    assert room.floor.mode == Mode.OPEN


def test_joiners_come_after_those_still_to_come_and_before_the_second_offers():
    """Members who join during the round are added after the others still to come, before
    the second offers."""
    room = Room(Mode.ROUND, present={A, B, C})
    room.pass_(A, 1)  # A passes: offered again at the end
    room.present |= {E, D}
    room.settle(2)
    assert room.floor.round.order == (A, B, C, D, E)
    assert room.holders(3) == [B, C, D, E, A, B, C, D, E]


def test_leavers_are_skipped():
    """A member who left before their seat came up is skipped, and not offered again."""
    room = Room(Mode.ROUND, present={A, B, C})
    room.present.discard(B)
    room.share(A, 1)
    room.pass_(A, 2)
    assert room.floor.speaker == C
    room.present.add(B)
    room.share(C, 3)
    room.pass_(C, 4)
    assert room.floor.round is None


@pytest.mark.parametrize(
    ("before", "expected"),
    [(Mode.OPEN, Mode.OPEN), (Mode.QUEUE, Mode.QUEUE), (None, Mode.QUEUE)],
    ids=["from-open", "from-queue", "session-began-in-a-round"],
)
def test_after_the_round_the_mode_goes_back(before, expected):
    """When the round ends no one holds the floor, and the mode goes back to what it was
    (queue if the session began in a round)."""
    if before is None:
        room = Room(Mode.ROUND, present={A, B})
    else:
        room = Room(before, present={A, B})
        room.mode(Mode.ROUND, 0)
    for member in (A, B):
        room.share(member, 1)
        room.pass_(member, 1)
    assert room.floor.round is None
    assert room.floor.mode == expected
    assert room.floor.speaker is None


def test_a_round_restarted_during_a_round_still_goes_back_to_the_mode_before():
    """Starting a new round while one runs keeps the mode the first round came from."""
    room = Room(Mode.OPEN, present={A, B})
    room.mode(Mode.ROUND, 0)
    room.mode(Mode.ROUND, 1)
    for member in list(room.floor.round.order):
        room.share(member, 2)
        room.pass_(member, 2)
    assert room.floor.mode == Mode.OPEN


@pytest.mark.parametrize("ending", ["pass", "next", "budget", "time"])
def test_after_a_round_in_a_queue_the_idle_floor_goes_to_the_first_hand(ending):
    """When a round returns to a queue with auto-advance, the idle floor goes at once to the
    first waiting hand, however the round's last turn ended."""
    room = Room(Mode.QUEUE, present={A, B, C}, settings=FloorSettings(turn_messages=2))
    room.mode(Mode.ROUND, 0)
    room.raise_hand(B, 1)
    for member in (A, B):
        room.share(member, 2)
        room.pass_(member, 2)
    assert room.floor.speaker == C
    room.share(C, 3)
    if ending == "pass":
        room.pass_(C, 4)
    elif ending == "next":
        room.next(4)
    elif ending == "budget":
        room.share(C, 4)
    else:
        room.settle(200)
    assert room.floor.round is None
    assert room.floor.mode == Mode.QUEUE
    assert room.floor.speaker == B
    assert room.floor.hands == ()


def test_after_a_round_in_a_queue_the_last_holder_does_not_go_twice_in_a_row():
    """The round's last holder waits behind the others after the round like any last speaker."""
    room = Room(Mode.QUEUE, present={A, B, C})
    room.mode(Mode.ROUND, 0)
    room.raise_hand(C, 0)
    room.raise_hand(B, 0.5)
    assert waiting(room.floor) == [C, B]
    room.share(A, 1)
    room.pass_(A, 1)
    room.share(B, 2)
    room.pass_(B, 2)
    room.share(C, 3)
    room.pass_(C, 3)
    assert room.floor.mode == Mode.QUEUE
    assert room.floor.speaker == B


# Pause -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.OPEN, Mode.QUEUE, Mode.ROUND])
def test_no_one_shares_while_paused_but_facilitation_notes_go_through(mode):
    """While paused every share is refused with `paused` (the speaker's too); facilitation
    notes are still accepted."""
    room = Room(mode, present={A, B})
    if mode == Mode.QUEUE:
        room.raise_hand(A, 0)
    room.pause(1)
    before = room.floor
    outcome = room.share(A, 2)
    assert outcome.refusal == Refusal("paused", "paused")
    assert outcome.floor == before
    assert room.share(A, 3, kind=Kind.FACILITATION).accepted


def test_a_timed_pause_tells_how_long_to_wait():
    """A share refused by a timed pause says when sharing opens again."""
    room = Room(Mode.OPEN, present={A, B})
    room.pause(0, minutes=2)
    assert room.share(A, 30).refusal == Refusal("paused", "paused", pytest.approx(90.0))


def test_the_turn_clock_stops_while_paused_and_resumes_with_what_was_left():
    """A pause stops the turn's clock; on resume the turn has the rest of its time, and
    floor time never counts the pause."""
    room = queue_room(A, B)
    room.pause(50)
    assert room.floor.turn_ends_at is None
    assert room.floor.turn_seconds_left == pytest.approx(70)
    assert room.settle(500).floor.speaker == A
    room.resume(500)
    assert room.floor.turn_ends_at == at(570)
    assert room.settle(569).floor.speaker == A
    assert room.settle(570).turn_ended == (A,)
    assert room.floor.floor_seconds[A] == pytest.approx(120)


def test_a_turn_given_while_paused_waits_with_a_full_clock():
    """A turn that starts during a pause keeps its whole length for after the pause."""
    room = Room(Mode.QUEUE, present={A, B})
    room.pause(0)
    room.raise_hand(A, 10)
    assert room.floor.speaker == A
    assert room.floor.turn_seconds_left == pytest.approx(120)
    room.resume(60)
    assert room.floor.turn_ends_at == at(180)


@pytest.mark.parametrize("look", [110, 130])
def test_a_timed_pause_lifts_itself_at_its_end(look):
    """A timed pause lifts itself at paused_until (on the first settle at or after it); the
    turn's clock runs on from paused_until, however late the settle comes."""
    room = queue_room(A, B)
    room.pause(50, minutes=1)
    assert room.floor.paused_until == at(110)
    assert room.settle(109).floor.paused
    room.settle(look)
    assert not room.floor.paused
    assert room.floor.paused_until is None
    assert room.floor.turn_ends_at == at(180)
    assert room.share(A, look).accepted


def test_a_turn_whose_time_ran_out_during_a_long_settle_gap_counts_only_its_length():
    """Floor time counts a turn up to its end, not up to when the server next looked."""
    room = queue_room(A, B)
    room.settle(400)
    assert room.floor.speaker == B
    assert room.floor.floor_seconds[A] == pytest.approx(120)


def test_a_new_turn_length_applies_to_the_running_turn_and_floor_time_stays_true():
    """Changing turn_seconds during a (paused) turn keeps the time already held: floor time is
    what the speaker really held, and the turn ends at its new length."""
    room = queue_room(A, B)
    room.pause(30)  # A held 30 s
    room.mode(Mode.QUEUE, 40, settings=FloorSettings(turn_seconds=300))
    room.resume(100)
    assert room.floor.turn_ends_at == at(100 + 270)
    room.pass_(A, 110)
    assert room.floor.floor_seconds[A] == pytest.approx(40)


# Version ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "grows"),
    [
        pytest.param(lambda r: r.settle(1), 0, id="settle-nothing-to-do"),
        pytest.param(lambda r: r.share(B, 1), 0, id="refused-share"),
        pytest.param(lambda r: r.pass_(B, 1), 0, id="pass-by-someone-else"),
        pytest.param(lambda r: r.raise_hand(B, 1), 0, id="hand-already-up"),
        pytest.param(lambda r: r.lower_hand(C, 1), 0, id="lower-no-hand"),
        pytest.param(lambda r: r.mode(Mode.QUEUE, 1), 0, id="same-mode"),
        pytest.param(lambda r: r.resume(1), 0, id="resume-when-not-paused"),
        pytest.param(lambda r: r.grant(A, 1), 0, id="grant-to-the-speaker"),
        pytest.param(lambda r: r.share(A, 1), 1, id="share"),
        pytest.param(lambda r: r.share(A, 1, kind=Kind.FACILITATION), 0, id="facilitation-note"),
        pytest.param(lambda r: r.pass_(A, 1), 1, id="pass"),
        pytest.param(lambda r: r.next(1), 1, id="next"),
        pytest.param(lambda r: r.grant(B, 1), 1, id="grant"),
        pytest.param(lambda r: r.raise_hand(C, 1), 1, id="raise"),
        pytest.param(lambda r: r.lower_hand(B, 1), 1, id="lower"),
        pytest.param(lambda r: r.mode(Mode.OPEN, 1), 1, id="mode"),
        pytest.param(lambda r: r.pause(1), 1, id="pause"),
        pytest.param(lambda r: r.settle(120), 1, id="settle-ends-a-turn"),
        pytest.param(lambda r: r.settle(95), 1, id="settle-nudges"),
    ],
)
def test_the_version_grows_by_one_per_changing_transition(act, grows):
    """Every transition that changes the floor bumps the version by exactly one; one that
    changes nothing leaves it as it was."""
    room = queue_room(A, B, present={A, B, C})
    before = room.floor
    outcome = act(room)
    assert outcome.floor.version == before.version + grows
    if not grows:
        assert outcome.floor == before


def test_a_new_floor_is_version_one():
    """A session's floor opens at version 1 in every mode."""
    for mode in Mode:
        assert new_floor(settings=FloorSettings(), mode=mode, now=T0, present={A}).version == 1


def test_someone_new_in_the_room_is_a_change():
    """A settle that sees a new participant records them (for the balance) and bumps the version."""
    room = Room(Mode.OPEN, present={A})
    room.present.add(B)
    outcome = room.settle(1)
    assert outcome.floor.version == 2
    assert outcome.floor.participants_ever == {A, B}


# Voice balance ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([], 0.0, id="nobody"),
        pytest.param([0, 0, 0], 0.0, id="nobody-spoke"),
        pytest.param([7], 0.0, id="one-person"),
        pytest.param([5, 5, 5, 5], 0.0, id="equal-voices"),
        pytest.param([0, 12], 1 / 2, id="one-voice-of-two"),
        pytest.param([0, 0, 12], 2 / 3, id="one-voice-of-three"),
        pytest.param([0, 0, 0, 9], 3 / 4, id="one-voice-of-four"),
        pytest.param([1, 2, 3, 4], 0.25, id="one-to-four"),
        pytest.param([6, 0, 2, 1, 1], 0.52, id="mixed-unsorted"),
    ],
)
def test_gini(values, expected):
    """The Gini coefficient is 0 for equal voices, (n-1)/n for one voice only, and the mean
    absolute difference over twice the mean otherwise (hand-computed here)."""
    assert gini(values) == pytest.approx(expected)


def test_voice_balance_rows():
    """One row per participant with shares, characters, floor seconds (to 0.1 s) and share
    fraction; flagged only when more than 2 x the fair share; the Gini of shares."""
    rows, coefficient = voice_balance(
        participants={A, B, C, D},
        shares={A: 6, B: 1, C: 1},
        characters={A: 600, B: 40, C: 25},
        floor_seconds={A: 12.345, B: 3.0},
    )
    assert rows == [
        VoiceRow(A, 6, 600, 12.3, 0.75, True),
        VoiceRow(B, 1, 40, 3.0, 0.125, False),
        VoiceRow(C, 1, 25, 0.0, 0.125, False),
        VoiceRow(D, 0, 0, 0.0, 0.0, False),
    ]
    assert coefficient == pytest.approx(0.5625)  # [0, 1, 1, 6]: 36 / (2 * 16 * 2)


@pytest.mark.parametrize(
    ("shares", "flagged"),
    [
        pytest.param({A: 4, B: 2, C: 2}, set(), id="exactly-2x-fair-not-flagged"),
        pytest.param({A: 5, B: 2, C: 1}, {A}, id="over-2x-flagged"),
        pytest.param({A: 4}, {A}, id="only-voice-of-four"),
        pytest.param({A: 3}, set(), id="fewer-than-4-shares-never-flagged"),
        pytest.param({A: 4, E: 4}, {A, E}, id="a-non-participant-who-shared-still-counts"),
    ],
)
def test_voice_balance_flags(shares, flagged):
    """A member is flagged when their share of all shares passes 2 x the fair share
    (1 / number of participants), once they have at least 4 shares."""
    rows, _ = voice_balance(
        participants={A, B, C, D}, shares=shares, characters={}, floor_seconds={}
    )
    assert {row.member_id for row in rows if row.flagged} == flagged
    assert {row.member_id for row in rows} == {A, B, C, D} | set(shares)


def test_voice_balance_alone_is_never_flagged():
    """A session of one person flags no one."""
    rows, coefficient = voice_balance(
        participants={A}, shares={A: 9}, characters={A: 90}, floor_seconds={}
    )
    assert rows == [VoiceRow(A, 9, 90, 0.0, 1.0, False)]
    assert coefficient == 0.0


def test_the_facilitator_is_alerted_privately_when_a_member_passes_2x_fair():
    """A member whose shares pass 2 x fair among everyone ever present is flagged to the
    facilitator only (a Nudge with member_id None), once."""
    room = Room(Mode.OPEN, present={A, B, C, D, E})
    effects = []
    for second, member in enumerate([A, B, A, C, A, A]):
        effects.extend(room.share(member, second).effects)
    assert effects == [Nudge(None, "dominance", about=A)]
    assert room.floor.flagged == {A}
