"""Creating circles and keeping their invite link."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from circles.models import AuditAction, AuditEntry, Circle, Membership, MembershipStatus, Role
from circles.services.permissions import require_moderator


@transaction.atomic
def circle_create(
    *,
    creator,
    name: str,
    description: str,
    topic: str,
    capacity: int,
    join_policy: str,
) -> Circle:
    """Create a circle; its creator is its first moderator, a role others can share."""
    circle = Circle(
        name=name.strip(),
        description=description.strip(),
        topic=topic,
        capacity=capacity,
        join_policy=join_policy,
        created_by=creator,
    )
    circle.full_clean(exclude=["slug"])
    circle.save()
    now = timezone.now()
    Membership.objects.create(
        circle=circle,
        user=creator,
        role=Role.MODERATOR,
        status=MembershipStatus.ACTIVE,
        joined_at=now,
        requested_at=now,
    )
    return circle


@transaction.atomic
def circle_invite_renew(*, actor, circle: Circle) -> Circle:
    """A new invite link; the old one stops working at once."""
    circle = Circle.objects.select_for_update().get(pk=circle.pk)
    require_moderator(circle=circle, user=actor)
    circle.invite_token = Circle._meta.get_field("invite_token").default()
    circle.save(update_fields=["invite_token"])
    AuditEntry.objects.create(circle=circle, actor=actor, action=AuditAction.INVITE_RENEW)
    return circle
