"""The logger's notion of "now", injectable so midnight and retention can be tested."""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """Wall-clock time in the local zone (follows the TZ environment variable)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now().astimezone()


def today(clock: Clock, utc: bool) -> dt.date:
    """The date a message without a usable timestamp is filed under."""
    now = clock.now()
    return now.astimezone(dt.UTC).date() if utc else now.date()


def days_before(day: dt.date, days: int) -> dt.date:
    """``day`` minus ``days`` days, never before year 1: a window reaching further back
    (``--retention-days 1000000``) holds every date there is, and must not overflow."""
    return day - dt.timedelta(days=min(days, (day - dt.date.min).days))


def monotonic() -> float:
    return time.monotonic()


TEST_NOW = "DEAD_DROP_TEST_NOW"
"""Test hook (only the test suite sets it): an ISO time that ``now`` is pinned to, so a
real process can be asked how an agent looks minutes after its last heartbeat."""


class FixedClock:
    """A clock stopped at one moment (tests)."""

    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment if moment.tzinfo is not None else moment.astimezone()

    def now(self) -> dt.datetime:
        return self.moment


def from_environment() -> Clock:
    """The system clock, or the moment :data:`TEST_NOW` names (a naive time is local)."""
    import os

    pinned = os.environ.get(TEST_NOW, "")
    if not pinned:
        return SystemClock()
    try:
        return FixedClock(dt.datetime.fromisoformat(pinned))
    except ValueError:
        raise ValueError(f"{TEST_NOW}={pinned!r} is not an ISO time") from None
