"""Every page's query count is independent of how many circles, members and messages
there are (issue 5).

Each test builds a small world, measures the page's queries there, grows the world
(2 → 25 circles, 2 → 12 members, 3 → 203 messages, …) and asserts the exact same count
with `django_assert_num_queries`. The count is measured on each run rather than written
down: what matters here is that it doesn't grow, and a backend's savepoints or a new
middleware read may change the number itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from allauth.account.models import EmailAddress
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from circles.models import (
    Circle,
    CircleFloorSettings,
    CrisisResource,
    Membership,
    MembershipStatus,
    Message,
    Role,
    Session,
    SessionStatus,
    SessionVoice,
    Topic,
)

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)

SMALL = {"circles": 2, "members": 2, "messages": 3}
BIG = {"circles": 25, "members": 12, "messages": 203}


def _users(count: int) -> list[User]:
    """People who only fill the world: they never sign in, so no password, no guidelines."""
    numbers = [next(_numbers) for _ in range(count)]
    return User.objects.bulk_create(
        User(email=f"filler{n}@example.test", display_name=f"Filler {n}", password="!")
        for n in numbers
    )


@dataclass
class World:
    """One main circle seen from every side, among other circles.

    The moderator and the member are in the main circle; the moderator is also in every
    other circle (active in some, asking to join the rest), so their profile grows too.
    """

    main: Circle
    moderator: User
    member: User
    outsider: User
    newcomer: User
    closed_session: Session
    open_session: Session

    def grow_to(self, size: dict) -> None:
        """Add circles, members (with their voices in the closed session) and messages
        up to `size`'s numbers; join requests, past sessions and crisis lines grow by
        the member count each time."""
        self._add_circles(size["circles"] - Circle.objects.count())
        active = Membership.objects.filter(circle=self.main, status=MembershipStatus.ACTIVE)
        newcomers = _users(size["members"] - active.count())
        _join(self.main, newcomers)
        _ask_to_join(self.main, _users(size["members"]))
        _voices(self.closed_session, newcomers)
        for _ in range(size["members"]):
            _closed_session(self.main, facilitator=self.moderator)
        _messages(self.closed_session, size["messages"] - Message.objects.count())
        CrisisResource.objects.bulk_create(
            CrisisResource(name=f"Line {n}", contact="116 123", position=n)
            for n in range(size["members"])
        )

    def _add_circles(self, count: int) -> None:
        owners = _users(count)
        circles = Circle.objects.bulk_create(
            Circle(
                name=f"Other circle {owner.pk}",
                slug=f"other-circle-{owner.pk}",
                description="Another circle.",
                topic=Topic.GRIEF if owner.pk % 2 else Topic.ANXIETY,
                created_by=owner,
            )
            for owner in owners
        )
        for index, (circle, owner) in enumerate(zip(circles, owners, strict=True)):
            _join(circle, [owner], role=Role.MODERATOR)
            if index % 2:
                _join(circle, [self.moderator])
            else:
                _ask_to_join(circle, [self.moderator])


def _join(circle: Circle, users, *, role: str = Role.MEMBER) -> None:
    Membership.objects.bulk_create(
        Membership(
            circle=circle,
            user=user,
            role=role,
            status=MembershipStatus.ACTIVE,
            joined_at=timezone.now(),
        )
        for user in users
    )


def _ask_to_join(circle: Circle, users) -> None:
    Membership.objects.bulk_create(
        Membership(circle=circle, user=user, status=MembershipStatus.PENDING) for user in users
    )


def _closed_session(circle: Circle, *, facilitator) -> Session:
    now = timezone.now()
    return Session.objects.create(
        circle=circle,
        status=SessionStatus.CLOSED,
        facilitator=facilitator,
        opened_at=now,
        opened_by=facilitator,
        closed_at=now,
        closed_by=facilitator,
        gini=0.25,
    )


def _voices(session: Session, users) -> None:
    SessionVoice.objects.bulk_create(
        SessionVoice(
            session=session,
            member=user,
            display_name=user.display_name,
            messages=3,
            characters=120,
            floor_seconds=60,
            share=0.5,
        )
        for user in users
    )


def _messages(session: Session, count: int) -> None:
    """`count` messages in the session, numbered on from the circle's last seq."""
    circle = Circle.objects.get(pk=session.circle_id)
    authors = list(
        Membership.objects.filter(circle=circle, status=MembershipStatus.ACTIVE).values_list(
            "user_id", flat=True
        )
    )
    Message.objects.bulk_create(
        Message(
            circle=circle,
            session=session,
            seq=circle.last_seq + n,
            author_id=authors[n % len(authors)],
            text=f"Message {n}",
        )
        for n in range(1, count + 1)
    )
    Circle.objects.filter(pk=circle.pk).update(last_seq=F("last_seq") + count)


@pytest.fixture
def world(make_user, make_circle) -> World:
    """The small world: 2 circles; 2 members and 2 requests in the main one; its open
    session and 3 closed ones, the first with 2 voices and 3 messages."""
    moderator = make_user()
    member = make_user()
    main = make_circle(moderator=moderator, members=(member,), capacity=20)
    CircleFloorSettings.objects.create(circle=main, turn_seconds=90)
    closed = _closed_session(main, facilitator=moderator)
    _voices(closed, [moderator, member])
    open_session = Session.objects.create(
        circle=main,
        status=SessionStatus.OPEN,
        facilitator=moderator,
        opened_at=timezone.now(),
        opened_by=moderator,
    )
    outsider = make_user()
    newcomer = make_user(accepted=False)
    # Signing up gives each person their address row; allauth would add it on first visit.
    EmailAddress.objects.bulk_create(
        EmailAddress(user=user, email=user.email, primary=True, verified=True)
        for user in (moderator, member, outsider, newcomer)
    )
    world = World(
        main=main,
        moderator=moderator,
        member=member,
        outsider=outsider,
        newcomer=newcomer,
        closed_session=closed,
        open_session=open_session,
    )
    world.grow_to(SMALL)
    return world


def _slug(name: str) -> Callable[[World], str]:
    return lambda world: reverse(name, kwargs={"slug": world.main.slug})


def _fixed(name: str) -> Callable[[World], str]:
    return lambda world: reverse(name)


PAGES = [
    ("home", _fixed("home"), ["anonymous", "moderator"]),
    ("crisis", _fixed("crisis"), ["anonymous", "moderator"]),
    ("guidelines", _fixed("guidelines"), ["moderator", "newcomer"]),
    ("circle list", _fixed("circles:list"), ["anonymous", "moderator"]),
    (
        "circle list, filtered",
        lambda world: reverse("circles:list") + f"?topic={Topic.ANXIETY}&q=circle",
        ["anonymous", "moderator"],
    ),
    ("new circle", _fixed("circles:new"), ["moderator"]),
    ("circle detail", _slug("circles:detail"), ["anonymous", "outsider", "member", "moderator"]),
    ("members", _slug("circles:members"), ["member", "moderator"]),
    ("join requests", _slug("circles:requests"), ["moderator"]),
    ("invite link", _slug("circles:invite"), ["moderator"]),
    (
        "invite accept",
        lambda world: reverse("circles:invite_accept", kwargs={"token": world.main.invite_token}),
        ["outsider", "member"],
    ),
    ("room", _slug("circles:room"), ["member", "moderator"]),
    ("floor settings", _slug("circles:floor_settings"), ["moderator"]),
    (
        "closed session with the balance chart",
        lambda world: reverse(
            "circles:session",
            kwargs={"slug": world.main.slug, "session_id": world.closed_session.pk},
        ),
        ["member", "moderator"],
    ),
    (
        "open session",
        lambda world: reverse(
            "circles:session",
            kwargs={"slug": world.main.slug, "session_id": world.open_session.pk},
        ),
        ["member"],
    ),
    ("profile", _fixed("accounts:profile"), ["moderator"]),
    ("sign in", _fixed("account_login"), ["anonymous"]),
    ("sign up", _fixed("account_signup"), ["anonymous"]),
    ("password reset", _fixed("account_reset_password"), ["anonymous"]),
    ("sign out", _fixed("account_logout"), ["moderator"]),
    ("email addresses", _fixed("account_email"), ["moderator"]),
    ("password change", _fixed("account_change_password"), ["moderator"]),
]

CASES = [
    pytest.param(url, viewer, id=f"{page} as {viewer}")
    for page, url, viewers in PAGES
    for viewer in viewers
]


@pytest.mark.parametrize(("url", "viewer"), CASES)
def test_the_page_runs_the_same_queries_in_a_small_and_a_big_world(
    client, world, django_assert_num_queries, url, viewer
):
    """Measure the page in the small world, grow the world, and expect exactly as many."""
    if viewer != "anonymous":
        client.force_login(getattr(world, viewer))
    path = url(world)

    with CaptureQueriesContext(connection) as small:
        response = client.get(path)
    assert response.status_code == 200, response
    expected = len(small.captured_queries)

    world.grow_to(BIG)
    with django_assert_num_queries(expected):
        response = client.get(path)
    assert response.status_code == 200, response


def test_the_big_world_is_big(world):
    """The worlds differ in every number the pages could trip over."""
    world.grow_to(BIG)
    assert Circle.objects.count() == BIG["circles"]
    active = Membership.objects.filter(circle=world.main, status=MembershipStatus.ACTIVE)
    assert active.count() == BIG["members"]
    assert Message.objects.filter(session=world.closed_session).count() == BIG["messages"]
    assert world.closed_session.voices.count() == BIG["members"]
    pending = Membership.objects.filter(circle=world.main, status=MembershipStatus.PENDING)
    assert pending.count() == SMALL["members"] + BIG["members"]
    # More than the circle's page lists (10), so its limit is exercised too.
    assert Session.objects.filter(circle=world.main, status=SessionStatus.CLOSED).count() > 10
    assert Membership.objects.filter(user=world.moderator).count() == BIG["circles"]
