import pytest
from django.urls import reverse

from circles.models import Circle, JoinPolicy, Membership, MembershipStatus, Topic

pytestmark = pytest.mark.django_db


def _circles(count: int, make_user) -> list[Circle]:
    owner = make_user()
    circles = []
    for number in range(count):
        circle = Circle.objects.create(
            name=f"Circle {number:03}",
            description="About us",
            topic=Topic.GRIEF if number % 2 else Topic.ANXIETY,
            join_policy=JoinPolicy.OPEN,
            created_by=owner,
        )
        Membership.objects.create(
            circle=circle, user=owner, status=MembershipStatus.ACTIVE, joined_at=circle.created_at
        )
        circles.append(circle)
    return circles


@pytest.mark.parametrize("signed_in", [False, True])
def test_circle_list_runs_the_same_queries_for_3_and_60_circles(
    client, make_user, django_assert_num_queries, signed_in
):
    """The list's query count doesn't grow with the number of circles."""
    viewer = make_user()
    if signed_in:
        client.force_login(viewer)
    _circles(3, make_user)
    # Sign-in adds its session and user reads; the list itself is count + one page.
    expected = 4 if signed_in else 2
    with django_assert_num_queries(expected):
        small = client.get(reverse("circles:list"))
    _circles(57, make_user)
    with django_assert_num_queries(expected):
        large = client.get(reverse("circles:list"))
    assert small.status_code == large.status_code == 200
    assert len(large.context["page"].object_list) == 24


@pytest.mark.parametrize("signed_in", [False, True])
def test_circle_detail_runs_the_same_queries_for_3_and_60_members(
    client, make_user, make_circle, django_assert_num_queries, signed_in
):
    viewer = make_user()
    if signed_in:
        client.force_login(viewer)
    circle = make_circle(capacity=20, members=tuple(make_user() for _ in range(2)))
    expected = 4 if signed_in else 1
    with django_assert_num_queries(expected):
        client.get(circle.get_absolute_url())
    for _ in range(57):
        Membership.objects.create(circle=circle, user=make_user(), status=MembershipStatus.PENDING)
    with django_assert_num_queries(expected):
        response = client.get(circle.get_absolute_url())
    assert response.context["circle"].pending_count == 57


def test_circle_list_filters_by_topic_and_search(client, make_user):
    _circles(4, make_user)
    Circle.objects.filter(name="Circle 002").update(description="Walking by the sea")
    grief = client.get(reverse("circles:list"), {"topic": Topic.GRIEF}).context["page"]
    assert [c.name for c in grief] == ["Circle 001", "Circle 003"]
    found = client.get(reverse("circles:list"), {"q": "sea"}).context["page"]
    assert [c.name for c in found] == ["Circle 002"]
    nothing = client.get(reverse("circles:list"), {"q": "zzz"})
    assert "No circles match" in nothing.content.decode()


def test_an_unknown_topic_shows_all_circles_rather_than_an_error(client, make_user):
    _circles(2, make_user)
    response = client.get(reverse("circles:list"), {"topic": "<nope>", "page": "x"})
    assert response.status_code == 200
    assert len(response.context["page"].object_list) == 2


@pytest.mark.parametrize("path", ["/", "/circles/", "/accounts/signup/", "/crisis/"])
def test_public_pages_answer(client, path):
    response = client.get(path)
    assert response.status_code == 200


def test_home_says_it_is_not_a_crisis_service_and_links_to_help(client):
    page = client.get("/").content.decode()
    assert "not a crisis service" in page
    assert reverse("crisis") in page


def test_an_unknown_circle_is_a_friendly_404(client):
    response = client.get("/circles/no-such-circle/")
    assert response.status_code == 404


def test_circle_detail_offers_what_fits_each_policy(client, make_user, make_circle):
    client.force_login(make_user())
    for policy, words in [
        (JoinPolicy.OPEN, "Join this circle"),
        (JoinPolicy.REQUEST, "Ask to join"),
        (JoinPolicy.INVITE, "by invitation"),
    ]:
        page = client.get(make_circle(join_policy=policy).get_absolute_url()).content.decode()
        assert words in page


def test_admin_lists_every_model(admin_client, make_circle, make_user):
    make_circle(members=(make_user(),))
    for model in [
        "accounts/user",
        "circles/circle",
        "circles/membership",
        "circles/communityguidelines",
        "circles/guidelinesacceptance",
        "circles/crisisresource",
        "circles/auditentry",
        "circles/session",
        "circles/message",
        "circles/circlefloorsettings",
        "circles/floorstate",
        "circles/floorlogentry",
        "circles/sessionvoice",
        "circles/roomconnection",
    ]:
        response = admin_client.get(f"/admin/{model}/", {"q": "a"})
        assert response.status_code == 200, model


def test_admins_publish_a_guidelines_version_in_the_admin(admin_client):
    from circles.selectors import guidelines_current

    before = guidelines_current().version
    response = admin_client.post(
        "/admin/circles/communityguidelines/add/",
        {
            "text": "Be gentle.",
            "summary_of_changes": "Simpler",
            "published_at_0": "2026-11-24",
            "published_at_1": "10:00:00",
        },
    )
    assert response.status_code == 302
    assert guidelines_current().version == before + 1
