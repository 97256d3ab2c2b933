"""How tasks are shown: the ``tasks`` command's rows and one task's history, and the task
section of ``stats``. Separate from the arithmetic (:mod:`.taskstats`), as
:mod:`.stats_format` is from :mod:`.stats`; every length of time goes through
:func:`durations.duration`, so a task's age reads as a response time does.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..durations import duration
from ..server import TASK_STATUSES as STATUSES
from .logread import EVERYTHING, Message, Window
from .stats_format import pairs, table, when
from .tasklog import OPEN, TaskHistory, Transition, actor
from .taskstats import Group, Rate, Spread, StatusTime, TaskFigures


@dataclass
class TaskRow:
    """One task as ``tasks`` lists it."""

    history: TaskHistory
    status: str
    assignee: str | None
    since: dt.datetime | None  # entered its current status
    age_seconds: float | None  # in the current status, up to now
    reworks: int
    last: Transition | None

    def as_dict(self) -> dict[str, Any]:
        row = self.history.row
        last = self.last
        return {
            "task": self.history.task,
            "room": self.history.room,
            "status": self.status,
            "assigned_to": self.assignee,
            "project": row.get("project"),
            "role_hat": row.get("role_hat"),
            "title": row.get("title"),
            "in_status_since": None if self.since is None else self.since.isoformat(),
            "age_in_status_seconds": self.age_seconds,
            "reworks": self.reworks,
            "last_transition": None
            if last is None
            else {"from": last.before, "to": last.after, "at": last.at, "gap": last.gap},
            "gaps": self.history.gaps,
        }


def task_row(history: TaskHistory, now: dt.datetime) -> TaskRow:
    changes = history.changes()
    last = changes[-1] if changes else None
    since = last.when if last is not None else None
    assignee = history.row.get("assigned_to")
    return TaskRow(
        history,
        history.status,
        assignee if isinstance(assignee, str) and assignee else None,
        since,
        None if since is None else (now - since).total_seconds(),
        sum(1 for t in changes if t.rework),
        last,
    )


@dataclass(frozen=True)
class TaskFilter:
    statuses: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    projects: frozenset[str] = frozenset()
    window: Window = EVERYTHING
    stale_seconds: float | None = None

    def admits(self, row: TaskRow) -> bool:
        if self.statuses and row.status not in self.statuses:
            return False
        if self.agents and row.assignee not in self.agents:
            return False
        if self.projects and row.history.row.get("project") not in self.projects:
            return False
        if self.window.bounded and not any(
            self.window.admits(t.when) for t in row.history.transitions
        ):
            return False
        if self.stale_seconds is not None:
            return row.age_seconds is not None and row.age_seconds > self.stale_seconds
        return True


def _step(t: Transition | None) -> str:
    if t is None:
        return "-"
    text = "new → " + t.after if t.before is None else f"{t.before} → {t.after}"
    return f"{text} {when(t.at)}" + (" (gap)" if t.gap else "")


def list_lines(rows: Sequence[TaskRow], rooms: bool) -> Iterator[str]:
    headers = ("task", *(("room",) if rooms else ()), "status", "assignee", "in status")
    yield from table(
        (*headers, "reworks", "last transition", "title"),
        [
            (
                r.history.task,
                *((r.history.room or "-",) if rooms else ()),
                r.status,
                r.assignee or "-",
                duration(r.age_seconds),
                r.reworks,
                _step(r.last),
                _short(r.history.row.get("title")),
            )
            for r in rows
        ],
    )


def _short(value: object, limit: int = 50) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_STATUS_MESSAGE = re.compile(r"^\[(?P<task>[^\]]+)\] Status: (?P<a>\w+) → (?P<b>\w+)")
# The server's other task messages, each sent by whoever made the move it names.
_TOOL_MESSAGES = (
    (re.compile(r"^\[[^\]]+\] TASK ASSIGNED: "), (None, "assigned")),
    (re.compile(r"^\[REVIEW\] "), ("in_progress", "review")),
    (re.compile(r"^\[REWORK\] "), ("review", "in_progress")),
    (re.compile(r"^\[APPROVED\] "), ("review", "completed")),
    (re.compile(r"^\[VERIFIED\] "), ("completed", "verified")),
    (re.compile(r"^\[VERIFICATION FAILED\] "), ("completed", "in_progress")),
)


def _move_of(content: str) -> tuple[str | None, str] | None:
    found = _STATUS_MESSAGE.match(content)
    if found:
        return found["a"], found["b"]
    for pattern, move in _TOOL_MESSAGES:
        if pattern.match(content):
            return move
    return None


def who_did(t: Transition, messages: Sequence[Message]) -> str | None:
    """Who made a transition: the sender of the server's message about that move at that
    moment (``[TASK] Status: a → b``, ``TASK ASSIGNED``, ``[REVIEW]``, ``[REWORK]``,
    ``[APPROVED]``, ``[VERIFIED]``, ``[VERIFICATION FAILED]``) if it is logged, else what
    the row tells (:func:`tasklog.actor`)."""
    for m in messages:
        content = m.get("content")
        if not isinstance(content, str) or m.get("is_cc") == 1 or m.get("timestamp") != t.at:
            continue
        move = _move_of(content)
        if move is not None and move[1] == t.after and move[0] in (None, t.before):
            sender = m.get("from_agent")
            return sender if isinstance(sender, str) else None
    return actor(t)


def history_record(history: TaskHistory, messages: Sequence[Message]) -> dict[str, Any]:
    return {
        "task": history.task,
        "room": history.room,
        "status": history.status,
        "row": history.row,
        "transitions": [
            {
                "from": t.before,
                "to": t.after,
                "at": t.at,
                "by": who_did(t, messages),
                "gap": t.gap,
                "snapshot": t.snapshot,
            }
            for t in history.transitions
        ],
        "messages": list(messages),
    }


def history_lines(history: TaskHistory, messages: Sequence[Message]) -> Iterator[str]:
    row = history.row
    room = f" [{history.room}]" if history.room else ""
    yield f"{history.task}{room}: {row.get('title') or ''}"
    yield from pairs(
        [
            ("status", history.status),
            ("assigned to", row.get("assigned_to") or "-"),
            ("project", row.get("project") or "-"),
            ("role hat", row.get("role_hat") or "-"),
            ("created by", row.get("created_by") or "-"),
        ]
    )
    yield ""
    yield "Transitions"
    yield from table(
        ("at", "from", "", "to", "by", "note"),
        [
            (
                when(t.at),
                t.before or "new",
                "→",
                t.after,
                who_did(t, messages) or "-",
                ", ".join(
                    n
                    for n, on in (
                        ("gap: states missed, time is when seen", t.gap),
                        ("snapshot", t.snapshot),
                        ("edit", not t.is_change),
                        ("rework", t.rework),
                    )
                    if on
                ),
            )
            for t in history.transitions
        ],
    )
    yield ""
    yield f"Messages ({len(messages)})"
    yield from table(
        ("at", "id", "from", "", "to", "content"),
        [
            (
                when(m.get("timestamp")),
                f"#{m.get('id')}",
                m.get("from_agent"),
                "→",
                m.get("to_agent"),
                _short(m.get("content"), 70),
            )
            for m in messages
        ],
    )


# The task section of stats


def rate(r: Rate) -> str:
    if r.value is None:
        return "n/a (no tasks)"
    return f"{r.value:.1%} of {r.n}"


def spread(s: Spread) -> str:
    if s.n == 0:
        return "n/a (no tasks)"
    return f"p50 {duration(s.p50)}, p90 {duration(s.p90)} ({s.n} tasks)"


def _status_time(s: StatusTime) -> tuple[object, ...]:
    return (s.n, duration(s.total_seconds) if s.n else "n/a", duration(s.p50), duration(s.p90))


def _groups(name: str, groups: Iterable[Group]) -> Iterator[str]:
    yield from table(
        (name, "created", "completed", "failed", "open", "completion", "first pass", "cycle p50"),
        [
            (
                g.key or "-",
                g.created,
                g.completed,
                g.failed,
                g.open,
                rate(g.completion_rate),
                rate(g.first_pass_yield),
                duration(g.cycle_assigned_to_completed.p50)
                if g.cycle_assigned_to_completed.n
                else "n/a",
            )
            for g in groups
        ],
    )


def stats_lines(f: TaskFigures) -> Iterator[str]:
    """The task figures as the text of ``stats`` (after its other sections)."""
    yield f"Task lifecycle (recorded task changes, open work up to {when(f.end)})"
    yield from pairs(
        [
            ("created", f.created),
            ("completed", f"{f.completed} (verified {f.verified})"),
            ("failed", f.failed),
            ("open", f.open),
            ("completion rate", rate(f.completion_rate)),
            ("failure rate", rate(f.failure_rate)),
            ("still open", rate(f.open_share)),
            ("first-pass yield", rate(f.first_pass_yield)),
            (
                "reworks",
                f"{f.reworks} in {f.reworked_tasks} tasks (review {f.review_rejections},"
                f" verification {f.verification_rejections})",
            ),
            ("cycle assigned → completed", spread(f.cycle_assigned_to_completed)),
            ("cycle completed → verified", spread(f.cycle_completed_to_verified)),
            ("tasks with a gap", f.gaps),
        ]
    )
    yield ""
    yield "Time in each status"
    yield from table(
        ("status", "tasks", "total", "p50", "p90"),
        [(s, *_status_time(t)) for s, t in f.time_in_status.items()],
    )
    yield ""
    yield "Open tasks"
    yield from table(("status", "tasks"), list(f.open_by_status.items()))
    yield ""
    yield from table(("age since created", "tasks"), list(f.wip_by_age.items()))
    yield ""
    yield "Tasks completed per day"
    yield from table(("day", "completed"), list(f.throughput_per_day.items()))
    for title, name, groups in (
        ("Tasks per agent (assignee)", "agent", f.per_agent),
        ("Tasks per role hat", "role hat", f.per_role_hat),
        ("Tasks per project", "project", f.per_project),
        ("Tasks per room", "room", f.per_room),
    ):
        if groups or name != "room":
            yield ""
            yield title
            yield from _groups(name, groups)


def open_board(histories: Iterable[TaskHistory]) -> dict[str, list[TaskHistory]]:
    """The open tasks by status, in the board's column order."""
    board: dict[str, list[TaskHistory]] = {s: [] for s in STATUSES if s in OPEN}
    for h in histories:
        if h.status in board:
            board[h.status].append(h)
    return board
