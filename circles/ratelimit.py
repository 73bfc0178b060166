"""A fixed-window counter per member, kept in this process's memory.

The live room counts every `say` received, accepted or refused, before any
database work (protocol.md). It used to count in the shared cache: two Redis
round trips per frame, which profiling showed costing more than storing the
share itself. A member has at most five sockets, so across P processes they get
at most P times the limit; the floor's own limits (in the database) hold for the
whole circle whatever the process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    seconds: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0


# (limit name, member) -> (window number, attempts in it). Old windows are
# overwritten, so this holds one entry per member and limit.
_counts: dict[tuple[str, int], tuple[int, int]] = {}


def hit(limit: Limit, who: int, *, now: float | None = None) -> Verdict:
    """Count one attempt; refuse once more than `count` fall in the current window."""
    now = time.time() if now is None else now
    window = int(now // limit.seconds)
    key = (limit.name, who)
    seen_window, used = _counts.get(key, (window, 0))
    used = used + 1 if seen_window == window else 1
    _counts[key] = (window, used)
    if used <= limit.count:
        return Verdict(True)
    return Verdict(False, retry_after=(window + 1) * limit.seconds - now)


def forget() -> None:
    """Every count gone (tests start from nothing)."""
    _counts.clear()
