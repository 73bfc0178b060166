"""The hub's full access check for many sockets at once (circles/selectors.py)."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from circles.models import Membership, MembershipStatus
from circles.selectors import room_sockets_still_allowed

pytestmark = pytest.mark.django_db


def signed_in(user) -> str:
    client = Client()
    client.force_login(user)
    return client.session.session_key


def test_only_current_sign_ins_of_active_members_stay(make_user, make_circle):
    """Signed out, password changed, deactivated, removed from the circle, or a key
    nobody holds: each fails; the others pass, in three queries for all of them."""
    people = [make_user() for _ in range(6)]
    circle = make_circle(members=tuple(people))
    keys = [signed_in(person) for person in people]
    sockets = [
        (f"socket.{n}", person.pk, circle.pk, key)
        for n, (person, key) in enumerate(zip(people, keys, strict=True))
    ]
    sockets.append(("socket.unknown-key", people[0].pk, circle.pk, "no-such-session-key"))
    sockets.append(("socket.no-key", people[0].pk, circle.pk, None))

    SessionStore(session_key=keys[1]).delete()  # signed out
    people[2].set_password("a new password 9")
    people[2].save()
    people[3].is_active = False
    people[3].save()
    Membership.objects.filter(circle=circle, user=people[4]).update(status=MembershipStatus.REMOVED)

    allowed = room_sockets_still_allowed(sockets=sockets)

    assert allowed == {"socket.0", "socket.5"}


def test_the_check_costs_three_queries_however_many_sockets(
    make_user, make_circle, django_assert_num_queries
):
    for count in (2, 20):
        people = [make_user() for _ in range(count)]
        circle = make_circle(members=tuple(people))
        sockets = [(f"s.{p.pk}", p.pk, circle.pk, signed_in(p)) for p in people]
        with django_assert_num_queries(3):
            assert len(room_sockets_still_allowed(sockets=sockets)) == count
