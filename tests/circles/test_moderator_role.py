import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from circles.models import AuditAction, AuditEntry, Membership, MembershipStatus, Role
from circles.services.circles import circle_create
from circles.services.errors import ServiceError
from circles.services.memberships import moderator_appoint, moderator_step_down

pytestmark = pytest.mark.django_db


def test_the_creator_becomes_the_first_moderator_and_nothing_more(client, make_user):
    creator = make_user()
    client.force_login(creator)
    response = client.post(
        reverse("circles:new"),
        {
            "name": "  Night   Owls ",
            "description": "For people awake at 3am.",
            "topic": "anxiety",
            "capacity": 8,
            "join_policy": "open",
        },
    )
    membership = Membership.objects.get(user=creator)
    assert response["Location"] == membership.circle.get_absolute_url()
    assert membership.circle.name == "Night Owls"
    assert (membership.role, membership.status) == (Role.MODERATOR, MembershipStatus.ACTIVE)


@pytest.mark.parametrize("capacity", [2, 21])
def test_capacity_outside_3_to_20_is_refused(client, make_user, capacity):
    client.force_login(make_user())
    response = client.post(
        reverse("circles:new"),
        {
            "name": "Tiny",
            "description": "x",
            "topic": "anxiety",
            "capacity": capacity,
            "join_policy": "open",
        },
    )
    assert response.status_code == 200
    assert 'class="error"' in response.content.decode()
    assert not Membership.objects.exists()


def test_a_moderator_appoints_another_active_member(make_user, make_circle):
    moderator, member = make_user(), make_user()
    circle = make_circle(moderator=moderator, members=(member,))
    membership = Membership.objects.get(circle=circle, user=member)
    moderator_appoint(actor=moderator, membership=membership)
    membership.refresh_from_db()
    assert membership.role == Role.MODERATOR
    assert AuditEntry.objects.filter(action=AuditAction.MODERATOR_APPOINT, subject=member).exists()


def test_a_member_cannot_appoint_moderators(make_user, make_circle):
    member, other = make_user(), make_user()
    circle = make_circle(members=(member, other))
    with pytest.raises(ServiceError):
        moderator_appoint(actor=member, membership=Membership.objects.get(user=other))
    assert Membership.objects.get(circle=circle, user=other).role == Role.MEMBER


def test_a_moderator_steps_down_only_while_another_remains(make_user, make_circle):
    first, second = make_user(), make_user()
    circle = make_circle(moderator=first, members=(second,))
    with pytest.raises(ServiceError, match="only moderator"):
        moderator_step_down(circle=circle, user=first)
    moderator_appoint(actor=first, membership=Membership.objects.get(user=second))
    moderator_step_down(circle=circle, user=first)
    assert Membership.objects.get(circle=circle, user=first).role == Role.MEMBER
    with pytest.raises(ServiceError, match="only moderator"):
        moderator_step_down(circle=circle, user=second)


def test_circle_create_refuses_bad_input_without_writing(make_user):
    creator = make_user()
    with pytest.raises(ValidationError) as refused:
        circle_create(
            creator=creator, name="", description="", topic="nope", capacity=99, join_policy="x"
        )
    assert not Membership.objects.exists()
    assert {"name", "topic", "capacity", "join_policy"} <= set(refused.value.message_dict)
