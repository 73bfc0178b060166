"""Joining, leaving, and the moderator role: the ways into and out of a circle."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from circles.events import notify_access_changed
from circles.models import (
    AuditAction,
    AuditEntry,
    Circle,
    JoinPolicy,
    Membership,
    MembershipStatus,
    Role,
)
from circles.services.errors import ServiceError
from circles.services.permissions import NOT_MODERATOR, require_moderator

CIRCLE_FULL = _("This circle is full right now. Perhaps another circle, or try again later.")
SHUT_OUT = _("You can't rejoin this circle. If you think this is a mistake, please contact us.")
ALREADY_MEMBER = _("You're already a member of this circle.")
ALREADY_PENDING = _("Your request is with the circle's moderators.")
NOT_OPEN = _("This circle doesn't take members directly.")
NOT_REQUEST = _("This circle doesn't take requests.")
INVITE_INVALID = _("This invite link isn't valid any more. Please ask for a fresh one.")
NOT_PENDING = _("That request has already been answered.")
NOT_A_MEMBER = _("You're not a member of this circle.")
LAST_MODERATOR = _(
    "You're the circle's only moderator. Please ask another member to take the role first."
)
NOT_ACTIVE_MEMBER = _("Only active members can become moderators.")
ALREADY_MODERATOR = _("They're already a moderator.")


def _lock_circle(circle: Circle) -> Circle:
    """Serialise joins to one circle so capacity holds under concurrent requests."""
    return Circle.objects.select_for_update().get(pk=circle.pk)


def _active_count(circle: Circle) -> int:
    return Membership.objects.filter(circle=circle, status=MembershipStatus.ACTIVE).count()


def _existing(circle: Circle, user) -> Membership | None:
    return Membership.objects.select_for_update().filter(circle=circle, user=user).first()


def _refuse_existing(membership: Membership | None) -> None:
    if membership is None:
        return
    if membership.is_shut_out:
        raise ServiceError(SHUT_OUT, code="forbidden")
    if membership.status == MembershipStatus.ACTIVE:
        raise ServiceError(ALREADY_MEMBER, code="exists")
    if membership.status == MembershipStatus.PENDING:
        raise ServiceError(ALREADY_PENDING, code="exists")


def _activate(circle: Circle, user, existing: Membership | None) -> Membership:
    if _active_count(circle) >= circle.capacity:
        raise ServiceError(CIRCLE_FULL, code="full")
    now = timezone.now()
    if existing is not None:  # a pending request let in by invite
        existing.status = MembershipStatus.ACTIVE
        existing.joined_at = now
        existing.visible_after_seq = circle.last_seq
        existing.save(update_fields=["status", "joined_at", "visible_after_seq"])
        return existing
    return Membership.objects.create(
        circle=circle,
        user=user,
        status=MembershipStatus.ACTIVE,
        joined_at=now,
        requested_at=now,
        visible_after_seq=circle.last_seq,
    )


@transaction.atomic
def membership_join(*, circle: Circle, user) -> Membership:
    """Join an open circle at once."""
    circle = _lock_circle(circle)
    if circle.join_policy != JoinPolicy.OPEN:
        existing = _existing(circle, user)
        _refuse_existing(existing)
        raise ServiceError(NOT_OPEN, code="forbidden")
    existing = _existing(circle, user)
    _refuse_existing(existing)
    return _activate(circle, user, None)


@transaction.atomic
def membership_request(*, circle: Circle, user) -> Membership:
    """Ask to join a circle whose moderators let people in."""
    circle = _lock_circle(circle)
    existing = _existing(circle, user)
    _refuse_existing(existing)
    if circle.join_policy != JoinPolicy.REQUEST:
        raise ServiceError(NOT_REQUEST, code="forbidden")
    if _active_count(circle) >= circle.capacity:
        raise ServiceError(CIRCLE_FULL, code="full")
    return Membership.objects.create(circle=circle, user=user, status=MembershipStatus.PENDING)


@transaction.atomic
def membership_join_by_invite(*, circle: Circle, token: str, user) -> Membership:
    """Join through the circle's current invite link, whatever its join policy."""
    circle = _lock_circle(circle)
    if not token or token != circle.invite_token:
        raise ServiceError(INVITE_INVALID, code="not_found")
    existing = _existing(circle, user)
    if existing is not None and existing.status != MembershipStatus.PENDING:
        _refuse_existing(existing)
    return _activate(circle, user, existing)


def _locked_pending(membership: Membership) -> Membership:
    current = Membership.objects.select_for_update().get(pk=membership.pk)
    if current.status != MembershipStatus.PENDING:
        raise ServiceError(NOT_PENDING, code="conflict")
    return current


@transaction.atomic
def membership_approve(*, actor, membership: Membership) -> Membership:
    circle = _lock_circle(membership.circle)
    require_moderator(circle=circle, user=actor)
    membership = _locked_pending(membership)
    if _active_count(circle) >= circle.capacity:
        raise ServiceError(CIRCLE_FULL, code="full")
    membership.status = MembershipStatus.ACTIVE
    membership.joined_at = timezone.now()
    membership.visible_after_seq = circle.last_seq
    membership.save(update_fields=["status", "joined_at", "visible_after_seq"])
    AuditEntry.objects.create(
        circle=circle, actor=actor, subject=membership.user, action=AuditAction.JOIN_APPROVE
    )
    return membership


@transaction.atomic
def membership_decline(*, actor, membership: Membership, reason: str = "") -> None:
    circle = _lock_circle(membership.circle)
    require_moderator(circle=circle, user=actor)
    membership = _locked_pending(membership)
    AuditEntry.objects.create(
        circle=circle,
        actor=actor,
        subject=membership.user,
        action=AuditAction.JOIN_DECLINE,
        reason=reason.strip()[:500],
    )
    # A declined request leaves no membership: the person may ask again later.
    membership.delete()


@transaction.atomic
def membership_leave(*, circle: Circle, user) -> None:
    circle = _lock_circle(circle)
    membership = _existing(circle, user)
    if membership is None or membership.status not in {
        MembershipStatus.ACTIVE,
        MembershipStatus.PENDING,
    }:
        raise ServiceError(NOT_A_MEMBER, code="not_found")
    if membership.is_moderator and _is_last_moderator_among_others(circle, membership):
        raise ServiceError(LAST_MODERATOR, code="conflict")
    membership.delete()
    access_revoke(circle=circle, user_id=user.pk)


def _is_last_moderator_among_others(circle: Circle, membership: Membership) -> bool:
    """True if this is the only moderator and other active members would be left without one."""
    active = Membership.objects.filter(circle=circle, status=MembershipStatus.ACTIVE)
    others = active.exclude(pk=membership.pk)
    return others.exists() and not others.filter(role=Role.MODERATOR).exists()


@transaction.atomic
def moderator_appoint(*, actor, membership: Membership) -> Membership:
    circle = _lock_circle(membership.circle)
    require_moderator(circle=circle, user=actor)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.status != MembershipStatus.ACTIVE:
        raise ServiceError(NOT_ACTIVE_MEMBER, code="invalid")
    if membership.role == Role.MODERATOR:
        raise ServiceError(ALREADY_MODERATOR, code="exists")
    membership.role = Role.MODERATOR
    membership.save(update_fields=["role"])
    AuditEntry.objects.create(
        circle=circle, actor=actor, subject=membership.user, action=AuditAction.MODERATOR_APPOINT
    )
    return membership


@transaction.atomic
def moderator_step_down(*, circle: Circle, user) -> Membership:
    circle = _lock_circle(circle)
    membership = _existing(circle, user)
    if membership is None or not membership.is_moderator:
        raise ServiceError(NOT_MODERATOR, code="forbidden")
    others = Membership.objects.filter(
        circle=circle, status=MembershipStatus.ACTIVE, role=Role.MODERATOR
    ).exclude(pk=membership.pk)
    if not others.exists():
        raise ServiceError(LAST_MODERATOR, code="conflict")
    membership.role = Role.MEMBER
    membership.save(update_fields=["role"])
    AuditEntry.objects.create(
        circle=circle, actor=user, subject=user, action=AuditAction.MODERATOR_STEP_DOWN
    )
    return membership


CANNOT_REMOVE_MODERATOR = _("A moderator steps down before they can be removed.")
CANNOT_REMOVE_SELF = _("To leave, use Leave this circle.")


@transaction.atomic
def membership_remove(*, actor, membership: Membership, reason: str) -> Membership:
    """A moderator removes a member: they lose access at once, and cannot rejoin."""
    circle = _lock_circle(membership.circle)
    require_moderator(circle=circle, user=actor)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.user_id == actor.pk:
        raise ServiceError(CANNOT_REMOVE_SELF, code="invalid")
    if membership.is_moderator:
        raise ServiceError(CANNOT_REMOVE_MODERATOR, code="forbidden")
    membership.status = MembershipStatus.REMOVED
    membership.save(update_fields=["status"])
    AuditEntry.objects.create(
        circle=circle,
        actor=actor,
        subject=membership.user,
        action=AuditAction.MEMBER_REMOVE,
        reason=reason.strip()[:500],
    )
    access_revoke(circle=circle, user_id=membership.user_id)
    return membership


def access_revoke(*, circle: Circle, user_id: int) -> None:
    """Someone lost access to a circle: open sockets close within a beat, and
    nothing broadcast after this commit reaches them. The caller holds the lock."""
    circle.access_version += 1
    circle.save(update_fields=["access_version"])
    notify_access_changed(user_id)
