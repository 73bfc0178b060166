"""Turn-taking in real browsers: a facilitator and three members, four Chromium
contexts in one browser, against a real daphne.

The facilitator opens the session and starts a round with the talking piece: it
goes around, one member passes and is offered the piece again at the end. Then
raised hands: the member heard least gets the floor first, even with the last
hand up. A private note, a pause, and the close, after which the whole circle is
shown how the voices were shared. Driven by keyboard where a person would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from circles.models import CircleFloorSettings, Session, SessionStatus
from circles.services.sessions import session_open
from tests.browser.conftest import _call_failed, open_room_page
from tests.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROUND = "How the floor works: Round with a talking piece"
QUEUE = "How the floor works: Raised hands"
OPEN = "How the floor works: Open floor"
PIECE_WITH_YOU = "You hold the talking piece. The piece is with you."
YOUR_TURN = "You have the floor. It's your turn."


class Circle:
    """Everyone's page, by name; failure screenshots of them all."""

    def __init__(self, browser: Browser, site: str, artifacts: Path):
        self.browser = browser
        self.site = site
        self.artifacts = artifacts
        self.contexts: list[tuple[str, BrowserContext]] = []
        self.pages: dict[str, Page] = {}
        self.dialogs: list[str] = []
        self.shots = 0

    def join(self, user, url: str) -> Page:
        context, page = open_room_page(
            self.browser,
            site=self.site,
            user=user,
            url=url,
            viewport={"width": 1280, "height": 800},
            dialogs=self.dialogs,
        )
        self.contexts.append((user.display_name, context))
        self.pages[user.display_name] = page
        return page

    def shoot_floor(self, name: str, label: str) -> None:
        """The floor panel as this person sees it."""
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-floor-{label}-{name.lower()}.png"
        self.pages[name].locator("#floor-panel").screenshot(path=str(path))

    def shoot_page(self, name: str, label: str, *, part: str | None = None) -> None:
        """The room as this person sees it (the viewport, from the top), or one part of it.
        Not full-page: the message box sticks to the bottom of the viewport on wide
        screens, and a full-page capture would paint it over the messages."""
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-room-{label}-{name.lower()}.png"
        page = self.pages[name]
        if part:
            page.locator(part).screenshot(path=str(path))
        else:
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(path))

    def close(self, failed: bool) -> None:
        for name, context in self.contexts:
            if failed:
                for page in context.pages:
                    try:
                        page.screenshot(
                            path=str(self.artifacts / f"failure-{name}.png"), full_page=True
                        )
                    except Exception as error:  # the browser may be what failed
                        (self.artifacts / f"failure-{name}.txt").write_text(f"{error}\n")
            context.close()


@pytest.fixture
def circle_pages(
    request, daphne_server: LiveServer, browser: Browser, artifacts_dir: Path
) -> Iterator[Circle]:
    circle = Circle(browser, daphne_server.url, artifacts_dir)
    yield circle
    circle.close(request.node.stash.get(_call_failed, False))


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


def floor(page: Page) -> dict[str, Locator]:
    return {
        "mode": page.locator("#floor-mode"),
        "speaker": page.locator("#floor-speaker"),
        "place": page.locator("#floor-place"),
        "queue": page.locator("#floor-queue li"),
        "order": page.locator("#round-order li"),
        "passed": page.locator("#round-passed"),
        "phase": page.locator("#round-phase"),
        "time": page.locator("#floor-time"),
        "left": page.locator("#floor-left"),
        "paused": page.locator("#floor-paused"),
        "announce": page.locator("#floor-announce"),
    }


def share(page: Page, text: str) -> None:
    """Type and press Enter; the box empties once the server has stored it."""
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")
    expect(page.get_by_role("log").get_by_text(text, exact=True)).to_have_count(1)


def tab_to(page: Page, element_id: str, *, start: Locator, most: int = 8) -> None:
    """Focus `start`, then press Tab until `element_id` has the focus."""
    start.focus()
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == (
            element_id
        ):
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def pass_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Pass", exact=True)


def hand_button(page: Page) -> Locator:
    return page.locator("#hand-button")


def press_pass(page: Page) -> None:
    """The holder passes with the keyboard (Space on the focused Pass button)."""
    button = pass_button(page)
    expect(button).to_have_attribute("aria-disabled", "false")
    button.focus()
    page.keyboard.press("Space")


def expect_holder(pages: dict[str, Page], holder: str) -> None:
    for name, page in pages.items():
        if name == holder:
            expect(floor(page)["speaker"]).to_have_text(PIECE_WITH_YOU)
            expect(pass_button(page)).to_have_attribute("aria-disabled", "false")
        else:
            expect(floor(page)["speaker"]).to_have_text(f"{holder} holds the talking piece.")
            expect(pass_button(page)).to_have_attribute("aria-disabled", "true")


def test_round_then_raised_hands_then_close(
    circle_pages: Circle, make_user, make_circle, django_user_model
):
    # Made in this order, so the ids (and the first round's order) are Fern, Ash, Birch, Cedar.
    fern = make_user(display_name="Fern")
    ash = make_user(display_name="Ash")
    birch = make_user(display_name="Birch")
    cedar = make_user(display_name="Cedar")
    circle = make_circle(moderator=fern, name="Thursday Circle", members=(ash, birch, cedar))
    url = f"{circle_pages.site}/circles/{circle.slug}/room/"
    for user in (fern, ash, birch, cedar):
        circle_pages.join(user, url)
    pages = circle_pages.pages
    f_page, a_page, b_page, c_page = (pages[name] for name in ("Fern", "Ash", "Birch", "Cedar"))
    expect(f_page.locator("#presence-list li")).to_have_count(4)

    # The moderator opens the session (keyboard: Enter on the button) and facilitates.
    f_page.get_by_role("button", name="Open a session").press("Enter")
    for page in pages.values():
        expect(page.locator("#session-banner")).to_have_text(
            "The session is open. Facilitated by Fern."
        )
        expect(floor(page)["mode"]).to_have_text(OPEN)
    expect(f_page.get_by_role("heading", name="Facilitating")).to_be_visible()
    for page in (a_page, b_page, c_page):
        expect(page.get_by_role("heading", name="Facilitating")).to_be_hidden()

    # Round: the facilitator chooses it in the select and applies it.
    f_page.get_by_label("How the floor works").select_option("round")
    f_page.get_by_role("button", name="Apply").press("Enter")
    for page in pages.values():
        expect(floor(page)["mode"]).to_have_text(ROUND)
        expect(floor(page)["order"]).to_have_count(4)
    expect(floor(a_page)["order"]).to_have_text(
        [
            "Fern: has the piece",
            "Ash (you): still to come",
            "Birch: still to come",
            "Cedar: still to come",
        ]
    )
    expect_holder(pages, "Fern")
    expect(floor(f_page)["announce"]).to_have_text("The piece is with you.")
    circle_pages.shoot_floor("Ash", "round-start")

    share(f_page, "Welcome, everyone. Let's go around once; pass if you'd rather listen.")
    press_pass(f_page)

    expect_holder(pages, "Ash")
    expect(floor(a_page)["announce"]).to_have_text("The piece is with you.")
    expect(floor(a_page)["left"]).to_have_text("Messages left in this turn: 6")
    share(a_page, "A calmer week than the last. Thank you for asking.")
    expect(floor(a_page)["left"]).to_have_text("Messages left in this turn: 5")
    press_pass(a_page)

    # Birch passes without sharing.
    expect_holder(pages, "Birch")
    press_pass(b_page)

    expect_holder(pages, "Cedar")
    for page in pages.values():
        expect(floor(page)["order"].nth(2)).to_contain_text("Birch")
        expect(floor(page)["order"].nth(2)).to_contain_text("passed")
        expect(floor(page)["passed"]).to_contain_text("Passed: Birch")
    # Birch cannot share out of turn: refused, and the words stay in the box.
    b_box = b_page.get_by_label("Your message")
    b_box.fill("Can I say something?")
    b_box.press("Enter")
    expect(b_page.locator("#composer-note")).to_have_text(
        "We're going around the circle. The piece will come to you."
    )
    expect(b_box).to_have_value("Can I say something?")
    b_box.fill("")
    share(c_page, "I'm glad to be here. I'll keep it short tonight.")
    press_pass(c_page)

    # Everyone has held it once: the piece is offered again to Birch, who passed.
    expect_holder(pages, "Birch")
    for page in pages.values():
        expect(floor(page)["phase"]).to_be_visible()
        expect(floor(page)["phase"]).to_have_text(
            "Everyone has held the piece once. It is offered once more to those who passed."
        )
        expect(floor(page)["passed"]).to_contain_text("Passed: Birch")
    expect(floor(f_page)["order"].nth(1)).to_have_text("Ash: has had the piece")
    expect(floor(b_page)["announce"]).to_have_text("The piece is with you.")
    circle_pages.shoot_floor("Birch", "round-offered-again")
    circle_pages.shoot_floor("Fern", "round-offered-again")
    share(b_page, "Thank you for waiting. I'm ready now.")
    press_pass(b_page)

    # The round is over: back to the open floor it started from.
    for page in pages.values():
        expect(floor(page)["mode"]).to_have_text(OPEN)
        expect(page.locator("#floor-round-box")).to_be_hidden()

    # Giving the floor out of turn is for raised hands only: the refusal shows by the controls.
    f_page.get_by_label("Give the floor to").select_option(label="Birch")
    f_page.get_by_role("button", name="Give the floor").press("Enter")
    expect(f_page.locator("#facilitator-note")).to_have_text(
        "The floor can be given out of turn only when hands are up."
    )

    # Raised hands.
    f_page.get_by_label("How the floor works").select_option("queue")
    f_page.get_by_role("button", name="Apply").press("Enter")
    for page in pages.values():
        expect(floor(page)["mode"]).to_have_text(QUEUE)
        expect(floor(page)["speaker"]).to_have_text("No one has the floor.")
        expect(page.get_by_text("No hands are up.")).to_be_visible()

    # Ash shares first (a second turn): Tab to the hand button, Enter.
    tab_to(a_page, "hand-button", start=a_page.get_by_label("Your message"))
    expect(hand_button(a_page)).to_have_text("Raise my hand")
    a_page.keyboard.press("Enter")
    expect(floor(a_page)["speaker"]).to_have_text(YOUR_TURN)
    expect(floor(a_page)["announce"]).to_have_text("It's your turn.")
    expect(floor(c_page)["speaker"]).to_have_text("Ash has the floor.")
    expect(floor(a_page)["time"]).to_have_text(re.compile(r"^Time left in this turn: [12]:\d\d$"))
    share(a_page, "One more thing I didn't say in the round.")
    press_pass(a_page)
    expect(floor(a_page)["speaker"]).to_have_text("No one has the floor.")

    # The facilitator takes a turn, so hands wait while they speak.
    hand_button(f_page).press("Enter")
    expect(floor(f_page)["speaker"]).to_have_text(YOUR_TURN)
    for page in (a_page, b_page, c_page):
        expect(floor(page)["speaker"]).to_have_text("Fern has the floor.")

    # Ash's hand goes up first (keyboard again), Cedar's, heard least, last.
    tab_to(a_page, "hand-button", start=a_page.get_by_label("Your message"))
    a_page.keyboard.press("Space")
    expect(floor(a_page)["place"]).to_have_text("Your hand is up. You're next in line.")
    expect(hand_button(a_page)).to_have_text("Lower my hand")
    hand_button(c_page).press("Enter")
    for page in pages.values():
        expect(floor(page)["queue"]).to_have_count(2)
    expect(floor(f_page)["queue"]).to_have_text(["Cedar: one turn so far", "Ash: 2 turns so far"])
    expect(floor(c_page)["place"]).to_have_text("Your hand is up. You're next in line.")
    expect(floor(a_page)["place"]).to_have_text("Your hand is up. You're number 2 in line.")
    expect(f_page.locator("#presence-list")).to_contain_text("Cedar · hand raised")
    circle_pages.shoot_floor("Ash", "raised-hands-waiting")
    circle_pages.shoot_floor("Fern", "raised-hands-waiting")

    # The facilitator yields: the floor goes to Cedar, not to the first hand up.
    press_pass(f_page)
    expect(floor(c_page)["speaker"]).to_have_text(YOUR_TURN)
    expect(floor(c_page)["announce"]).to_have_text("It's your turn.")
    for page in (f_page, a_page, b_page):
        expect(floor(page)["speaker"]).to_have_text("Cedar has the floor.")
    expect(floor(f_page)["queue"]).to_have_text(["Ash: 2 turns so far"])
    expect(floor(a_page)["place"]).to_have_text("Your hand is up. You're next in line.")
    expect(hand_button(c_page)).to_have_text("Raise my hand")
    share(c_page, "Thank you all. I feel heard tonight.")
    expect(floor(c_page)["left"]).to_have_text("Messages left in this turn: 5")
    circle_pages.shoot_floor("Cedar", "raised-hands-least-heard-speaks")

    # A private note from the facilitator reaches Ash only.
    f_page.get_by_label("Send a private note to").select_option(label="Ash")
    f_page.get_by_label("Note (optional").fill("Thank you for making room for Cedar.")
    f_page.get_by_label("Note (optional").press("Enter")
    expect(f_page.locator("#facilitator-note")).to_have_text("Your note is on its way, privately.")
    expect(a_page.locator("#nudge-text")).to_have_text(
        "A private note for you: Thank you for making room for Cedar."
    )
    expect(b_page.locator("#nudge-text")).to_have_text("")
    expect(c_page.locator("#nudge-text")).to_have_text("")

    # A pause stops sharing and the turn's clock, for everyone; resuming lifts it.
    f_page.get_by_role("button", name="Pause sharing").press("Enter")
    for page in pages.values():
        expect(floor(page)["paused"]).to_have_text("Sharing is paused.")
    expect(floor(c_page)["time"]).to_have_text(
        "The turn's clock is stopped while sharing is paused."
    )
    f_page.get_by_role("button", name="Resume sharing").press("Enter")
    for page in pages.values():
        expect(floor(page)["paused"]).to_be_hidden()
    expect(floor(c_page)["time"]).to_have_text(re.compile(r"^Time left in this turn: [12]:\d\d$"))

    # The facilitator's live balance: everyone who took part, and no one flagged.
    balance = f_page.locator("#balance-rows tr")
    expect(balance).to_have_count(4)
    expect(f_page.locator("#balance-panel")).to_contain_text("Ash")
    expect(f_page.locator("#balance-panel")).not_to_contain_text("more than twice a fair share")
    for page in (a_page, b_page, c_page):
        expect(page.locator("#balance-panel")).to_be_hidden()
    circle_pages.shoot_page("Fern", "facilitator-controls-and-balance", part="#facilitator-panel")

    # Close: the whole circle gets the balance, and a link to the session's page.
    f_page.get_by_role("button", name="Close the session").press("Enter")
    session = Session.objects.get(circle=circle)
    expected_link = f"/circles/{circle.slug}/sessions/{session.pk}/"
    for page in pages.values():
        expect(page.locator("#session-banner")).to_have_text(
            "The session isn't open right now. You can read, and share once it opens."
        )
        link = page.get_by_role("link", name="See how the voices were shared")
        expect(link).to_be_visible()
        expect(link).to_have_attribute("href", expected_link)
        expect(page.locator("#closing-rows tr")).to_have_count(4)
        expect(floor(page)["mode"]).to_have_text("The floor opens with the session.")
    expect(f_page.get_by_role("heading", name="Facilitating")).to_be_hidden()
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    circle_pages.shoot_page("Fern", "closed")
    circle_pages.shoot_page("Birch", "closed")

    # The session's page: the closing balance as a chart (bars with names and
    # percents in words) and the same figures in a table.
    b_page.get_by_role("link", name="See how the voices were shared").press("Enter")
    expect(b_page.get_by_role("heading", name="How the voices were shared")).to_be_visible()
    expect(b_page.locator("figure.balance-chart svg rect")).to_have_count(4)
    expect(b_page.locator("table.balance-table tbody tr")).to_have_count(4)
    expect(b_page.locator("figure.balance-chart svg")).to_contain_text("Birch")
    circle_pages.shots += 1
    chart = circle_pages.artifacts / f"{circle_pages.shots:02d}-session-balance-chart-birch.png"
    b_page.locator("figure.balance-chart").screenshot(path=str(chart))
    assert circle_pages.dialogs == []


RECORD_ANNOUNCEMENTS = """() => {
    window.announced = [];
    const region = document.getElementById("floor-announce");
    new MutationObserver(() => {
        if (region.textContent) window.announced.push(region.textContent);
    }).observe(region, { childList: true, characterData: true, subtree: true });
}"""


def test_countdown_is_announced_once_at_thirty_seconds(
    circle_pages: Circle, make_user, make_circle
):
    """A 34-second turn: the countdown shows every second, but the polite status region
    speaks only twice: "It's your turn." when the floor comes, and once at 30 s left."""
    fern = make_user(display_name="Fern")
    ash = make_user(display_name="Ash")
    birch = make_user(display_name="Birch")
    circle = make_circle(moderator=fern, name="Short Turns", members=(ash, birch))
    CircleFloorSettings.objects.create(circle=circle, default_mode="queue", turn_seconds=34)
    open_session(circle, fern)
    url = f"{circle_pages.site}/circles/{circle.slug}/room/"
    a_page = circle_pages.join(ash, url)
    b_page = circle_pages.join(birch, url)
    for page in (a_page, b_page):
        expect(floor(page)["mode"]).to_have_text(QUEUE)
        page.evaluate(RECORD_ANNOUNCEMENTS)

    tab_to(a_page, "hand-button", start=a_page.get_by_label("Your message"))
    a_page.keyboard.press("Enter")
    expect(floor(a_page)["speaker"]).to_have_text(YOUR_TURN)
    expect(floor(a_page)["time"]).to_have_text(re.compile(r"^Time left in this turn: 0:3[0-4]$"))
    # The clock ticks on the page (display only)…
    expect(floor(b_page)["time"]).to_have_text(re.compile(r"^Time left in this turn: 0:2\d$"))
    expect(floor(a_page)["time"]).to_have_text(re.compile(r"^Time left in this turn: 0:2[0-6]$"))
    # …the server's own reminder reaches the speaker privately…
    expect(a_page.locator("#nudge-text")).to_have_text(
        re.compile(r"^A private note for you: About (29|30|31) seconds left in your turn\.$")
    )
    # …and the status region spoke once for the turn and once at 30 s, never per second.
    assert a_page.evaluate("() => window.announced") == [
        "It's your turn.",
        "30 seconds left in this turn.",
    ]
    assert b_page.evaluate("() => window.announced") == ["30 seconds left in this turn."]
