"""The one reader of the task and agent day files, and each task's history built from them.

Why one module: ``tasks-*.json`` and ``agents-*.json`` (format in docs/stats.md, "Tasks")
are read by ``tasks``, ``stats``, ``report`` and ``top``; they must agree on what a line
means. Files are found and read exactly as messages are (:mod:`.logread`: rooms, ``.gz``,
size parts, damaged or unreadable files named, corrupt lines counted), only under their
own prefix, so a message reader never sees them and these readers never see messages.

A task's history is every line of its room and id in file order. A line says the status
before (``from``, null the first time the logger saw the task) and after (``to``), and,
when the logger missed states between two reads, ``gap`` and the missed states it could
tell (``via``): the states in ``via`` are entered at the line's time, since nothing says
when. A line whose ``from`` and ``to`` are equal is an edit of the row (``result``,
``assigned_to``), not a transition.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..logdir import layout
from ..server import TASK_TRANSITIONS
from .logread import EVERYTHING, LogDir, Reader, parse_line

Room = str | None

OPEN = frozenset({"pending", "assigned", "in_progress", "review"})
DONE = frozenset({"completed", "verified"})
TRANSITIONS = TASK_TRANSITIONS  # the server's state machine, with verification
REWORKS = frozenset({("review", "in_progress"), ("completed", "in_progress")})
VERIFICATION_REJECTED = ("completed", "in_progress")


def parse_time(value: object) -> dt.datetime | None:
    """A stored time (the server's naive local ISO time) as naive wall time; None if
    missing or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is None else stamp.replace(tzinfo=None)


class TaskLine:
    """One line of ``tasks-*.json``: a change of one task row seen by the logger.

    The row is most of a line's bytes and the figures need few rows (a task's last), so
    the fast path keeps it as its stored bytes and parses it when first asked for."""

    __slots__ = ("_raw", "_row", "after", "at", "before", "gap", "room", "snapshot", "task", "via")

    def __init__(
        self,
        room: Room,
        task: str,
        before: str | None,  # the line's ``from``
        after: str,  # its ``to``
        at: str | None,
        row: dict[str, Any] | None = None,
        via: tuple[str, ...] = (),
        gap: bool = False,
        snapshot: bool = False,
        raw_row: bytes | None = None,
    ) -> None:
        self.room, self.task, self.before, self.after, self.at = room, task, before, after, at
        self.via, self.gap, self.snapshot = via, gap, snapshot
        self._row, self._raw = row, raw_row

    @property
    def row(self) -> dict[str, Any]:
        if self._row is None:
            parsed = parse_line(self._raw) if self._raw is not None else None
            self._row = parsed if parsed is not None else {}
        return self._row

    @property
    def when(self) -> dt.datetime | None:
        return parse_time(self.at)


@dataclass(frozen=True, slots=True)
class AgentLine:
    """One line of ``agents-*.json``: an agent registered, left, changed its status text
    or its health."""

    room: Room
    agent: str
    event: str
    at: str | None
    health: str | None
    status: str | None
    before: Any  # the line's ``from``
    row: dict[str, Any]

    @property
    def when(self) -> dt.datetime | None:
        return parse_time(self.at)


def kind_reader(reader: Reader, kind: str) -> Reader:
    """A reader of the same directories (rooms) for another kind of day file; every day
    file is read (a task's history starts before any window), its problems noted in the
    returned reader as in a message reader."""
    return Reader(list(reader.sources), EVERYTHING, reader.utc, reader.block, kind)


def task_reader(reader: Reader) -> Reader:
    return kind_reader(reader, layout.TASKS)


def agent_reader(reader: Reader) -> Reader:
    return kind_reader(reader, layout.AGENTS)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# A line as the logger writes it: keys in the spec's order, the row last. Names with an
# escape, or any other shape, take the exact path (json.loads of the whole line).
_FAST = re.compile(
    rb'\{"task":"([^"\\]*)","from":(?:null|"([^"\\]*)"),"to":"([^"\\]*)"'
    rb'(?:,"via":(\[[^\]]*\]))?(,"gap":true)?,"at":(?:null|"([^"\\]*)")(,"snapshot":true)?'
    rb',"row":(\{.*\})\}\n\Z'
)


def task_lines(reader: Reader) -> Iterator[TaskLine]:
    """Every task line of the reader's files, in file order; a line that is not a task
    line (not JSON, no ``task`` or ``to``) is counted as corrupt. Lines of the logger's
    own shape are cut by one regular expression and their row parsed only when used
    (a row damaged inside reads as empty); any other is parsed whole."""
    fast = _FAST.match
    for chunk in reader.chunks():
        room = chunk.source.room
        for raw in chunk.lines():
            found = fast(raw)
            if found is not None:
                task, before, after, via, gap, at, snapshot, row = found.groups()
                try:
                    steps = () if via is None else _via(via.decode())
                    if steps is not None:
                        yield TaskLine(
                            room, task.decode(), None if before is None else before.decode(),
                            after.decode(), None if at is None else at.decode(), None, steps,
                            gap is not None, snapshot is not None, row,
                        )  # fmt: skip
                        continue
                except UnicodeDecodeError:
                    pass
            line = _exact(room, raw)
            if line is None:
                reader.skip(chunk.file)
            else:
                yield line


def _via(text: str) -> tuple[str, ...] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def _exact(room: Room, raw: bytes) -> TaskLine | None:
    data = parse_line(raw)
    if data is None:
        return None
    task, after, row = data.get("task"), data.get("to"), data.get("row")
    before = data.get("from")
    via = data.get("via") or []
    if (
        not isinstance(task, str)
        or not isinstance(after, str)
        or not isinstance(row, dict)
        or (before is not None and not isinstance(before, str))
        or not isinstance(via, list)
        or not all(isinstance(v, str) for v in via)
    ):
        return None
    return TaskLine(
        room,
        task,
        before,
        after,
        _text(data.get("at")),
        row,
        tuple(via),
        data.get("gap") is True,
        data.get("snapshot") is True,
    )


def agent_lines(reader: Reader) -> Iterator[AgentLine]:
    """Every agent line of the reader's files, in file order (corrupt ones counted)."""
    for entry in reader.parse(reader.lines()):
        data = entry.message
        agent, event, row = data.get("agent"), data.get("event"), data.get("row")
        if not isinstance(agent, str) or not isinstance(event, str):
            reader.skip(entry.line.file)
            continue
        yield AgentLine(
            entry.line.source.room,
            agent,
            event,
            _text(data.get("at")),
            _text(data.get("health")),
            _text(data.get("status")),
            data.get("from"),
            row if isinstance(row, dict) else {},
        )


def read_tasks(sources: Iterable[LogDir], utc: bool = False) -> Iterator[TaskLine]:
    """Task lines of some directories (a shortcut for tests and tools)."""
    return task_lines(Reader(list(sources), EVERYTHING, utc, kind=layout.TASKS))


def read_agents(sources: Iterable[LogDir], utc: bool = False) -> Iterator[AgentLine]:
    """Agent lines of some directories (a shortcut for tests and tools)."""
    return agent_lines(Reader(list(sources), EVERYTHING, utc, kind=layout.AGENTS))


@dataclass(slots=True)
class Transition:
    """One change of a task's status (``before`` None: the task appeared), or an edit of
    its row (``before == after``). ``gap``: the logger missed states around it, so its
    time is when the logger saw the result, not when it happened."""

    before: str | None
    after: str
    at: str | None
    when: dt.datetime | None
    gap: bool = False
    snapshot: bool = False
    line: TaskLine | None = field(default=None, compare=False, repr=False)

    @property
    def row(self) -> dict[str, Any]:
        """The row as it was after this transition (parsed when first asked for)."""
        return {} if self.line is None else self.line.row

    @property
    def is_change(self) -> bool:
        return self.before != self.after

    @property
    def rework(self) -> bool:
        return (self.before, self.after) in REWORKS


@dataclass
class TaskHistory:
    """A task of one room: every transition seen, in order, and its latest row."""

    room: Room
    task: str
    transitions: list[Transition] = field(default_factory=list)
    last: TaskLine | None = None  # the latest line
    gaps: int = 0  # lines marked ``gap``

    @property
    def row(self) -> dict[str, Any]:
        """The latest row."""
        return {} if self.last is None else self.last.row

    @property
    def status(self) -> str:
        return self.transitions[-1].after if self.transitions else "pending"

    @property
    def created(self) -> dt.datetime | None:
        """The row's ``created_at`` (the server's time of create_task), else the time of
        the first line."""
        stamp = parse_time(self.row.get("created_at"))
        if stamp is None and self.transitions:
            return self.transitions[0].when
        return stamp

    def changes(self) -> list[Transition]:
        """The status changes (the first appearance included), edits left out."""
        return [t for t in self.transitions if t.is_change]

    def add(self, line: TaskLine) -> None:
        self.last = line
        if line.gap:
            self.gaps += 1
        before = line.before
        if before is None and self.transitions:
            before = self.status  # seen again (a snapshot after following it):
            if before == line.after and not line.via:  # the same status is an edit
                self.transitions.append(
                    Transition(before, line.after, line.at, line.when, False, True, line)
                )
                return
        when = line.when
        if not line.via:  # the common case: one step
            gap = line.gap or (
                before is not None
                and before != line.after
                and (before, line.after) not in TRANSITIONS
            )
            self.transitions.append(
                Transition(before, line.after, line.at, when, gap, line.snapshot, line)
            )
            return
        path: list[str | None] = [before, *line.via, line.after]
        gap = line.gap or (
            before is not None
            and before != line.after
            and any((a, b) not in TRANSITIONS for a, b in itertools.pairwise(path))
        )
        for step_from, step_to in itertools.pairwise(path):
            assert step_to is not None  # only the first state can be None
            self.transitions.append(
                Transition(step_from, step_to, line.at, when, gap, line.snapshot, line)
            )


def histories(lines: Iterable[TaskLine]) -> dict[tuple[Room, str], TaskHistory]:
    """Each task's history, keyed by (room, task id), in the order tasks first appear."""
    found: dict[tuple[Room, str], TaskHistory] = {}
    for line in lines:
        key = (line.room, line.task)
        history = found.get(key)
        if history is None:
            history = found[key] = TaskHistory(line.room, line.task)
        history.add(line)
    return found


def actor(transition: Transition) -> str | None:
    """Who made a transition, as far as the row tells (the ``[TASK] Status: a → b``
    message's sender says it better when it is logged): the creator for a new task,
    the assignee for what the assignee does, the approver or verifier when recorded."""
    row = transition.row
    after, before = transition.after, transition.before

    def name(key: str) -> str | None:
        return _text(row.get(key)) or None

    if before is None:
        return name("created_by")
    if after in ("in_progress", "review", "failed") and before in ("assigned", "in_progress"):
        return name("assigned_to")  # start, submit for review, fail: the assignee's moves
    if after == "verified":
        return name("verified_by")
    if after == "completed":
        return name("approved_by")
    return None


def merge_problems(into: Reader, other: Reader) -> None:
    """Add what ``other`` skipped (unreadable, damaged files, corrupt lines) to ``into``,
    so a command warns of both kinds of file at once and exits 2 as for either."""
    into.unreadable.update(other.unreadable)
    into.damaged.update(other.damaged)
    into.corrupt_in.update(other.corrupt_in)
