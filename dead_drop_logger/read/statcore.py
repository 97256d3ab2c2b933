"""The counters and time helpers that both ``stats``' one pass (:mod:`.stats`) and the
per-file partials kept in the index (:mod:`.statfile`) are made of.

Why a module of its own: the index's upkeep feeds a partial as it takes in lines (the
logger's thread, a reader catching the index up), and must not load the numbers'
modules (``stats`` and the task figures) to do it; both use these same definitions,
so the two ways count alike.
"""

from __future__ import annotations

import datetime as dt
import math

TOP_THREADS = 10  # the busiest threads shown

# How long a thread went on, from its first reply to its last: the classes' upper bounds
# in seconds (the report's threads chart), so that chart carries counts per class, never
# a row per thread. A thread with no dated reply is in a last class of its own.
THREAD_SPANS: tuple[tuple[float, str], ...] = (
    (60, "< 1 min"),
    (900, "1-15 min"),
    (3600, "15-60 min"),
    (4 * 3600, "1-4 h"),
    (24 * 3600, "4-24 h"),
    (math.inf, "a day or more"),
)


class _Agent:
    __slots__ = ("broadcasts", "cc", "first", "hours", "last", "received", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.broadcasts = 0
        self.cc = 0
        self.hours = [0] * 24
        self.first: str | None = None
        self.last: str | None = None

    def seen(self, stamp: str) -> None:
        if self.first is None or stamp < self.first:
            self.first = stamp
        if self.last is None or stamp > self.last:
            self.last = stamp


class _Task:
    __slots__ = ("agents", "first", "last", "messages")

    def __init__(self) -> None:
        self.messages = 0
        self.agents: set[str] = set()
        self.first: str | None = None
        self.last: str | None = None


def parse_stamp(stamp: object) -> dt.datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return parsed.replace(tzinfo=None) if parsed.tzinfo else parsed


def _span(first: str | None, last: str | None) -> float | None:
    a, b = parse_stamp(first), parse_stamp(last)
    return None if a is None or b is None else (b - a).total_seconds()


def _span_class(seconds: float | None) -> int:
    """The index in :data:`THREAD_SPANS` of a span (one past them: not dated)."""
    if seconds is None:
        return len(THREAD_SPANS)
    return next(i for i, (upper, _) in enumerate(THREAD_SPANS) if seconds < upper)
