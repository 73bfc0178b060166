"""A fixed-window counter in the shared cache, so every process counts together.

The live room counts every `say` received, accepted or refused, before any
database work (protocol.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.core.cache import cache

logger = logging.getLogger(__name__)

_local_counts: dict[str, int] = {}
_local_window: list[int] = [0]


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
    try:
        used = _count_shared(key, limit)
    except Exception:
        # The shared cache is down (Redis restarting): count in this process meanwhile,
        # rather than fail the share or stop counting.
        logger.warning("rate-limit cache unavailable; counting in this process")
        used = _count_here(key, window)
    if used <= limit.count:
        return Verdict(True)
    return Verdict(False, retry_after=(window + 1) * limit.seconds - now)


def _count_shared(key: str, limit: Limit) -> int:
    if cache.add(key, 1, timeout=limit.seconds + 1):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=limit.seconds + 1)
        return 1


def _count_here(key: str, window: int) -> int:
    if _local_window[0] != window:  # a new window: forget the old counts
        _local_counts.clear()
        _local_window[0] = window
    _local_counts[key] = _local_counts.get(key, 0) + 1
    return _local_counts[key]
