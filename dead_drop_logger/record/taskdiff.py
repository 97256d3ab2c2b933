"""The server's task state machine and its transition messages: what a task line's
``gap``/``via`` are made of (docs/tasks.md). (An agent line's health is the server's
``who`` rule, in :mod:`..server`, the one place every reader and the recorder take it.)

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
