"""The server's task state machine, its transition messages, and agent health: what a
task line's ``gap``/``via`` and an agent line's health are made of (docs/tasks.md).

Pure functions, no I/O, so the rules are tested on their own and stated once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence

from ..server import TASK_TRANSITIONS

TRANSITIONS = TASK_TRANSITIONS  # the moves one tool call makes

# The messages the server writes with a transition (in the same commit), and the move
# each one tells. update_task's says both states; the review tools' imply them.
_STATUS = re.compile(r"^\[(?P<task>[^\]]+)\] Status: (?P<a>\S+) \u2192 (?P<b>\S+)")
_TOLD = {
    "REVIEW": ("in_progress", "review"),
    "APPROVED": ("review", "completed"),
    "REWORK": ("review", "in_progress"),
    "VERIFIED": ("completed", "verified"),
    "VERIFICATION FAILED": ("completed", "in_progress"),
}
_TOOL = re.compile(r"^\[(?P<tag>[A-Z ]+)\] (?P<task>[^\s:]+):")

# The server's ``who``: healthy under 2 minutes since the heartbeat, stale under 10,
# dead from then on.
STALE_AFTER = dt.timedelta(seconds=120)
DEAD_AFTER = dt.timedelta(seconds=600)
HEALTHS = ("healthy", "stale", "dead")


def told_move(task: str, content: str) -> tuple[str, str] | None:
    """The transition a server message about ``task`` tells, if it tells one."""
    found = _STATUS.match(content)
    if found is not None:
        return (found["a"], found["b"]) if found["task"] == task else None
    found = _TOOL.match(content)
    if found is not None and found["task"] == task:
        return _TOLD.get(found["tag"])
    return None


def moves_between(
    task: str, messages: Iterable[tuple[str, str]], after: str | None, upto: str | None
) -> list[tuple[str, str]]:
    """The transitions the server's messages (``(timestamp, content)``, in id order)
    tell for ``task`` after ``after`` and up to ``upto`` (its ``updated_at`` at the two
    reads: the server stamps the row and its message with the same ``now``). A message
    sent to several leads is one move."""
    seen: set[tuple[str, str]] = set()
    moves: list[tuple[str, str]] = []
    for stamp, content in messages:
        if (after is not None and stamp <= after) or (upto is not None and stamp > upto):
            continue
        if (stamp, content) in seen:
            continue
        seen.add((stamp, content))
        move = told_move(task, content)
        if move is not None:
            moves.append(move)
    return moves


def gap_and_via(
    before: str | None, after: str, moves: Sequence[tuple[str, str]]
) -> tuple[bool, list[str] | None]:
    """Whether the change ``before`` -> ``after`` hides states the logger never saw,
    and which (in order) when the messages tell them all.

    A gap: ``after`` is not one move from ``before`` (and not the same), or the
    messages tell more moves than the one seen (or any, when the status looks
    unchanged, or when the task is seen for the first time, ``before`` None: it was
    made in the first state they tell). ``via``: the states in between, when the told
    moves lead without a break from ``before`` to ``after``.
    """
    if before is None or before == after:
        gap = len(moves) > 0
    else:
        gap = (before, after) not in TRANSITIONS or len(moves) > 1
    via: list[str] | None = None
    start = moves[0][0] if moves and before is None else before
    chained = all(moves[i][1] == moves[i + 1][0] for i in range(len(moves) - 1))
    if gap and moves and chained and moves[0][0] == start and moves[-1][1] == after:
        via = ([start] if before is None else []) + [b for _, b in moves[:-1]]
    return gap, via


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _aligned(now: dt.datetime, like: dt.datetime) -> dt.datetime:
    """``now`` comparable with ``like``: naive local time when ``like`` is naive (the
    server's ``datetime.now().isoformat()``)."""
    if like.tzinfo is None:
        return now.astimezone().replace(tzinfo=None) if now.tzinfo is not None else now
    return now if now.tzinfo is not None else now.astimezone()


def health(heartbeat: str | None, now: dt.datetime) -> str | None:
    """The server's ``who`` health of an agent whose ``heartbeat_at`` is ``heartbeat``
    (None where ``who`` says unknown: no heartbeat, or one it cannot read)."""
    beat = parse_time(heartbeat)
    if beat is None:
        return None
    age = _aligned(now, beat) - beat
    if age < STALE_AFTER:
        return "healthy"
    if age < DEAD_AFTER:
        return "stale"
    return "dead"


def crossings(heartbeat: str | None, old: str | None, new: str | None) -> list[tuple[str, str]]:
    """With no new heartbeat, the thresholds crossed going from health ``old`` to
    ``new``: ``(health, when)`` each, ``when`` the heartbeat plus 2 or 10 minutes,
    written as the server writes its times."""
    beat = parse_time(heartbeat)
    if beat is None or old not in HEALTHS or new not in HEALTHS:
        return []
    found = []
    for state, delta in (("stale", STALE_AFTER), ("dead", DEAD_AFTER)):
        if HEALTHS.index(old) < HEALTHS.index(state) <= HEALTHS.index(new):
            found.append((state, (beat + delta).isoformat()))
    return found


def next_crossing(heartbeat: str | None, now: dt.datetime) -> float | None:
    """Seconds from ``now`` until this heartbeat's health next changes with time alone
    (None: it never will: no heartbeat, or dead already)."""
    beat = parse_time(heartbeat)
    if beat is None:
        return None
    age = (_aligned(now, beat) - beat).total_seconds()
    for threshold in (STALE_AFTER.total_seconds(), DEAD_AFTER.total_seconds()):
        if age < threshold:
            return threshold - age
    return None
