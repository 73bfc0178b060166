"""Storing what people say: one seq per circle, stored first, broadcast after commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction
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
    SessionStatus,
)
from circles.services.errors import ServiceError
from circles.services.floor import floor_refusal_error, floor_share_locked

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

    A share the floor refuses is not stored; the floor itself is (time may have
    moved it), with any nudge, before the refusal is raised."""
    existing = selectors.message_by_client_id(user_id=user.pk, client_id=client_id)
    if existing is not None:
        return Posted(existing, created=False)
    text = clean_text(text)
    with transaction.atomic():
        # The circle's row lock orders every message of the circle (select_for_update;
        # on SQLite the immediate transaction already holds the database's write lock).
        circle = Circle.objects.select_for_update().get(pk=circle_id)
        existing = selectors.message_by_client_id(user_id=user.pk, client_id=client_id)
        if existing is not None:  # a resend that raced its original
            return Posted(existing, created=False)
        if not Membership.objects.filter(
            circle=circle, user=user, status=MembershipStatus.ACTIVE
        ).exists():
            raise ServiceError(NOT_A_MEMBER, code="forbidden")
        session = Session.objects.filter(circle=circle, status=SessionStatus.OPEN).first()
        if session is None:
            raise ServiceError(NO_OPEN_SESSION, code="no_open_session")
        if kind == MessageKind.FACILITATION and session.facilitator_id != user.pk:
            raise ServiceError(ONLY_FACILITATOR, code="forbidden")
        refusal = floor_share_locked(
            circle=circle, session=session, member_id=user.pk, kind=kind, characters=len(text)
        )
        if refusal is None:
            message = _store(
                circle, session, author=user, text=text, kind=kind, client_id=client_id
            )
            return Posted(message, created=True)
    raise floor_refusal_error(refusal)


def system_message_post(*, circle: Circle, session: Session, text: str) -> Message:
    """A line from the room itself; the caller holds the circle's lock."""
    return _store(circle, session, author=None, text=text, kind=MessageKind.SYSTEM, client_id=None)


def _store(circle: Circle, session: Session, *, author, text, kind, client_id) -> Message:
    circle.last_seq += 1
    circle.save(update_fields=["last_seq"])
    message = Message.objects.create(
        circle=circle,
        session=session,
        seq=circle.last_seq,
        author=author,
        text=text,
        kind=kind,
        client_id=client_id,
    )
    broadcast_to_circle(
        circle.pk,
        frames.message_frame(message),
        access_version=circle.access_version,
        event_type="room.message",
    )
    return message
