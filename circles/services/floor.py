"""The floor of a session: every transition under the circle's and the floor's locks.

Each transition reads the FloorState row under its lock (after the circle's row,
always in that order, as message_post does), asks the pure policy, stores the
new state and appends it to the floor log, bumping the version, in one
transaction; the `floor` frame and any nudges go out after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from circles import frames, policy, selectors
from circles.events import broadcast_to_circle, send_private
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
    FloorHand,
    FloorLogEntry,
    FloorState,
    Session,
    SessionStatus,
    SessionVoice,
)
from circles.services.errors import ServiceError
from circles.services.room import broadcast_presence

NO_OPEN_SESSION = _("There's no open session right now.")
FACILITATOR_ONLY = _("Only the session's facilitator can do that.")
NOT_IN_CIRCLE = _("They're not a member of this circle.")
NUDGE_TOO_LONG = _("A note can be up to 500 characters.")


@dataclass(frozen=True)
class Locked:
    circle: Circle
    session: Session
    row: FloorState
    floor: policy.Floor


def _lock(circle_id: int, *, skip_locked: bool = False) -> Locked | None:
    """The circle's row, then its open session's floor row, both locked."""
    circles = Circle.objects.select_for_update(skip_locked=skip_locked).filter(pk=circle_id)
    circle = circles.first()
    if circle is None:
        return None
    session = (
        Session.objects.filter(circle=circle, status=SessionStatus.OPEN)
        .select_related("facilitator")
        .first()
    )
    if session is None:
        return None
    row = FloorState.objects.select_for_update().filter(session=session).first()
    if row is None:
        return None
    floor = floor_from_row(row, list(FloorHand.objects.filter(floor=row)))
    return Locked(circle, session, row, floor)


def _store(
    locked: Locked,
    outcome: policy.Outcome,
    *,
    action: str,
    data: dict,
    now: datetime,
    present: frozenset[int],
) -> None:
    """Keep the new state, log it, and tell the room (after commit). Nothing if unchanged.

    The log keeps the inputs (who was present, the time) with each state, so the
    log replayed through the policy reproduces every state."""
    if outcome.floor.version != locked.floor.version:
        hands = floor_onto_row(outcome.floor, locked.row)
        locked.row.save()
        FloorHand.objects.filter(floor=locked.row).delete()
        FloorHand.objects.bulk_create(
            FloorHand(
                floor=locked.row,
                member_id=hand["member_id"],
                raised_at=hand["raised_at"],
                behind=hand["behind"],
            )
            for hand in hands
        )
        FloorLogEntry.objects.create(
            floor=locked.row,
            version=outcome.floor.version,
            action=action,
            input={**data, "present": sorted(present)},
            at=now,
            state=floor_to_json(outcome.floor),
        )
        _broadcast_floor(locked.circle, outcome.floor)
        _send_balance(locked, outcome.floor)
        if _hands(outcome.floor) != _hands(locked.floor):
            broadcast_presence(locked.circle.pk, now)
    _send_nudges(locked, outcome)


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
    action: str,
    data: dict,
    step: Callable[[policy.Floor, datetime, frozenset[int]], policy.Outcome],
    facilitator_only_for=None,
) -> tuple[Locked, policy.Outcome]:
    """One transition. A refusal is stored too (time may have moved the floor), then raised."""
    with transaction.atomic():
        locked = _lock(circle_id)
        if locked is None:
            raise ServiceError(NO_OPEN_SESSION, code="no_open_session")
        if facilitator_only_for is not None and (
            locked.session.facilitator_id != facilitator_only_for.pk
        ):
            raise ServiceError(FACILITATOR_ONLY, code="forbidden")
        now = timezone.now()
        present = selectors.room_present_ids(circle_id=circle_id, now=now)
        outcome = step(locked.floor, now, present)
        _store(locked, outcome, action=action, data=data, now=now, present=present)
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
    floor_onto_row(floor, row)  # a new floor has no hands to store
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


def floor_share_locked(
    *, circle: Circle, session: Session, member_id: int, kind: str, characters: int
) -> policy.Refusal | None:
    """Ask the floor whether this share may be stored (the caller holds the circle's
    lock and stores the message if the answer is None)."""
    row = FloorState.objects.select_for_update().filter(session=session).first()
    if row is None:
        return None
    floor = floor_from_row(row, list(FloorHand.objects.filter(floor=row)))
    locked = Locked(circle, session, row, floor)
    now = timezone.now()
    present = selectors.room_present_ids(circle_id=circle.pk, now=now)
    outcome = policy.share(
        floor,
        member_id=member_id,
        kind=policy.Kind(kind),
        characters=characters,
        now=now,
        present=present,
    )
    data = {"member": member_id, "kind": kind, "characters": characters}
    action = "share" if outcome.accepted else "share_refused"
    _store(locked, outcome, action=action, data=data, now=now, present=present)
    return outcome.refusal


def floor_refusal_error(refusal: policy.Refusal) -> ServiceError:
    return _refuse(refusal)


def floor_close_locked(*, session: Session) -> tuple[list, float]:
    """At close: the voice balance, stored, so retention never erases it."""
    row = FloorState.objects.select_for_update().filter(session=session).first()
    if row is None:
        return [], 0.0
    floor = floor_from_row(row, list(FloorHand.objects.filter(floor=row)))
    now = timezone.now()
    present = selectors.room_present_ids(circle_id=session.circle_id, now=now)
    settled = policy.settle(floor, now=now, present=present).floor
    # Count the speaker's time up to now.
    if settled.speaker is not None:
        settled = policy.set_mode(settled, mode=policy.Mode.OPEN, now=now, present=present).floor
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
            action="next",
            data={"by": user.pk},
            step=lambda floor, now, present: policy.next_turn(floor, now=now, present=present),
            facilitator_only_for=user,
        )
        _audit(locked, actor=user, action=AuditAction.FLOOR_NEXT)
    return outcome.floor


def floor_grant(*, circle_id: int, user, member_id: int) -> policy.Floor:
    with transaction.atomic():
        locked, outcome = _act(
            circle_id,
            action="grant",
            data={"by": user.pk, "member": member_id},
            step=lambda floor, now, present: policy.grant(
                floor, member_id=member_id, now=now, present=present
            ),
            facilitator_only_for=user,
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
            action="mode",
            data={"by": user.pk, "mode": mode, "settings": settings or {}},
            step=step,
            facilitator_only_for=user,
        )
        _audit(locked, actor=user, action=AuditAction.FLOOR_MODE, reason=mode)
    return outcome.floor


def floor_pause(*, circle_id: int, user, paused: bool, minutes: float | None) -> policy.Floor:
    with transaction.atomic():
        locked, outcome = _act(
            circle_id,
            action="pause",
            data={"by": user.pk, "paused": paused, "minutes": minutes},
            step=lambda floor, now, present: policy.pause(
                floor, paused=paused, minutes=minutes, now=now, present=present
            ),
            facilitator_only_for=user,
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
    locked = _lock(circle_id)
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


def floor_settle(*, circle_id: int, skip_locked: bool = False) -> policy.Floor | None:
    """Apply what time and presence decide, now (the sweep, hello, and each act)."""
    with transaction.atomic():
        locked = _lock(circle_id, skip_locked=skip_locked)
        if locked is None:
            return None
        now = timezone.now()
        present = selectors.room_present_ids(circle_id=circle_id, now=now)
        outcome = policy.settle(locked.floor, now=now, present=present)
        _store(locked, outcome, action="settle", data={}, now=now, present=present)
    return outcome.floor


def floor_sweep() -> int:
    """Settle every open floor. Safe on many processes at once: a circle whose row
    another process holds is skipped (SKIP LOCKED), so no floor advances twice."""
    settled = 0
    for circle_id in selectors.circles_with_open_session():
        if floor_settle(circle_id=circle_id, skip_locked=True) is not None:
            settled += 1
    return settled


def floor_current(*, circle_id: int) -> policy.Floor | None:
    row = FloorState.objects.filter(
        session__circle_id=circle_id, session__status=SessionStatus.OPEN
    ).first()
    if row is None:
        return None
    return floor_from_row(row, list(FloorHand.objects.filter(floor=row)))
