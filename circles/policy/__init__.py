"""The turn-taking rules: pure Python, no Django, no I/O, the clock passed in.

An import rule (pyproject.toml, checked by `make test`) keeps Django out. The
services turn model rows into these values and apply what comes back.
"""

from circles.policy.balance import VoiceRow, gini, voice_balance
from circles.policy.floor import (
    Floor,
    FloorSettings,
    Hand,
    Kind,
    Mode,
    Nudge,
    Outcome,
    Phase,
    QueueEntry,
    Refusal,
    Round,
    grant,
    hand,
    new_floor,
    next_in_queue,
    next_turn,
    pass_turn,
    pause,
    queue_order,
    set_mode,
    settle,
    settle_due_at,
    share,
)

__all__ = [
    "Floor",
    "FloorSettings",
    "Hand",
    "Kind",
    "Mode",
    "Nudge",
    "Outcome",
    "Phase",
    "QueueEntry",
    "Refusal",
    "Round",
    "VoiceRow",
    "gini",
    "grant",
    "hand",
    "new_floor",
    "next_in_queue",
    "next_turn",
    "pass_turn",
    "pause",
    "queue_order",
    "set_mode",
    "settle",
    "settle_due_at",
    "share",
    "voice_balance",
]
