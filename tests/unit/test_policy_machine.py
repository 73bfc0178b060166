"""A state machine drives the turn-taking policy with random interleavings of every input
(presence, shares, hands, pass, next, grant, mode, pause, time) and checks the invariants
of docs/turn-taking.md after each step.

Each act is applied twice: as the service does (one call, which settles first inside) and
split into a `settle` and then the act. Both must give the same floor; the split shows
what time alone decided apart from what the act decided, and every check reads it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from circles.policy import (
    Floor,
    FloorSettings,
    Hand,
    Kind,
    Mode,
    Outcome,
    grant,
    hand,
    new_floor,
    next_turn,
    pass_turn,
    pause,
    set_mode,
    settle,
    settle_due_at,
    share,
)

T0 = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)
POOL = (1, 2, 3, 4, 5, 6)
SPEAKER = 0  # stands for "whoever holds the floor now" (or member 1 if nobody does)
LAST = -1  # stands for "whoever spoke last" (or member 1)
EPSILON = 1e-6

members = st.sampled_from(POOL)
actors = st.one_of(st.just(SPEAKER), members)
raisers = st.one_of(st.just(SPEAKER), st.just(LAST), members)
floor_settings = st.builds(
    FloorSettings,
    turn_seconds=st.sampled_from([20, 45, 120]),
    turn_messages=st.integers(1, 6),
    auto_advance=st.booleans(),
)
seconds = st.one_of(st.integers(0, 10), st.integers(0, 200), st.floats(0, 200, allow_nan=False))


def state(floor: Floor) -> Floor:
    """The floor without its version: what a transition may or may not change."""
    return replace(floor, version=0)


@dataclass
class RoundWatch:
    """The offers of the piece in the current round, as seen from the outside."""

    number: int
    always_present: set[int]
    offers: list[int] = field(default_factory=list)
    shared: set[int] = field(default_factory=set)  # held the piece and shared


@dataclass(frozen=True)
class Call:
    function: object
    kwargs: dict
    now: datetime
    present: frozenset[int]
    outcome: Outcome


class PolicyMachine(RuleBasedStateMachine):
    # Setting up -----------------------------------------------------------------

    @initialize(
        mode=st.sampled_from(Mode),
        settings=floor_settings,
        present=st.frozensets(members) | st.frozensets(members, min_size=3),
    )
    def open_session(self, mode, settings, present):
        self.now = T0
        self.present = set(present)
        self.floor = new_floor(settings=settings, mode=mode, now=T0, present=present)
        self.first = self.floor
        self.calls: list[Call] = []
        self.history: list[tuple[int, datetime]] = []  # accepted shares, oldest first
        self.nudged_turns: set[tuple[int, int]] = set()
        self.round: RoundWatch | None = None
        self.last_round_seats: tuple[frozenset[int], int] | None = None
        self.round_goes_back_to = Mode.QUEUE  # a session that begins in a round
        assert self.floor.version == 1
        if self.floor.round is not None:
            self.round = RoundWatch(self.floor.rounds_started, set(present), [self.floor.speaker])
            self.last_round_seats = (frozenset(self.floor.round.order), self.floor.round.order[0])
        self.check_floor(self.floor)

    # Presence and time ---------------------------------------------------------

    @rule(group=st.lists(members, min_size=1, max_size=3))
    def arrive(self, group):
        self.present.update(group)

    @rule(member=members)
    def leave(self, member):
        self.present.discard(member)

    @rule(elapsed=seconds)
    def time_passes(self, elapsed):
        self.now += timedelta(seconds=elapsed)
        self.apply("settle", settle)

    # Members ---------------------------------------------------------------------

    @rule(who=actors, kind=st.sampled_from(Kind), characters=st.integers(1, 500))
    def say(self, who, kind, characters):
        self.apply("share", share, member_id=self.actor(who), kind=kind, characters=characters)

    @rule(who=actors, count=st.integers(2, 7), gap=st.sampled_from([0, 1, 5, 12]))
    def say_several(self, who, count, gap):
        """A burst of shares by one member (the open floor's limits)."""
        member = self.actor(who)
        for _ in range(count):
            self.apply("share", share, member_id=member, kind=Kind.SHARE, characters=20)
            self.now += timedelta(seconds=gap)

    @rule(who=raisers, raised=st.sampled_from([True, True, False]))
    def hand(self, who, raised):
        self.apply("hand", hand, member_id=self.actor(who), raised=raised)

    @rule(group=st.lists(members, min_size=2, max_size=5, unique=True), anyone=st.booleans())
    def hands_go_up(self, group, anyone):
        """Several hands go up, of members present (or, now and then, of anyone)."""
        for member in group:
            if anyone or member in self.present:
                self.apply("hand", hand, member_id=member, raised=True)

    @rule(who=actors)
    def pass_turn(self, who):
        self.apply("pass", pass_turn, member_id=self.actor(who))

    @rule(again=st.booleans())
    def pass_and_raise_again(self, again):
        """The speaker yields and, at once, asks to speak again (the no-twice rule)."""
        member = self.actor(SPEAKER)
        self.apply("pass", pass_turn, member_id=member)
        if again:
            self.apply("hand", hand, member_id=member, raised=True)

    # The facilitator -----------------------------------------------------------

    @rule()
    def next_turn(self):
        self.apply("next", next_turn)

    @rule(member=members)
    def grant(self, member):
        self.apply("grant", grant, member_id=member)

    @rule(mode=st.sampled_from(Mode), settings=st.none() | floor_settings)
    def set_mode(self, mode, settings):
        self.apply("mode", set_mode, mode=mode, settings=settings)

    @rule(minutes=st.none() | st.sampled_from([0.25, 1, 2]))
    def pause(self, minutes):
        self.apply("pause", pause, paused=True, minutes=minutes)

    @rule()
    def resume(self):
        self.apply("pause", pause, paused=False)

    # Applying one act ----------------------------------------------------------

    def actor(self, who: int) -> int:
        if who == SPEAKER:
            return self.floor.speaker if self.floor.speaker is not None else POOL[0]
        if who == LAST:
            return self.floor.last_speaker if self.floor.last_speaker is not None else POOL[0]
        return who

    def apply(self, action: str, function, **kwargs) -> None:
        before, now, present = self.floor, self.now, frozenset(self.present)
        if self.round is not None:
            self.round.always_present &= present
        if action == "mode" and kwargs["mode"] == Mode.ROUND:
            settled_mode = settle(before, now=now, present=present).floor.mode
            if settled_mode != Mode.ROUND:
                self.round_goes_back_to = settled_mode

        direct = function(before, now=now, present=present, **kwargs)
        # The same act split in two: what time and presence decide, then the act itself.
        settled = settle(before, now=now, present=present)
        again = settle(settled.floor, now=now, present=present)
        assert again == Outcome(settled.floor), "settling twice at once changes nothing"
        self.check_transition(before, settled, "settle", {}, present)
        if function is settle:
            assert direct == settled
        else:
            acted = function(settled.floor, now=now, present=present, **kwargs)
            assert state(acted.floor) == state(direct.floor)
            assert acted.refusal == direct.refusal
            assert settled.effects + acted.effects == direct.effects
            assert settled.turn_ended + acted.turn_ended == direct.turn_ended
            self.check_transition(settled.floor, acted, action, kwargs, present)

        changed = state(direct.floor) != state(before)
        assert direct.floor.version == before.version + (1 if changed else 0)
        self.calls.append(Call(function, kwargs, now, present, direct))
        self.floor = direct.floor
        self.check_floor(self.floor)

    # What every transition must respect -----------------------------------------

    def check_transition(self, before: Floor, outcome: Outcome, action, kwargs, present):
        after, now = outcome.floor, self.now

        # The version grows by exactly one when the floor changed, and only then.
        changed = state(after) != state(before)
        assert after.version == before.version + (1 if changed else 0)

        # A turn counts when it is given: at most one new turn per step here, and it is
        # the speaker's, who is present.
        gained = {
            member: after.turns_taken.get(member, 0) - before.turns_taken.get(member, 0)
            for member in set(before.turns_taken) | set(after.turns_taken)
        }
        assert min(gained.values(), default=0) >= 0
        assert sum(gained.values()) <= 1
        chosen = next((member for member, more in gained.items() if more), None)
        if chosen is not None:
            assert after.speaker == chosen
            assert chosen in present
            assert after.turn_started_at == now
        for member in outcome.turn_ended:
            assert member in (before.speaker, chosen)
        round_offer = chosen is not None and after.round is not None
        queue_turn = chosen is not None and after.round is None
        if queue_turn:
            assert after.mode == Mode.QUEUE

        # Hands: the hands as they were when the floor was given, in raise order.
        hands_then = list(before.hands)
        if action == "hand":
            member = kwargs["member_id"]
            if kwargs["raised"] and before.hand_of(member) is None:
                raised = after.hand_of(member)
                if raised is None:  # got the floor at once
                    assert member == chosen
                    raised = Hand(member, now, frozenset())
                assert raised.raised_at == now
                if member == before.speaker:
                    # The speaker's own raise waits behind everyone already waiting.
                    assert raised.behind == {h.member_id for h in before.hands}
                hands_then.append(raised)
            elif not kwargs["raised"]:
                hands_then = [h for h in hands_then if h.member_id != member]
        # Hands stay raised across every change (modes and rounds included); only the
        # member given a queue turn (or a grant) loses theirs.
        assert list(after.hands) == [
            h for h in hands_then if not (queue_turn and h.member_id == chosen)
        ]

        if queue_turn and action != "grant":
            self.check_queue_choice(before, after, chosen, hands_then, present)
        round_share = action == "share" and kwargs["kind"] == Kind.SHARE
        if round_share and before.mode == Mode.ROUND and outcome.accepted:
            self.round.shared.add(kwargs["member_id"])
        if outcome.refusal is not None:
            event(f"refused {action}: {outcome.refusal.reason}")
        self.check_round(before, after, action, chosen if round_offer else None, present)

        if action == "share":
            self.check_share(before, outcome, kwargs, present)
        elif outcome.refusal is not None:
            assert state(after) == state(before), "a refused act changes nothing"
        if action == "grant" and before.mode != Mode.QUEUE:
            assert outcome.refusal is not None
        if action == "pass" and before.speaker != kwargs["member_id"]:
            assert outcome.refusal is not None

        # Pause: the clock stops; only a disconnect (or the facilitator) ends a paused turn.
        if before.paused and after.paused and action == "settle":
            if before.speaker is not None and before.speaker in outcome.turn_ended:
                assert before.speaker not in present
            if after.speaker == before.speaker and chosen is None:
                assert after.turn_seconds_left == before.turn_seconds_left
        if before.paused and not after.paused and action == "settle":
            event("timed pause lifted")
            if before.speaker is not None and after.speaker == before.speaker and not chosen:
                # The clock runs on from when the pause ended, however late the settle.
                left = timedelta(seconds=before.turn_seconds_left)
                assert after.turn_ends_at == before.paused_until + left
            assert before.paused_until is not None
            assert now >= before.paused_until

        # The nudge before a turn ends: to the speaker, once per turn.
        for effect in outcome.effects:
            if effect.reason == "turn_ending":
                assert action == "settle"
                assert effect.member_id == after.speaker
                assert 0 <= effect.seconds <= after.settings.turn_warning_seconds
                turn = (effect.member_id, after.turns_taken[effect.member_id])
                assert turn not in self.nudged_turns
                self.nudged_turns.add(turn)
            elif effect.reason == "dominance":
                assert effect.member_id is None
                assert effect.about in after.flagged

        # Tallies only grow: floor time only for a turn that ended, at most its length.
        for member in set(before.floor_seconds) | set(after.floor_seconds):
            more = after.floor_seconds.get(member, 0.0) - before.floor_seconds.get(member, 0.0)
            assert more >= -EPSILON
            if more > EPSILON:
                assert member == before.speaker
                assert more <= before.settings.turn_seconds + EPSILON
        assert after.participants_ever >= before.participants_ever | present

    def check_queue_choice(self, before, after, chosen, hands_then, present):
        """No waiting member is skipped past by someone who has had more turns, except by a
        grant, by the no-twice-in-a-row rule, or by a speaker's own raise waiting behind
        those already waiting."""
        rank = {h.member_id: index for index, h in enumerate(hands_then)}
        assert chosen in rank, "the floor goes to a raised hand"
        turns = before.turns_taken
        last = after.last_speaker
        waiting = [h for h in hands_then if h.member_id in present and h.member_id != chosen]
        event(f"queue turn given with {min(len(waiting), 3)}+ others waiting")
        if chosen == last:
            assert not waiting, "the member who just spoke never goes twice in a row"
        # And, exactly: the first by turns, floor time and raise time, with a speaker's own
        # raise behind the hands that were up then, and never the last speaker twice.
        assert chosen == fair_choice(hands_then, turns, after.floor_seconds, last, present)
        for waiter in waiting:
            if turns.get(waiter.member_id, 0) >= turns.get(chosen, 0):
                continue
            behind = any(
                other in rank and rank[other] < rank[waiter.member_id] and other in present
                for other in waiter.behind
            )
            event(
                "queue: skipped by more turns "
                + ("(last speaker)" if waiter.member_id == last else "(behind)")
            )
            assert waiter.member_id == last or behind, (
                f"{waiter.member_id} ({turns.get(waiter.member_id, 0)} turns) skipped by "
                f"{chosen} ({turns.get(chosen, 0)} turns)"
            )

    def check_round(self, before, after, action, offered, present):
        """Every participant present for the whole round is offered the piece exactly once
        before anyone is offered it a second time; the round ends back in the mode before."""
        watch = self.round
        if watch is not None and (after.round is None or after.rounds_started != watch.number):
            if action != "mode":  # ended by itself, not replaced or stopped by the facilitator
                event(f"round ended by itself after {min(len(watch.offers), 6)}+ offers")
                assert watch.always_present <= set(watch.offers)
                assert after.mode == self.round_goes_back_to
                assert after.round is None
                assert after.speaker is None or (
                    after.mode == Mode.QUEUE and after.settings.auto_advance
                )
            watch = self.round = None
        if after.round is not None and watch is None:
            watch = self.round = RoundWatch(after.rounds_started, set(present))
            assert offered is not None
            # The first seat rotates: the same people never start twice with the same one.
            seats = (frozenset(after.round.order), after.round.order[0])
            if self.last_round_seats and self.last_round_seats[0] == seats[0]:
                assert len(seats[0]) == 1 or seats[1] != self.last_round_seats[1]
            self.last_round_seats = seats
        if offered is not None:
            if offered in watch.offers:
                event("round: second offer")
                assert watch.always_present <= set(watch.offers), (
                    f"{offered} offered again before {watch.always_present - set(watch.offers)}"
                )
                # Only those who passed are offered it once more, and only once more.
                assert offered not in watch.shared
                assert watch.offers.count(offered) == 1
            watch.offers.append(offered)

    def check_share(self, before, outcome, kwargs, present):
        """Shares the rules refuse are refused and stored nowhere; the rest are stored."""
        after = outcome.floor
        member, kind, characters = kwargs["member_id"], kwargs["kind"], kwargs["characters"]
        if kind == Kind.FACILITATION:
            assert outcome.accepted  # never needs the floor, even while paused
            assert state(after) == state(before)
            return
        expected = self.expected_refusal(before, member, present)
        if expected is None:
            assert outcome.accepted, outcome.refusal
            assert not before.paused
            if before.mode in (Mode.QUEUE, Mode.ROUND):
                assert before.speaker == member
            assert after.shares[member] == before.shares.get(member, 0) + 1
            assert after.characters[member] == before.characters.get(member, 0) + characters
            window = before.settings.share_window
            assert after.recent_shares == (*before.recent_shares, member)[-window:]
            self.history.append((member, self.now))
        else:
            assert outcome.refusal is not None, f"expected {expected}"
            assert (outcome.refusal.code, outcome.refusal.reason) == expected[:2]
            if expected[2] is not None:
                assert abs(outcome.refusal.retry_after - expected[2]) < EPSILON
            assert after.shares == before.shares
            assert after.characters == before.characters
            assert after.recent_shares == before.recent_shares

    def expected_refusal(self, floor: Floor, member: int, present: frozenset[int]):
        """The rules of docs/turn-taking.md, worked out from the shares seen so far."""
        if floor.paused:
            return ("paused", "paused", None)
        if floor.mode == Mode.QUEUE and floor.speaker != member:
            return ("not_your_turn", "queue_not_your_turn", None)
        if floor.mode == Mode.ROUND and floor.speaker != member:
            return ("not_your_turn", "round_not_holder", None)
        if floor.mode != Mode.OPEN:
            return None
        rules = floor.settings
        mine = [at for who, at in self.history if who == member]
        if not mine:
            return None
        since = (self.now - mine[-1]).total_seconds()
        # In a row: the run of shares at the end, restarting after a rest of the wait.
        run_member, run_length, last_at = None, 0, {}
        for who, at in self.history:
            rested = (
                who in last_at
                and (at - last_at[who]).total_seconds() >= rules.consecutive_wait_seconds
                and run_length >= rules.consecutive_cap
            )
            run_length = run_length + 1 if who == run_member and not rested else 1
            run_member = who
            last_at[who] = at
        if (
            run_member == member
            and run_length >= rules.consecutive_cap
            and present - {member}
            and since < rules.consecutive_wait_seconds
        ):
            return ("cooldown", "consecutive", rules.consecutive_wait_seconds - since)
        window = [who for who, _ in self.history][-rules.share_window :]
        count = window.count(member)
        fair = 1 / len(present | {member})
        if (
            count >= rules.share_minimum
            and count / len(window) > rules.share_multiple * fair
            and since < rules.share_wait_seconds
        ):
            return ("cooldown", "share", rules.share_wait_seconds - since)
        return None

    # What every floor must be -----------------------------------------------------

    def check_floor(self, floor: Floor) -> None:
        now, present = self.now, self.present
        # At most one speaker; a speaker only in queue or round mode.
        if floor.mode == Mode.OPEN:
            assert floor.speaker is None
        assert (floor.mode == Mode.ROUND) == (floor.round is not None)
        if floor.round is not None:
            assert floor.speaker is not None
            assert floor.speaker == floor.round.holder
            assert len(set(floor.round.order)) == len(floor.round.order)
        members_with_hands = [h.member_id for h in floor.hands]
        assert len(members_with_hands) == len(set(members_with_hands))
        raised = [h.raised_at for h in floor.hands]
        assert raised == sorted(raised), "hands are kept in raise order"
        if floor.speaker is not None:
            assert floor.turn_started_at is not None
            assert floor.turn_started_at <= now
            assert floor.turn_messages_left is not None
            assert floor.turn_messages_left >= 1
            length = timedelta(seconds=floor.settings.turn_seconds)
            if floor.paused:
                assert floor.turn_ends_at is None
                assert 0 <= floor.turn_seconds_left <= floor.settings.turn_seconds
            else:
                # A turn lasts at most its length: one that ran out has been ended.
                assert floor.turn_seconds_left is None
                assert floor.turn_ends_at > now
                assert floor.turn_ends_at == floor.turn_started_at + length
            if floor.speaker in present:
                assert floor.speaker_absent_since is None
            else:
                absent = floor.speaker_absent_since
                assert absent is not None
                assert (now - absent).total_seconds() < floor.settings.disconnect_grace_seconds
        else:
            assert floor.turn_started_at is None
            assert floor.turn_ends_at is None
            assert floor.turn_seconds_left is None
        if not floor.paused:
            assert floor.paused_until is None
            assert floor.turn_seconds_left is None
        elif floor.paused_until is not None:
            assert floor.paused_until > now, "a timed pause lifts itself"
        # Under auto-advance an idle queue floor goes at once to the first present hand.
        if floor.mode == Mode.QUEUE and floor.settings.auto_advance and floor.speaker is None:
            assert not [h for h in floor.hands if h.member_id in present]
        # Floor time never counts more than the time that passed (one speaker at a time).
        elapsed = (now - T0).total_seconds()
        assert sum(floor.floor_seconds.values()) <= elapsed + EPSILON
        assert sum(floor.shares.values()) == len(self.history)

    @invariant()
    def time_moves_the_floor_exactly_when_it_is_due(self):
        """The sweep settles a floor only at `settle_due_at` (or when presence changes):
        before that moment settling changes nothing, at it something changes."""
        if not hasattr(self, "first"):
            return
        present = frozenset(self.present)
        settled = settle(self.floor, now=self.now, present=present).floor
        due = settle_due_at(settled)
        just_before = (due - timedelta(milliseconds=1)) if due else self.now + timedelta(days=1)
        if just_before > self.now:
            quiet = settle(settled, now=just_before, present=present).floor
            assert quiet.version == settled.version, f"moved before it was due ({due})"
        if due is not None:
            moved = settle(settled, now=max(due, self.now), present=present).floor
            assert moved.version != settled.version, "due, yet nothing moved"

    @invariant()
    def the_version_only_grows(self):
        versions = [self.first.version] + [call.outcome.floor.version for call in self.calls]
        assert versions == sorted(versions)

    def teardown(self):
        if not hasattr(self, "first"):
            return
        # Deterministic: the same calls from the first floor give the same outcomes,
        # whatever order `present` comes in.
        assert replay(self.first, self.calls) == [call.outcome for call in self.calls]


def fair_choice(hands, turns, floor_seconds, last, present) -> int | None:
    """Who docs/turn-taking.md says gets the floor next, worked out apart from the policy."""
    rank = {h.member_id: index for index, h in enumerate(hands)}
    waiting = [h for h in hands if h.member_id in present]
    order = []
    while waiting:
        ids = {h.member_id for h in waiting}
        free = [
            h
            for h in waiting
            if not any(other in ids and rank[other] < rank[h.member_id] for other in h.behind)
        ]
        first = min(
            free,
            key=lambda h: (
                turns.get(h.member_id, 0),
                floor_seconds.get(h.member_id, 0.0),
                h.raised_at,
                h.member_id,
            ),
        )
        order.append(first.member_id)
        waiting.remove(first)
    if len(order) > 1 and order[0] == last:
        return order[1]
    return order[0] if order else None


def replay(first: Floor, calls: list[Call]) -> list[Outcome]:
    floor, outcomes = copy.deepcopy(first), []
    for call in calls:
        outcome = call.function(
            floor, now=call.now, present=sorted(call.present, reverse=True), **call.kwargs
        )
        outcomes.append(outcome)
        floor = outcome.floor
    return outcomes


TestPolicyMachine = PolicyMachine.TestCase
TestPolicyMachine.__doc__ = (
    "Under any interleaving of inputs every invariant of docs/turn-taking.md holds after "
    "every step, and the run replays to the same floors."
)


# Determinism, on its own ------------------------------------------------------

calls = st.lists(
    st.one_of(
        st.tuples(st.just("settle"), seconds),
        st.tuples(st.just("share"), actors, st.sampled_from(Kind)),
        st.tuples(st.just("hand"), actors, st.booleans()),
        st.tuples(st.just("pass"), actors),
        st.tuples(st.just("next")),
        st.tuples(st.just("grant"), members),
        st.tuples(st.just("mode"), st.sampled_from(Mode), st.none() | floor_settings),
        st.tuples(st.just("pause"), st.booleans(), st.none() | st.just(1)),
        st.tuples(st.just("presence"), st.frozensets(members)),
    ),
    max_size=60,
)


def run(first: Floor, script) -> list[Call]:
    """Apply a script of calls from the first floor; every call with its inputs and outcome."""
    floor, now, present, recorded = first, T0, frozenset(POOL[:3]), []
    for step in script:
        name, args = step[0], step[1:]
        if name == "presence":
            present = args[0]
            continue
        if name in ("share", "hand", "pass", "grant"):
            member = args[0] if args[0] != SPEAKER else (floor.speaker or POOL[0])
        if name == "settle":
            now += timedelta(seconds=args[0])
            function, kwargs = settle, {}
        elif name == "share":
            function, kwargs = share, {"member_id": member, "kind": args[1], "characters": 9}
        elif name == "hand":
            function, kwargs = hand, {"member_id": member, "raised": args[1]}
        elif name == "pass":
            function, kwargs = pass_turn, {"member_id": member}
        elif name == "next":
            function, kwargs = next_turn, {}
        elif name == "grant":
            function, kwargs = grant, {"member_id": member}
        elif name == "mode":
            function, kwargs = set_mode, {"mode": args[0], "settings": args[1]}
        else:
            function, kwargs = pause, {"paused": args[0], "minutes": args[1]}
        outcome = function(floor, now=now, present=present, **kwargs)
        recorded.append(Call(function, kwargs, now, present, outcome))
        floor = outcome.floor
    return recorded


@given(mode=st.sampled_from(Mode), settings=floor_settings, script=calls)
def test_a_run_replays_to_the_same_floors(mode, settings, script):
    """Replaying the same calls from the first floor yields identical floors and effects at
    every version (the floor log's race test relies on it)."""
    first = new_floor(settings=settings, mode=mode, now=T0, present=POOL[:3])
    recorded = run(first, script)
    assert replay(first, recorded) == [call.outcome for call in recorded]
    assert run(copy.deepcopy(first), script) == recorded
    versions = [first.version] + [call.outcome.floor.version for call in recorded]
    assert versions == sorted(versions)
