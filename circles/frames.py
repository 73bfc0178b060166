"""The shapes of server-to-client frames (docs/protocol.md), built from model rows.

Pure functions: services put them in broadcasts, the consumer in replies.
"""

from __future__ import annotations

from datetime import UTC, datetime

from circles.floor_words import queue_reason
from circles.models import Message, Session
from circles.policy import queue_order

PROTOCOL_VERSION = 1


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def person(user) -> dict | None:
    if user is None:
        return None
    return {"member_id": user.pk, "name": user.display_name}


def message_frame(message: Message) -> dict:
    """A message as everyone sees it; hidden ones keep their place with no text."""
    frame = {
        "type": "message",
        "id": message.pk,
        "seq": message.seq,
        "session": message.session_id,
        "author": person(message.author),
        "text": message.text,
        "kind": message.kind,
        "created": iso(message.created_at),
        "client_id": str(message.client_id) if message.client_id else None,
    }
    if message.hidden_at is not None:
        frame["text"] = ""
        frame["hidden"] = message.hidden_reason or "hidden by a facilitator"
    return frame


def session_frame(session: Session | None) -> dict | None:
    if session is None:
        return None
    return {
        "type": "session",
        "id": session.pk,
        "status": session.status,
        "facilitator": person(session.facilitator),
        "opened": iso(session.opened_at),
        "closed": iso(session.closed_at),
    }


def presence_frame(members: list[dict]) -> dict:
    return {"type": "presence", "members": members}


def open_floor_frame() -> dict:
    """The floor before turn-taking arrives: open to all, nobody holding it."""
    return {
        "type": "floor",
        "v": 0,
        "mode": "open",
        "paused": False,
        "speaker": None,
        "turn_ends_at": None,
        "turn_messages_left": None,
        "queue": [],
        "round": None,
    }


def error_frame(code: str, detail: str, *, retry_after: float | None = None, ref=None) -> dict:
    frame = {"type": "error", "code": code, "detail": str(detail)}
    if retry_after is not None:
        frame["retry_after"] = round(retry_after, 1)
    if ref is not None:
        frame["ref"] = ref
    return frame


def floor_frame(floor, names: dict[int, str]) -> dict:
    """The whole floor state (every frame is whole: a client that missed one is right
    again at the next). `floor` is a policy Floor; `names` maps member ids to names."""

    def who(member_id):
        if member_id is None:
            return None
        return {"member_id": member_id, "name": names.get(member_id, "")}

    current = floor.round
    return {
        "type": "floor",
        "v": floor.version,
        "mode": floor.mode.value,
        "paused": floor.paused,
        "paused_until": iso(floor.paused_until),
        "speaker": who(floor.speaker),
        "turn_ends_at": iso(floor.turn_ends_at),
        "turn_messages_left": floor.turn_messages_left,
        "queue": [
            {**who(entry.member_id), "reason": queue_reason(entry.turns)}
            for entry in queue_order(floor)
        ],
        "hands": [hand.member_id for hand in floor.hands],
        "round": None
        if current is None
        else {
            "order": [who(member) for member in current.order],
            "position": current.position,
            "phase": current.phase.value,
            "passed": list(current.passed),
        },
        "settings": {
            "turn_seconds": floor.settings.turn_seconds,
            "turn_messages": floor.settings.turn_messages,
            "auto_advance": floor.settings.auto_advance,
        },
    }


def nudge_frame(text: str, reason: str) -> dict:
    return {"type": "nudge", "text": text, "reason": reason}


def balance_frame(
    rows, gini: float, names: dict[int, str], *, session_id: int | None = None, final: bool = False
) -> dict:
    """Live for the facilitator (with who is past 2 x a fair share), or `final` for the
    whole circle at close: then without flags, since no one is singled out in public."""
    members = []
    for row in rows:
        member = {
            "member_id": row.member_id,
            "name": names.get(row.member_id, ""),
            "messages": row.messages,
            "chars": row.characters,
            "floor_seconds": row.floor_seconds,
            "share": round(row.share, 3),
        }
        if not final:
            member["flagged"] = row.flagged
        members.append(member)
    return {
        "type": "balance",
        "session": session_id,
        "final": final,
        "members": members,
        "gini": round(gini, 3),
    }
