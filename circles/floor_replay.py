"""Replay a floor log through the policy: every stored state must come out again.

Used by the race test, and by anyone who wants to check a floor after the fact
(`replay_floor_log(entries)` raises on the first state that does not match).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from circles import policy
from circles.floor_codec import floor_from_json, floor_to_json


class ReplayMismatch(AssertionError):
    pass


@dataclass(frozen=True)
class LogEntry:
    version: int
    action: str
    input: dict
    at: datetime
    state: dict


def step(floor: policy.Floor, entry: LogEntry) -> policy.Outcome:
    data, now = entry.input, entry.at
    present = frozenset(data.get("present", []))
    match entry.action:
        case "settle":
            return policy.settle(floor, now=now, present=present)
        case "share" | "share_refused":
            return policy.share(
                floor,
                member_id=data["member"],
                kind=policy.Kind(data["kind"]),
                characters=data["characters"],
                now=now,
                present=present,
            )
        case "hand":
            return policy.hand(
                floor, member_id=data["member"], raised=data["raised"], now=now, present=present
            )
        case "pass":
            return policy.pass_turn(floor, member_id=data["member"], now=now, present=present)
        case "next":
            return policy.next_turn(floor, now=now, present=present)
        case "grant":
            return policy.grant(floor, member_id=data["member"], now=now, present=present)
        case "mode":
            settings = data.get("settings")
            new_settings = replace(floor.settings, **settings) if settings else None
            return policy.set_mode(
                floor,
                mode=policy.Mode(data["mode"]),
                now=now,
                present=present,
                settings=new_settings,
            )
        case "pause":
            return policy.pause(
                floor, paused=data["paused"], minutes=data.get("minutes"), now=now, present=present
            )
    raise ReplayMismatch(f"unknown action {entry.action!r} at version {entry.version}")


def replay_floor_log(entries: list[LogEntry]) -> list[policy.Outcome]:
    """Check every entry's state is what the policy makes of the one before it."""
    if not entries:
        return []
    first = entries[0]
    if first.action != "open":
        raise ReplayMismatch("a floor log starts with its opening")
    floor = floor_from_json(first.state)
    outcomes = []
    for entry in entries[1:]:
        outcome = step(floor, entry)
        if floor_to_json(outcome.floor) != entry.state:
            raise ReplayMismatch(f"version {entry.version} ({entry.action}) does not replay")
        if outcome.floor.version != entry.version:
            raise ReplayMismatch(f"version {entry.version} came out as {outcome.floor.version}")
        outcomes.append(outcome)
        floor = outcome.floor
    return outcomes
