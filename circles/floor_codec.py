"""Between the policy's values and what the database stores.

`floor_to_json` / `floor_from_json` are exact inverses (the floor log stores the
JSON of every state, and the race test replays it). `floor_from_row` and
`floor_onto_row` map the FloorState row (its columns, tallies and hands).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from decimal import Decimal

from circles.policy import Floor, FloorSettings, Hand, Mode, Phase, Round


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _ints(mapping: dict) -> dict[int, object]:
    return {int(key): value for key, value in mapping.items()}


def settings_to_json(settings: FloorSettings) -> dict:
    return asdict(settings)


def settings_from_json(data: dict | None) -> FloorSettings:
    known = {field.name for field in fields(FloorSettings)}
    values = {key: value for key, value in (data or {}).items() if key in known}
    return FloorSettings(**values)


def settings_from_record(record) -> FloorSettings:
    """A circle's CircleFloorSettings row (or None: the defaults) as policy values."""
    if record is None:
        return FloorSettings()
    values = {}
    for field in fields(FloorSettings):
        value = getattr(record, field.name)
        values[field.name] = float(value) if isinstance(value, Decimal) else value
    return FloorSettings(**values)


def _tallies(floor: Floor) -> dict:
    return {
        "return_mode": floor.return_mode.value,
        "turn_shared": floor.turn_shared,
        "turn_warned": floor.turn_warned,
        "speaker_absent_since": _time(floor.speaker_absent_since),
        "last_speaker": floor.last_speaker,
        "rounds_started": floor.rounds_started,
        "turns_taken": {str(k): v for k, v in floor.turns_taken.items()},
        "floor_seconds": {str(k): v for k, v in floor.floor_seconds.items()},
        "shares": {str(k): v for k, v in floor.shares.items()},
        "characters": {str(k): v for k, v in floor.characters.items()},
        "recent_shares": list(floor.recent_shares),
        "last_share_at": {str(k): _time(v) for k, v in floor.last_share_at.items()},
        "run_member": floor.run_member,
        "run_length": floor.run_length,
        "participants_ever": sorted(floor.participants_ever),
        "flagged": sorted(floor.flagged),
    }


def _from_tallies(data: dict) -> dict:
    return {
        "return_mode": Mode(data.get("return_mode", Mode.QUEUE)),
        "turn_shared": data.get("turn_shared", False),
        "turn_warned": data.get("turn_warned", False),
        "speaker_absent_since": _parse_time(data.get("speaker_absent_since")),
        "last_speaker": data.get("last_speaker"),
        "rounds_started": data.get("rounds_started", 0),
        "turns_taken": _ints(data.get("turns_taken", {})),
        "floor_seconds": _ints(data.get("floor_seconds", {})),
        "shares": _ints(data.get("shares", {})),
        "characters": _ints(data.get("characters", {})),
        "recent_shares": tuple(data.get("recent_shares", [])),
        "last_share_at": {int(k): _parse_time(v) for k, v in data.get("last_share_at", {}).items()},
        "run_member": data.get("run_member"),
        "run_length": data.get("run_length", 0),
        "participants_ever": frozenset(data.get("participants_ever", [])),
        "flagged": frozenset(data.get("flagged", [])),
    }


def _hand_json(hand: Hand) -> dict:
    return {
        "member_id": hand.member_id,
        "raised_at": _time(hand.raised_at),
        "behind": sorted(hand.behind),
    }


def _hand_from_json(data: dict) -> Hand:
    return Hand(
        member_id=data["member_id"],
        raised_at=_parse_time(data["raised_at"]),
        behind=frozenset(data.get("behind", [])),
    )


def floor_to_json(floor: Floor) -> dict:
    """The whole floor, exactly: what the floor log stores for each version."""
    current = floor.round
    return {
        "version": floor.version,
        "mode": floor.mode.value,
        "paused": floor.paused,
        "paused_until": _time(floor.paused_until),
        "speaker": floor.speaker,
        "turn_started_at": _time(floor.turn_started_at),
        "turn_ends_at": _time(floor.turn_ends_at),
        "turn_seconds_left": floor.turn_seconds_left,
        "turn_messages_left": floor.turn_messages_left,
        "round": None
        if current is None
        else {
            "order": list(current.order),
            "position": current.position,
            "phase": current.phase.value,
            "passed": list(current.passed),
        },
        "hands": [_hand_json(hand) for hand in floor.hands],
        "tallies": _tallies(floor),
        "settings": settings_to_json(floor.settings),
    }


def floor_from_json(data: dict) -> Floor:
    current = data.get("round")
    return Floor(
        version=data["version"],
        mode=Mode(data["mode"]),
        paused=data["paused"],
        paused_until=_parse_time(data.get("paused_until")),
        speaker=data.get("speaker"),
        turn_started_at=_parse_time(data.get("turn_started_at")),
        turn_ends_at=_parse_time(data.get("turn_ends_at")),
        turn_seconds_left=data.get("turn_seconds_left"),
        turn_messages_left=data.get("turn_messages_left"),
        round=None
        if current is None
        else Round(
            order=tuple(current["order"]),
            position=current["position"],
            phase=Phase(current["phase"]),
            passed=tuple(current["passed"]),
        ),
        hands=tuple(_hand_from_json(hand) for hand in data.get("hands", [])),
        settings=settings_from_json(data.get("settings")),
        **_from_tallies(data.get("tallies", {})),
    )


def floor_from_row(row) -> Floor:
    """The policy's Floor from a FloorState row."""
    return floor_from_json(
        {
            "version": row.version,
            "mode": row.mode,
            "paused": row.paused,
            "paused_until": _time(row.paused_until),
            "speaker": row.speaker_id,
            "turn_started_at": _time(row.turn_started_at),
            "turn_ends_at": _time(row.turn_ends_at),
            "turn_seconds_left": row.turn_seconds_left,
            "turn_messages_left": row.turn_messages_left,
            "round": None
            if not row.round_phase
            else {
                "order": row.round_order,
                "position": row.round_position,
                "phase": row.round_phase,
                "passed": row.round_passed,
            },
            "hands": row.hands,
            "tallies": row.tallies,
            "settings": row.settings,
        }
    )


def floor_onto_row(floor: Floor, row) -> None:
    """Set the row's columns from the floor."""
    data = floor_to_json(floor)
    row.version = floor.version
    row.mode = floor.mode.value
    row.paused = floor.paused
    row.paused_until = floor.paused_until
    row.speaker_id = floor.speaker
    row.turn_started_at = floor.turn_started_at
    row.turn_ends_at = floor.turn_ends_at
    row.turn_seconds_left = floor.turn_seconds_left
    row.turn_messages_left = floor.turn_messages_left
    current = floor.round
    row.round_order = list(current.order) if current else []
    row.round_position = current.position if current else None
    row.round_phase = current.phase.value if current else ""
    row.round_passed = list(current.passed) if current else []
    row.hands = data["hands"]
    row.tallies = data["tallies"]
    row.settings = data["settings"]
