from __future__ import annotations

import itertools

import pytest
from django.core.cache import cache

from circles import ratelimit
from circles.models import Circle, JoinPolicy, Membership, MembershipStatus, Role
from circles.selectors import forget_display_names, guidelines_current
from circles.services.guidelines import guidelines_accept, guidelines_publish

_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate limits and cached reads (the names each process remembers included) never
    carry over from one test to the next: ids come back after a rollback on SQLite."""
    cache.clear()
    forget_display_names()
    ratelimit.forget()
    yield
    cache.clear()
    forget_display_names()
    ratelimit.forget()


def current_guidelines():
    """The current guidelines; a transactional test empties every table, the first
    version from the data migration included, so later tests publish it again."""
    return guidelines_current() or guidelines_publish(text="Be kind. Take turns.")


@pytest.fixture
def make_user(django_user_model):
    def make(*, display_name: str | None = None, accepted: bool = True, password: str = "pw-1"):
        number = next(_numbers)
        user = django_user_model.objects.create_user(
            email=f"person{number}@example.test",
            display_name=display_name or f"Person {number}",
            password=password,
        )
        if accepted:
            guidelines_accept(user=user, version=current_guidelines().version)
        return user

    return make


@pytest.fixture
def make_circle(make_user):
    def make(
        *,
        moderator=None,
        join_policy: str = JoinPolicy.OPEN,
        capacity: int = 12,
        name: str | None = None,
        members: tuple = (),
    ) -> Circle:
        moderator = moderator or make_user()
        circle = Circle.objects.create(
            name=name or f"Circle {next(_numbers)}",
            description="A circle for tests.",
            topic="anxiety",
            join_policy=join_policy,
            capacity=capacity,
            created_by=moderator,
        )
        Membership.objects.create(
            circle=circle,
            user=moderator,
            role=Role.MODERATOR,
            status=MembershipStatus.ACTIVE,
            joined_at=circle.created_at,
        )
        for member in members:
            Membership.objects.create(
                circle=circle,
                user=member,
                status=MembershipStatus.ACTIVE,
                joined_at=circle.created_at,
            )
        return circle

    return make


@pytest.fixture
def admin_user(django_user_model):
    """pytest-django's admin knows nothing of display names; ours has one."""
    return django_user_model.objects.create_superuser(
        email="admin@example.test", display_name="Site Admin", password="pw-admin"
    )
