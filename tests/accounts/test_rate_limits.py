import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_repeated_failed_sign_ins_are_slowed_down_by_allauths_limits(client, make_user, settings):
    """allauth's limits are on in production; the test settings relax them, this restores them."""
    settings.ACCOUNT_RATE_LIMITS = {}  # allauth's defaults
    user = make_user()
    pages = [
        client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})
        for _ in range(6)
    ]
    too_many = "Too many failed login attempts"
    assert [too_many in page.content.decode() for page in pages] == [False] * 5 + [True]


def test_the_test_settings_relax_the_limits_so_tests_do_not_trip_over_them(client, make_user):
    user = make_user()
    for _ in range(6):
        page = client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})
    assert "Too many failed login attempts" not in page.content.decode()
