"""The floor of a session and every rule that moves it (docs/turn-taking.md).

Pure: plain values in, a new `Floor` and a list of effects out. The clock and
the set of present participants are passed in, never read. Every public
transition first settles what time alone decides (a turn running out, a timed
pause lifting, a speaker gone too long), so any process that handles the next
request reaches the same state from the stored one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Mode(StrEnum):
    OPEN = "open"
    QUEUE = "queue"
    ROUND = "round"


class Kind(StrEnum):
    SHARE = "share"
    FACILITATION = "facilitation"


@dataclass(frozen=True)
class FloorSettings:
    """Every number of docs/turn-taking.md, per circle, with its default."""

    consecutive_cap: int = 4
    consecutive_wait_seconds: int = 30
    share_window: int = 20
    share_multiple: float = 2.0
    share_minimum: int = 4
    share_wait_seconds: int = 30
    turn_seconds: int = 120
    turn_messages: int = 6
    auto_advance: bool = True
    turn_warning_seconds: int = 30
    disconnect_grace_seconds: int = 15


@dataclass(frozen=True)
class Hand:
    member_id: int
    raised_at: datetime
    # Raised by the speaker during their own turn: waits behind these members,
    # who were already waiting then, for as long as they still wait.
    behind: frozenset[int] = frozenset()


class Phase(StrEnum):
    FIRST = "first"  # the piece goes once around
    SECOND = "second"  # those who passed are offered it once more


@dataclass(frozen=True)
class Round:
    order: tuple[int, ...]
    position: int = 0  # index into `order` (first phase) or `passed` (second phase)
    phase: Phase = Phase.FIRST
    passed: tuple[int, ...] = ()

    @property
    def holder(self) -> int | None:
        seats = self.order if self.phase == Phase.FIRST else self.passed
        return seats[self.position] if self.position < len(seats) else None


@dataclass(frozen=True)
class Floor:
    version: int = 0
    mode: Mode = Mode.OPEN
    # The mode a round goes back to when it ends.
    return_mode: Mode = Mode.QUEUE
    paused: bool = False
    paused_until: datetime | None = None
    speaker: int | None = None
    turn_started_at: datetime | None = None
    turn_ends_at: datetime | None = None
    # While paused the turn's clock stops: what was left of it.
    turn_seconds_left: float | None = None
    turn_messages_left: int | None = None
    turn_shared: bool = False
    turn_warned: bool = False
    speaker_absent_since: datetime | None = None
    last_speaker: int | None = None
    hands: tuple[Hand, ...] = ()
    round: Round | None = None
    rounds_started: int = 0
    turns_taken: Mapping[int, int] = field(default_factory=dict)
    floor_seconds: Mapping[int, float] = field(default_factory=dict)
    shares: Mapping[int, int] = field(default_factory=dict)
    characters: Mapping[int, int] = field(default_factory=dict)
    recent_shares: tuple[int, ...] = ()
    last_share_at: Mapping[int, datetime] = field(default_factory=dict)
    run_member: int | None = None
    run_length: int = 0
    participants_ever: frozenset[int] = frozenset()
    flagged: frozenset[int] = frozenset()
    settings: FloorSettings = FloorSettings()

    def hand_of(self, member_id: int) -> Hand | None:
        return next((hand for hand in self.hands if hand.member_id == member_id), None)


# Effects and refusals ---------------------------------------------------------


@dataclass(frozen=True)
class Nudge:
    """A private note; `reason` names the words the room shows. `member_id` None
    means the session's facilitator (an alert about the member in `about`)."""

    member_id: int | None
    reason: str
    seconds: float | None = None
    about: int | None = None


@dataclass(frozen=True)
class Refusal:
    code: str  # a protocol error code
    reason: str  # names the plain words shown
    retry_after: float | None = None


@dataclass(frozen=True)
class Outcome:
    floor: Floor
    effects: tuple[Nudge, ...] = ()
    refusal: Refusal | None = None
    turn_ended: tuple[int, ...] = ()  # members whose turn ended in this transition

    @property
    def accepted(self) -> bool:
        return self.refusal is None


# Reading the floor ------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    member_id: int
    turns: int
    floor_seconds: float
    raised_at: datetime


def _fair_key(floor: Floor, hand: Hand) -> tuple:
    return (
        floor.turns_taken.get(hand.member_id, 0),
        floor.floor_seconds.get(hand.member_id, 0.0),
        hand.raised_at,
        hand.member_id,
    )


def queue_order(floor: Floor) -> list[QueueEntry]:
    """The waiting hands, first first: fewest turns, least floor time, earliest hand;
    a speaker's own raise waits behind those already waiting when it went up."""
    waiting = [hand for hand in floor.hands if hand.member_id != floor.speaker]
    # Hands are kept in raise order: the hands a raise went up behind are the ones
    # before it. A later raise by the same member (after they had the floor, or
    # lowered and raised again) no longer holds it back.
    position = {hand.member_id: index for index, hand in enumerate(floor.hands)}

    def held_back(hand: Hand, still: set[int]) -> bool:
        return any(
            other in still and position[other] < position[hand.member_id] for other in hand.behind
        )

    ordered: list[Hand] = []
    while waiting:
        still = {hand.member_id for hand in waiting}
        eligible = [hand for hand in waiting if not held_back(hand, still)] or waiting
        best = min(eligible, key=lambda hand: _fair_key(floor, hand))
        ordered.append(best)
        waiting.remove(best)
    return [
        QueueEntry(
            member_id=hand.member_id,
            turns=floor.turns_taken.get(hand.member_id, 0),
            floor_seconds=floor.floor_seconds.get(hand.member_id, 0.0),
            raised_at=hand.raised_at,
        )
        for hand in ordered
    ]


def next_in_queue(floor: Floor, present: frozenset[int]) -> int | None:
    """Who gets the floor next: the first present hand, but never the member who
    just spoke while someone else waits. Only present hands wait: a raise is not held
    back behind a member who is not here to take the floor."""
    here = replace(floor, hands=tuple(hand for hand in floor.hands if hand.member_id in present))
    candidates = [entry.member_id for entry in queue_order(here)]
    if not candidates:
        return None
    if candidates[0] == floor.last_speaker and len(candidates) > 1:
        return candidates[1]
    return candidates[0]


# Time, turns and rounds (internal steps; no version bump) ---------------------


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def _end_turn(floor: Floor, now: datetime) -> Floor:
    """The speaker's turn is over: count their floor time; nobody holds the floor."""
    if floor.speaker is None:
        return floor
    if floor.turn_seconds_left is not None:  # paused: the clock stopped
        held = max(0.0, floor.settings.turn_seconds - floor.turn_seconds_left)
    elif floor.turn_started_at is not None:
        # A turn that ran out counts up to its end, however late it is noticed.
        until = min(now, floor.turn_ends_at) if floor.turn_ends_at is not None else now
        held = max(0.0, _seconds(until - floor.turn_started_at))
    else:
        held = 0.0
    seconds = {
        **floor.floor_seconds,
        floor.speaker: floor.floor_seconds.get(floor.speaker, 0.0) + held,
    }
    return replace(
        floor,
        speaker=None,
        last_speaker=floor.speaker,
        turn_started_at=None,
        turn_ends_at=None,
        turn_seconds_left=None,
        turn_messages_left=None,
        turn_shared=False,
        turn_warned=False,
        speaker_absent_since=None,
        floor_seconds=seconds,
    )


def _start_turn(floor: Floor, member_id: int, now: datetime) -> Floor:
    """Give the floor: the turn counts as taken now, whether or not they share."""
    length = floor.settings.turn_seconds
    return replace(
        floor,
        speaker=member_id,
        turn_started_at=now,
        turn_ends_at=None if floor.paused else now + timedelta(seconds=length),
        turn_seconds_left=float(length) if floor.paused else None,
        turn_messages_left=floor.settings.turn_messages,
        turn_shared=False,
        turn_warned=False,
        speaker_absent_since=None,
        # A speaker's hand drops when they get the floor; holding a round's piece
        # leaves it up (hands are kept for after the round).
        hands=floor.hands
        if floor.mode == Mode.ROUND
        else tuple(hand for hand in floor.hands if hand.member_id != member_id),
        turns_taken={**floor.turns_taken, member_id: floor.turns_taken.get(member_id, 0) + 1},
    )


def _pause(floor: Floor, now: datetime, until: datetime | None) -> Floor:
    left = floor.turn_seconds_left
    if floor.turn_ends_at is not None:
        left = max(0.0, _seconds(floor.turn_ends_at - now))
    return replace(
        floor, paused=True, paused_until=until, turn_ends_at=None, turn_seconds_left=left
    )


def _unpause(floor: Floor, now: datetime) -> Floor:
    if floor.speaker is not None and floor.turn_seconds_left is not None:
        ends = now + timedelta(seconds=floor.turn_seconds_left)
        # Shift the start so floor time never counts the pause.
        started = ends - timedelta(seconds=floor.settings.turn_seconds)
        floor = replace(floor, turn_ends_at=ends, turn_started_at=started)
    return replace(floor, paused=False, paused_until=None, turn_seconds_left=None)


def _advance_queue(floor: Floor, now: datetime, present: frozenset[int]) -> Floor:
    """Give an idle floor to the first waiting hand."""
    if floor.mode != Mode.QUEUE or floor.speaker is not None:
        return floor
    chosen = next_in_queue(floor, present)
    return floor if chosen is None else _start_turn(floor, chosen, now)


def _round_offer(floor: Floor, current: Round, now: datetime, present: frozenset[int]) -> Floor:
    """Give the piece to the next present member, or end the round."""
    while True:
        seats = current.order if current.phase == Phase.FIRST else current.passed
        while current.position < len(seats) and seats[current.position] not in present:
            current = replace(current, position=current.position + 1)  # left: skipped
        if current.position < len(seats):
            return _start_turn(replace(floor, round=current), seats[current.position], now)
        if current.phase == Phase.FIRST and current.passed:
            current = replace(current, phase=Phase.SECOND, position=0)
            continue
        # Around once, and the passers offered it once more: the round ends,
        # no one holds the floor, hands stay raised.
        return replace(floor, round=None, mode=floor.return_mode)


def _move_on(
    floor: Floor, holder: int | None, shared: bool, now: datetime, present: frozenset[int]
) -> Floor:
    """After a turn ended (pass, next, budget, gone): the piece of a round moves on, and
    an idle queue floor goes to the first hand under auto-advance (also when the
    round has just ended and gone back to a queue)."""
    current = floor.round
    if floor.mode == Mode.ROUND and current is not None:
        passed = current.passed
        if current.phase == Phase.FIRST and holder is not None and not shared:
            passed = (*passed, holder)  # a turn that ends without a share counts as passed
        moved = replace(current, passed=passed, position=current.position + 1)
        floor = _round_offer(floor, moved, now, present)
    if floor.mode == Mode.QUEUE and floor.settings.auto_advance:
        floor = _advance_queue(floor, now, present)
    return floor


def _round_start(floor: Floor, now: datetime, present: frozenset[int], previous: Mode) -> Floor:
    floor = _end_turn(floor, now)
    members = sorted(present)
    # A round started during a round goes back to where the first one came from.
    back = floor.return_mode if previous == Mode.ROUND else previous
    if not members:  # nobody here: no round starts, and none counts for the rotation
        return replace(floor, mode=back, round=None, return_mode=back)
    floor = replace(
        floor,
        mode=Mode.ROUND,
        round=None,
        return_mode=back,
        rounds_started=floor.rounds_started + 1,
    )
    # The first seat rotates from round to round: no one (the facilitator
    # included) always goes first.
    start = (floor.rounds_started - 1) % len(members)
    order = tuple(members[start:] + members[:start])
    return _round_offer(floor, Round(order=order), now, present)


def _round_add_joiners(floor: Floor, present: frozenset[int]) -> Floor:
    """Members who join during the round go after those still to come in the
    first pass, so before the second offers."""
    current = floor.round
    if current is None or current.phase != Phase.FIRST:
        return floor
    newcomers = sorted(present - set(current.order))
    if not newcomers:
        return floor
    return replace(floor, round=replace(current, order=(*current.order, *newcomers)))


def _finish_turn(floor: Floor, now: datetime, present: frozenset[int]) -> Floor:
    holder, shared = floor.speaker, floor.turn_shared
    return _move_on(_end_turn(floor, now), holder, shared, now, present)


def _new_settings(floor: Floor, settings: FloorSettings, now: datetime) -> tuple[Floor, list[int]]:
    """New numbers apply at once. A turn under way keeps the time and messages already
    used and runs to the new length; if that is already spent, the turn ends now (its
    floor time counted as held) and set_mode places the floor as for any idle floor.
    Keeps `turn_started_at + turn_seconds == turn_ends_at` (and, while paused,
    `turn_seconds - turn_seconds_left` = the time held) true."""
    old = floor.settings
    speaker = floor.speaker
    same = (settings.turn_seconds, settings.turn_messages) == (old.turn_seconds, old.turn_messages)
    if speaker is None or same:
        return replace(floor, settings=settings), []
    if floor.turn_seconds_left is not None:  # paused: the clock stopped
        held = max(0.0, old.turn_seconds - floor.turn_seconds_left)
    elif floor.turn_started_at is not None:
        held = max(0.0, _seconds(now - floor.turn_started_at))
    else:
        held = 0.0
    used = old.turn_messages - (floor.turn_messages_left or 0)
    if held >= settings.turn_seconds or used >= settings.turn_messages:
        return replace(_end_turn(floor, now), settings=settings), [speaker]
    floor = replace(floor, settings=settings, turn_messages_left=settings.turn_messages - used)
    if floor.turn_seconds_left is not None:
        return replace(floor, turn_seconds_left=settings.turn_seconds - held), []
    if floor.turn_started_at is not None:
        ends = floor.turn_started_at + timedelta(seconds=settings.turn_seconds)
        return replace(floor, turn_ends_at=ends), []
    return floor, []


def _settle(
    floor: Floor, now: datetime, present: frozenset[int]
) -> tuple[Floor, list[Nudge], list[int]]:
    effects: list[Nudge] = []
    ended: list[int] = []
    floor = replace(floor, participants_ever=floor.participants_ever | present)
    # A timed pause lifts itself; the turn's clock runs on from where it stopped.
    if floor.paused and floor.paused_until is not None and now >= floor.paused_until:
        floor = _unpause(floor, floor.paused_until)
    if floor.mode == Mode.ROUND:
        floor = _round_add_joiners(floor, present)
    if floor.speaker is not None:
        speaker = floor.speaker
        if speaker in present:
            floor = replace(floor, speaker_absent_since=None)
        elif floor.speaker_absent_since is None:
            floor = replace(floor, speaker_absent_since=now)
        absent = floor.speaker_absent_since
        gone_for = _seconds(now - absent) if absent is not None else 0.0
        out_of_time = floor.turn_ends_at is not None and now >= floor.turn_ends_at
        if out_of_time or gone_for >= floor.settings.disconnect_grace_seconds:
            floor = _finish_turn(floor, now, present)
            ended.append(speaker)
    if floor.mode == Mode.ROUND and floor.round is not None and floor.speaker is None:
        floor = _round_offer(floor, floor.round, now, present)
    if floor.mode == Mode.QUEUE and floor.settings.auto_advance:
        floor = _advance_queue(floor, now, present)
    # The nudge goes to whoever holds the floor now, a turn just given included (a turn
    # shorter than the warning is nudged at once), so settling again changes nothing.
    if (
        floor.speaker is not None
        and floor.turn_ends_at is not None
        and not floor.turn_warned
        and _seconds(floor.turn_ends_at - now) <= floor.settings.turn_warning_seconds
    ):
        floor = replace(floor, turn_warned=True)
        left = _seconds(floor.turn_ends_at - now)
        effects.append(Nudge(floor.speaker, "turn_ending", seconds=round(left)))
    return floor, effects, ended


def _outcome(
    start: Floor,
    floor: Floor,
    effects: Iterable[Nudge] = (),
    *,
    refusal: Refusal | None = None,
    ended: Iterable[int] = (),
) -> Outcome:
    """One transition: the version grows by one if anything changed, never otherwise."""
    floor = replace(floor, version=start.version)
    if floor != start:
        floor = replace(floor, version=start.version + 1)
    return Outcome(floor, tuple(effects), refusal, tuple(ended))


# The transitions --------------------------------------------------------------


def new_floor(
    *, settings: FloorSettings, mode: Mode, now: datetime, present: Iterable[int]
) -> Floor:
    """The floor of a session as it opens (version 1)."""
    present = frozenset(present)
    floor = Floor(settings=settings, participants_ever=present)
    if mode == Mode.ROUND:
        floor = _round_start(floor, now, present, previous=Mode.ROUND)
    elif mode == Mode.QUEUE:
        floor = replace(floor, mode=Mode.QUEUE)
    return replace(floor, version=1)


def settle(floor: Floor, *, now: datetime, present: Iterable[int]) -> Outcome:
    """What time and presence alone decide: run by the sweep and before every act."""
    settled, effects, ended = _settle(floor, now, frozenset(present))
    return _outcome(floor, settled, effects, ended=ended)


def settle_due_at(floor: Floor) -> datetime | None:
    """The first moment at which time alone changes this settled floor (a timed pause
    lifting, a turn's warning or end, a gone speaker's grace running out), or None.
    Until then, settling it again with the same people present changes nothing."""
    moments = []
    if floor.paused and floor.paused_until is not None:
        moments.append(floor.paused_until)
    if floor.speaker is not None:
        if floor.turn_ends_at is not None:
            moments.append(floor.turn_ends_at)
            if not floor.turn_warned:
                warning = timedelta(seconds=floor.settings.turn_warning_seconds)
                moments.append(floor.turn_ends_at - warning)
        if floor.speaker_absent_since is not None:
            grace = timedelta(seconds=floor.settings.disconnect_grace_seconds)
            moments.append(floor.speaker_absent_since + grace)
    return min(moments, default=None)


def share(
    floor: Floor,
    *,
    member_id: int,
    kind: Kind,
    characters: int,
    now: datetime,
    present: Iterable[int],
) -> Outcome:
    """May this member share now? If so, the floor after it; if not, why and until when.

    Facilitation notes never need the floor (the service checks who may send them)."""
    present = frozenset(present)
    start = floor
    floor, effects, ended = _settle(floor, now, present)
    if kind == Kind.FACILITATION:
        return _outcome(start, floor, effects, ended=ended)
    refusal = _refusal(floor, member_id, now, present)
    if refusal is not None:
        if refusal.code == "cooldown":
            effects.append(Nudge(member_id, refusal.reason, seconds=refusal.retry_after))
        return _outcome(start, floor, effects, refusal=refusal, ended=ended)
    floor = _record_share(floor, member_id, characters, now)
    floor, alerts = _dominance(floor, member_id, present)
    effects.extend(alerts)
    if floor.speaker == member_id and floor.mode in (Mode.QUEUE, Mode.ROUND):
        left = (floor.turn_messages_left or 0) - 1
        floor = replace(floor, turn_messages_left=left, turn_shared=True)
        if left <= 0:  # the turn's budget is spent
            floor = _finish_turn(floor, now, present)
            ended.append(member_id)
    return _outcome(start, floor, effects, ended=ended)


def _refusal(floor: Floor, member_id: int, now: datetime, present: frozenset[int]):
    if floor.paused:
        wait = _seconds(floor.paused_until - now) if floor.paused_until else None
        return Refusal("paused", "paused", retry_after=wait)
    if floor.mode == Mode.QUEUE and floor.speaker != member_id:
        return Refusal("not_your_turn", "queue_not_your_turn")
    if floor.mode == Mode.ROUND and floor.speaker != member_id:
        return Refusal("not_your_turn", "round_not_holder")
    if floor.mode == Mode.OPEN:
        return _open_limit(floor, member_id, now, present)
    return None


def _open_limit(floor: Floor, member_id: int, now: datetime, present: frozenset[int]):
    settings = floor.settings
    last = floor.last_share_at.get(member_id)
    since = _seconds(now - last) if last is not None else None
    others_here = bool(present - {member_id})
    if (
        floor.run_member == member_id
        and floor.run_length >= settings.consecutive_cap
        and others_here
        and since is not None
        and since < settings.consecutive_wait_seconds
    ):
        return Refusal(
            "cooldown", "consecutive", retry_after=settings.consecutive_wait_seconds - since
        )
    window = floor.recent_shares
    mine = window.count(member_id)
    fair = 1 / max(1, len(present | {member_id}))
    if (
        window
        and mine >= settings.share_minimum
        and mine / len(window) > settings.share_multiple * fair
        and since is not None
        and since < settings.share_wait_seconds
    ):
        return Refusal("cooldown", "share", retry_after=settings.share_wait_seconds - since)
    return None


def _record_share(floor: Floor, member_id: int, characters: int, now: datetime) -> Floor:
    last = floor.last_share_at.get(member_id)
    rested = (
        last is not None
        and _seconds(now - last) >= floor.settings.consecutive_wait_seconds
        and floor.run_length >= floor.settings.consecutive_cap
    )
    if floor.run_member == member_id and not rested:
        run_member, run_length = member_id, floor.run_length + 1
    else:
        run_member, run_length = member_id, 1
    window = (*floor.recent_shares, member_id)[-floor.settings.share_window :]
    return replace(
        floor,
        shares={**floor.shares, member_id: floor.shares.get(member_id, 0) + 1},
        characters={**floor.characters, member_id: floor.characters.get(member_id, 0) + characters},
        recent_shares=window,
        last_share_at={**floor.last_share_at, member_id: now},
        run_member=run_member,
        run_length=run_length,
    )


def _dominance(floor: Floor, member_id: int, present: frozenset[int]):
    """Flag to the facilitator (never in public) a member past 2 x their fair share."""
    total = sum(floor.shares.values())
    mine = floor.shares.get(member_id, 0)
    people = max(1, len(floor.participants_ever | present))
    over = (
        people > 1
        and mine >= floor.settings.share_minimum
        and mine / total > floor.settings.share_multiple / people
    )
    if over and member_id not in floor.flagged:
        return replace(floor, flagged=floor.flagged | {member_id}), [
            Nudge(None, "dominance", about=member_id)
        ]
    if not over and member_id in floor.flagged:
        return replace(floor, flagged=floor.flagged - {member_id}), []
    return floor, []


def hand(
    floor: Floor, *, member_id: int, raised: bool, now: datetime, present: Iterable[int]
) -> Outcome:
    present = frozenset(present)
    start = floor
    floor, effects, ended = _settle(floor, now, present)
    current = floor.hand_of(member_id)
    if raised and current is None:
        waiting = (
            frozenset(h.member_id for h in floor.hands)
            if member_id == floor.speaker
            else frozenset()
        )
        floor = replace(floor, hands=(*floor.hands, Hand(member_id, now, behind=waiting)))
    elif not raised and current is not None:
        floor = replace(floor, hands=tuple(h for h in floor.hands if h.member_id != member_id))
    if floor.mode == Mode.QUEUE and floor.settings.auto_advance:
        floor = _advance_queue(floor, now, present)
    return _outcome(start, floor, effects, ended=ended)


def pass_turn(floor: Floor, *, member_id: int, now: datetime, present: Iterable[int]) -> Outcome:
    """Pass the talking piece (round) or yield the floor (queue)."""
    present = frozenset(present)
    start = floor
    floor, effects, ended = _settle(floor, now, present)
    if floor.mode == Mode.OPEN:
        return _outcome(
            start, floor, effects, refusal=Refusal("invalid", "nothing_to_pass"), ended=ended
        )
    if floor.speaker != member_id:
        return _outcome(
            start, floor, effects, refusal=Refusal("not_your_turn", "not_holding"), ended=ended
        )
    floor = _finish_turn(floor, now, present)
    return _outcome(start, floor, effects, ended=[*ended, member_id])


def next_turn(floor: Floor, *, now: datetime, present: Iterable[int]) -> Outcome:
    """The facilitator ends the current turn now; the floor moves to whoever is next."""
    present = frozenset(present)
    start = floor
    floor, effects, ended = _settle(floor, now, present)
    if floor.mode == Mode.OPEN:
        return _outcome(
            start, floor, effects, refusal=Refusal("invalid", "open_no_turns"), ended=ended
        )
    speaker = floor.speaker
    if floor.mode == Mode.ROUND:
        floor = _finish_turn(floor, now, present)
    else:
        floor = _advance_queue(_end_turn(floor, now), now, present)
    if speaker is not None:
        ended.append(speaker)
    return _outcome(start, floor, effects, ended=ended)


def grant(floor: Floor, *, member_id: int, now: datetime, present: Iterable[int]) -> Outcome:
    """The facilitator gives the floor out of order (logged by the service)."""
    present = frozenset(present)
    start = floor
    floor, effects, ended = _settle(floor, now, present)
    if floor.mode != Mode.QUEUE:
        return _outcome(
            start, floor, effects, refusal=Refusal("invalid", "grant_in_queue"), ended=ended
        )
    if member_id not in present:
        return _outcome(
            start, floor, effects, refusal=Refusal("not_found", "not_here"), ended=ended
        )
    if floor.speaker == member_id:
        return _outcome(start, floor, effects, ended=ended)
    if floor.speaker is not None:
        ended.append(floor.speaker)
    floor = _start_turn(_end_turn(floor, now), member_id, now)
    return _outcome(start, floor, effects, ended=ended)


def set_mode(
    floor: Floor,
    *,
    mode: Mode,
    now: datetime,
    present: Iterable[int],
    settings: FloorSettings | None = None,
) -> Outcome:
    """Change how the floor works; hands stay raised across the change."""
    present = frozenset(present)
    start = floor
    floor, effects, ended = _settle(floor, now, present)
    if settings is not None:
        floor, cut_short = _new_settings(floor, settings, now)
        ended.extend(cut_short)
    if mode == Mode.ROUND:
        if floor.speaker is not None:
            ended.append(floor.speaker)
        floor = _round_start(floor, now, present, previous=floor.mode)
    elif mode != floor.mode:
        if floor.speaker is not None:
            ended.append(floor.speaker)
        floor = replace(_end_turn(floor, now), mode=mode, round=None)
    if floor.mode == Mode.QUEUE and floor.settings.auto_advance:
        floor = _advance_queue(floor, now, present)
    return _outcome(start, floor, effects, ended=ended)


def pause(
    floor: Floor,
    *,
    paused: bool,
    now: datetime,
    present: Iterable[int],
    minutes: float | None = None,
) -> Outcome:
    """Pause or resume sharing; a turn's clock stops while paused; a timed pause lifts itself."""
    present = frozenset(present)
    start = floor
    floor, effects, ended = _settle(floor, now, present)
    if paused:
        until = now + timedelta(minutes=minutes) if minutes else None
        floor = _pause(floor, now, until)
    elif floor.paused:
        floor = _unpause(floor, now)
    return _outcome(start, floor, effects, ended=ended)
