"""The Dead Drop server's own rules: an agent's health (its ``who`` tool) and the task
state machine (its ``_TASK_TRANSITIONS``, with verification).

Why a module of its own: the recorder (record/), the readers (read/) and ``top`` must
agree with the server and with each other, so each rule is written down once. Health,
from ``heartbeat_at`` (the ``ping`` tool's time): healthy while it is under 2 minutes
old, stale under 10 minutes, dead at 10 minutes or more; an agent that never sent a
heartbeat (or whose heartbeat cannot be read as a time) is "unknown", never shown as
running. ``last_seen`` does not count: ``set_status`` and ``check_inbox`` move it, and an
agent can do both while its heartbeat loop is dead, which is the point of the heartbeat.

Times: the server stamps ``datetime.now().isoformat()``, local wall time without a zone,
so a heartbeat is compared with local wall time. Health is ``who``'s rule to the letter
(src/dead_drop/server.py, stored commit 0f6e1f5)::

    hb = agent.get('heartbeat_at')
    if hb:
        try:
            last_hb = datetime.datetime.fromisoformat(hb)
            delta = (now_dt - last_hb).total_seconds()
            ...
        except (ValueError, TypeError):
            agent['health'] = 'unknown'
    else:
        agent['health'] = 'unknown'

so a heartbeat that is not a non-empty text, that is not an ISO time, or that carries a
zone (``now_dt`` is naive: the subtraction raises TypeError) is "unknown" there, and here.
The recorder (agents-*.json), ``agents``, ``top`` and ``status`` all call
:func:`health`. Other ages (of a task's ``updated_at``, a message) use :func:`age`,
which reads a stamp with a zone as the moment it names.
"""

from __future__ import annotations

import datetime as dt

TASK_STATUSES = ("pending", "assigned", "in_progress", "review", "completed", "failed", "verified")

# The server's _TASK_TRANSITIONS (drpepper2233/dead-drop-teams-1, src/dead_drop/server.py)
# with verification: completed -> verified, and completed -> in_progress when rejected.
TASK_TRANSITIONS = frozenset(
    {
        ("pending", "assigned"),
        ("assigned", "in_progress"),
        ("in_progress", "review"),
        ("in_progress", "failed"),
        ("review", "completed"),
        ("review", "in_progress"),  # rework: reject_task
        ("failed", "assigned"),  # retry or reassign
        ("completed", "verified"),  # verify_task
        ("completed", "in_progress"),  # verification rejected
    }
)

HEALTHY, STALE, DEAD, UNKNOWN = "healthy", "stale", "dead", "unknown"
STALE_AFTER = 120.0  # seconds without a heartbeat: stale from then on
DEAD_AFTER = 600.0  # ... and dead from then on


def wall_time(value: object) -> dt.datetime | None:
    """A server time column as naive local wall time, None if it is not a time."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone().replace(tzinfo=None)
    return stamp


def local(now: dt.datetime) -> dt.datetime:
    """``now`` as naive local wall time (as the server's stamps are)."""
    return now.astimezone().replace(tzinfo=None) if now.tzinfo is not None else now


def age(value: object, now: dt.datetime) -> float | None:
    """Seconds from a server time column to ``now``; None when it is not a time."""
    stamp = wall_time(value)
    return None if stamp is None else (local(now) - stamp).total_seconds()


def heartbeat(heartbeat_at: object) -> dt.datetime | None:
    """The heartbeat as ``who`` reads it: a non-empty text in ISO format without a zone
    (None: ``who`` says unknown)."""
    if not heartbeat_at or not isinstance(heartbeat_at, str):
        return None  # (``fromisoformat`` of bytes or a number raises TypeError there)
    try:
        stamp = dt.datetime.fromisoformat(heartbeat_at)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is None else None  # (naive minus aware: TypeError)


def heartbeat_age(heartbeat_at: object, now: dt.datetime) -> float | None:
    """Seconds since the heartbeat as ``who`` counts them (None: unknown)."""
    stamp = heartbeat(heartbeat_at)
    return None if stamp is None else (local(now) - stamp).total_seconds()


def health(heartbeat_at: object, now: dt.datetime) -> str:
    """``healthy``, ``stale``, ``dead`` or ``unknown``, exactly as ``who`` says."""
    seconds = heartbeat_age(heartbeat_at, now)
    if seconds is None:
        return UNKNOWN
    if seconds < STALE_AFTER:
        return HEALTHY
    if seconds < DEAD_AFTER:
        return STALE
    return DEAD


def next_change(heartbeat_at: object, now: dt.datetime) -> float | None:
    """Seconds until :func:`health` changes by time alone (None: it never will)."""
    seconds = heartbeat_age(heartbeat_at, now)
    if seconds is None:
        return None
    for threshold in (STALE_AFTER, DEAD_AFTER):
        if seconds < threshold:
            return threshold - seconds
    return None


def crossings(heartbeat_at: object, old: str, new: str) -> list[tuple[str, str]]:
    """With no new heartbeat, the thresholds crossed going from health ``old`` to
    ``new``: ``(health, when)`` each, ``when`` the heartbeat plus 2 or 10 minutes,
    written as the server writes its times."""
    stamp = heartbeat(heartbeat_at)
    order = (HEALTHY, STALE, DEAD)
    if stamp is None or old not in order or new not in order:
        return []
    found = []
    for state, after in ((STALE, STALE_AFTER), (DEAD, DEAD_AFTER)):
        if order.index(old) < order.index(state) <= order.index(new):
            found.append((state, (stamp + dt.timedelta(seconds=after)).isoformat()))
    return found
