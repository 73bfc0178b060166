"""The plain words for the policy's reasons: refusals, nudges, queue entries."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import ngettext


def refusal_words(reason: str, *, seconds: float | None = None) -> str:
    wait = round(seconds) if seconds else None
    words = {
        "paused": _("Sharing is paused for a moment. Your words are still in the box."),
        "queue_not_your_turn": _(
            "Hands are up here: raise yours, and the floor comes to you in turn."
        ),
        "round_not_holder": _("We're going around the circle. The piece will come to you."),
        "consecutive": _(
            "You've shared a few in a row. Let's leave a little room for others first."
        ),
        "share": _("You've been heard a lot just now. Let's make room for other voices."),
        "nothing_to_pass": _("On an open floor there's nothing to pass."),
        "not_holding": _("You don't hold the floor right now."),
        "open_no_turns": _("On an open floor there are no turns to move on."),
        "grant_in_queue": _("The floor can be given out of turn only when hands are up."),
        "not_here": _("They're not in the room right now."),
    }
    text = words.get(reason, _("That can't be done right now."))
    if wait and reason in {"consecutive", "share", "paused"}:
        text += " " + ngettext(
            "You can share again in %(n)d second.", "You can share again in %(n)d seconds.", wait
        ) % {"n": wait}
    return text


def nudge_words(reason: str, *, seconds: float | None = None, about: str = "") -> str:
    if reason == "turn_ending":
        return _("About %(n)d seconds left in your turn.") % {"n": round(seconds or 0)}
    if reason == "dominance":
        return _(
            "%(name)s has shared much more than others this session. Perhaps invite quieter voices."
        ) % {"name": about}
    return refusal_words(reason, seconds=seconds)


def queue_reason(turns: int) -> str:
    if turns == 0:
        return _("no turn yet")
    return ngettext("one turn so far", "%(n)d turns so far", turns) % {"n": turns}


FACILITATOR_NUDGE = "A gentle reminder from your facilitator: please leave room for others."
