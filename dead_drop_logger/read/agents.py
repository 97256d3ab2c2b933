"""``agents``: who is active and who has gone quiet, from the logs alone.

One row per agent: messages sent (CC copies are the server's, not the sender's, so
they are not counted again), received directly, by broadcast (``to_agent = "all"``,
sent by someone else) and as CC copies (``is_cc = 1``), and the first and last time it
was seen sending or receiving (broadcasts aside: everyone receives those).

Fast because most lines are never parsed as JSON: the logger writes the server's
columns in table order, so one regular expression over a whole block picks the four
fields of every line (``from_agent``, ``to_agent``, ``timestamp``, ``is_cc``), and a
block where they do not account for every line (a name with an escape, a different
schema, a corrupt line) is parsed line by line instead. Timestamps are still parsed
one by one, so a malformed one counts exactly as on the exact path.

Rooms: an agent is a name *in a room*. Each room is its own server with its own agents,
and the same name in two rooms (``lead``, ``reviewer``) is usually two different agents,
so when rooms are read there is one row per (room, name), with the room in a column
(``ROOM``) and in ``--json`` (``room``); a broadcast reaches only its own room.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .columns import BCAST_RECV, CC_RECV, DIRECT_RECV
from .logread import Chunk, Message, Reader, Window, parse_line, timestamp_of

BROADCAST = "all"
_STRING = rb'"[^"\\\n]*"'  # a JSON string without escapes: its bytes are its text
_CONTENT = rb'(?:"[^"\\\n]*(?:\\.[^"\\\n]*)*"|\{"\$base64":"[^"\\\n]*"\}|null)'
_LINE = re.compile(  # one match per line, or the block is parsed line by line
    rb'\n\{"id":-?\d+,"from_agent":(' + _STRING + rb'|null),"to_agent":(' + _STRING + rb"|null),"
    rb'"content":' + _CONTENT + rb',"timestamp":(' + _STRING + rb"|null),"
    rb'"read_flag":[^,\n]*,"is_cc":(0|[1-9]\d*)[,}]'
)

Fields = tuple[object, object, dt.datetime | None, bool]  # from, to, time, is a CC copy


@dataclass
class AgentRow:
    agent: str
    room: str | None = None
    sent: int = 0
    direct: int = 0
    broadcast: int = 0
    cc: int = 0
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None

    def seen(self, stamp: dt.datetime | None) -> None:
        if stamp is None:
            return
        if self.first_seen is None or stamp < self.first_seen:
            self.first_seen = stamp
        if self.last_seen is None or stamp > self.last_seen:
            self.last_seen = stamp

    def to_json(self, rooms: bool = False, live: dict[str, object] | None = None) -> str:
        """One JSON object; ``rooms``: with the row's ``room`` (null: the plain log);
        ``live``: what the database says of the agent now (keys after the counts)."""
        where = {"room": self.room} if rooms else {}
        return json.dumps(
            {
                "agent": self.agent,
                **where,
                "sent": self.sent,
                "received": {"direct": self.direct, "broadcast": self.broadcast, "cc": self.cc},
                "first_seen": None if self.first_seen is None else self.first_seen.isoformat(),
                "last_seen": None if self.last_seen is None else self.last_seen.isoformat(),
                **(live or {}),
            },
            ensure_ascii=False,
        )


def _fields(message: Message) -> Fields:
    cc = message.get("is_cc") in (1, True)
    return message.get("from_agent"), message.get("to_agent"), timestamp_of(message), cc


def _text(raw: bytes) -> str | None:
    return None if raw == b"null" else raw[1:-1].decode("utf-8")


def _stamp(raw: bytes) -> dt.datetime | None:
    if raw == b"null":
        return None
    try:
        return dt.datetime.fromisoformat(raw[1:-1].decode("utf-8")).replace(tzinfo=None)
    except ValueError:
        return None


def chunk_fields(chunk: Chunk, reader: Reader, exact: bool = False) -> Iterator[Fields]:
    """The four fields of every message in a chunk (corrupt lines counted in
    ``reader.corrupt``)."""
    if not exact:
        data = b"\n" + chunk.data
        matched = _LINE.findall(data)
        if len(matched) == chunk.data.count(b"\n"):
            try:
                found = [
                    (_text(sender), _text(recipient), _stamp(stamp), cc == b"1")
                    for sender, recipient, stamp, cc in matched
                ]
            except UnicodeDecodeError:  # not UTF-8: the lines decide (corrupt ones)
                pass
            else:
                yield from found
                return
    for raw in chunk.lines():
        message = parse_line(raw)
        if message is None:
            reader.skip(chunk.file)
            continue
        yield _fields(message)


class Tally:
    """Counts per (room, sender, recipient, is CC) and time spans per agent (a room and
    a name), then rows."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.pairs: Counter[tuple[str | None, object, object, bool]] = Counter()
        self.first: dict[tuple[str | None, object], dt.datetime] = {}
        self.last: dict[tuple[str | None, object], dt.datetime] = {}

    def add(self, fields: Iterable[Fields], room: str | None = None) -> None:
        window, pairs, first, last = self.window, self.pairs, self.first, self.last
        bounded = window.bounded
        for sender, recipient, stamp, cc in fields:
            if bounded and not window.admits(stamp):
                continue
            pairs[(room, sender, recipient, cc)] += 1
            if stamp is None:
                continue
            for name in ((room, sender), (room, recipient)):
                seen = first.get(name)
                if seen is None or stamp < seen:
                    first[name] = stamp
                seen = last.get(name)
                if seen is None or stamp > seen:
                    last[name] = stamp

    def add_group(
        self,
        room: str | None,
        key: tuple[object, object, bool],
        count: int,
        first: dt.datetime | None,
        last: dt.datetime | None,
    ) -> None:
        """``count`` lines of one (sender, recipient, is CC), dated from ``first`` to
        ``last`` (None: none dated), all inside the window (through the index)."""
        sender, recipient, cc = key
        self.pairs[(room, sender, recipient, cc)] += count
        for name in ((room, sender), (room, recipient)):
            if first is not None:
                seen = self.first.get(name)
                if seen is None or first < seen:
                    self.first[name] = first
            if last is not None:
                seen = self.last.get(name)
                if seen is None or last > seen:
                    self.last[name] = last

    def rows(self) -> list[AgentRow]:
        rows: dict[tuple[str | None, str], AgentRow] = {}

        def row(room: str | None, name: object) -> AgentRow | None:
            if not isinstance(name, str) or name == BROADCAST:
                return None
            key = (room, name)
            if key not in rows:
                rows[key] = AgentRow(name, room, first_seen=self.first.get(key))
                rows[key].last_seen = self.last.get(key)
            return rows[key]

        broadcasts: Counter[tuple[str | None, object]] = Counter()
        for (room, sender, recipient, cc), count in self.pairs.items():
            by, to = row(room, sender), row(room, recipient)
            if not cc and by is not None:
                by.sent += count
            if recipient == BROADCAST and not cc:
                broadcasts[room, sender] += count
            elif to is not None:
                if cc:
                    to.cc += count
                else:
                    to.direct += count
        totals: Counter[str | None] = Counter()
        for (room, _sender), count in broadcasts.items():
            totals[room] += count
        for (room, name), agent in rows.items():
            agent.broadcast = totals[room] - broadcasts[room, name]
        never = dt.datetime.min
        by_name = sorted(rows.values(), key=lambda r: (r.agent, r.room or ""))
        return sorted(  # stable: agents last seen at the same time stay by name
            by_name, key=lambda r: (r.last_seen is not None, r.last_seen or never), reverse=True
        )


def tally(reader: Reader, exact: bool = False, use_index: bool = True) -> list[AgentRow]:
    """One row per agent over everything the reader reads, newest last-seen first.

    Through the index where it covers a file: its counts per (sender, recipient, is
    CC), then the file's lines past what it covers, scanned."""
    result = Tally(reader.window)
    covered = {}
    if use_index and not exact:
        from .indexed import covers

        covered = covers(reader)
    if not covered:
        for chunk in reader.chunks():
            result.add(chunk_fields(chunk, reader, exact), chunk.source.room)
        return result.rows()
    from .indexed import past
    from .indexquery import groups

    for source, entry in reader.files():
        found = covered.get(entry.path)
        if found is not None:
            for key, count, first, last in groups(found.store, found.record, reader.window):
                result.add_group(source.room, key, count, first, last)
        for chunk in past(reader, source, entry, found):
            result.add(chunk_fields(chunk, reader, exact), source.room)
    return result.rows()


def format_table(rows: list[AgentRow], rooms: bool = False) -> Iterator[str]:
    """A plain table for people, one line per agent; ``rooms``: a ROOM column after
    AGENT (``-`` for the plain log directory)."""
    titles: tuple[str, ...] = ("agent", "sent", DIRECT_RECV, BCAST_RECV, CC_RECV,
                               "first seen", "last seen")  # fmt: skip
    left = {0, 5, 6}
    if rooms:
        titles = (titles[0], "room", *titles[1:])
        left = {0, 1, 6, 7}
    cells = [
        (
            r.agent,
            *([r.room or "-"] if rooms else []),
            str(r.sent),
            str(r.direct),
            str(r.broadcast),
            str(r.cc),
            _when(r.first_seen),
            _when(r.last_seen),
        )
        for r in rows
    ]
    widths = [max(_width(c[i]) for c in [titles, *cells]) for i in range(len(titles))]
    for line in [titles, *cells]:
        padded = [
            text + " " * (width - _width(text))
            if i in left
            else " " * (width - _width(text)) + text
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        ]
        yield "  ".join(padded).rstrip()


def _width(text: str) -> int:
    """Columns on a terminal: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _when(stamp: dt.datetime | None) -> str:
    return "?" if stamp is None else stamp.replace(microsecond=0).isoformat(" ")
