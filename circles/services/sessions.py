"""Opening and closing a circle's session (its live meeting)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from circles import frames, selectors
from circles.events import broadcast_to_circle
from circles.models import (
    AuditAction,
    AuditEntry,
    Circle,
    Membership,
    MembershipStatus,
    Role,
    Session,
    SessionStatus,
)
from circles.services.errors import ServiceError
from circles.services.floor import floor_close_locked, floor_open
from circles.services.messages import system_message_post

ALREADY_OPEN = gettext_lazy("A session is already open in this circle.")
NONE_OPEN = gettext_lazy("There's no open session to close.")
MAY_NOT_OPEN = gettext_lazy("Only a moderator or the session's facilitator can open the session.")
MAY_NOT_CLOSE = gettext_lazy("Only the facilitator or a moderator can close the session.")


def _active_membership(circle: Circle, user) -> Membership | None:
    return Membership.objects.filter(
        circle=circle, user=user, status=MembershipStatus.ACTIVE
    ).first()


@transaction.atomic
def session_open(*, circle_id: int, user) -> Session:
    """Open the circle's session; whoever opens it facilitates it (logged)."""
    circle = Circle.objects.select_for_update().get(pk=circle_id)
    membership = _active_membership(circle, user)
    if membership is None:
        raise ServiceError(MAY_NOT_OPEN, code="forbidden")
    if Session.objects.filter(circle=circle, status=SessionStatus.OPEN).exists():
        raise ServiceError(ALREADY_OPEN, code="invalid")
    scheduled = (
        Session.objects.select_for_update()
        .filter(circle=circle, status=SessionStatus.SCHEDULED)
        .order_by("scheduled_for", "id")
        .first()
    )
    named_facilitator = scheduled is not None and scheduled.facilitator_id == user.pk
    if membership.role != Role.MODERATOR and not named_facilitator:
        raise ServiceError(MAY_NOT_OPEN, code="forbidden")
    session = scheduled or Session(circle=circle)
    session.status = SessionStatus.OPEN
    session.facilitator = user
    session.opened_at = timezone.now()
    session.opened_by = user
    session.save()
    AuditEntry.objects.create(circle=circle, actor=user, action=AuditAction.SESSION_OPEN)
    floor_open(circle=circle, session=session, now=session.opened_at)
    system_message_post(
        circle=circle,
        session=session,
        text=_("%(name)s opened the session and is facilitating.") % {"name": user.display_name},
    )
    _announce(circle, session)
    return session


@transaction.atomic
def session_close(*, circle_id: int, user) -> Session:
    circle = Circle.objects.select_for_update().get(pk=circle_id)
    session = (
        # `of`: PostgreSQL can't lock the nullable side of the facilitator join.
        Session.objects.select_for_update(of=("self",))
        .select_related("facilitator")
        .filter(circle=circle, status=SessionStatus.OPEN)
        .first()
    )
    if session is None:
        raise ServiceError(NONE_OPEN, code="no_open_session")
    membership = _active_membership(circle, user)
    is_facilitator = session.facilitator_id == user.pk
    is_moderator = membership is not None and membership.role == Role.MODERATOR
    if membership is None or not (is_facilitator or is_moderator):
        raise ServiceError(MAY_NOT_CLOSE, code="forbidden")
    system_message_post(
        circle=circle,
        session=session,
        text=_("%(name)s closed the session. Thank you for being here.")
        % {"name": user.display_name},
    )
    rows, gini = floor_close_locked(session=session)
    session.status = SessionStatus.CLOSED
    session.closed_at = timezone.now()
    session.closed_by = user
    session.save(update_fields=["status", "closed_at", "closed_by", "gini"])
    # When the session closes, the whole circle sees the balance.
    names = selectors.display_names(ids={row.member_id for row in rows})
    broadcast_to_circle(
        circle.pk,
        frames.balance_frame(rows, gini, names, session_id=session.pk, final=True),
        access_version=circle.access_version,
    )
    AuditEntry.objects.create(circle=circle, actor=user, action=AuditAction.SESSION_CLOSE)
    _announce(circle, session)
    return session


def _announce(circle: Circle, session: Session) -> None:
    broadcast_to_circle(
        circle.pk, frames.session_frame(session), access_version=circle.access_version
    )
