"""Reads. Each returns what a page needs in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils.crypto import constant_time_compare

from circles.models import (
    Circle,
    CircleFloorSettings,
    CommunityGuidelines,
    CrisisResource,
    FloorHand,
    FloorState,
    GuidelinesAcceptance,
    Membership,
    MembershipStatus,
    Message,
    Role,
    RoomConnection,
    Session,
    SessionStatus,
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


# The live room ------------------------------------------------------------------

HISTORY_SIZE = 50
RESUME_PAGE = 1000
PRESENCE_LAPSE_SECONDS = 15


class RoomRefusal:
    """Close codes for a connection that may not be in the room (protocol.md)."""

    NOT_SIGNED_IN = 4401
    NOT_A_MEMBER = 4403
    NO_SUCH_CIRCLE = 4404
    GUIDELINES = 4428
    SIGNED_OUT = 4408
    REPLACED = 4409


def room_membership(*, circle_id: int, user_id: int) -> Membership | None:
    """The active membership that lets this person into the room, with its circle."""
    return (
        Membership.objects.select_related("circle", "user")
        .filter(circle_id=circle_id, user_id=user_id, status=MembershipStatus.ACTIVE)
        .first()
    )


def room_refusal(*, circle_id: int, user) -> int | None:
    """Why this person may not enter the room, as a close code, or None."""
    if not user.is_authenticated:
        return RoomRefusal.NOT_SIGNED_IN
    if not Circle.objects.filter(pk=circle_id).exists():
        return RoomRefusal.NO_SUCH_CIRCLE
    if room_membership(circle_id=circle_id, user_id=user.pk) is None:
        return RoomRefusal.NOT_A_MEMBER
    if not guidelines_accepted(user=user):
        return RoomRefusal.GUIDELINES
    return None


def session_open_for(*, circle_id: int) -> Session | None:
    return (
        Session.objects.select_related("facilitator")
        .filter(circle_id=circle_id, status=SessionStatus.OPEN)
        .first()
    )


def visible_messages(*, membership: Membership) -> QuerySet[Message]:
    """What this member may see of the circle's messages: only since they joined."""
    return Message.objects.filter(
        circle_id=membership.circle_id, seq__gt=membership.visible_after_seq
    ).select_related("author")


def room_history(*, membership: Membership, up_to: int) -> list[Message]:
    """The last 50 visible messages up to seq `up_to`, oldest first."""
    visible = visible_messages(membership=membership).filter(seq__lte=up_to)
    newest = list(visible.order_by("-seq")[:HISTORY_SIZE])
    newest.reverse()
    return newest


def messages_after(*, membership: Membership, after: int) -> tuple[list[Message], bool]:
    """Visible messages with seq > after, in order, one page; and whether more remain."""
    page = list(
        visible_messages(membership=membership)
        .filter(seq__gt=after)
        .order_by("seq")[: RESUME_PAGE + 1]
    )
    return page[:RESUME_PAGE], len(page) > RESUME_PAGE


def message_by_client_id(*, user_id: int, client_id) -> Message | None:
    return (
        Message.objects.select_related("author")
        .filter(author_id=user_id, client_id=client_id)
        .first()
    )


def circle_access_version(*, circle_id: int) -> int:
    return Circle.objects.filter(pk=circle_id).values_list("access_version", flat=True).first() or 0


def circle_latest_seq(*, circle_id: int) -> int:
    return Circle.objects.filter(pk=circle_id).values_list("last_seq", flat=True).first() or 0


def room_presence(*, circle_id: int, now) -> list[dict]:
    """Everyone with a live connection to the room: one entry per person."""
    since = now - timedelta(seconds=PRESENCE_LAPSE_SECONDS)
    rows = (
        RoomConnection.objects.filter(circle_id=circle_id, seen_at__gte=since, replaced=False)
        .values_list("user_id", "user__display_name")
        .distinct()
        .order_by("user__display_name", "user_id")
    )
    people = list(rows)
    roles = dict(
        Membership.objects.filter(
            circle_id=circle_id, user_id__in=[pk for pk, _name in people]
        ).values_list("user_id", "role")
    )
    hands = set(
        FloorHand.objects.filter(
            floor__session__circle_id=circle_id, floor__session__status=SessionStatus.OPEN
        ).values_list("member_id", flat=True)
    )
    return [
        {
            "member_id": pk,
            "name": name,
            "role": roles.get(pk, Role.MEMBER),
            "hand_raised": pk in hands,
        }
        for pk, name in people
    ]


def session_key_is_valid(*, session_key: str | None, user) -> bool:
    """Is the sign-in this socket was opened with still current (not logged out, same password)?"""
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    data = store.load()
    if str(data.get(SESSION_KEY, "")) != str(user.pk):
        return False
    fresh = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
    if fresh is None:
        return False
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), fresh.get_session_auth_hash())


def room_present_ids(*, circle_id: int, now) -> frozenset[int]:
    """Who counts as a participant now: a live connection to the room."""
    since = now - timedelta(seconds=PRESENCE_LAPSE_SECONDS)
    return frozenset(
        RoomConnection.objects.filter(circle_id=circle_id, seen_at__gte=since, replaced=False)
        .values_list("user_id", flat=True)
        .distinct()
    )


def display_names(*, ids) -> dict[int, str]:
    ids = {pk for pk in ids if pk is not None}
    if not ids:
        return {}
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "display_name"))


def circles_with_open_session() -> list[int]:
    return list(
        Session.objects.filter(status=SessionStatus.OPEN).values_list("circle_id", flat=True)
    )


def circle_sessions_closed(*, circle_id: int, limit: int = 10) -> list[Session]:
    return list(
        Session.objects.filter(circle_id=circle_id, status=SessionStatus.CLOSED)
        .select_related("facilitator")
        .order_by("-closed_at", "-id")[:limit]
    )


def session_with_voices(*, circle_id: int, session_id: int) -> Session | None:
    return (
        Session.objects.filter(circle_id=circle_id, pk=session_id)
        .select_related("facilitator")
        .prefetch_related("voices")
        .first()
    )


def floor_settings_of(*, circle) -> CircleFloorSettings:
    """The circle's settings, or unsaved defaults."""
    return CircleFloorSettings.objects.filter(circle=circle).first() or CircleFloorSettings(
        circle=circle
    )


def room_ticks(*, circle_ids) -> dict[int, tuple[int, int]]:
    """For each circle: its latest seq and its open floor's version (0 without one)."""
    seqs = dict(Circle.objects.filter(pk__in=circle_ids).values_list("pk", "last_seq"))
    versions = dict(
        FloorState.objects.filter(
            session__circle_id__in=circle_ids, session__status=SessionStatus.OPEN
        ).values_list("session__circle_id", "version")
    )
    return {circle_id: (seqs.get(circle_id, 0), versions.get(circle_id, 0)) for circle_id in seqs}
