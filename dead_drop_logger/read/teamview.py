"""The team at a glance: one frame of ``top`` (and the live fields of ``agents --json``).

Why it is split this way: a frame is plain data built by one pure function from what
the database says now (its ``agents`` rows and open ``tasks`` rows, per room), what
the message logs say (:class:`LogFacts`) and the time, so every figure can be checked
without a terminal and with any clock; :func:`render` then turns a frame into text
lines cut to the terminal's width. The live loop (``control/top.py``) only decides
when to build a frame again.

What each column means:
- health: the server's own rule (:mod:`..health`): healthy while the heartbeat
  (``heartbeat_at``) is under 2 minutes old, stale under 10, dead after; "unknown"
  for an agent that never sent one (never shown as running);
- status: the agent's own words (``set_status``);
- task: the open task assigned to it that changed last (pending, assigned,
  in_progress, review or failed: every status but completed and verified is open);
- last message: the last one it sent (broadcasts too, CC copies are the server's),
  how long ago and to whom, from the logs of the last 24 hours;
- unanswered: the direct messages to it it has not answered, by the response rule of
  ``stats`` (:mod:`.responses`: its next direct message to the asker, or a reply to
  that message, within 24 hours), and how long the oldest has waited.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ..server import DEAD, HEALTHY, STALE, UNKNOWN, age, health, local, wall_time
from .logread import Chunk, Message, Reader, parse_line, timestamp_of
from .responses import DAY_SECONDS, ResponseTracker

Row = dict[str, object]
Room = str | None
OPEN_ORDER = ("pending", "assigned", "in_progress", "review", "failed")
"""Open task statuses in the order work flows (any other open status follows)."""
_EPOCH = dt.datetime(1970, 1, 1)


def _seconds(stamp: dt.datetime) -> float:
    return (stamp - _EPOCH).total_seconds()


@dataclass
class LogFacts:
    """What the message logs say about each agent: its last message and the direct
    messages waiting for its answer. Fed chunk by chunk, in log order, so a live view
    reads only what was appended since its last look."""

    responses: ResponseTracker = field(default_factory=ResponseTracker)
    last: dict[tuple[Room, str], tuple[dt.datetime, str | None]] = field(default_factory=dict)

    def feed(self, chunks: Iterable[Chunk], reader: Reader) -> int:
        """Take in every message of ``chunks``; returns how many."""
        count = 0
        for chunk in chunks:
            room = chunk.source.room
            for raw in chunk.lines():
                message = parse_line(raw)
                if message is None:
                    reader.skip(chunk.file)
                    continue
                self.add(message, room)
                count += 1
        return count

    def add(self, message: Message, room: Room = None) -> None:
        if message.get("is_cc") in (1, True):
            return
        sender, to = message.get("from_agent"), message.get("to_agent")
        stamp = timestamp_of(message)
        if not isinstance(sender, str) or stamp is None:
            return
        recipient = to if isinstance(to, str) else None
        known = self.last.get((room, sender))
        if known is None or stamp >= known[0]:
            self.last[room, sender] = (stamp, recipient)
        if recipient is None:
            return
        msg_id, reply_to = message.get("id"), message.get("reply_to")
        self.responses.add(
            msg_id if isinstance(msg_id, int) else None,
            sender,
            recipient,
            _seconds(stamp),
            reply_to if isinstance(reply_to, int) else None,
            room,
        )

    def last_message(self, room: Room, agent: str) -> tuple[dt.datetime, str | None] | None:
        return self.last.get((room, agent))

    def unanswered(self, room: Room, agent: str, now: dt.datetime) -> tuple[int, float | None]:
        """How many direct messages wait for ``agent``'s answer, and the oldest's wait
        (seconds)."""
        at = _seconds(local(now))
        count, oldest = self.responses.waiting(agent, room, at)
        return count, None if oldest is None else at - oldest


@dataclass(frozen=True)
class RoomRows:
    """One database's rows: None for a table it does not have; ``problem``: why the
    database could not be read."""

    room: Room
    agents: list[Row] | None
    tasks: list[Row] | None
    problem: str | None = None


@dataclass(frozen=True)
class AgentView:
    agent: str
    room: Room
    health: str
    heartbeat_age: float | None
    status: str | None
    task: str | None
    task_status: str | None
    last_message_age: float | None
    last_message_to: str | None
    unanswered: int | None  # None: no logs were read
    oldest_wait: float | None

    FIELDS: ClassVar[tuple[str, ...]] = (
        "health", "heartbeat_age", "status", "task", "task_status", "last_message_age",
        "last_message_to", "unanswered", "oldest_unanswered_wait",
    )  # fmt: skip
    """The keys of :meth:`fields`, in order."""

    def fields(self) -> dict[str, object]:
        """The live fields of ``agents --json`` (ages in whole seconds)."""

        def whole(seconds: float | None) -> int | None:
            return None if seconds is None else int(seconds // 1)

        return {
            "health": self.health,
            "heartbeat_age": whole(self.heartbeat_age),
            "status": self.status,
            "task": self.task,
            "task_status": self.task_status,
            "last_message_age": whole(self.last_message_age),
            "last_message_to": self.last_message_to,
            "unanswered": self.unanswered,
            "oldest_unanswered_wait": whole(self.oldest_wait),
        }


@dataclass(frozen=True)
class TaskView:
    task: str
    room: Room
    status: str
    assigned_to: str | None
    title: str
    in_status: float | None  # seconds since the row last changed (updated_at)


@dataclass(frozen=True)
class Frame:
    now: dt.datetime
    agents: list[AgentView]
    tasks: list[TaskView] | None  # None: no database has a tasks table
    rooms: bool  # rows name their room
    problems: list[str]
    logs: bool  # the message logs were read

    def counts(self) -> dict[str, int]:
        found = {HEALTHY: 0, STALE: 0, DEAD: 0, UNKNOWN: 0}
        for agent in self.agents:
            found[agent.health] = found.get(agent.health, 0) + 1
        return found


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _current_task(tasks: list[Row], agent: str) -> Row | None:
    """The open task assigned to ``agent`` that changed last."""
    mine = [t for t in tasks if t.get("assigned_to") == agent]
    if not mine:
        return None
    return max(mine, key=lambda t: wall_time(t.get("updated_at")) or dt.datetime.min)


def build_frame(rooms: Sequence[RoomRows], facts: LogFacts | None, now: dt.datetime) -> Frame:
    """One frame: an agent row per registered agent (per room), then the open tasks."""
    agents: list[AgentView] = []
    tasks: list[TaskView] | None = None
    problems = [f"{r.room}: {r.problem}" if r.room else r.problem for r in rooms if r.problem]
    for room in rooms:
        open_tasks = room.tasks or []
        if room.tasks is not None:
            tasks = tasks or []
            for row in open_tasks:
                tasks.append(
                    TaskView(
                        str(row.get("id")),
                        room.room,
                        _str(row.get("status")) or "?",
                        _str(row.get("assigned_to")),
                        _str(row.get("title")) or "",
                        age(row.get("updated_at"), now),
                    )
                )
        for row in room.agents or []:
            name = _str(row.get("name"))
            if name is None:
                continue
            task = _current_task(open_tasks, name)
            last = facts.last_message(room.room, name) if facts else None
            count, oldest = facts.unanswered(room.room, name, now) if facts else (None, None)
            agents.append(
                AgentView(
                    agent=name,
                    room=room.room,
                    health=health(row.get("heartbeat_at"), now),
                    heartbeat_age=age(row.get("heartbeat_at"), now),
                    status=_str(row.get("status")),
                    task=None if task is None else str(task.get("id")),
                    task_status=None if task is None else _str(task.get("status")),
                    last_message_age=None if last is None else age(last[0].isoformat(), now),
                    last_message_to=None if last is None else last[1],
                    unanswered=count,
                    oldest_wait=oldest,
                )
            )
    agents.sort(key=lambda a: (a.room or "", a.agent))
    if tasks is not None:
        order = {status: i for i, status in enumerate(OPEN_ORDER)}
        tasks.sort(key=lambda t: (order.get(t.status, len(order)), t.status, t.room or "", t.task))
    has_rooms = any(r.room is not None for r in rooms)
    return Frame(now, agents, tasks, has_rooms, problems, facts is not None)


# -- text ---------------------------------------------------------------------------

COLOURS = {HEALTHY: "\x1b[32m", STALE: "\x1b[33m", DEAD: "\x1b[1;31m", UNKNOWN: "\x1b[2m"}
BOLD, RESET = "\x1b[1m", "\x1b[0m"
MIN_STATUS = 20


def width_of(text: str) -> int:
    """Columns on a terminal: East Asian wide characters take two, combining none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns (one line; an ellipsis where it was cut)."""
    if width_of(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = width_of(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…" if width > 0 else ""


def pad(text: str, width: int, right: bool = False) -> str:
    text = cut(text, width)
    space = " " * (width - width_of(text))
    return space + text if right else text + space


def age_text(seconds: float | None) -> str:
    """An age in its largest unit, cut as a clock shows it (``41s``, ``15m``, ``2h``,
    ``3d``): the two units of :func:`..durations.duration` do not fit 80 columns
    beside everything else (``--once`` shows the same, ``agents --json`` seconds)."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def one_line(text: str) -> str:
    """``text`` on one line: newlines, tabs and other control characters are spaces
    (a status is free text, and an escape sequence in it must not reach the terminal)."""
    return "".join(" " if c.isspace() or not c.isprintable() else c for c in text)


def _cells(agent: AgentView, rooms: bool) -> list[str]:
    task = "-" if agent.task is None else one_line(f"{agent.task} {agent.task_status or '?'}")
    if agent.last_message_age is None:
        last = "-"
    else:
        last = one_line(f"{age_text(agent.last_message_age)} →{agent.last_message_to or '?'}")
    if agent.unanswered is None:
        waiting = "?"
    elif agent.unanswered == 0:
        waiting = "0"
    else:
        waiting = f"{agent.unanswered} {age_text(agent.oldest_wait)}"
    return [
        one_line(agent.agent),
        *([one_line(agent.room or "-")] if rooms else []),
        agent.health,
        age_text(agent.heartbeat_age),
        task,
        last,
        waiting,
        one_line(agent.status or "") or "-",
    ]


def _widths(titles: list[str], rows: list[list[str]], width: int | None) -> list[int]:
    """Each column's width: as wide as its widest cell, the last (the status) taking
    what is left; on a narrow terminal the widest of the others give way first."""
    natural = [max(width_of(r[i]) for r in [titles, *rows]) for i in range(len(titles))]
    if width is None:
        return natural
    floors = [max(4, width_of(t)) for t in titles]
    floors[titles.index("HEALTH")] = max(width_of(h) for h in COLOURS)  # never cut
    fixed = natural[:-1]

    def rest() -> int:
        return width - sum(fixed) - len(fixed)

    while rest() < MIN_STATUS:
        shrinkable = [i for i, w in enumerate(fixed) if w > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: fixed[i] - floors[i])
        fixed[widest] -= 1
    return [*fixed, max(rest(), 1)]


def render(frame: Frame, width: int | None, colour: bool, live: bool = False) -> list[str]:
    """The frame as text lines, each at most ``width`` columns (None: not cut)."""
    counts = frame.counts()
    summary = ", ".join(f"{counts[h]} {h}" for h in (HEALTHY, STALE, DEAD, UNKNOWN) if counts[h])
    clock = frame.now.astimezone().strftime("%H:%M:%S")
    head = f"top  {clock}  {len(frame.agents)} agents"
    head += f": {summary}" if summary else ""
    lines: list[tuple[str, str | None]] = [(head + ("  q quits" if live else ""), BOLD)]
    lines += [(one_line(f"! {problem}"), None) for problem in frame.problems]
    if not frame.logs:
        lines.append(("! no message logs read: last message and unanswered unknown", None))
    titles = ["AGENT", *(["ROOM"] if frame.rooms else []), "HEALTH", "BEAT", "TASK",
              "LAST MSG", "WAITING", "STATUS"]  # fmt: skip
    rows = [_cells(agent, frame.rooms) for agent in frame.agents]
    widths = _widths(titles, rows, width)
    health_col = titles.index("HEALTH")
    right = {titles.index("BEAT")}

    def line(cells: list[str], health_of: str | None) -> str:
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            text = pad(cell, w, i in right)
            if colour and i == health_col and health_of in COLOURS:
                text = COLOURS[health_of] + text + RESET
            out.append(text)
        return " ".join(out).rstrip()

    lines.append((line(titles, None), BOLD))
    if not frame.agents:
        lines.append(("(no agents registered)", None))
    for agent, cells in zip(frame.agents, rows, strict=True):
        lines.append((line(cells, agent.health), "row"))
    if frame.tasks is not None:
        lines.append(("", None))
        title = f"OPEN TASKS ({len(frame.tasks)})" if frame.tasks else "OPEN TASKS: none"
        lines.append((title, BOLD))
        by_status: dict[str, list[TaskView]] = {}
        for task in frame.tasks:
            by_status.setdefault(task.status, []).append(task)
        label = max((width_of(s) for s in by_status), default=0)
        for status, tasks in by_status.items():
            items = ", ".join(
                f"{t.room + ':' if frame.rooms and t.room else ''}{t.task}"
                f" {t.assigned_to or '-'} {age_text(t.in_status)}"
                for t in tasks
            )
            lines.append((one_line(f"{pad(status, label)} {len(tasks):3d}  {items}"), None))
    out = []
    for text, style in lines:
        if style == "row":  # already cut cell by cell (and maybe coloured)
            out.append(text)
            continue
        text = text if width is None else cut(text, width)
        out.append(BOLD + text + RESET if colour and style == BOLD and text else text)
    return out


__all__ = [
    "DAY_SECONDS",
    "AgentView",
    "Frame",
    "LogFacts",
    "RoomRows",
    "TaskView",
    "build_frame",
    "cut",
    "render",
    "width_of",
]
