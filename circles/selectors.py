"""Reads. Each returns what a page needs in a fixed number of queries."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from circles.models import (
    Circle,
    CommunityGuidelines,
    CrisisResource,
    GuidelinesAcceptance,
    Membership,
    MembershipStatus,
    Role,
)

ACTIVE_MEMBERS = Count("memberships", filter=Q(memberships__status=MembershipStatus.ACTIVE))


def guidelines_current() -> CommunityGuidelines | None:
    return CommunityGuidelines.objects.order_by("-version").first()


def guidelines_accepted(*, user) -> bool:
    """Has this person accepted the newest version? One query."""
    newest = CommunityGuidelines.objects.order_by("-version").values("pk")[:1]
    return GuidelinesAcceptance.objects.filter(user=user, guidelines=Subquery(newest)).exists()


def circle_list(*, user, topic: str = "", search: str = "") -> QuerySet[Circle]:
    circles = Circle.objects.annotate(active_count=ACTIVE_MEMBERS)
    if topic:
        circles = circles.filter(topic=topic)
    if search:
        circles = circles.filter(Q(name__icontains=search) | Q(description__icontains=search))
    if user.is_authenticated:
        own = Membership.objects.filter(circle=OuterRef("pk"), user=user)
        circles = circles.annotate(my_status=Subquery(own.values("status")[:1]))
    return circles.order_by("name", "id")


def circle_with_counts(*, slug: str) -> Circle | None:
    return (
        Circle.objects.annotate(
            active_count=ACTIVE_MEMBERS,
            pending_count=Count(
                "memberships", filter=Q(memberships__status=MembershipStatus.PENDING)
            ),
        )
        .filter(slug=slug)
        .first()
    )


def circle_by_invite(*, token: str) -> Circle | None:
    if not token:
        return None
    return Circle.objects.annotate(active_count=ACTIVE_MEMBERS).filter(invite_token=token).first()


def membership_of(*, circle: Circle, user) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(circle=circle, user=user).first()


def circle_members(*, circle: Circle) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(circle=circle, status=MembershipStatus.ACTIVE)
        .select_related("user")
        .order_by("joined_at", "id")
    )


def circle_pending_requests(*, circle: Circle) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(circle=circle, status=MembershipStatus.PENDING)
        .select_related("user")
        .order_by("requested_at", "id")
    )


def circle_moderator_count(*, circle: Circle) -> int:
    return Membership.objects.filter(
        circle=circle, status=MembershipStatus.ACTIVE, role=Role.MODERATOR
    ).count()


def memberships_of_user(*, user) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(
            user=user, status__in=[MembershipStatus.ACTIVE, MembershipStatus.PENDING]
        )
        .select_related("circle")
        .order_by("circle__name")
    )


def crisis_resources() -> QuerySet[CrisisResource]:
    return CrisisResource.objects.all()
