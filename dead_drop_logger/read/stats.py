"""What the agents did, in numbers: every figure of ``stats`` and ``report``, in one pass.

Why it is built this way: a log directory can hold millions of messages, so the numbers
are aggregated while the messages stream past (a few counters per agent, day, hour,
pair, task and thread; response times in :mod:`responses`), never by collecting the
messages. The input is any iterable of parsed log lines (dicts), so the definitions are
tested without files; the output is plain dataclasses that the text tables
(:mod:`stats_format`) and the charts (:mod:`charts`) are built from.

Definitions (docs/stats.md's "What the numbers mean" repeats them):
- A *message* is a line whose ``is_cc`` is not 1. The CC copies the server makes for the
  lead (``is_cc = 1``) are counted apart, as ``cc_copies`` and per agent as
  ``cc_received``; they are never extra messages, pairs, replies or task messages.
- A *broadcast* has ``to_agent = "all"``; every other message is *direct*.
- *Agents* are the names a line is from or to ("all" aside), CC copies included, as for
  ``agents``; an agent is *seen* at every line it sends or receives (broadcasts it
  receives aside: everyone does).
- *Days*, hours and weekdays come from each message's ``timestamp`` (the server's local
  wall time, as logged); a message without a readable timestamp is counted in the totals
  only (``undated``).
- A *thread* is a message that has replies, with all replies below it (replies of
  replies too); its length counts the root and every reply. A reply whose root is not
  in the logs (or not in the range) still makes a thread under that root's id.
- *Rooms*: each room is its own server and database, so ids repeat across rooms and the
  same name in two rooms is (usually) two agents. When rooms are read, agents, pairs,
  responders, tasks and threads are each of one room (a reply's root, a pending
  message, a task id are looked up in the message's own room), and each row carries its
  ``room`` (None: the plain log directory). Totals, days and hours add up every room.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..crypt import agentkeys
from .logread import LogDir, find_ids
from .responses import ResponderTimes, ResponseTracker, median
from .statcore import THREAD_SPANS, TOP_THREADS, _Agent, _span, _span_class, _Task, parse_stamp
from .taskstats import TaskFigures

__all__ = ["THREAD_SPANS", "Stats", "StatsBuilder", "parse_stamp", "who"]

_EPOCH = dt.datetime(1970, 1, 1)
Room = str | None  # None: the plain log directory


def who(name: str, room: Room) -> str:
    """A name for people that says its room when it has one: ``juno [ops]``."""
    return name if room is None else f"{name} [{room}]"


@dataclass
class Totals:
    messages: int = 0
    agents: int = 0
    days: int = 0
    broadcasts: int = 0
    direct: int = 0
    cc_copies: int = 0
    undated: int = 0
    first: str | None = None
    last: str | None = None


@dataclass
class AgentRow:
    name: str
    sent: int = 0
    received: int = 0
    broadcasts_sent: int = 0
    cc_received: int = 0
    busiest_hour: int | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    room: Room = None


@dataclass
class TaskRow:
    task_id: str
    messages: int
    agents: list[str]
    first: str | None
    last: str | None
    span_seconds: float | None
    room: Room = None


@dataclass
class ThreadRow:
    root: int
    length: int
    first: str | None
    last: str | None
    preview: str | None = None
    room: Room = None


class Pair(NamedTuple):
    """Direct messages from one agent to another (of one room)."""

    sender: str
    to: str
    messages: int
    room: Room = None


@dataclass
class Threads:
    count: int = 0
    longest: ThreadRow | None = None
    median_length: float | None = None
    busiest: list[ThreadRow] = field(default_factory=list)
    # length -> threads of that length per class of THREAD_SPANS (then: no dated reply)
    by_length: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class Stats:
    totals: Totals
    agents: list[AgentRow]
    pairs: list[Pair]
    responses: list[ResponderTimes]
    per_day: dict[str, int]
    per_day_sender: dict[str, dict[str, int]]
    per_hour: list[int]
    weekday_hour: list[list[int]]
    tasks: list[TaskRow]
    without_task: int
    threads: Threads
    pending_evicted: int = 0
    rooms: bool = False  # rooms were read: rows name their room
    task_figures: TaskFigures | None = None  # from the task log, when there is one


class _Thread:
    __slots__ = ("first", "last", "replies")

    def __init__(self) -> None:
        self.replies = 0
        self.first: str | None = None
        self.last: str | None = None


class StatsBuilder:
    """Feed it parsed log lines in log order (:meth:`add`), then :meth:`result`;
    ``rooms``: the result's rows name their room (see the module's definitions)."""

    def __init__(self, rooms: bool = False) -> None:
        self.rooms = rooms
        self.totals = Totals()
        self._agents: dict[tuple[Room, str], _Agent] = {}
        self._pairs: Counter[tuple[Room, str, str]] = Counter()
        self._days: Counter[str] = Counter()
        self._day_sender: Counter[tuple[str, str]] = Counter()
        self._weekday_hour = [[0] * 24 for _ in range(7)]
        self._weekdays: dict[str, int] = {}
        self._tasks: dict[tuple[Room, str], _Task] = {}
        self._without_task = 0
        # room -> {reply id: its thread's root id}: one entry per reply, so int keys in
        # one dict per room (a (room, id) tuple per reply would cost a third more memory)
        self._roots: dict[Room, dict[int, int]] = {}
        self._threads: dict[tuple[Room, int], _Thread] = {}
        self.responses = ResponseTracker()

    def _agent(self, name: str, room: Room) -> _Agent:
        agent = self._agents.get((room, name))
        if agent is None:
            agent = self._agents[room, name] = _Agent()
        return agent

    def add_all(self, messages: Iterable[Mapping[str, Any]]) -> StatsBuilder:
        for message in messages:
            self.add(message)
        return self

    def add(self, message: Mapping[str, Any], room: Room = None) -> None:
        """One parsed log line of ``room`` (the exact path)."""
        stamp = message.get("timestamp")
        msg_id = message.get("id")
        task = message.get("task_id")
        reply_to = message.get("reply_to")
        self.add_fields(
            msg_id if isinstance(msg_id, int) else None,
            str(message.get("from_agent")),
            str(message.get("to_agent")),
            stamp if isinstance(stamp, str) else None,
            parse_stamp(stamp),
            message.get("is_cc") == 1,
            None if task is None else str(task),
            reply_to if isinstance(reply_to, int) else None,
            room,
        )

    def add_fields(
        self,
        msg_id: int | None,
        sender: str,
        to: str,
        stamp: str | None,
        when: dt.datetime | None,
        is_cc: bool,
        task: str | None,
        reply_to: int | None,
        room: Room = None,
    ) -> None:
        """One line's fields; ``when`` is ``stamp`` parsed (None: undated)."""
        if is_cc:
            self.totals.cc_copies += 1
            copied = self._agent(to, room)
            copied.cc += 1
            if when is not None and stamp is not None:
                copied.seen(stamp)
            return
        totals = self.totals
        totals.messages += 1
        agent = self._agent(sender, room)
        agent.sent += 1
        broadcast = to == "all"
        if broadcast:
            totals.broadcasts += 1
            agent.broadcasts += 1
        else:
            totals.direct += 1
            self._pairs[room, sender, to] += 1
            self._agent(to, room).received += 1  # dated or not, as the pair counts it
        if when is None or stamp is None:
            totals.undated += 1
            stamp = None
        else:
            self._dated(stamp, when, sender, agent, None if broadcast else to, room)
        self._task(task, sender, to, stamp, room)
        if reply_to is not None and msg_id is not None:
            self._reply(msg_id, reply_to, stamp, room)
        if when is not None:
            seconds = (when - _EPOCH).total_seconds()
            self.responses.add(msg_id, sender, to, seconds, reply_to, room)

    def _dated(
        self,
        stamp: str,
        when: dt.datetime,
        sender: str,
        agent: _Agent,
        to: str | None,
        room: Room,
    ) -> None:
        totals = self.totals
        if totals.first is None or stamp < totals.first:
            totals.first = stamp
        if totals.last is None or stamp > totals.last:
            totals.last = stamp
        day = stamp[:10]
        self._days[day] += 1
        self._day_sender[day, who(sender, room)] += 1
        weekday = self._weekdays.get(day)
        if weekday is None:
            weekday = self._weekdays[day] = when.weekday()
        self._weekday_hour[weekday][when.hour] += 1
        agent.hours[when.hour] += 1
        agent.seen(stamp)
        if to is not None:
            self._agent(to, room).seen(stamp)

    def _task(self, key: str | None, sender: str, to: str, stamp: str | None, room: Room) -> None:
        if key is None:
            self._without_task += 1
            return
        task = self._tasks.get((room, key))
        if task is None:
            task = self._tasks[room, key] = _Task()
        task.messages += 1
        task.agents.add(sender)
        if to != "all":
            task.agents.add(to)
        if stamp is not None:
            if task.first is None or stamp < task.first:
                task.first = stamp
            if task.last is None or stamp > task.last:
                task.last = stamp

    def _reply(self, msg_id: int, reply_to: int, stamp: str | None, room: Room) -> None:
        roots = self._roots.get(room)
        if roots is None:
            roots = self._roots[room] = {}
        root = roots.get(reply_to, reply_to)
        roots[msg_id] = root
        thread = self._threads.get((room, root))
        if thread is None:
            thread = self._threads[room, root] = _Thread()
        thread.replies += 1
        if stamp is not None:
            if thread.first is None or stamp < thread.first:
                thread.first = stamp
            if thread.last is None or stamp > thread.last:
                thread.last = stamp

    def result(
        self, threads: Threads | None = None, tracker: ResponseTracker | None = None
    ) -> Stats:
        """The numbers so far (the builder can go on being fed); ``threads`` and
        ``tracker``: those worked out elsewhere (:mod:`.statparts` merges them)."""
        responses = self.responses if tracker is None else tracker
        agents = [
            self._agent_row(name, room, a)
            for (room, name), a in self._agents.items()
            if name != "all"
        ]
        agents.sort(key=lambda r: (-r.sent, -r.received, r.name, r.room or ""))
        self.totals.agents = len(agents)
        self.totals.days = len(self._days)
        day_sender: dict[str, dict[str, int]] = {}
        for (day, sender), count in sorted(self._day_sender.items()):
            day_sender.setdefault(day, {})[sender] = count
        return Stats(
            totals=self.totals,
            agents=agents,
            pairs=sorted(
                (Pair(a, b, n, room) for (room, a, b), n in self._pairs.items()),
                key=lambda p: (-p.messages, p.sender, p.to, p.room or ""),
            ),
            responses=responses.results(),
            per_day=dict(sorted(self._days.items())),
            per_day_sender=day_sender,
            per_hour=[sum(row[h] for row in self._weekday_hour) for h in range(24)],
            weekday_hour=[list(row) for row in self._weekday_hour],
            tasks=sorted(
                (
                    TaskRow(
                        key,
                        t.messages,
                        sorted(t.agents),
                        t.first,
                        t.last,
                        _span(t.first, t.last),
                        room,
                    )
                    for (room, key), t in self._tasks.items()
                ),
                key=lambda t: (t.first or "", t.task_id, t.room or ""),
            ),
            without_task=self._without_task,
            threads=self._thread_summary() if threads is None else threads,
            pending_evicted=responses.evicted,
            rooms=self.rooms,
        )

    @staticmethod
    def _agent_row(name: str, room: Room, a: _Agent) -> AgentRow:
        busiest = max(range(24), key=lambda h: (a.hours[h], -h)) if any(a.hours) else None
        return AgentRow(
            name, a.sent, a.received, a.broadcasts, a.cc, busiest, a.first, a.last, room
        )

    def _thread_summary(self) -> Threads:
        if not self._threads:
            return Threads()
        top = heapq.nsmallest(
            TOP_THREADS,
            self._threads.items(),
            key=lambda item: (-item[1].replies, item[0][1], item[0][0] or ""),
        )
        rows = [
            ThreadRow(root, t.replies + 1, t.first, t.last, room=room) for (room, root), t in top
        ]
        lengths = Counter(t.replies + 1 for t in self._threads.values())
        by_length: dict[int, list[int]] = {}
        for t in self._threads.values():
            spans = by_length.get(t.replies + 1)
            if spans is None:
                spans = by_length[t.replies + 1] = [0] * (len(THREAD_SPANS) + 1)
            spans[_span_class(_span(t.first, t.last))] += 1
        return Threads(
            count=len(self._threads),
            longest=rows[0],
            median_length=median(lengths),
            busiest=rows,
            by_length=dict(sorted(by_length.items())),
        )


def compute(messages: Iterable[Mapping[str, Any]]) -> Stats:
    """Every number of ``stats`` over ``messages`` (parsed log lines, in log order)."""
    return StatsBuilder().add_all(messages).result()


def fill_previews(
    stats: Stats, sources: Sequence[LogDir], *, utc: bool = False, opened: bool = False
) -> None:
    """Give the busiest threads their root's content, looked up by id in the thread's
    own room's directory (ids repeat across rooms), in the day of the thread's first
    reply and the day before (a root is older than its replies), and the day after too
    for files dated in UTC (``--utc``). A root whose content is sealed per agent has
    none (``stats --json``'s output never depends on a key), unless ``opened``: then
    it is shown as ``search`` shows it (:func:`..crypt.agentkeys.shown`: opened with
    the identity, else the placeholder), for pages people read."""
    shifts = (-1, 0, 1) if utc else (-1, 0)
    for room in dict.fromkeys(r.room for r in stats.threads.busiest):
        rows = [r for r in stats.threads.busiest if r.room == room]
        days: set[dt.date] = set()
        for row in rows:
            if row.first is not None:
                day = dt.date.fromisoformat(row.first[:10])
                days.update(day + dt.timedelta(days=shift) for shift in shifts)
        found = find_ids(
            [s for s in sources if s.room == room], (r.root for r in rows if r.first), days
        )
        for row in rows:
            root = found.get(row.root, {})
            if agentkeys.is_sealed(root):
                root = agentkeys.shown(root) if opened else {}
            content = root.get("content")
            row.preview = content if isinstance(content, str) else None
