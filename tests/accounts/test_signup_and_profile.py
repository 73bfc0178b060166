import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db

SIGNUP = {
    "display_name": "Quiet River",
    "email": "river@example.test",
    "password1": "a-long-and-kind-passphrase",
    "password2": "a-long-and-kind-passphrase",
    "age_confirmed": "on",
}


def test_sign_up_stores_the_pseudonym_and_sends_a_confirmation(client):
    """A sign-up asks for a pseudonym and email only, and mails a confirmation link."""
    response = client.post(reverse("account_signup"), SIGNUP)
    assert response.status_code == 302
    user = User.objects.get(email="river@example.test")
    assert user.display_name == "Quiet River"
    assert user.age_confirmed_at is not None
    assert not EmailAddress.objects.get(user=user).verified
    assert len(mail.outbox) == 1
    assert "/accounts/confirm-email/" in mail.outbox[0].body


def test_sign_up_without_confirming_age_is_refused(client):
    response = client.post(reverse("account_signup"), {**SIGNUP, "age_confirmed": ""})
    assert response.status_code == 200
    assert "16 or older" in response.content.decode()
    assert not User.objects.exists()


def test_sign_up_with_an_email_as_display_name_is_refused(client):
    response = client.post(reverse("account_signup"), {**SIGNUP, "display_name": "me@mail.test"})
    assert response.status_code == 200
    assert "looks like an email address" in response.content.decode()
    assert not User.objects.exists()


def test_display_names_are_unique_whatever_their_case(client, make_user):
    make_user(display_name="Quiet River")
    response = client.post(reverse("account_signup"), {**SIGNUP, "display_name": "quiet  RIVER"})
    assert response.status_code == 200
    assert "Someone already uses that display name" in response.content.decode()
    assert User.objects.count() == 1


def test_sign_up_never_asks_for_a_real_name(client):
    page = client.get(reverse("account_signup")).content.decode()
    assert 'name="display_name"' in page
    for field in ("first_name", "last_name", "username", "full_name"):
        assert f'name="{field}"' not in page


def test_an_unconfirmed_email_cannot_sign_in(client):
    client.post(reverse("account_signup"), SIGNUP)
    client.logout()
    response = client.post(
        reverse("account_login"),
        {"login": SIGNUP["email"], "password": SIGNUP["password1"]},
    )
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_email_verification_sent"))
    assert "_auth_user_id" not in client.session


def test_profile_changes_the_display_name(client, make_user):
    user = make_user(display_name="Old Name")
    client.force_login(user)
    response = client.post(reverse("accounts:profile"), {"display_name": "  New   Name "})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.display_name == "New Name"


def test_profile_refuses_a_taken_or_identifying_name_and_keeps_the_old_one(client, make_user):
    make_user(display_name="Taken Name")
    user = make_user(display_name="Mine")
    client.force_login(user)
    for bad in ("taken name", "07700 900123"):
        response = client.post(reverse("accounts:profile"), {"display_name": bad})
        assert response.status_code == 200
        assert 'class="error"' in response.content.decode()
        user.refresh_from_db()
        assert user.display_name == "Mine"
    page = client.get(reverse("accounts:profile")).content.decode()
    assert ">Mine<" in page  # the header still shows the stored name


def test_profile_lists_ones_circles(client, make_user, make_circle):
    user = make_user()
    make_circle(name="Morning Pages", members=(user,))
    make_circle(name="Not Mine")
    client.force_login(user)
    page = client.get(reverse("accounts:profile")).content.decode()
    assert "Morning Pages" in page
    assert "Not Mine" not in page
