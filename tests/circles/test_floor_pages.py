"""The turn-taking pages: the circle's floor settings (moderators only) and a session's
page with its voice balance, as a chart that reads without colour and as a table."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from circles.models import (
    AuditAction,
    AuditEntry,
    CircleFloorSettings,
    Membership,
    MembershipStatus,
    Session,
    SessionStatus,
    SessionVoice,
)
from circles.services.sessions import session_open

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


def settings_url(circle) -> str:
    return reverse("circles:floor_settings", kwargs={"slug": circle.slug})


def session_url(circle, session) -> str:
    return reverse("circles:session", kwargs={"slug": circle.slug, "session_id": session.pk})


def valid_settings(**overrides) -> dict:
    data = {
        "default_mode": "queue",
        "turn_seconds": "90",
        "turn_messages": "4",
        "auto_advance": "on",
        "turn_warning_seconds": "20",
        "disconnect_grace_seconds": "15",
        "consecutive_cap": "4",
        "consecutive_wait_seconds": "30",
        "share_window": "20",
        "share_multiple": "2.5",
        "share_minimum": "4",
        "share_wait_seconds": "30",
    }
    data.update(overrides)
    return data


def field_error(page: str, name: str) -> str:
    """The text of the error shown under one field (its id ties it to the field)."""
    match = re.search(rf'<p class="error" id="id_{name}_error">([^<]*)</p>', page)
    return match.group(1) if match else ""


# The floor settings page ------------------------------------------------------------------


@pytest.fixture
def circle_with_member(make_user, make_circle):
    moderator = make_user(display_name="Mo")
    member = make_user(display_name="Mem")
    circle = make_circle(moderator=moderator, members=(member,))
    return circle, moderator, member


def test_moderators_see_the_floor_settings_with_the_defaults(client, circle_with_member):
    """A moderator's GET shows the form filled with the defaults of docs/turn-taking.md."""
    circle, moderator, _member = circle_with_member
    client.force_login(moderator)
    response = client.get(settings_url(circle))
    assert response.status_code == 200
    form = response.context["form"]
    assert form["turn_seconds"].value() == 120
    assert form["turn_messages"].value() == 6
    assert form["default_mode"].value() == "open"
    page = response.content.decode()
    assert 'name="turn_warning_seconds"' in page


@pytest.mark.parametrize("method", ["get", "post"])
def test_members_who_are_not_moderators_get_403(client, circle_with_member, method):
    """A plain member may neither see nor change the floor settings: 403, nothing saved."""
    circle, _moderator, member = circle_with_member
    client.force_login(member)
    response = getattr(client, method)(settings_url(circle), valid_settings())
    assert response.status_code == 403
    assert "This page is for the circle's moderators." in response.content.decode()
    assert not CircleFloorSettings.objects.filter(circle=circle).exists()
    assert not AuditEntry.objects.filter(action=AuditAction.FLOOR_SETTINGS).exists()


def test_outsiders_get_403_and_visitors_sign_in_first(client, circle_with_member, make_user):
    """Someone outside the circle gets 403; someone signed out is sent to sign in."""
    circle, _moderator, _member = circle_with_member
    anonymous = client.get(settings_url(circle))
    assert anonymous.status_code == 302
    assert reverse("account_login") in anonymous["Location"]
    client.force_login(make_user())
    assert client.post(settings_url(circle), valid_settings()).status_code == 403
    assert not CircleFloorSettings.objects.filter(circle=circle).exists()


def test_a_valid_post_saves_the_settings_and_logs_it_for_the_circle(client, circle_with_member):
    """A moderator's valid POST stores every value, says so, and writes one AuditEntry
    (floor_settings) naming the fields that changed."""
    circle, moderator, _member = circle_with_member
    client.force_login(moderator)
    response = client.post(settings_url(circle), valid_settings(), follow=True)
    assert response.redirect_chain[-1] == (settings_url(circle), 302)
    assert "The next session opens with these" in response.content.decode()

    record = CircleFloorSettings.objects.get(circle=circle)
    assert record.default_mode == "queue"
    assert (record.turn_seconds, record.turn_messages, record.turn_warning_seconds) == (90, 4, 20)
    assert float(record.share_multiple) == 2.5
    assert record.auto_advance is True
    [entry] = AuditEntry.objects.filter(circle=circle, action=AuditAction.FLOOR_SETTINGS)
    assert entry.actor_id == moderator.pk
    changed = set(entry.reason.split(", "))
    assert changed == {
        "default_mode",
        "turn_seconds",
        "turn_messages",
        "turn_warning_seconds",
        "share_multiple",
    }


def test_the_next_session_opens_with_the_saved_settings(client, circle_with_member):
    """What the page saves is what the next session's floor starts with."""
    circle, moderator, _member = circle_with_member
    client.force_login(moderator)
    client.post(settings_url(circle), valid_settings(auto_advance=""))
    session = session_open(circle_id=circle.pk, user=moderator)
    floor = session.floor
    assert floor.mode == "queue"
    assert floor.settings["turn_seconds"] == 90
    assert floor.settings["auto_advance"] is False
    assert floor.settings["share_multiple"] == 2.5


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"turn_seconds": "5"}, "turn_seconds", "greater than or equal to 30"),
        ({"share_multiple": "9"}, "share_multiple", "less than or equal to 5"),
        (
            {"turn_seconds": "60", "turn_warning_seconds": "60"},
            "turn_warning_seconds",
            "make it shorter than a turn",
        ),
        (
            {"turn_seconds": "60", "turn_warning_seconds": "90"},
            "turn_warning_seconds",
            "make it shorter than a turn",
        ),
    ],
)
def test_invalid_values_are_explained_and_change_nothing(
    client, circle_with_member, overrides, field, words
):
    """A value out of range (a 5 s turn, 9 x a fair share) or a reminder no earlier
    than the turn's end is shown as an error beside its field; nothing is saved, the
    settings saved before stay as they were, and nothing is logged."""
    circle, moderator, _member = circle_with_member
    client.force_login(moderator)
    client.post(settings_url(circle), valid_settings())  # a first, valid save
    before = CircleFloorSettings.objects.filter(circle=circle).values().get()
    audits = AuditEntry.objects.count()

    response = client.post(settings_url(circle), valid_settings(**overrides))

    assert response.status_code == 200
    page = response.content.decode()
    assert words in field_error(page, field)
    assert 'class="field has-error"' in page
    # The page keeps what the moderator typed, so it can be corrected.
    assert f'value="{overrides[field]}"' in page
    assert CircleFloorSettings.objects.filter(circle=circle).values().get() == before
    assert AuditEntry.objects.count() == audits


def test_an_invalid_first_post_creates_no_settings_row(client, circle_with_member):
    """Before any save, an invalid POST leaves the circle without a settings row."""
    circle, moderator, _member = circle_with_member
    client.force_login(moderator)
    response = client.post(settings_url(circle), valid_settings(turn_seconds="5"))
    assert response.status_code == 200
    assert field_error(response.content.decode(), "turn_seconds")
    assert not CircleFloorSettings.objects.filter(circle=circle).exists()


# The session page --------------------------------------------------------------------------


@pytest.fixture
def closed_session(make_user, make_circle):
    """A closed session whose balance was stored: shares 3, 1, 0, 0."""
    facilitator = make_user(display_name="Fay")
    people = [make_user(display_name=name) for name in ("Ari", "Bo", "Cy")]
    circle = make_circle(moderator=facilitator, members=tuple(people))
    now = timezone.now()
    session = Session.objects.create(
        circle=circle,
        status=SessionStatus.CLOSED,
        facilitator=facilitator,
        opened_at=now - timedelta(hours=1),
        closed_at=now,
        gini=0.625,
    )
    figures = [  # name, messages, characters, floor seconds, share
        (people[0], 3, 240, 310.0, 0.75),
        (people[1], 1, 60, 95.4, 0.25),
        (people[2], 0, 0, 0.0, 0.0),
        (facilitator, 0, 0, 12.0, 0.0),
    ]
    for person, messages, characters, seconds, share in figures:
        SessionVoice.objects.create(
            session=session,
            member=person,
            display_name=person.display_name,
            messages=messages,
            characters=characters,
            floor_seconds=seconds,
            share=share,
        )
    return circle, session, facilitator, people


class TableRows(HTMLParser):
    """The cells of the balance table's body, row by row, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.in_table = self.in_body = self.in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "table" and ("class", "balance-table") in attrs:
            self.in_table = True
        elif self.in_table and tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.rows.append([])
        elif self.in_body and tag in ("th", "td"):
            self.in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            self.in_cell = False
        elif tag == "tbody":
            self.in_body = False
        elif tag == "table":
            self.in_table = False

    def handle_data(self, data):
        if self.in_cell:
            self.rows[-1][-1] += data.strip()


def chart_of(page: str) -> ET.Element:
    match = re.search(r"<svg\b.*?</svg>", page, re.S)
    assert match, "no chart on the page"
    return ET.fromstring(match.group(0))  # noqa: S314 (our own page, rendered in the test)


def test_a_closed_session_shows_the_balance_as_a_chart_and_a_table(client, closed_session):
    """A closed session's page has one bar per stored voice, each with the member's name
    and percent in text beside it (readable without colour), widths in proportion, and
    a table with the same figures; the Gini is given in words."""
    circle, session, _facilitator, people = closed_session
    client.force_login(people[2])
    response = client.get(session_url(circle, session))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Balance score: 0.62" in page or "Balance score: 0.63" in page

    svg = chart_of(page)
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby")
    assert svg.find(f"{SVG}desc") is not None
    bars = svg.findall(f"{SVG}rect")
    labels = [t.text for t in svg.findall(f"{SVG}text") if t.get("class") == "chart-label"]
    values = [t.text for t in svg.findall(f"{SVG}text") if t.get("class") == "chart-value"]
    voices = list(SessionVoice.objects.filter(session=session))  # the page's order
    assert len(bars) == len(labels) == len(values) == len(voices) == 4
    expected = {"Ari": "75%", "Bo": "25%", "Cy": "0%", "Fay": "0%"}
    assert labels == [voice.display_name for voice in voices]
    for label, value in zip(labels, values, strict=True):
        assert value.startswith(expected[label]), (label, value)
    widths = {label: float(bar.get("width")) for label, bar in zip(labels, bars, strict=True)}
    assert widths["Ari"] == pytest.approx(3 * widths["Bo"])
    assert widths["Cy"] == widths["Fay"] == 0
    ys = [float(bar.get("y")) for bar in bars]
    assert ys == sorted(ys)
    assert len(set(ys)) == 4  # one row each, none on top of another

    table = TableRows()
    table.feed(page)
    assert table.rows == [
        ["Ari", "3", "240", "310 s", "75%"],
        ["Bo", "1", "60", "95 s", "25%"],
        ["Cy", "0", "0", "0 s", "0%"],
        ["Fay", "0", "0", "12 s", "0%"],
    ]


def test_an_open_session_says_the_balance_comes_at_the_close(client, make_user, make_circle):
    """While the session is open the page shows no chart yet and says when it will."""
    facilitator, member = make_user(), make_user()
    circle = make_circle(moderator=facilitator, members=(member,))
    session = session_open(circle_id=circle.pk, user=facilitator)
    client.force_login(member)
    response = client.get(session_url(circle, session))
    assert response.status_code == 200
    page = response.content.decode()
    assert "appears here when the session closes" in page
    assert "<svg" not in page
    assert "balance-table" not in page


def test_a_closed_session_where_no_one_shared_says_so(client, make_user, make_circle):
    """No stored voices: no empty chart, a sentence instead."""
    facilitator = make_user()
    circle = make_circle(moderator=facilitator)
    session = Session.objects.create(
        circle=circle, status=SessionStatus.CLOSED, facilitator=facilitator, gini=0.0
    )
    client.force_login(facilitator)
    page = client.get(session_url(circle, session)).content.decode()
    assert "No one shared in this session." in page
    assert "<svg" not in page


@pytest.mark.parametrize("who", ["outsider", "pending", "removed"])
def test_only_active_members_see_a_session(client, closed_session, make_user, who):
    """Outsiders, people still waiting to join and removed members get 403, and none of
    the figures."""
    circle, session, _facilitator, _people = closed_session
    viewer = make_user()
    if who != "outsider":
        status = MembershipStatus.PENDING if who == "pending" else MembershipStatus.REMOVED
        Membership.objects.create(circle=circle, user=viewer, status=status)
    client.force_login(viewer)
    response = client.get(session_url(circle, session))
    assert response.status_code == 403
    page = response.content.decode()
    assert "<svg" not in page
    assert "Ari" not in page


def test_a_session_of_another_circle_is_not_found(client, closed_session, make_circle):
    """A session id under the wrong circle's address is a 404, not the other circle's
    balance."""
    _circle, session, facilitator, _people = closed_session
    other = make_circle(moderator=facilitator)
    client.force_login(facilitator)
    assert client.get(session_url(other, session)).status_code == 404
