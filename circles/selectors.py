"""Reads. Each returns what a page needs in a fixed number of queries."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session as SignIn
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from circles.models import (
    Circle,
    CircleFloorSettings,
    CommunityGuidelines,
    CrisisResource,
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


@dataclass(frozen=True)
class RoomEntry:
    """The membership that lets someone into the room, or why they may not enter."""

    membership: Membership | None
    refusal: int | None


def room_entry(*, circle_id: int, user) -> RoomEntry:
    """Who may enter the room: one query for a member (their membership with its
    circle, and whether they accepted the newest guidelines)."""
    if not user.is_authenticated:
        return RoomEntry(None, RoomRefusal.NOT_SIGNED_IN)
    newest = CommunityGuidelines.objects.order_by("-version").values("pk")[:1]
    accepted = GuidelinesAcceptance.objects.filter(user_id=user.pk, guidelines=Subquery(newest))
    membership = (
        Membership.objects.select_related("circle", "user")
        .filter(circle_id=circle_id, user_id=user.pk, status=MembershipStatus.ACTIVE)
        .annotate(accepted_newest=Exists(accepted))
        .first()
    )
    if membership is None:
        known = Circle.objects.filter(pk=circle_id).exists()
        return RoomEntry(None, RoomRefusal.NOT_A_MEMBER if known else RoomRefusal.NO_SUCH_CIRCLE)
    if not membership.accepted_newest:
        return RoomEntry(None, RoomRefusal.GUIDELINES)
    return RoomEntry(membership, None)


def open_session_and_floor(*, circle_id: int) -> tuple[Session | None, FloorState | None]:
    """The circle's open session (with its facilitator) and its floor, in one query."""
    session = (
        Session.objects.select_related("facilitator", "floor")
        .filter(circle_id=circle_id, status=SessionStatus.OPEN)
        .first()
    )
    if session is None:
        return None, None
    return session, getattr(session, "floor", None)


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


def message_by_id(*, pk: int) -> Message:
    return Message.objects.select_related("author").get(pk=pk)


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


def room_presence(*, circle_id: int, now, hands: set[int] | None = None) -> list[dict]:
    """Everyone with a live connection to the room: one entry per person. Two queries,
    one when the caller knows the raised hands (from the floor it holds)."""
    since = presence_since(now)
    role = Membership.objects.filter(circle_id=circle_id, user_id=OuterRef("user_id")).values(
        "role"
    )[:1]
    people = list(
        RoomConnection.objects.filter(circle_id=circle_id, seen_at__gte=since, replaced=False)
        .annotate(role=Subquery(role))
        .values_list("user_id", "user__display_name", "role")
        .distinct()
        .order_by("user__display_name", "user_id")
    )
    if hands is None:
        open_floor_hands = (
            FloorState.objects.filter(
                session__circle_id=circle_id, session__status=SessionStatus.OPEN
            )
            .values_list("hands", flat=True)
            .first()
        )
        hands = {hand["member_id"] for hand in open_floor_hands or []}
    return [
        {
            "member_id": pk,
            "name": name,
            "role": role or Role.MEMBER,
            "hand_raised": pk in hands,
        }
        for pk, name, role in people
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
    return fresh is not None and _sign_in_matches(data, fresh)


def _sign_in_matches(data: dict, user) -> bool:
    """Does this stored sign-in belong to this (active) user, with their password as it
    is now? Django's own check, as `get_user` does it."""
    return str(data.get(SESSION_KEY, "")) == str(user.pk) and constant_time_compare(
        data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
    )


DATABASE_SESSIONS = "django.contrib.sessions.backends.db"


def room_sockets_still_allowed(*, sockets: list[tuple[str, int, int, str | None]]) -> set[str]:
    """Of these sockets (channel name, member id, circle id, session key), the ones
    whose sign-in is still current (not signed out, not expired, same password, still
    active) and whose membership is still active: three queries for any number."""
    if not sockets:
        return set()
    if settings.SESSION_ENGINE != DATABASE_SESSIONS:
        # Another session store: ask it socket by socket.
        users = {
            user.pk: user
            for user in get_user_model().objects.filter(
                pk__in={user_id for _name, user_id, _circle, _key in sockets}
            )
        }
        signed_in = {
            name
            for name, user_id, _circle, key in sockets
            if user_id in users and session_key_is_valid(session_key=key, user=users[user_id])
        }
    else:
        signed_in = _signed_in_by_database_sessions(sockets)
    members = set(
        Membership.objects.filter(
            user_id__in={user_id for _name, user_id, _circle, _key in sockets},
            circle_id__in={circle_id for _name, _user, circle_id, _key in sockets},
            status=MembershipStatus.ACTIVE,
        ).values_list("user_id", "circle_id")
    )
    return {
        name
        for name, user_id, circle_id, _key in sockets
        if name in signed_in and (user_id, circle_id) in members
    }


def _signed_in_by_database_sessions(sockets) -> set[str]:
    store = import_module(DATABASE_SESSIONS).SessionStore()
    stored = dict(
        SignIn.objects.filter(
            session_key__in={key for _name, _user, _circle, key in sockets if key},
            expire_date__gt=timezone.now(),
        ).values_list("session_key", "session_data")
    )
    users = {
        user.pk: user
        for user in get_user_model().objects.filter(
            pk__in={user_id for _name, user_id, _circle, _key in sockets}, is_active=True
        )
    }
    signed_in = set()
    for name, user_id, _circle, key in sockets:
        if key not in stored or user_id not in users:
            continue
        if _sign_in_matches(store.decode(stored[key]), users[user_id]):
            signed_in.add(name)
    return signed_in


def presence_since(now):
    """The oldest heartbeat that still counts as present at `now`."""
    return now - timedelta(seconds=PRESENCE_LAPSE_SECONDS)


def room_present_ids(*, circle_id: int, now) -> frozenset[int]:
    """Who counts as a participant now: a live connection to the room."""
    since = presence_since(now)
    return frozenset(
        RoomConnection.objects.filter(circle_id=circle_id, seen_at__gte=since, replaced=False)
        .values_list("user_id", flat=True)
        .distinct()
    )


# Names in floor and balance frames, remembered for a short while in each process:
# a share would otherwise read them every time. A rename shows there within a minute
# (messages carry the author's name read with the message, at once).
NAMES_REMEMBERED_SECONDS = 60
_names: dict[int, tuple[str, float]] = {}


def forget_display_names() -> None:
    _names.clear()


def display_names(*, ids) -> dict[int, str]:
    ids = {pk for pk in ids if pk is not None}
    now = time.monotonic()
    found = {pk: _names[pk][0] for pk in ids if pk in _names and _names[pk][1] > now}
    missing = ids - set(found)
    if missing:
        read = dict(
            get_user_model().objects.filter(pk__in=missing).values_list("pk", "display_name")
        )
        if len(_names) > 10_000:  # a long-running process: start again, not grow
            _names.clear()
        for pk, name in read.items():
            _names[pk] = (name, now + NAMES_REMEMBERED_SECONDS)
        found.update(read)
    return found


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
    """For each circle: its latest seq and the version of its open floor's last
    broadcast `floor` frame (0 without one)."""
    seqs = dict(Circle.objects.filter(pk__in=circle_ids).values_list("pk", "last_seq"))
    versions = dict(
        FloorState.objects.filter(
            session__circle_id__in=circle_ids, session__status=SessionStatus.OPEN
        ).values_list("session__circle_id", "shown_version")
    )
    return {circle_id: (seqs.get(circle_id, 0), versions.get(circle_id, 0)) for circle_id in seqs}
