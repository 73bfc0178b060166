import pytest
from django.urls import reverse

from circles.models import AuditAction, AuditEntry, JoinPolicy, Membership, MembershipStatus
from circles.services.errors import ServiceError
from circles.services.memberships import (
    membership_approve,
    membership_decline,
    membership_join,
    membership_join_by_invite,
    membership_leave,
    membership_request,
)

pytestmark = pytest.mark.django_db


def _join_url(circle):
    return reverse("circles:join", kwargs={"slug": circle.slug})


def test_anyone_who_accepted_the_guidelines_joins_an_open_circle_at_once(
    client, make_user, make_circle
):
    user = make_user()
    circle = make_circle(join_policy=JoinPolicy.OPEN)
    client.force_login(user)
    response = client.post(_join_url(circle), follow=True)
    assert "Welcome to" in response.content.decode()
    membership = Membership.objects.get(circle=circle, user=user)
    assert membership.status == MembershipStatus.ACTIVE
    assert membership.joined_at is not None


def test_a_request_circle_takes_a_request_not_a_member(client, make_user, make_circle):
    user = make_user()
    circle = make_circle(join_policy=JoinPolicy.REQUEST)
    client.force_login(user)
    client.post(_join_url(circle))
    assert Membership.objects.get(circle=circle, user=user).status == MembershipStatus.PENDING
    with pytest.raises(ServiceError):
        membership_join(circle=circle, user=make_user())


def test_an_invite_circle_cannot_be_joined_or_requested_without_the_link(make_user, make_circle):
    circle = make_circle(join_policy=JoinPolicy.INVITE)
    user = make_user()
    with pytest.raises(ServiceError):
        membership_join(circle=circle, user=user)
    with pytest.raises(ServiceError):
        membership_request(circle=circle, user=user)
    assert not Membership.objects.filter(user=user).exists()


def test_the_invite_link_lets_people_into_an_invite_circle(client, make_user, make_circle):
    circle = make_circle(join_policy=JoinPolicy.INVITE)
    user = make_user()
    client.force_login(user)
    url = reverse("circles:invite_accept", kwargs={"token": circle.invite_token})
    assert client.get(url).status_code == 200
    client.post(url)
    assert Membership.objects.get(circle=circle, user=user).status == MembershipStatus.ACTIVE


def test_renewing_the_invite_link_invalidates_the_old_one(client, make_user, make_circle):
    moderator = make_user()
    circle = make_circle(moderator=moderator, join_policy=JoinPolicy.INVITE)
    old_url = reverse("circles:invite_accept", kwargs={"token": circle.invite_token})
    client.force_login(moderator)
    client.post(reverse("circles:invite", kwargs={"slug": circle.slug}))
    circle.refresh_from_db()
    new_url = reverse("circles:invite_accept", kwargs={"token": circle.invite_token})
    assert new_url != old_url
    assert AuditEntry.objects.filter(circle=circle, action=AuditAction.INVITE_RENEW).exists()

    guest = make_user()
    client.force_login(guest)
    assert client.get(old_url).status_code == 404
    client.post(old_url)
    assert not Membership.objects.filter(circle=circle, user=guest).exists()
    client.post(new_url)
    assert Membership.objects.get(circle=circle, user=guest).is_active


def test_only_moderators_see_and_renew_the_invite_link(client, make_user, make_circle):
    member = make_user()
    circle = make_circle(members=(member,))
    token = circle.invite_token
    client.force_login(member)
    invite_page = reverse("circles:invite", kwargs={"slug": circle.slug})
    response = client.get(invite_page)
    assert response.status_code == 403
    assert token not in response.content.decode()
    client.post(invite_page)
    circle.refresh_from_db()
    assert circle.invite_token == token


def test_a_full_circle_refuses_new_members_with_a_clear_message(client, make_user, make_circle):
    circle = make_circle(capacity=3, members=(make_user(), make_user()))
    user = make_user()
    client.force_login(user)
    response = client.post(_join_url(circle), follow=True)
    assert "This circle is full" in response.content.decode()
    assert not Membership.objects.filter(circle=circle, user=user).exists()
    with pytest.raises(ServiceError, match="full"):
        membership_join_by_invite(circle=circle, token=circle.invite_token, user=user)


def test_approving_a_request_into_a_full_circle_is_refused(make_user, make_circle):
    moderator = make_user()
    circle = make_circle(moderator=moderator, join_policy=JoinPolicy.REQUEST, capacity=3)
    pending = membership_request(circle=circle, user=make_user())
    membership_join_by_invite(circle=circle, token=circle.invite_token, user=make_user())
    membership_join_by_invite(circle=circle, token=circle.invite_token, user=make_user())
    with pytest.raises(ServiceError, match="full"):
        membership_approve(actor=moderator, membership=pending)
    pending.refresh_from_db()
    assert pending.status == MembershipStatus.PENDING


@pytest.mark.parametrize("status", [MembershipStatus.REMOVED, MembershipStatus.BANNED])
def test_removed_or_banned_members_cannot_rejoin_by_any_path(
    client, make_user, make_circle, status
):
    for policy in (JoinPolicy.OPEN, JoinPolicy.REQUEST, JoinPolicy.INVITE):
        user = make_user()
        circle = make_circle(join_policy=policy)
        Membership.objects.create(circle=circle, user=user, status=status)
        with pytest.raises(ServiceError, match="can't rejoin"):
            membership_join_by_invite(circle=circle, token=circle.invite_token, user=user)
        if policy == JoinPolicy.OPEN:
            with pytest.raises(ServiceError, match="can't rejoin"):
                membership_join(circle=circle, user=user)
        with pytest.raises(ServiceError, match="can't rejoin"):
            membership_request(circle=circle, user=user)
        client.force_login(user)
        client.post(_join_url(circle))
        client.post(reverse("circles:invite_accept", kwargs={"token": circle.invite_token}))
        assert Membership.objects.get(circle=circle, user=user).status == status


def test_leaving_a_circle_is_allowed_and_removes_the_membership(client, make_user, make_circle):
    user = make_user()
    circle = make_circle(members=(user,))
    client.force_login(user)
    client.post(reverse("circles:leave", kwargs={"slug": circle.slug}))
    assert not Membership.objects.filter(circle=circle, user=user).exists()


def test_the_only_moderator_cannot_leave_members_without_one(make_user, make_circle):
    moderator = make_user()
    circle = make_circle(moderator=moderator, members=(make_user(),))
    with pytest.raises(ServiceError, match="only moderator"):
        membership_leave(circle=circle, user=moderator)
    assert Membership.objects.get(circle=circle, user=moderator).is_moderator


def test_members_only_see_the_member_list(client, make_user, make_circle):
    member = make_user(display_name="Inside Person")
    circle = make_circle(members=(member,))
    url = reverse("circles:members", kwargs={"slug": circle.slug})

    outsider = make_user()
    client.force_login(outsider)
    response = client.get(url)
    assert response.status_code == 403
    assert "Inside Person" not in response.content.decode()

    pending = make_user()
    Membership.objects.create(circle=circle, user=pending, status=MembershipStatus.PENDING)
    client.force_login(pending)
    assert client.get(url).status_code == 403

    client.logout()
    assert client.get(url).status_code == 302  # to sign in

    client.force_login(member)
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Inside Person" in page
    assert member.email not in page  # display names only


class TestPendingRequests:
    def test_a_moderator_approves_a_request(self, client, make_user, make_circle):
        moderator = make_user()
        circle = make_circle(moderator=moderator, join_policy=JoinPolicy.REQUEST)
        pending = membership_request(circle=circle, user=make_user())
        client.force_login(moderator)
        client.post(
            reverse(
                "circles:request_approve",
                kwargs={"slug": circle.slug, "membership_id": pending.pk},
            )
        )
        pending.refresh_from_db()
        assert pending.status == MembershipStatus.ACTIVE
        entry = AuditEntry.objects.get(circle=circle, action=AuditAction.JOIN_APPROVE)
        assert (entry.actor, entry.subject) == (moderator, pending.user)

    def test_a_moderator_declines_a_request_with_a_note(self, client, make_user, make_circle):
        moderator = make_user()
        circle = make_circle(moderator=moderator, join_policy=JoinPolicy.REQUEST)
        pending = membership_request(circle=circle, user=make_user())
        client.force_login(moderator)
        client.post(
            reverse(
                "circles:request_decline",
                kwargs={"slug": circle.slug, "membership_id": pending.pk},
            ),
            {"reason": "We're full this season."},
        )
        assert not Membership.objects.filter(pk=pending.pk).exists()
        entry = AuditEntry.objects.get(circle=circle, action=AuditAction.JOIN_DECLINE)
        assert entry.reason == "We're full this season."

    @pytest.mark.parametrize("who", ["member", "outsider", "the asker"])
    def test_no_one_but_a_moderator_answers_a_request(self, client, make_user, make_circle, who):
        member = make_user()
        circle = make_circle(join_policy=JoinPolicy.REQUEST, members=(member,))
        pending = membership_request(circle=circle, user=make_user())
        actor = {"member": member, "outsider": make_user(), "the asker": pending.user}[who]
        with pytest.raises(ServiceError):
            membership_approve(actor=actor, membership=pending)
        with pytest.raises(ServiceError):
            membership_decline(actor=actor, membership=pending)
        client.force_login(actor)
        kwargs = {"slug": circle.slug, "membership_id": pending.pk}
        assert (
            client.get(reverse("circles:requests", kwargs={"slug": circle.slug})).status_code == 403
        )
        client.post(reverse("circles:request_approve", kwargs=kwargs))
        client.post(reverse("circles:request_decline", kwargs=kwargs))
        pending.refresh_from_db()
        assert pending.status == MembershipStatus.PENDING

    def test_a_request_cannot_be_answered_twice(self, make_user, make_circle):
        moderator = make_user()
        circle = make_circle(moderator=moderator, join_policy=JoinPolicy.REQUEST)
        pending = membership_request(circle=circle, user=make_user())
        membership_approve(actor=moderator, membership=pending)
        with pytest.raises(ServiceError, match="already been answered"):
            membership_decline(actor=moderator, membership=pending)
        pending.refresh_from_db()
        assert pending.status == MembershipStatus.ACTIVE
