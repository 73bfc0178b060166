"""Storing what people say: one seq per circle, stored first, broadcast after commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from circles import frames, selectors
from circles.events import broadcast_to_circle
from circles.models import (
    MAX_MESSAGE_LENGTH,
    Circle,
    Membership,
    MembershipStatus,
    Message,
    MessageKind,
    Session,
)
from circles.services.errors import ServiceError
from circles.services.floor import (
    floor_lock_for_share,
    floor_refusal_error,
    floor_share_locked,
)
from circles.statements import Write, insert_instance, run_writes, update

NOT_A_MEMBER = _("You're not a member of this circle any more.")
NO_OPEN_SESSION = _("The session isn't open right now. Your words are still in the box.")
ONLY_FACILITATOR = _("Only the session's facilitator can post facilitation notes.")
EMPTY = _("There's nothing to send yet.")
NOT_TEXT = _("Part of that message isn't readable text. Could you type it again?")
TOO_LONG = _("That's a lot to share at once. Could you split it (up to 4,000 characters)?")


@dataclass(frozen=True)
class Posted:
    message: Message
    created: bool


def clean_text(text: str) -> str:
    """Refuse what can't be shown; keep what the person wrote otherwise."""
    cleaned = text.replace("\x00", "").strip()
    if not cleaned:
        raise ServiceError(EMPTY, code="invalid")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not text anyone can read
        raise ServiceError(NOT_TEXT, code="invalid") from None
    if len(cleaned) > MAX_MESSAGE_LENGTH:
        raise ServiceError(TOO_LONG, code="too_long")
    return cleaned


def message_post(
    *, circle_id: int, user, text: str, client_id: uuid.UUID, kind: str = MessageKind.SHARE
) -> Posted:
    """Store a share or a facilitation note; a resend of the same client_id stores nothing.

    Three statements for a share on PostgreSQL, whatever the circle's size or
    history: the circle's row lock (which orders its messages); one read of the
    floor, its session, who is present, membership and any earlier copy; then the
    floor, its log, the circle's seq and the message, written in one (six on
    SQLite, where the writes go one by one). A share the floor refuses is not
    stored; the floor itself is (time may have moved it), with
    any nudge, before the refusal."""
    text = clean_text(text)
    try:
        return _post(circle_id=circle_id, user=user, text=text, client_id=client_id, kind=kind)
    except IntegrityError:
        # A resend that raced its original past the lock (the earlier copy is looked
        # for in the locking query's snapshot): the original is stored; answer with it.
        existing = selectors.message_by_client_id(user_id=user.pk, client_id=client_id)
        if existing is None:
            raise
        return Posted(existing, created=False)


def _post(*, circle_id: int, user, text: str, client_id: uuid.UUID, kind: str) -> Posted:
    now = timezone.now()
    with transaction.atomic():
        locked = floor_lock_for_share(
            circle_id=circle_id, user_id=user.pk, client_id=client_id, now=now
        )
        if locked is None:
            # No open session (or no circle): say which, and a resend still gets its copy.
            return _without_open_floor(circle_id=circle_id, user=user, client_id=client_id)
        if locked.existing_message_id is not None:
            return Posted(selectors.message_by_id(pk=locked.existing_message_id), created=False)
        if not locked.is_member:
            raise ServiceError(NOT_A_MEMBER, code="forbidden")
        if kind == MessageKind.FACILITATION and locked.session.facilitator_id != user.pk:
            raise ServiceError(ONLY_FACILITATOR, code="forbidden")
        refusal, floor_writes = floor_share_locked(
            locked, member_id=user.pk, kind=kind, characters=len(text), now=now
        )
        if refusal is not None:
            run_writes(floor_writes)
        else:
            message = _new_message(
                locked.circle,
                locked.session,
                author=user,
                text=text,
                kind=kind,
                client_id=client_id,
            )
            # The floor, the circle's seq and the message: one round trip on PostgreSQL.
            message.pk = run_writes([*floor_writes, *_message_writes(locked.circle, message)])
            _announce(locked.circle, message)
            return Posted(message, created=True)
    raise floor_refusal_error(refusal)


def _without_open_floor(*, circle_id: int, user, client_id: uuid.UUID) -> Posted:
    existing = selectors.message_by_client_id(user_id=user.pk, client_id=client_id)
    if existing is not None:
        return Posted(existing, created=False)
    if not Membership.objects.filter(
        circle_id=circle_id, user=user, status=MembershipStatus.ACTIVE
    ).exists():
        raise ServiceError(NOT_A_MEMBER, code="forbidden")
    raise ServiceError(NO_OPEN_SESSION, code="no_open_session")


def system_message_post(*, circle: Circle, session: Session, text: str) -> Message:
    """A line from the room itself; the caller holds the circle's lock."""
    message = _new_message(
        circle, session, author=None, text=text, kind=MessageKind.SYSTEM, client_id=None
    )
    message.pk = run_writes(_message_writes(circle, message))
    _announce(circle, message)
    return message


def _new_message(circle: Circle, session: Session, *, author, text, kind, client_id) -> Message:
    """The circle's next message (the caller holds its lock), not yet written."""
    circle.last_seq += 1
    return Message(
        circle=circle,
        session=session,
        seq=circle.last_seq,
        author=author,
        text=text,
        kind=kind,
        client_id=client_id,
    )


def _message_writes(circle: Circle, message: Message) -> list[Write]:
    return [
        update(Circle, circle.pk, {"last_seq": circle.last_seq}),
        insert_instance(message, returning_pk=True),
    ]


def _announce(circle: Circle, message: Message) -> None:
    broadcast_to_circle(
        circle.pk,
        frames.message_frame(message),
        access_version=circle.access_version,
        event_type="room.message",
    )
