"""The live room in real browsers: two members chat, one drops off the network and
catches up, stored markup stays text, and the page fits a 360 px phone.

Each member is a Chromium context of its own, signed in by a session cookie made
through Django's session engine (no sign-in form), against a real daphne.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import Browser, BrowserContext, Page, expect

from circles.models import CircleFloorSettings
from circles.services.sessions import session_open
from tests.browser.conftest import ROOM_CONNECTED, _call_failed, open_room_page
from tests.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OFFLINE = "You're offline. We'll reconnect when you're back."
XSS_PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '"><svg onload=alert(1)>',
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


@dataclass
class Room:
    """One circle with an open session, and a way to put its members in browsers."""

    site: str
    circle: object
    moderator: object
    members: list
    browser: Browser
    contexts: list[tuple[str, BrowserContext]] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.site}/circles/{self.circle.slug}/room/"

    def page_for(self, user, *, viewport: dict | None = None) -> Page:
        """A fresh context signed in as this user, on the room page, connected."""
        context, page = open_room_page(
            self.browser,
            site=self.site,
            user=user,
            url=self.url,
            viewport=viewport or DESKTOP,
            dialogs=self.dialogs,
        )
        self.contexts.append((user.display_name, context))
        return page


def open_session(circle, moderator) -> None:
    """session_open, in a thread of its own: this thread has Playwright's event loop,
    where the service's after-commit broadcast (async_to_sync) cannot run."""

    def run() -> None:
        try:
            session_open(circle_id=circle.pk, user=moderator)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(run).result()


@pytest.fixture
def room(
    request, daphne_server: LiveServer, browser: Browser, make_user, make_circle, artifacts_dir
) -> Iterator[Room]:
    moderator = make_user(display_name="Mara Moderator")
    ash = make_user(display_name="Ash")
    birch = make_user(display_name="Birch")
    circle = make_circle(moderator=moderator, name="Tuesday Evening", members=(ash, birch))
    # Most of these tests are about delivery, not the open floor's limits: let anyone
    # share many in a row without a cooldown (a test that wants the limits asks for
    # the default floor with `indirect` parametrisation: room=False).
    if getattr(request, "param", True):
        CircleFloorSettings.objects.create(circle=circle, consecutive_cap=20, share_minimum=50)
    open_session(circle, moderator)
    room = Room(
        site=daphne_server.url,
        circle=circle,
        moderator=moderator,
        members=[ash, birch],
        browser=browser,
    )
    yield room
    failed = request.node.stash.get(_call_failed, False)
    for name, context in room.contexts:
        if failed:
            for number, page in enumerate(context.pages):
                try:
                    path = artifacts_dir / f"failure-{name}-{number}.png"
                    page.screenshot(path=str(path), full_page=True)
                except Exception as error:  # the browser may be what failed
                    (artifacts_dir / f"failure-{name}.txt").write_text(f"{error}\n")
        context.close()


def share(page: Page, text: str) -> None:
    """Type into the box and press Enter, as a person would; wait until it is stored."""
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")  # the box empties only when the server stored it
    expect(log(page).get_by_text(text, exact=True)).to_have_count(1)


def log(page: Page):
    return page.get_by_role("log")


def message_texts(page: Page) -> list[str]:
    return page.locator("#message-list .message-text").all_text_contents()


def seqs(page: Page) -> list[int]:
    return [
        int(seq)
        for seq in page.locator("#message-list .message").evaluate_all(
            "items => items.map(item => item.dataset.seq)"
        )
    ]


def test_two_members_chat_both_ways(room: Room):
    ash, birch = room.members
    ash_page = room.page_for(ash)
    birch_page = room.page_for(birch)
    for page in (ash_page, birch_page):
        expect(page.locator("#session-banner")).to_have_text(
            "The session is open. Facilitated by Mara Moderator."
        )
        expect(page.locator("#floor-mode")).to_have_text("How the floor works: Open floor")

    share(ash_page, "Hello Birch, how was your week?")
    expect(log(birch_page).get_by_text("Hello Birch, how was your week?")).to_be_visible()
    share(birch_page, "Hi Ash. Slow, but kinder than last week.")
    expect(log(ash_page).get_by_text("Hi Ash. Slow, but kinder than last week.")).to_be_visible()
    # Shift+Enter starts a new line; Enter alone sends.
    box = ash_page.get_by_label("Your message")
    box.press_sequentially("Glad to hear it.")
    box.press("Shift+Enter")
    box.press_sequentially("Take your time.")
    expect(box).to_have_value("Glad to hear it.\nTake your time.")
    box.press("Enter")
    expect(box).to_have_value("")

    # The same conversation, in the same order, on both pages; each message once.
    expected = [
        "Hello Birch, how was your week?",
        "Hi Ash. Slow, but kinder than last week.",
        "Glad to hear it.\nTake your time.",
    ]
    expect(log(birch_page).get_by_text("Take your time.")).to_be_visible()
    for page in (ash_page, birch_page):
        texts = message_texts(page)
        assert [text for text in texts if text in expected] == expected
        order = seqs(page)
        assert order == sorted(set(order))
    # Authors are named, the viewer's own messages marked as theirs.
    expect(ash_page.locator(".message-author", has_text="Ash (you)")).to_have_count(2)
    expect(birch_page.locator(".message-author", has_text="Birch (you)")).to_have_count(1)


def test_member_offline_catches_up_exactly_once_in_order(room: Room):
    ash, birch = room.members
    ash_page = room.page_for(ash)
    birch_page = room.page_for(birch)
    share(ash_page, "Before the tunnel.")
    expect(log(birch_page).get_by_text("Before the tunnel.")).to_be_visible()

    birch_page.context.set_offline(True)
    expect(birch_page.locator("#room-status")).to_have_text(OFFLINE)
    missed = ["Missed one: the rain stopped.", "Missed two: I went for a walk.", "Missed three."]
    for text in missed:
        share(ash_page, text)
    # Birch's socket is down: none of it has arrived.
    birch_page.wait_for_timeout(300)
    for text in missed:
        expect(log(birch_page).get_by_text(text)).to_have_count(0)

    birch_page.context.set_offline(False)
    expect(birch_page.locator("#room-status")).to_have_text(ROOM_CONNECTED)
    expect(log(birch_page).get_by_text(missed[-1], exact=True)).to_have_count(1)
    # And a little later still exactly once (a resume and a hello must not double up).
    birch_page.wait_for_timeout(1500)
    texts = message_texts(birch_page)
    for text in [*missed, "Before the tunnel."]:
        assert texts.count(text) == 1, texts
    assert [text for text in texts if text in missed] == missed
    order = seqs(birch_page)
    assert order == sorted(set(order)), order
    assert len(birch_page.locator("#message-list .message").all()) == len(order)

    # Birch can answer straight away, and Ash hears it.
    share(birch_page, "Back now. I read everything.")
    expect(log(ash_page).get_by_text("Back now. I read everything.")).to_be_visible()


@pytest.mark.parametrize("room", [False], indirect=True, ids=["default-floor"])
def test_refused_share_keeps_the_draft_and_counts_down(room: Room):
    """The open floor's limit (4 in a row while someone else is here): the fifth is
    refused, the words stay in the box, the wait counts down, a private nudge explains."""
    ash, birch = room.members
    ash_page = room.page_for(ash)
    birch_page = room.page_for(birch)
    facilitator_page = room.page_for(room.moderator)
    for number in range(1, 5):
        share(ash_page, f"Thought number {number}.")
    # All four of four shares, with three here: past twice a fair share. The
    # facilitator is told, privately and in words; the members see no flag.
    expect(facilitator_page.locator("#balance-rows tr", has_text="Ash")).to_contain_text(
        "more than twice a fair share"
    )
    expect(facilitator_page.locator("#nudge-text")).to_contain_text(
        "Ash has shared much more than others this session."
    )
    for page in (ash_page, birch_page):
        expect(page.locator("#balance-panel")).to_be_hidden()
        expect(page.get_by_text("more than twice a fair share")).to_have_count(0)
    box = ash_page.get_by_label("Your message")
    box.fill("Thought number 5, which can wait.")
    box.press("Enter")
    expect(ash_page.locator("#composer-note")).to_contain_text(
        "You've shared a few in a row. Let's leave a little room for others first."
    )
    expect(box).to_have_value("Thought number 5, which can wait.")
    wait = ash_page.locator("#composer-wait")
    expect(wait).to_have_text(re.compile(r"^You can try again in about (29|30) seconds\.$"))
    expect(wait).to_have_text(re.compile(r"^You can try again in about 2[0-8] seconds\.$"))
    expect(ash_page.locator("#nudge-text")).to_contain_text("A private note for you:")
    # Nothing of it reached the room.
    expect(log(birch_page).get_by_text("Thought number 4.")).to_be_visible()
    expect(log(birch_page).get_by_text("Thought number 5", exact=False)).to_have_count(0)
    # Others sharing end the run (and bring Ash's part of the recent shares down to
    # 4 of 7, under twice a fair share): the kept draft goes with one more Enter.
    share(birch_page, "I'm here, go on.")
    share(facilitator_page, "Thank you, Ash. Birch, anything to add?")
    share(birch_page, "Only that I'm listening.")
    box.press("Enter")
    expect(box).to_have_value("")
    expect(log(birch_page).get_by_text("Thought number 5, which can wait.")).to_be_visible()
    expect(wait).to_be_hidden()


def assert_markup_is_text(page: Page, room: Room) -> None:
    for payload in XSS_PAYLOADS:
        expect(log(page).get_by_text(payload, exact=True)).to_have_count(1)
    assert page.locator("#message-list img, #message-list script, #message-list svg").count() == 0
    assert page.evaluate("() => document.querySelectorAll('svg[onload], img[onerror]').length") == 0
    assert room.dialogs == []


def test_stored_markup_shows_as_text_live_and_in_history(room: Room):
    ash, birch = room.members
    ash_page = room.page_for(ash)
    birch_page = room.page_for(birch)
    for number, payload in enumerate(XSS_PAYLOADS):
        share(ash_page if number % 2 == 0 else birch_page, payload)

    # Live: the other page got each one as a message frame.
    for page in (ash_page, birch_page):
        assert_markup_is_text(page, room)
    # An <img src=x> would fail to load (and fire onerror) well within this.
    ash_page.wait_for_timeout(500)
    assert room.dialogs == []

    # From history: a reload builds the list from hello's history.
    for page in (ash_page, birch_page):
        page.reload()
        expect(page.locator("#room-status")).to_have_text(ROOM_CONNECTED)
        assert_markup_is_text(page, room)
    # A newcomer's page, too.
    third = room.page_for(room.moderator)
    assert_markup_is_text(third, room)
    third.wait_for_timeout(500)
    assert room.dialogs == []


def unlabelled_controls(page: Page) -> list[str]:
    """Visible controls in the room without an accessible name (a label or words)."""
    return page.evaluate(
        """() => [...document.querySelectorAll(
                "#room button, #room select, #room input, #room textarea, #room a")]
            .filter((el) => el.offsetParent !== null)
            .filter((el) => {
                if (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) {
                    return false;
                }
                if (el.matches("button, a")) return el.textContent.trim() === "";
                return !(el.labels && el.labels.length);
            })
            .map((el) => el.outerHTML.slice(0, 80))"""
    )


def scrolls_sideways(page: Page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )


def test_room_fits_a_phone_and_a_desktop(room: Room, artifacts_dir: Path):
    taken = []

    def shoot(page: Page, label: str, *, full_page: bool) -> None:
        """The page as the person sees it (the viewport) or all of it (full page)."""
        path = artifacts_dir / f"{len(taken) + 1:02d}-{label}.png"
        if not full_page:
            page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=full_page)
        taken.append(path)

    ash, birch = room.members
    ash_page = room.page_for(ash, viewport=PHONE)
    birch_page = room.page_for(birch, viewport=DESKTOP)
    facilitator_page = room.page_for(room.moderator, viewport=PHONE)
    share(ash_page, "Evening, everyone.")
    share(birch_page, "Evening, Ash. Long day, glad to be here.")
    # A long word with no spaces must wrap, not push the page sideways.
    share(ash_page, "Soooo" + "o" * 120 + " tired, but OK.")
    share(facilitator_page, "Welcome both. Let's begin when you're ready.")
    expect(log(ash_page).get_by_text("Welcome both.", exact=False)).to_be_visible()

    # The facilitator's phone shows the controls and the live balance; a member's doesn't.
    expect(facilitator_page.get_by_role("heading", name="Facilitating")).to_be_visible()
    expect(facilitator_page.get_by_label("How the floor works")).to_be_visible()
    expect(facilitator_page.locator("#balance-rows")).to_contain_text("Ash")
    expect(ash_page.get_by_role("heading", name="Facilitating")).to_be_hidden()
    expect(ash_page.get_by_role("button", name="Open a session")).to_be_hidden()

    for page in (ash_page, facilitator_page):
        assert not scrolls_sideways(page), "the room scrolls sideways at 360 px"
        assert unlabelled_controls(page) == []
    shoot(ash_page, "room-member-360x740", full_page=False)
    shoot(ash_page, "room-member-360-full", full_page=True)
    shoot(facilitator_page, "room-facilitator-360x740", full_page=False)
    shoot(facilitator_page, "room-facilitator-360-full", full_page=True)
    shoot(birch_page, "room-member-1280x800", full_page=False)
    facilitator_page.set_viewport_size(DESKTOP)
    shoot(facilitator_page, "room-facilitator-1280x800", full_page=False)
    birch_page.set_viewport_size(PHONE)
    assert not scrolls_sideways(birch_page), "the room scrolls sideways at 360 px"
    assert room.dialogs == []
