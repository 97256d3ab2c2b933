"""Sets of message ids as sorted, disjoint, inclusive ``(low, high)`` ranges."""

from __future__ import annotations

from collections.abc import Iterable

Ranges = list[tuple[int, int]]


def normalise(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sort and merge overlapping or adjacent ranges."""
    merged: Ranges = []
    for low, high in sorted(r for r in ranges if r[0] <= r[1]):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def add(ranges: Ranges, low: int, high: int) -> Ranges:
    return normalise([*ranges, (low, high)])


def gaps(ranges: Ranges, low: int, high: int) -> Ranges:
    """The parts of ``[low, high]`` not covered by ``ranges``."""
    missing: Ranges = []
    cursor = low
    for r_low, r_high in normalise(ranges):
        if r_high < cursor:
            continue
        if r_low > high:
            break
        if r_low > cursor:
            missing.append((cursor, r_low - 1))
        cursor = max(cursor, r_high + 1)
    if cursor <= high:
        missing.append((cursor, high))
    return missing


def subtract(ranges: Ranges, other: Ranges) -> Ranges:
    """The ids of ``ranges`` that are not in ``other``."""
    return [gap for low, high in ranges for gap in gaps(other, low, high)]


def within(ranges: Ranges, low: int, high: int) -> Ranges:
    """The parts of ``ranges`` inside ``[low, high]``."""
    return gaps(gaps(ranges, low, high), low, high)


def from_ids(ids: Iterable[int]) -> Ranges:
    """Ranges covering exactly the given ids."""
    return normalise((i, i) for i in ids)


def count(ranges: Ranges) -> int:
    return sum(high - low + 1 for low, high in ranges)
