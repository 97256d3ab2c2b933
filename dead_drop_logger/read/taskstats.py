"""Task analytics: what happened to the tasks, from their recorded histories.

Why a module of its own: the figures come from ``tasks-*.json`` (:mod:`.tasklog`), not
from messages, and each one needs a rule that can be stated and checked by hand;
docs/stats.md ("Tasks") states them, and this docstring is their short form:

- The *end* is ``--until`` when given, else now (a clock the caller passes in): the
  state of a task is its state at the end; transitions after it are ignored.
- *Created*: the tasks whose ``created_at`` is in the window. Each is, at the end,
  *completed* (status completed or verified: verified ones are counted in completed
  and again in *verified*), *failed*, or *open* (pending, assigned, in_progress,
  review). Completion rate = completed / created, failure rate = failed / created;
  the open share is stated apart and is never a failure.
- *First-pass yield*: of the created tasks completed at the end, those that never had
  a rework.
- A *rework* is review -> in_progress (rejected in review) or completed ->
  in_progress (rejected in verification: a *verification rejection*); counted per
  transition whose time is in the window.
- *Cycle time* assigned -> completed: from the first time the task entered
  ``assigned`` (a retry after ``failed`` does not restart the clock) to the last time
  it entered ``completed`` (so a rejected verification's rework is in it), for tasks
  completed at the end whose last completion is in the window. completed -> verified:
  from that last completion to ``verified``, for tasks verified in the window.
- *Time in status*: each stretch between two changes, clipped to the window; the
  current status counts up to the end; ``verified`` is final and not timed.
- *Work in progress by age*: the tasks open at the end, by time since created.
- *Throughput*: the completions counted in the cycle time, per day (days without one
  are 0), from the first to the last day with a task event in the window.
- A *gap* line (states the logger missed): the states it names (``via``) are entered
  at the line's time, so they count as transitions (reworks too) but with no time spent
  in them; a gap that names nothing counts what was seen. ``gaps`` says how many tasks
  had one, since their times are less exact.
- Every figure carries ``n``, the number of tasks it rests on; a rate or a time over
  no task is None (n/a), never 0.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..server import TASK_STATUSES as STATUSES
from .logread import Reader, Window
from .tasklog import (
    DONE,
    OPEN,
    VERIFICATION_REJECTED,
    Room,
    TaskHistory,
    Transition,
    histories,
    task_lines,
    task_reader,
)

TIMED = tuple(s for s in STATUSES if s != "verified")
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<1d", 86400.0),
    ("1-3d", 3 * 86400.0),
    ("3-7d", 7 * 86400.0),
    ("7-14d", 14 * 86400.0),
    (">=14d", math.inf),
)
NONE = "(none)"  # the group of tasks without an assignee, role hat or project


def p50(values: Sequence[float]) -> float | None:
    """The median (mean of the two middle values when their number is even)."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile by nearest rank (as the response times': the smallest value
    with at least 90% of the values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass
class Rate:
    """``value`` of ``n`` tasks; None when ``n`` is 0."""

    value: float | None
    n: int

    @classmethod
    def of(cls, part: int, whole: int) -> Rate:
        return cls(part / whole if whole else None, whole)


@dataclass
class Spread:
    """Median and p90 in seconds over ``n`` tasks (None when there are none)."""

    p50: float | None
    p90: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(p50(values), p90(values), len(values))


@dataclass
class StatusTime:
    """Time spent in one status: ``n`` tasks were in it inside the window."""

    n: int
    total_seconds: float
    p50: float | None
    p90: float | None


@dataclass
class Group:
    """The figures of the tasks of one agent, role hat, project or room."""

    key: str | None
    created: int
    completed: int
    failed: int
    open: int
    completion_rate: Rate
    failure_rate: Rate
    first_pass_yield: Rate
    cycle_assigned_to_completed: Spread


@dataclass(slots=True)
class CyclePoint:
    """One task's assigned -> completed time, for the report's control chart."""

    task: str
    room: Room
    completed: str
    seconds: float


@dataclass(slots=True)
class Card:
    """An open task on the report's board."""

    task: str
    room: Room
    status: str
    title: str
    assignee: str | None
    in_status_seconds: float | None


@dataclass
class TaskFigures:
    end: str
    tasks: int  # every task with a recorded history
    created: int
    completed: int
    verified: int
    failed: int
    open: int
    completion_rate: Rate
    failure_rate: Rate
    open_share: Rate
    first_pass_yield: Rate
    reworks: int
    review_rejections: int
    verification_rejections: int
    reworked_tasks: int
    cycle_assigned_to_completed: Spread
    cycle_completed_to_verified: Spread
    time_in_status: dict[str, StatusTime]
    open_by_status: dict[str, int]
    wip_by_age: dict[str, int]
    throughput_per_day: dict[str, int]
    per_agent: list[Group] = field(default_factory=list)
    per_role_hat: list[Group] = field(default_factory=list)
    per_project: list[Group] = field(default_factory=list)
    per_room: list[Group] = field(default_factory=list)
    gaps: int = 0  # tasks with a line marked gap
    # for the report's charts, not in stats --json (one entry per task)
    cycles: list[CyclePoint] = field(default_factory=list)
    board: list[Card] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        del found["cycles"], found["board"]
        return found


@dataclass
class _Task:
    """One task as of the end: what the figures need of it."""

    history: TaskHistory
    changes: list[Transition]  # up to the end
    status: str
    row: dict[str, Any]
    created: dt.datetime | None
    first_assigned: dt.datetime | None
    last_completed: dt.datetime | None
    verified_at: dt.datetime | None
    reworks: list[Transition]  # up to the end

    @property
    def reworked(self) -> bool:
        return bool(self.reworks)

    @property
    def room(self) -> Room:
        return self.history.room


def _as_of(history: TaskHistory, end: dt.datetime) -> _Task | None:
    """The task's state at ``end``; None if it did not exist yet."""
    kept = [t for t in history.transitions if t.when is None or t.when < end]
    if not kept:
        return None
    changes = [t for t in kept if t.is_change]
    status = changes[-1].after if changes else kept[-1].after
    first_assigned = last_completed = verified_at = None
    for t in changes:
        if t.after == "assigned" and first_assigned is None:
            first_assigned = t.when
        if t.after == "completed":
            last_completed = t.when
        if t.after == "verified":
            verified_at = t.when
    created = history.created
    return _Task(
        history,
        changes,
        status,
        kept[-1].row or history.row,
        created if created is None or created < end else None,
        first_assigned,
        last_completed if status in DONE else None,
        verified_at if status == "verified" else None,
        [t for t in changes if t.rework],
    )


def _seconds(start: dt.datetime | None, stop: dt.datetime | None) -> float | None:
    if start is None or stop is None:
        return None
    return (stop - start).total_seconds()


def _in(window: Window, stamp: dt.datetime | None) -> bool:
    # the common case first, no window (its fields, not ``bounded``: a call less in a
    # test made 170,000 times for 10,000 tasks)
    return (window.since is None and window.until is None) or window.admits(stamp)


def _group(key: str | None, tasks: list[_Task], window: Window) -> Group:
    cohort = [t for t in tasks if _in(window, t.created)]
    done = [t for t in cohort if t.status in DONE]
    failed = sum(1 for t in cohort if t.status == "failed")
    cycles = _cycles(tasks, window)
    return Group(
        key,
        len(cohort),
        len(done),
        failed,
        len(cohort) - len(done) - failed,
        Rate.of(len(done), len(cohort)),
        Rate.of(failed, len(cohort)),
        Rate.of(sum(1 for t in done if not t.reworked), len(done)),
        Spread.of(cycles),
    )


def _cycles(tasks: Iterable[_Task], window: Window) -> list[float]:
    found = []
    for t in tasks:
        if t.last_completed is not None and _in(window, t.last_completed):
            span = _seconds(t.first_assigned, t.last_completed)
            if span is not None:
                found.append(span)
    return found


def _status_times(
    tasks: Iterable[_Task], since: dt.datetime | None, end: dt.datetime
) -> dict[str, StatusTime]:
    spent: dict[str, dict[int, float]] = {s: defaultdict(float) for s in TIMED}
    for index, t in enumerate(tasks):
        dated = [c for c in t.changes if c.when is not None]
        for here, nxt in zip(dated, [*dated[1:], None], strict=True):
            if here.after not in spent:
                continue
            start = here.when
            stop = end if nxt is None else nxt.when
            assert start is not None and stop is not None
            if since is not None and start < since:
                start = since
            if stop > start:
                spent[here.after][index] += (stop - start).total_seconds()
    return {
        status: StatusTime(len(per), sum(per.values()), p50(times), p90(times))
        for status, per in spent.items()
        for times in [list(per.values())]
    }


def _by(tasks: list[_Task], key: Callable[[_Task], str | None], window: Window) -> list[Group]:
    grouped: dict[str | None, list[_Task]] = defaultdict(list)
    for t in tasks:
        grouped[key(t)].append(t)
    rows = [_group(k, members, window) for k, members in grouped.items()]
    rows.sort(key=lambda g: (-g.created, -g.completed, str(g.key)))
    return rows


def _name(value: object) -> str:
    return value if isinstance(value, str) and value else NONE


def compute(
    found: Iterable[TaskHistory], window: Window, now: dt.datetime, rooms: bool = False
) -> TaskFigures:
    """Every task figure over ``found`` for ``window``; open work is measured up to
    ``window.until`` if set, else ``now`` (naive local time)."""
    end = window.until or now
    tasks = [t for h in found if (t := _as_of(h, end)) is not None]
    overall = _group(None, tasks, window)
    verified = sum(1 for t in tasks if _in(window, t.created) and t.status == "verified")
    reworks = Counter((c.before, c.after) for t in tasks for c in t.reworks if _in(window, c.when))
    reworked = sum(1 for t in tasks if any(_in(window, c.when) for c in t.reworks))
    verify_spans = [
        s
        for t in tasks
        if t.verified_at is not None and _in(window, t.verified_at)
        if (s := _seconds(t.last_completed, t.verified_at)) is not None
    ]
    open_tasks = [t for t in tasks if t.status in OPEN]
    wip = dict.fromkeys((label for label, _ in AGE_BUCKETS), 0)
    for t in open_tasks:
        age = _seconds(t.created, end)
        if age is None:
            continue
        for label, limit in AGE_BUCKETS:
            if age < limit:
                wip[label] += 1
                break
    return TaskFigures(
        end=end.isoformat(),
        tasks=len(tasks),
        created=overall.created,
        completed=overall.completed,
        verified=verified,
        failed=overall.failed,
        open=overall.open,
        completion_rate=overall.completion_rate,
        failure_rate=overall.failure_rate,
        open_share=Rate.of(overall.open, overall.created),
        first_pass_yield=overall.first_pass_yield,
        reworks=sum(reworks.values()),
        review_rejections=reworks[("review", "in_progress")],
        verification_rejections=reworks[VERIFICATION_REJECTED],
        reworked_tasks=reworked,
        cycle_assigned_to_completed=overall.cycle_assigned_to_completed,
        cycle_completed_to_verified=Spread.of(verify_spans),
        time_in_status=_status_times(tasks, window.since, end),
        open_by_status={
            s: sum(1 for t in open_tasks if t.status == s) for s in STATUSES if s in OPEN
        },
        wip_by_age=wip,
        throughput_per_day=_throughput(tasks, window),
        per_agent=_by(tasks, lambda t: _name(t.row.get("assigned_to")), window),
        per_role_hat=_by(tasks, lambda t: _name(t.row.get("role_hat")), window),
        per_project=_by(tasks, lambda t: _name(t.row.get("project")), window),
        per_room=_by(tasks, lambda t: t.room, window) if rooms else [],
        gaps=sum(1 for t in tasks if t.history.gaps),
        cycles=sorted(
            (
                CyclePoint(t.history.task, t.room, t.last_completed.isoformat(), span)
                for t in tasks
                if t.last_completed is not None and _in(window, t.last_completed)
                if (span := _seconds(t.first_assigned, t.last_completed)) is not None
            ),
            key=lambda p: (p.completed, p.task),
        ),
        board=[_card(t, end) for t in open_tasks],
    )


def _card(t: _Task, end: dt.datetime) -> Card:
    title, assignee = t.row.get("title"), t.row.get("assigned_to")
    entered = t.changes[-1].when if t.changes else None
    return Card(
        t.history.task,
        t.room,
        t.status,
        title if isinstance(title, str) else "",
        assignee if isinstance(assignee, str) and assignee else None,
        _seconds(entered, end),
    )


def _throughput(tasks: list[_Task], window: Window) -> dict[str, int]:
    stamps = [
        stamp
        for t in tasks
        for stamp in (t.created, *(c.when for c in t.changes))
        if stamp is not None and _in(window, stamp)
    ]
    if not stamps:
        return {}
    counts = Counter(
        t.last_completed.date()
        for t in tasks
        if t.last_completed is not None and t.first_assigned is not None
        if _in(window, t.last_completed)
    )
    first, last = min(stamps).date(), max(stamps).date()
    out: dict[str, int] = {}
    day = first
    while day <= last:
        out[day.isoformat()] = counts.get(day, 0)
        day += dt.timedelta(days=1)
    return out


def read_figures(reader: Reader, now: dt.datetime) -> tuple[TaskFigures | None, Reader]:
    """The task figures of the directories ``reader`` reads, for its window (None when
    no task line is logged there), and the reader of the task files (its skipped files
    and lines, for the warnings)."""
    tasks = task_reader(reader)
    figures, *_ = figures_of(tasks, reader.window, now, reader.rooms)
    return figures, tasks


Problems = tuple[dict[Path, str], dict[Path, str], Counter[Path]]


def figures_of(
    tasks: Reader, window: Window, now: dt.datetime, rooms: bool
) -> tuple[TaskFigures | None, Problems]:
    """The figures of the task files ``tasks`` reads (None without a task line), and
    what that reader skipped (unreadable and damaged files, corrupt lines), returned
    apart so that a caller in another process can hand them back."""
    with _no_cyclic_gc():
        found = list(histories(task_lines(tasks)).values())
        figures = compute(found, window, now, rooms=rooms) if found else None
    return figures, (tasks.unreadable, tasks.damaged, tasks.corrupt_in)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: building the histories makes a few objects a
    line (10,000 tasks: about 300,000, none in a cycle, each freed by its count), and the
    collector's passes over the growing heap were 35-45 % of the figures' time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
