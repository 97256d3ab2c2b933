"""How the numbers of :mod:`stats` are shown: aligned plain-text tables, or one JSON object.

Separate from the arithmetic so that the definitions can be tested on plain data and
the layout changed without touching them. Text is a generator of lines (as the other
commands print); JSON keys are documented in docs/stats.md ("stats --json keys").

When rooms were read (``Stats.rooms``), the agents, pairs, responders and tasks tables
get a ``room`` column and their JSON objects a ``room`` key, thread roots say their room
(``#12 [ops]``); a plain log directory's output is exactly as it was before rooms.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from ..durations import duration
from .columns import BCAST_SENT, CC_RECV, DIRECT_RECV
from .responses import BUCKETS
from .stats import Room, Stats, who

TOP_PAIRS = 10
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def when(stamp: str | None) -> str:
    """A logged timestamp for people: to the second, a space for the ``T``."""
    return "-" if stamp is None else stamp[:19].replace("T", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Iterator[str]:
    """Aligned columns, two spaces apart: numbers right-aligned, the rest left;
    ``(none)`` for no rows."""
    if not rows:
        yield "  (none)"
        return
    cells = [[str(c) for c in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = numeric_columns(rows)
    for row in cells:
        parts = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ]
        yield "  " + "  ".join(parts).rstrip()


def pairs(rows: Sequence[tuple[str, object]]) -> Iterator[str]:
    """A name: value list, the values lined up."""
    width = max(len(name) for name, _ in rows) + 1
    for name, value in rows:
        yield f"  {name + ':':<{width}} {_cell(value)}"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


Rows = tuple[tuple[str, ...], list[tuple[object, ...]]]


def numeric_columns(rows: Sequence[Sequence[object]]) -> list[bool]:
    """Which columns hold only numbers (right-aligned, in text and HTML alike)."""
    if not rows:
        return []
    return [all(isinstance(row[i], int) for row in rows) for i in range(len(rows[0]))]


def room_cell(stats: Stats, room: Room) -> tuple[object, ...]:
    """The room cell of a row when rooms were read (``-``: the plain log directory)."""
    return (room or "-",) if stats.rooms else ()


def headers_with_room(stats: Stats, name: str, *rest: str) -> tuple[str, ...]:
    return (name, *(("room",) if stats.rooms else ()), *rest)


def agent_rows(stats: Stats) -> Rows:
    headers = headers_with_room(
        stats, "agent", "sent", DIRECT_RECV, BCAST_SENT, CC_RECV, "busiest hour", "first seen",
        "last seen",
    )  # fmt: skip
    return headers, [
        (
            a.name,
            *room_cell(stats, a.room),
            a.sent,
            a.received,
            a.broadcasts_sent,
            a.cc_received,
            "-" if a.busiest_hour is None else f"{a.busiest_hour:02d}:00",
            when(a.first_seen),
            when(a.last_seen),
        )
        for a in stats.agents
    ]


def response_rows(stats: Stats) -> Rows:
    return headers_with_room(stats, "responder", "answered", "median", "p90"), [
        (r.responder, *room_cell(stats, r.room), r.count, duration(r.median), duration(r.p90))
        for r in stats.responses
    ]


def task_rows(stats: Stats, limit: int | None = None) -> Rows:
    return (
        headers_with_room(stats, "task", "messages", "agents", "first", "last", "span"),
        [
            (
                k.task_id,
                *room_cell(stats, k.room),
                k.messages,
                ",".join(k.agents),
                when(k.first),
                when(k.last),
                duration(k.span_seconds),
            )
            for k in stats.tasks[:limit]
        ],
    )


def thread_summary(stats: Stats) -> list[tuple[str, object]]:
    th = stats.threads
    top = th.longest
    longest = "-" if top is None else f"{who(f'#{top.root}', top.room)} ({top.length} messages)"
    median = "-" if th.median_length is None else f"{th.median_length:g}"
    return [("threads", th.count), ("longest", longest), ("median length", median)]


def undated(stats: Stats) -> list[tuple[str, int]]:
    """The messages without a readable timestamp, when there are any: they are in the
    totals but in no day, hour or time span, so the per-day counts add up to less."""
    n = stats.totals.undated
    return [("undated", n)] if n else []


def text_lines(stats: Stats) -> Iterator[str]:
    """The whole of ``stats`` as plain text."""
    t = stats.totals
    yield "Totals"
    yield from pairs(
        [
            ("messages", t.messages),
            ("agents", t.agents),
            ("days", t.days),
            ("broadcasts", t.broadcasts),
            ("direct messages", t.direct),
            ("CC copies", t.cc_copies),
            *undated(stats),
            ("first", when(t.first)),
            ("last", when(t.last)),
        ],
    )
    yield ""
    yield "Agents"
    yield from table(*agent_rows(stats))
    yield ""
    yield f"Who talks to whom (direct messages, top {TOP_PAIRS})"
    yield from table(
        ("from", "", *headers_with_room(stats, "to", "messages")),
        [
            (p.sender, "→", p.to, *room_cell(stats, p.room), p.messages)
            for p in stats.pairs[:TOP_PAIRS]
        ],
    )
    yield ""
    yield "Response times (direct messages answered within 24 h)"
    yield from table(*response_rows(stats))
    yield ""
    yield "Messages per day"
    yield from table(("day", "messages"), list(stats.per_day.items()))
    yield ""
    yield "Messages per hour of day"
    yield from table(
        ("hour", "messages"), [(f"{h:02d}:00", n) for h, n in enumerate(stats.per_hour)]
    )
    yield ""
    yield "Tasks"
    yield from table(*task_rows(stats))
    yield from pairs([("messages without a task", stats.without_task)])
    yield ""
    yield "Threads (reply chains)"
    yield from pairs(thread_summary(stats))
    if stats.task_figures is not None:
        from .taskview import stats_lines  # built on this module's tables: imported late

        yield ""
        yield from stats_lines(stats.task_figures)


def to_json(stats: Stats) -> str:
    """One JSON object with the same numbers (keys in docs/stats.md)."""
    return json.dumps(as_dict(stats), ensure_ascii=False, sort_keys=False)


def _agent_key(found: dict[str, Any]) -> dict[str, Any]:
    """An agent's name under ``agent``, as ``agents --json`` has it."""
    return {"agent": found.pop("name"), **found}


def as_dict(stats: Stats) -> dict[str, Any]:
    def row(item: Any) -> dict[str, Any]:
        found: dict[str, Any] = asdict(item)
        if not stats.rooms:
            del found["room"]
        return found

    def room(value: Room) -> dict[str, Room]:
        return {"room": value} if stats.rooms else {}

    data: dict[str, Any] = {"totals": asdict(stats.totals)}
    data["agents"] = [_agent_key(row(a)) for a in stats.agents]
    data["pairs"] = [
        {"from": p.sender, "to": p.to, **room(p.room), "messages": p.messages} for p in stats.pairs
    ]
    data["response_times"] = [
        {
            "responder": r.responder,
            **room(r.room),
            "count": r.count,
            "median_seconds": r.median,
            "p90_seconds": r.p90,
            "distribution": dict(zip((label for _, label in BUCKETS), r.buckets, strict=True)),
        }
        for r in stats.responses
    ]
    data["per_day"] = stats.per_day
    data["per_hour"] = stats.per_hour
    data["weekday_hour"] = dict(zip(WEEKDAYS, stats.weekday_hour, strict=True))
    data["tasks"] = [row(k) for k in stats.tasks]
    data["without_task"] = stats.without_task
    th = stats.threads
    data["threads"] = {
        "count": th.count,
        "longest": None if th.longest is None else row(th.longest),
        "median_length": th.median_length,
        "busiest": [row(r) for r in th.busiest],
    }
    data["response_pending_evicted"] = stats.pending_evicted
    figures = stats.task_figures
    data["task_analytics"] = None if figures is None else figures.as_dict()
    return data
