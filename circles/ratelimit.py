"""A fixed-window counter in the shared cache, so every process counts together.

The live room counts every `say` received, accepted or refused, before any
database work (protocol.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    seconds: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0


def hit(limit: Limit, who: int, *, now: float | None = None) -> Verdict:
    """Count one attempt; refuse once more than `count` fall in the current window."""
    now = time.time() if now is None else now
    window = int(now // limit.seconds)
    key = f"rl:{limit.name}:{who}:{window}"
    if cache.add(key, 1, timeout=limit.seconds + 1):
        used = 1
    else:
        try:
            used = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=limit.seconds + 1)
            used = 1
    if used <= limit.count:
        return Verdict(True)
    return Verdict(False, retry_after=(window + 1) * limit.seconds - now)
