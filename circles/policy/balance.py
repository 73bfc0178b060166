"""Voice balance: who has been heard, and how evenly (docs/turn-taking.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def gini(values: Iterable[float]) -> float:
    """The Gini coefficient: 0 when every voice is equal, (n-1)/n when one voice is all.

    Mean absolute difference over twice the mean, over every ordered pair.
    """
    xs = sorted(float(value) for value in values)
    n = len(xs)
    total = sum(xs)
    if n == 0 or total == 0:
        return 0.0
    # Sorted form of sum_i sum_j |x_i - x_j|: each x_i counts (2i - n + 1) times.
    weighted = sum((2 * index - n + 1) * x for index, x in enumerate(xs))
    return (2 * weighted) / (2 * n * total)


@dataclass(frozen=True)
class VoiceRow:
    member_id: int
    messages: int
    characters: int
    floor_seconds: float
    share: float  # this member's part of all shares, 0..1
    flagged: bool  # more than the multiple of a fair share (and at least `minimum` shares)


def voice_balance(
    *,
    participants: Iterable[int],
    shares: Mapping[int, int],
    characters: Mapping[int, int],
    floor_seconds: Mapping[int, float],
    multiple: float = 2.0,
    minimum: int = 4,
) -> tuple[list[VoiceRow], float]:
    """One row per participant (everyone present at any time), and the Gini of shares."""
    people = sorted(set(participants) | set(shares))
    total = sum(shares.get(member, 0) for member in people)
    fair = 1 / len(people) if people else 0.0
    rows = []
    for member in people:
        part = shares.get(member, 0) / total if total else 0.0
        rows.append(
            VoiceRow(
                member_id=member,
                messages=shares.get(member, 0),
                characters=characters.get(member, 0),
                floor_seconds=round(floor_seconds.get(member, 0.0), 1),
                share=part,
                # Past the multiple of a fair share, and not just after a few words.
                flagged=len(people) > 1
                and shares.get(member, 0) >= minimum
                and part > multiple * fair,
            )
        )
    return rows, gini(shares.get(member, 0) for member in people)
