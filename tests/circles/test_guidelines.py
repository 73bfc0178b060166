import pytest
from django.urls import reverse

from circles.models import Membership
from circles.selectors import guidelines_accepted
from circles.services.guidelines import guidelines_publish

pytestmark = pytest.mark.django_db


def test_a_member_who_has_not_accepted_is_sent_to_the_guidelines(client, make_user, make_circle):
    user = make_user(accepted=False)
    circle = make_circle()
    client.force_login(user)
    members_url = reverse("circles:members", kwargs={"slug": circle.slug})
    response = client.get(members_url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("guidelines"))
    response = client.post(reverse("circles:join", kwargs={"slug": circle.slug}))
    assert response["Location"].startswith(reverse("guidelines"))
    assert not Membership.objects.filter(user=user).exists()


def test_accepting_lets_the_member_in_and_returns_them_where_they_were(
    client, make_user, make_circle
):
    user = make_user(accepted=False)
    circle = make_circle(members=(user,))
    client.force_login(user)
    members_url = reverse("circles:members", kwargs={"slug": circle.slug})
    page = client.get(reverse("guidelines"), {"next": members_url})
    version = page.context["guidelines"].version
    response = client.post(
        reverse("guidelines"), {"version": version, "agree": "on", "next": members_url}
    )
    assert response.status_code == 302
    assert response["Location"] == members_url
    assert client.get(members_url).status_code == 200


def test_accepting_without_ticking_the_box_is_refused(client, make_user):
    user = make_user(accepted=False)
    client.force_login(user)
    version = client.get(reverse("guidelines")).context["guidelines"].version
    response = client.post(reverse("guidelines"), {"version": version})
    assert response.status_code == 200
    assert "Please tick the box" in response.content.decode()
    assert not guidelines_accepted(user=user)


def test_a_new_version_blocks_everyone_until_they_accept_it(client, make_user, make_circle):
    """Publishing new guidelines asks everyone again before they take part."""
    user = make_user()
    circle = make_circle(members=(user,))
    client.force_login(user)
    members_url = reverse("circles:members", kwargs={"slug": circle.slug})
    assert client.get(members_url).status_code == 200

    new = guidelines_publish(text="## Be kind\n\nAlways.", summary_of_changes="Shorter.")
    response = client.get(members_url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("guidelines"))

    client.post(reverse("guidelines"), {"version": new.version, "agree": "on"})
    assert client.get(members_url).status_code == 200


def test_accepting_an_old_version_after_a_new_one_was_published_is_refused(client, make_user):
    user = make_user(accepted=False)
    client.force_login(user)
    old = client.get(reverse("guidelines")).context["guidelines"].version
    guidelines_publish(text="Version two.")
    response = client.post(reverse("guidelines"), {"version": old, "agree": "on"})
    assert response.status_code == 302
    assert not guidelines_accepted(user=user)


def test_guidelines_markdown_cannot_carry_scripts(client, make_user):
    guidelines_publish(text="Hello <script>alert(1)</script> [x](javascript:alert(1)) **bold**")
    client.force_login(make_user(accepted=False))
    page = client.get(reverse("guidelines")).content.decode()
    assert "<strong>bold</strong>" in page
    assert "<script>alert" not in page
    assert "javascript:" not in page


def test_next_cannot_send_people_to_another_site(client, make_user):
    user = make_user(accepted=False)
    client.force_login(user)
    version = client.get(reverse("guidelines")).context["guidelines"].version
    response = client.post(
        reverse("guidelines"),
        {"version": version, "agree": "on", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("circles:list")
