"""A newcomer's first visit, in a real browser against a real daphne.

Sign up with a pseudonym (a refused one first), confirm the email from the mail
on disk, meet the guidelines gate on the way into a circle, agree, join, and
find the pseudonym on the circle's member list.
"""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from playwright.sync_api import Page, expect

from circles.models import Membership, MembershipStatus
from circles.selectors import guidelines_accepted
from tests.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PSEUDONYM = "Quiet River"
REFUSED_PSEUDONYM = "me@example.com"
EMAIL = "quiet.river@example.test"
PASSWORD = "Lantern-Orchard-Tide-4817"
CONFIRM_LINK = re.compile(r"https?://[^\s\"'<>]+/accounts/confirm-email/[^\s\"'<>/]+/")


def field(text: str) -> re.Pattern:
    """A field's whole label, with or without Django's label suffix (a colon)."""
    return re.compile(rf"^\s*{re.escape(text)}:?\s*$")


def fill_sign_up(page: Page, *, display_name: str) -> None:
    """Fill every field: the browser's own checks stop a form with a required gap."""
    page.get_by_label(field("Display name")).fill(display_name)
    page.get_by_label(field("Email")).fill(EMAIL)
    page.get_by_label(field("Password")).fill(PASSWORD)
    page.get_by_label(field("Password (again)")).fill(PASSWORD)
    page.get_by_label(field("I am 16 or older")).check()
    page.get_by_role("button", name="Sign Up").click()


def test_newcomer_signs_up_confirms_agrees_joins_and_is_listed(
    page: Page,
    daphne_server: LiveServer,
    mailbox,
    screenshot,
    make_circle,
    django_user_model,
):
    circle = make_circle(name="Evening Calm")
    site = daphne_server.url

    # Sign-up, first with a pseudonym that is an email address: refused, nothing made.
    page.goto(f"{site}/accounts/signup/")
    expect(page.get_by_role("heading", name="Sign Up", exact=True)).to_be_visible()
    screenshot(page, "sign-up")
    fill_sign_up(page, display_name=REFUSED_PSEUDONYM)
    expect(page).to_have_url(f"{site}/accounts/signup/")
    expect(page.get_by_text("That looks like an email address.")).to_be_visible()
    screenshot(page, "sign-up-refused-pseudonym")
    assert not django_user_model.objects.filter(email=EMAIL).exists()
    assert mailbox.messages() == []

    # Then with a pseudonym: the account waits for its email to be confirmed.
    fill_sign_up(page, display_name=PSEUDONYM)
    expect(page).to_have_url(f"{site}/accounts/confirm-email/")
    screenshot(page, "verification-sent")
    user = django_user_model.objects.get(email=EMAIL)
    assert user.display_name == PSEUDONYM
    assert not EmailAddress.objects.get(user=user, email=EMAIL).verified

    # The confirmation mail, read from the folder the server's file backend writes to.
    mail = mailbox.wait_for(to=EMAIL)
    body = mailbox.text_of(mail)
    found = CONFIRM_LINK.search(body)
    assert found, f"No confirmation link in the mail:\n{body}\n\n{daphne_server.log()}"
    link = found.group(0)
    assert link.startswith(f"{site}/"), link

    page.goto(link)
    expect(page.get_by_role("heading", name="Confirm Email Address", exact=True)).to_be_visible()
    screenshot(page, "confirm-email")
    page.get_by_role("button", name="Confirm").click()
    # Confirming in the browser that signed up also signs in.
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("link", name=PSEUDONYM)).to_be_visible()
    screenshot(page, "signed-in")
    assert EmailAddress.objects.get(user=user, email=EMAIL).verified

    # The circle page offers to join; joining needs the guidelines first.
    page.goto(f"{site}{circle.get_absolute_url()}")
    expect(page.get_by_role("heading", name="Evening Calm", exact=True)).to_be_visible()
    screenshot(page, "circle")
    page.get_by_role("button", name="Join this circle").click()
    expect(page).to_have_url(re.compile(re.escape(f"{site}/guidelines/?next=")))
    expect(page.get_by_role("heading", name="Community guidelines", exact=True)).to_be_visible()
    screenshot(page, "guidelines")
    assert not Membership.objects.filter(circle=circle, user=user).exists()
    assert not guidelines_accepted(user=user)

    page.get_by_label(field("I've read the guidelines and will follow them")).check()
    page.get_by_role("button", name="I agree").click()
    expect(page.get_by_text("Thank you. Welcome in.")).to_be_visible()
    screenshot(page, "after-guidelines")
    assert guidelines_accepted(user=user)

    # Back to the circle (the join was a POST, so the gate sends us to the list).
    if not page.url.startswith(f"{site}{circle.get_absolute_url()}"):
        page.get_by_role("link", name="Evening Calm").click()
    expect(page).to_have_url(f"{site}{circle.get_absolute_url()}")
    page.get_by_role("button", name="Join this circle").click()
    expect(page.get_by_text("You're a member of this circle.")).to_be_visible()
    screenshot(page, "joined")
    membership = Membership.objects.get(circle=circle, user=user)
    assert membership.status == MembershipStatus.ACTIVE

    # The member list shows the pseudonym, and nothing of the email address.
    page.get_by_role("link", name="Members", exact=True).click()
    expect(page).to_have_url(f"{site}/circles/{circle.slug}/members/")
    names = page.locator(".member-list .member-name")
    expect(names.filter(has_text=PSEUDONYM)).to_have_count(1)
    expect(names.filter(has_text=PSEUDONYM)).to_be_visible()
    expect(page.locator("main")).not_to_contain_text(EMAIL)
    screenshot(page, "members")
