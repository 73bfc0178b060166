"""The floor of a session: every transition under the circle's row lock.

Each transition locks the circle's row (every writer of a floor takes that lock
first), reads the floor, its session and who is present in one query, asks the
pure policy, stores the new state and appends it to the floor log, bumping the
version, in one transaction; frames and nudges go out after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from circles import frames, policy, selectors
from circles.events import broadcast_to_circle, send_private
from circles.expressions import IdList, ids_from
from circles.floor_codec import (
    floor_from_row,
    floor_onto_row,
    floor_to_json,
    settings_from_record,
)
from circles.floor_words import FACILITATOR_NUDGE, nudge_words, refusal_words
from circles.models import (
    AuditAction,
    AuditEntry,
    Circle,
    CircleFloorSettings,
    FloorLogEntry,
    FloorState,
    Membership,
    MembershipStatus,
    Message,
    RoomConnection,
    Session,
    SessionStatus,
    SessionVoice,
)
from circles.services.errors import ServiceError
from circles.services.room import broadcast_presence
from circles.statements import PreparedQuery, Write, insert_instance, run_writes, update

NO_OPEN_SESSION = _("There's no open session right now.")
FACILITATOR_ONLY = _("Only the session's facilitator can do that.")
NOT_IN_CIRCLE = _("They're not a member of this circle.")
NOT_A_MEMBER = _("You're not a member of this circle any more.")
NUDGE_TOO_LONG = _("A note can be up to 500 characters.")


@dataclass(frozen=True)
class Locked:
    """An open floor read under its circle's row lock, with what the caller asked about."""

    circle: Circle
    session: Session
    row: FloorState
    floor: policy.Floor
    present: frozenset[int]
    is_member: bool = True
    existing_message_id: int | None = None


# What the locking read returns: the floor's columns, then these, then `present_ids`
# and, when asked, `is_member` and `existing_message_id`.
FLOOR_COLUMNS = [field.attname for field in FloorState._meta.concrete_fields]
LOCK_COLUMNS = [
    *FLOOR_COLUMNS,
    "session__circle_id",
    "session__facilitator_id",
    "session__circle__last_seq",
    "session__circle__access_version",
    "present_ids",
]
# Floors settled per sweep at most (a second apart): the rest wait for the next.
SWEEP_BATCH = 200


def _open_floors(
    *,
    since: datetime,
    where: Q,
    user_id: int | None = None,
    client_id=None,
):
    """Open floors matching `where`, with their session, who is present since `since`,
    and (asked for a member) whether they are an active member and already sent
    `client_id`: one query. The caller holds the circles' row locks (taken first, in
    a statement of their own, so that this one reads what the previous holder wrote)."""
    circle = OuterRef("session__circle_id")
    present = RoomConnection.objects.filter(circle_id=circle, seen_at__gte=since, replaced=False)
    floors = FloorState.objects.filter(where, session__status=SessionStatus.OPEN).annotate(
        present_ids=IdList(present.distinct(), "user_id")
    )
    columns = list(LOCK_COLUMNS)
    if user_id is not None:
        active = Membership.objects.filter(
            circle_id=circle, user_id=user_id, status=MembershipStatus.ACTIVE
        )
        floors = floors.annotate(is_member=Exists(active))
        columns.append("is_member")
    if client_id is not None:
        sent = Message.objects.filter(author_id=user_id, client_id=client_id)
        floors = floors.annotate(existing_message_id=Subquery(sent.values("pk")[:1]))
        columns.append("existing_message_id")
    return floors.values_list(*columns)


# The room's locks and reads, compiled once per connection (circles/statements.py).
LOCK_CIRCLE = PreparedQuery(
    lambda circle_id: Circle.objects.select_for_update().filter(pk=circle_id).values_list("pk"),
    circle_id="int",
)
LOCK_CIRCLE_UNLESS_HELD = PreparedQuery(
    lambda circle_id: (
        Circle.objects.select_for_update(skip_locked=True).filter(pk=circle_id).values_list("pk")
    ),
    circle_id="int",
)
READ_FLOOR = PreparedQuery(
    lambda circle_id, since: _open_floors(since=since, where=Q(session__circle_id=circle_id)),
    circle_id="int",
    since="datetime",
)
READ_FLOOR_FOR_MEMBER = PreparedQuery(
    lambda circle_id, user_id, since: _open_floors(
        since=since, where=Q(session__circle_id=circle_id), user_id=user_id
    ),
    circle_id="int",
    user_id="int",
    since="datetime",
)
READ_FLOOR_FOR_SHARE = PreparedQuery(
    lambda circle_id, user_id, client_id, since: _open_floors(
        since=since, where=Q(session__circle_id=circle_id), user_id=user_id, client_id=client_id
    ),
    circle_id="int",
    user_id="int",
    client_id="uuid",
    since="datetime",
)


def _partial(model, values: dict):
    """A model instance with only these fields loaded (the others deferred)."""
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db(DEFAULT_DB_ALIAS, names, [values[name] for name in names])


def _locked(row: list) -> Locked:
    count = len(FLOOR_COLUMNS)
    floor_row = FloorState.from_db(DEFAULT_DB_ALIAS, FLOOR_COLUMNS, row[:count])
    circle_id, facilitator_id, last_seq, access_version, present_ids, *asked = row[count:]
    circle = _partial(
        Circle, {"id": circle_id, "last_seq": last_seq, "access_version": access_version}
    )
    session = _partial(
        Session,
        {
            "id": floor_row.session_id,
            "circle_id": circle_id,
            "facilitator_id": facilitator_id,
            "status": SessionStatus.OPEN,
        },
    )
    return Locked(
        circle=circle,
        session=session,
        row=floor_row,
        floor=floor_from_row(floor_row),
        present=ids_from(present_ids),
        is_member=bool(asked[0]) if asked else True,
        existing_message_id=asked[1] if len(asked) > 1 else None,
    )


def _lock(
    circle_id: int, *, now: datetime, user_id: int | None = None, client_id=None
) -> Locked | None:
    """The circle's row locked, then its open floor read (asked for a member, with
    their membership, and asked for a client_id, with any earlier copy), or None
    without an open floor."""
    if not LOCK_CIRCLE.rows(circle_id=circle_id):
        return None
    since = selectors.presence_since(now)
    if client_id is not None:
        rows = READ_FLOOR_FOR_SHARE.rows(
            circle_id=circle_id, user_id=user_id, client_id=client_id, since=since
        )
    elif user_id is not None:
        rows = READ_FLOOR_FOR_MEMBER.rows(circle_id=circle_id, user_id=user_id, since=since)
    else:
        rows = READ_FLOOR.rows(circle_id=circle_id, since=since)
    return _locked(rows[0]) if rows else None


# Written by a transition: everything but the key and the presence serial.
TRANSITION_FIELDS = [
    field.attname
    for field in FloorState._meta.concrete_fields
    if field.name not in FloorState.NOT_SAVED_BY_TRANSITIONS
]


def _store(
    locked: Locked,
    outcome: policy.Outcome,
    *,
    action: str,
    data: dict,
    now: datetime,
) -> list[Write]:
    """The writes that keep the new state and log it, for the caller to run with its
    own; the room is told after commit. Nothing if unchanged.

    The log keeps the inputs (who was present, the time) with each state, so the
    log replayed through the policy reproduces every state. The `floor` frame goes
    out only when something people see changed; the facilitator's balance whenever
    the tallies did."""
    row, before, after = locked.row, locked.floor, outcome.floor
    due_at = policy.settle_due_at(after)
    writes = []
    if after.version != before.version:
        floor_onto_row(after, row)
        row.due_at = due_at
        row.settled_serial = row.presence_serial
        row.updated_at = now
        shown = _shown(after) != _shown(before)
        if shown:
            row.shown_version = after.version
        writes.append(
            update(
                FloorState,
                row.pk,
                {name: getattr(row, name) for name in TRANSITION_FIELDS},
            )
        )
        entry = FloorLogEntry(
            floor_id=row.pk,
            version=after.version,
            action=action,
            input={**data, "present": sorted(locked.present)},
            at=now,
            state=floor_to_json(after),
        )
        writes.append(insert_instance(entry))
        if shown:
            _broadcast_floor(locked.circle, after)
        _send_balance(locked, after)
        if _hands(after) != _hands(before):
            broadcast_presence(
                locked.circle.pk,
                now,
                hands=_hands(after),
                access_version=locked.circle.access_version,
            )
    elif due_at != row.due_at or row.settled_serial != row.presence_serial:
        # Settled, unchanged: only when to look again.
        row.due_at, row.settled_serial = due_at, row.presence_serial
        writes.append(
            update(FloorState, row.pk, {"due_at": due_at, "settled_serial": row.settled_serial})
        )
    _send_nudges(locked, outcome)
    return writes


def _shown(floor: policy.Floor) -> dict:
    """What the `floor` frame shows of a floor, but its version."""
    frame = frames.floor_frame(floor, {})
    del frame["v"]
    return frame


def _broadcast_floor(circle: Circle, floor: policy.Floor) -> None:
    names = selectors.display_names(ids=floor_people(floor))
    broadcast_to_circle(
        circle.pk,
        frames.floor_frame(floor, names),
        access_version=circle.access_version,
    )


def _hands(floor: policy.Floor) -> set[int]:
    return {hand.member_id for hand in floor.hands}


def floor_people(floor: policy.Floor) -> set[int]:
    """Everyone the floor frame names."""
    people = {hand.member_id for hand in floor.hands}
    if floor.speaker is not None:
        people.add(floor.speaker)
    if floor.round is not None:
        people.update(floor.round.order)
    return people


def balance_of(floor: policy.Floor):
    return policy.voice_balance(
        participants=floor.participants_ever,
        shares=floor.shares,
        characters=floor.characters,
        floor_seconds=floor.floor_seconds,
        multiple=floor.settings.share_multiple,
        minimum=floor.settings.share_minimum,
    )


def _send_balance(locked: Locked, floor: policy.Floor) -> None:
    """The facilitator sees the balance live; the circle sees it when the session closes."""
    if locked.session.facilitator_id is None:
        return
    rows, gini = balance_of(floor)
    names = selectors.display_names(ids={row.member_id for row in rows})
    frame = frames.balance_frame(rows, gini, names, session_id=locked.session.pk)
    send_private(locked.session.facilitator_id, locked.circle.pk, frame)


def _send_nudges(locked: Locked, outcome: policy.Outcome) -> None:
    for nudge in outcome.effects:
        to = nudge.member_id if nudge.member_id is not None else locked.session.facilitator_id
        if to is None:
            continue
        about = ""
        if nudge.about is not None:
            about = selectors.display_names(ids={nudge.about}).get(nudge.about, "")
        text = nudge_words(nudge.reason, seconds=nudge.seconds, about=about)
        send_private(to, locked.circle.pk, frames.nudge_frame(text, nudge.reason))


def _refuse(refusal: policy.Refusal) -> ServiceError:
    error = ServiceError(
        refusal_words(refusal.reason, seconds=refusal.retry_after), code=refusal.code
    )
    error.retry_after = refusal.retry_after
    return error


def _act(
    circle_id: int,
    *,
    user,
    action: str,
    data: dict,
    step: Callable[[policy.Floor, datetime, frozenset[int]], policy.Outcome],
    facilitator_only: bool = False,
) -> tuple[Locked, policy.Outcome]:
    """One transition. A refusal is stored too (time may have moved the floor), then raised."""
    with transaction.atomic():
        now = timezone.now()
        locked = _lock(circle_id, now=now, user_id=user.pk)
        if locked is None:
            raise ServiceError(NO_OPEN_SESSION, code="no_open_session")
        if not locked.is_member:
            raise ServiceError(NOT_A_MEMBER, code="forbidden")
        if facilitator_only and locked.session.facilitator_id != user.pk:
            raise ServiceError(FACILITATOR_ONLY, code="forbidden")
        outcome = step(locked.floor, now, locked.present)
        run_writes(_store(locked, outcome, action=action, data=data, now=now))
    if outcome.refusal is not None:
        raise _refuse(outcome.refusal)
    return locked, outcome


def _audit(locked: Locked, *, actor, action: str, subject_id=None, reason: str = "") -> None:
    AuditEntry.objects.create(
        circle=locked.circle,
        actor=actor,
        subject_id=subject_id,
        action=action,
        reason=reason[:500],
    )


# Opening a floor, and sharing on it (called inside message and session services) ----


def floor_open(*, circle: Circle, session: Session, now) -> FloorState:
    """The floor of a session as it opens, from the circle's settings."""
    record = CircleFloorSettings.objects.filter(circle=circle).first()
    settings = settings_from_record(record)
    mode = policy.Mode(record.default_mode) if record else policy.Mode.OPEN
    present = selectors.room_present_ids(circle_id=circle.pk, now=now)
    floor = policy.new_floor(settings=settings, mode=mode, now=now, present=present)
    row = FloorState(session=session)
    floor_onto_row(floor, row)
    row.due_at = policy.settle_due_at(floor)
    row.shown_version = floor.version
    row.save()
    FloorLogEntry.objects.create(
        floor=row,
        version=floor.version,
        action="open",
        input={"mode": mode.value, "present": sorted(present)},
        at=now,
        state=floor_to_json(floor),
    )
    _broadcast_floor(circle, floor)
    return row


def floor_lock_for_share(*, circle_id: int, user_id: int, client_id, now) -> Locked | None:
    """The open floor under the circle's lock, with whether this person is a member
    and whether they already sent this client_id: all a share needs, read in one
    query after the lock."""
    return _lock(circle_id, now=now, user_id=user_id, client_id=client_id)


def floor_share_locked(
    locked: Locked, *, member_id: int, kind: str, characters: int, now
) -> tuple[policy.Refusal | None, list[Write]]:
    """Ask the floor whether this share may be stored. Returns the refusal (None: the
    caller stores the message) and the floor's writes, for the caller to run with its
    own: the floor is stored either way (time may have moved it)."""
    outcome = policy.share(
        locked.floor,
        member_id=member_id,
        kind=policy.Kind(kind),
        characters=characters,
        now=now,
        present=locked.present,
    )
    data = {"member": member_id, "kind": kind, "characters": characters}
    action = "share" if outcome.accepted else "share_refused"
    return outcome.refusal, _store(locked, outcome, action=action, data=data, now=now)


def floor_refusal_error(refusal: policy.Refusal) -> ServiceError:
    return _refuse(refusal)


def floor_close_locked(*, session: Session) -> tuple[list, float]:
    """At close: the voice balance, stored, so retention never erases it (the caller
    holds the circle's lock)."""
    row = FloorState.objects.filter(session=session).first()
    if row is None:
        return [], 0.0
    floor = floor_from_row(row)
    now = timezone.now()
    present = selectors.room_present_ids(circle_id=session.circle_id, now=now)
    settled = policy.settle(floor, now=now, present=present).floor
    # Count the speaker's time up to now.
    if settled.speaker is not None:
        settled = policy.set_mode(settled, mode=policy.Mode.OPEN, now=now, present=present).floor
    # Nothing is due on a closed floor: the sweep never looks at it again.
    FloorState.objects.filter(pk=row.pk).update(due_at=None)
    rows, gini = balance_of(settled)
    names = selectors.display_names(ids={r.member_id for r in rows})
    SessionVoice.objects.bulk_create(
        SessionVoice(
            session=session,
            member_id=r.member_id,
            display_name=names.get(r.member_id, ""),
            messages=r.messages,
            characters=r.characters,
            floor_seconds=r.floor_seconds,
            share=r.share,
        )
        for r in rows
    )
    session.gini = gini
    return rows, gini


# Acts by members and the facilitator ---------------------------------------------


def floor_raise_hand(*, circle_id: int, user, raised: bool) -> policy.Floor:
    _locked, outcome = _act(
        circle_id,
        user=user,
        action="hand",
        data={"member": user.pk, "raised": raised},
        step=lambda floor, now, present: policy.hand(
            floor, member_id=user.pk, raised=raised, now=now, present=present
        ),
    )
    return outcome.floor


def floor_pass(*, circle_id: int, user) -> policy.Floor:
    _locked, outcome = _act(
        circle_id,
        user=user,
        action="pass",
        data={"member": user.pk},
        step=lambda floor, now, present: policy.pass_turn(
            floor, member_id=user.pk, now=now, present=present
        ),
    )
    return outcome.floor


def floor_next(*, circle_id: int, user) -> policy.Floor:
    with transaction.atomic():
        locked, outcome = _act(
            circle_id,
            user=user,
            action="next",
            data={"by": user.pk},
            step=lambda floor, now, present: policy.next_turn(floor, now=now, present=present),
            facilitator_only=True,
        )
        _audit(locked, actor=user, action=AuditAction.FLOOR_NEXT)
    return outcome.floor


def floor_grant(*, circle_id: int, user, member_id: int) -> policy.Floor:
    with transaction.atomic():
        locked, outcome = _act(
            circle_id,
            user=user,
            action="grant",
            data={"by": user.pk, "member": member_id},
            step=lambda floor, now, present: policy.grant(
                floor, member_id=member_id, now=now, present=present
            ),
            facilitator_only=True,
        )
        _audit(locked, actor=user, action=AuditAction.FLOOR_GRANT, subject_id=member_id)
    return outcome.floor


def floor_set_mode(
    *, circle_id: int, user, mode: str, settings: dict | None = None
) -> policy.Floor:
    def step(floor, now, present):
        new_settings = replace(floor.settings, **settings) if settings else None
        return policy.set_mode(
            floor, mode=policy.Mode(mode), now=now, present=present, settings=new_settings
        )

    with transaction.atomic():
        locked, outcome = _act(
            circle_id,
            user=user,
            action="mode",
            data={"by": user.pk, "mode": mode, "settings": settings or {}},
            step=step,
            facilitator_only=True,
        )
        _audit(locked, actor=user, action=AuditAction.FLOOR_MODE, reason=mode)
    return outcome.floor


def floor_pause(*, circle_id: int, user, paused: bool, minutes: float | None) -> policy.Floor:
    with transaction.atomic():
        locked, outcome = _act(
            circle_id,
            user=user,
            action="pause",
            data={"by": user.pk, "paused": paused, "minutes": minutes},
            step=lambda floor, now, present: policy.pause(
                floor, paused=paused, minutes=minutes, now=now, present=present
            ),
            facilitator_only=True,
        )
        _audit(
            locked,
            actor=user,
            action=AuditAction.FLOOR_PAUSE if paused else AuditAction.FLOOR_RESUME,
            reason=f"{minutes:g} min" if paused and minutes else "",
        )
    return outcome.floor


@transaction.atomic
def floor_nudge(*, circle_id: int, user, member_id: int, text: str = "") -> None:
    """A private, gentle note to one member. The circle sees nothing; moderators
    see that a note was sent (the audit log), never its words."""
    locked = _lock(circle_id, now=timezone.now())
    if locked is None:
        raise ServiceError(NO_OPEN_SESSION, code="no_open_session")
    if locked.session.facilitator_id != user.pk:
        raise ServiceError(FACILITATOR_ONLY, code="forbidden")
    if not selectors.room_membership(circle_id=circle_id, user_id=member_id):
        raise ServiceError(NOT_IN_CIRCLE, code="not_found")
    text = (text or "").strip() or str(_(FACILITATOR_NUDGE))
    if len(text) > 500:
        raise ServiceError(NUDGE_TOO_LONG, code="too_long")
    send_private(member_id, circle_id, frames.nudge_frame(text, "facilitator"))
    _audit(locked, actor=user, action=AuditAction.NUDGE, subject_id=member_id)


def floor_settle(*, circle_id: int) -> policy.Floor | None:
    """Apply what time and presence decide, now."""
    with transaction.atomic():
        now = timezone.now()
        locked = _lock(circle_id, now=now)
        if locked is None:
            return None
        outcome = policy.settle(locked.floor, now=now, present=locked.present)
        run_writes(_store(locked, outcome, action="settle", data={}, now=now))
    return outcome.floor


def floor_sweep(*, now: datetime | None = None) -> int:
    """Settle the open floors that need it: those whose time has come (`due_at`) and
    those whose room's presence changed. One circle at a time, each in its own short
    transaction. Safe on many processes at once: a circle whose row another process
    holds is skipped (SKIP LOCKED), so no floor advances twice; a floor settled by
    anyone since is simply found unchanged."""
    now = now or timezone.now()
    due = (
        FloorState.objects.filter(
            Q(due_at__lte=now) | Q(presence_serial__gt=F("settled_serial")),
            session__status=SessionStatus.OPEN,
        )
        .values_list("session__circle_id", flat=True)
        .order_by("due_at")
    )
    settled = 0
    for circle_id in list(due[:SWEEP_BATCH]):
        with transaction.atomic():
            if not LOCK_CIRCLE_UNLESS_HELD.rows(circle_id=circle_id):
                continue
            rows = READ_FLOOR.rows(circle_id=circle_id, since=selectors.presence_since(now))
            if not rows:
                continue
            locked = _locked(rows[0])
            outcome = policy.settle(locked.floor, now=now, present=locked.present)
            run_writes(_store(locked, outcome, action="settle", data={}, now=now))
            settled += 1
    return settled


def floor_current(*, circle_id: int) -> policy.Floor | None:
    """The open floor as stored, without a lock (for showing it)."""
    row = FloorState.objects.filter(
        session__circle_id=circle_id, session__status=SessionStatus.OPEN
    ).first()
    return floor_from_row(row) if row is not None else None
