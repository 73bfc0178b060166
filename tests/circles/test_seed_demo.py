import json

import pytest
from allauth.account.models import EmailAddress
from django.core.management import CommandError, call_command

from circles.models import Circle, JoinPolicy, Membership, MembershipStatus, Role
from circles.selectors import guidelines_accepted

pytestmark = pytest.mark.django_db


def _seed(capsys, *args) -> str:
    call_command("seed_demo", *args)
    return capsys.readouterr().out


def test_seed_demo_makes_six_verified_members_and_three_circles(settings, capsys):
    settings.DEBUG = True
    data = json.loads(_seed(capsys, "--json"))
    assert [u["email"] for u in data["users"]] == [f"demo{n}@example.com" for n in range(1, 7)]
    assert EmailAddress.objects.filter(verified=True, primary=True).count() == 6
    demo = Circle.objects.get(name="Demo circle")
    assert demo.pk == data["circles"][0]["id"]
    members = Membership.objects.filter(circle=demo, status=MembershipStatus.ACTIVE)
    assert members.count() == 6
    first = members.get(user__email="demo1@example.com")
    assert (first.role, first.willing_to_facilitate) == (Role.MODERATOR, True)
    assert all(guidelines_accepted(user=m.user) for m in members)
    policies = set(Circle.objects.values_list("join_policy", flat=True))
    assert policies == {JoinPolicy.OPEN, JoinPolicy.REQUEST, JoinPolicy.INVITE}


def test_seed_demo_twice_changes_nothing(settings, capsys):
    settings.DEBUG = True
    first = json.loads(_seed(capsys, "--json"))
    counts = (Circle.objects.count(), Membership.objects.count())
    second = json.loads(_seed(capsys, "--json"))
    assert first == second
    assert (Circle.objects.count(), Membership.objects.count()) == counts


def test_the_demo_password_signs_in(settings, capsys, client):
    settings.DEBUG = True
    data = json.loads(_seed(capsys, "--json"))
    response = client.post(
        "/accounts/login/", {"login": "demo2@example.com", "password": data["password"]}
    )
    assert response.status_code == 302
    assert client.session.get("_auth_user_id") == str(data["users"][1]["id"])


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not Circle.objects.exists()
