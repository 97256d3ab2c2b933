"""A durable consumer of committed lines: what the live page's events, notifications
and shipping read.

Why it exists: each of them delivers lines onward (to a browser, a webhook, a stream)
and must deliver every line once, in order, whatever happens between two deliveries:
its own restart or ``kill -9``, the logger's, a day file rotated into parts or
compressed, days deleted by retention, a log directory restored from a backup, a
room's database replaced, a new room made. :class:`.logread.Tail` already knows how to
read on from where it got to through all of that, in memory, and reads only committed
lines (:mod:`.committed`), so a line delivered is never cut back by a crash nor written
again with other bytes. A :class:`Feed` is a ``Tail`` whose position

- moves line by line: a consumer that stops after any line (a batch full, a receiver
  down) resumes at the next one;
- is plain data (:class:`Position`) saved by the consumer after it has delivered, in a
  small file of its own (:func:`save_position`), so nothing past what was delivered is
  ever counted as delivered, and a crash repeats at most what was in flight;
- is recognised by content, never by byte offset or inode alone: for each file, the id
  and first bytes of the last line delivered (as ``Tail`` keeps them), so a restored or
  rewritten file is searched for that line;
- covers every room, listed again at each poll, so a room made later is followed from
  its first line.

Each line is keyed ``ROOM:ID`` (``:ID`` for the main log): the same key a receiver
deduplicates by. Consumers apply their own filters (:class:`.search.Filters`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..files import replace_durably
from ..logdir.layout import LogFile, room_dirs
from .committed import committed_ends
from .logread import HEAD, LogDir, Reader, Tail, gzip_size, line_id

FORMAT = 1
_Key = tuple[LogDir, dt.date, int]


@dataclass(frozen=True, slots=True)
class FeedLine:
    """One committed line, exactly as stored (``raw`` ends in ``\\n``)."""

    room: str | None
    id: int | None  # None: a line that does not start with an id (a corrupt line)
    raw: bytes
    file: LogFile
    offset: int

    @property
    def key(self) -> str:
        """``ROOM:ID``, ``:ID`` for the main log: what a receiver deduplicates by."""
        return f"{self.room or ''}:{self.id}"


@dataclass
class Position:
    """Where a feed got to in each file: the end of the last line delivered, its start
    and first bytes; and the compressed files read whole. Plain data: it round-trips
    through :meth:`to_json` / :meth:`from_json`."""

    log_dir: Path
    positions: dict[_Key, int] = field(default_factory=dict)
    last: dict[_Key, tuple[int, bytes]] = field(default_factory=dict)
    finished: set[_Key] = field(default_factory=set)

    def to_json(self) -> bytes:
        files = []
        for key, end in sorted(self.positions.items(), key=lambda item: _sort_key(item[0])):
            source, day, part = key
            at, head = self.last.get(key, (end, b""))
            files.append(
                {
                    "room": source.room,
                    "day": day.isoformat(),
                    "part": part,
                    "end": end,
                    "at": at,
                    "head": base64.b64encode(head).decode("ascii"),
                    "finished": key in self.finished,
                }
            )
        return json.dumps({"format": FORMAT, "files": files}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, log_dir: Path, data: bytes) -> Position:
        """The position ``data`` describes (ValueError when it is not one)."""
        try:
            value = json.loads(data)
            if value.get("format") != FORMAT:
                raise ValueError(f"unknown format {value.get('format')!r}")
            position = cls(log_dir)
            for item in value["files"]:
                room = item["room"]
                if room is not None and (not isinstance(room, str) or "/" in room):
                    raise ValueError(f"bad room {room!r}")
                source = LogDir(log_dir / room, room) if room else LogDir(log_dir)
                key = (source, dt.date.fromisoformat(item["day"]), int(item["part"]))
                position.positions[key] = int(item["end"])
                head = base64.b64decode(item["head"])
                if head:
                    position.last[key] = (int(item["at"]), head)
                if item["finished"]:
                    position.finished.add(key)
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a feed position: {exc!r}") from None
        return position

    def copy(self) -> Position:
        return Position(self.log_dir, dict(self.positions), dict(self.last), set(self.finished))


def _sort_key(key: _Key) -> tuple[str, dt.date, int]:
    return (key[0].room or "", key[1], key[2])


def sources(log_dir: Path) -> list[LogDir]:
    """The main log and every room's directory in it now."""
    return [LogDir(log_dir), *(LogDir(room, room.name) for room in room_dirs(log_dir))]


class Feed:
    """The committed lines of a log directory (and its rooms) not yet delivered.

    ``poll()`` yields them in the readers' order (by day, then room, then part), and
    moves :attr:`position` past each line as it yields it; a consumer saves a copy of
    the position once what it took is delivered."""

    def __init__(self, log_dir: Path, position: Position | None = None) -> None:
        self.log_dir = log_dir
        self.position = position if position is not None else Position(log_dir)
        self._tail = Tail(
            Reader(sources(log_dir)),
            self.position.positions,
            self.position.finished,
            self.position.last,
        )

    @property
    def unreadable(self) -> dict[Path, str]:
        """Files or directories the last polls could not read, and why."""
        return self._tail.reader.unreadable

    def poll(self) -> Iterator[FeedLine]:
        """The committed lines added since the last line yielded."""
        self._tail.reader = Reader(sources(self.log_dir))
        positions, last = self.position.positions, self.position.last
        for chunk in self._tail.poll():
            key = (chunk.source, chunk.file.day, chunk.file.part)
            offset = chunk.offset
            for raw in chunk.lines():
                end = offset + len(raw)
                positions[key] = end  # (the tail set the chunk's end: this line's first)
                last[key] = (offset, raw[:HEAD])
                yield FeedLine(chunk.source.room, line_id(raw), raw, chunk.file, offset)
                offset = end


def at_end(log_dir: Path) -> Position:
    """A position past every committed line there is now: a consumer that starts here
    delivers only what is logged from now on (without reading the files through)."""
    position = Position(log_dir)
    reader = Reader(sources(log_dir))
    files = reader.files()
    ends = committed_ends((source.path, entry) for source, entry in files)
    for source, entry in files:
        mark_read(position, source, entry, ends.get(entry.path))
    return position


def mark_read(position: Position, source: LogDir, entry: LogFile, end: int | None) -> None:
    """Move ``position`` past every line of ``entry`` up to ``end``, its committed end
    as :func:`.committed.committed_ends` gives it: a gzip (and a sealed segment, unless a
    pending record names it) whole, a plain file up to its last whole line before
    ``end``. A feed from ``position`` then reads on after them."""
    key = (source, entry.day, entry.part)
    if entry.encrypted:
        if end != 0:  # (0: named by a pending record, not committed yet)
            position.positions[key] = 0
            position.finished.add(key)
        return
    if entry.compressed:
        size = gzip_size(entry.path)
        if size is not None:
            position.positions[key] = size
            position.finished.add(key)
        return
    if end is None:
        return
    last = _last_line(entry.path, end)
    if last is not None:
        at, head, stop = last
        position.positions[key] = stop
        position.last[key] = (at, head)


def _last_line(path: Path, end: int) -> tuple[int, bytes, int] | None:
    """Where the last whole line before ``end`` starts, its first bytes, and where it
    ends (None: no whole line there)."""
    try:
        with open(path, "rb", buffering=0) as raw:
            step = 1 << 16
            while True:
                start = max(0, end - step)
                data = os.pread(raw.fileno(), end - start, start)
                stop = data.rfind(b"\n") + 1  # past the last whole line
                cut = data.rfind(b"\n", 0, stop - 1) if stop else -1
                if cut >= 0 or (start == 0 and stop):
                    return start + cut + 1, data[cut + 1 : cut + 1 + HEAD], start + stop
                if start == 0:
                    return None
                step *= 4
    except OSError:
        return None


def load_position(path: Path, log_dir: Path) -> Position | None:
    """The position saved at ``path``; None when there is none yet. ValueError when
    the file is there but is not a position (the caller says so; it never guesses)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return Position.from_json(log_dir, data)


def save_position(path: Path, position: Position) -> None:
    """Save ``position`` at ``path`` atomically and durably, 0600."""
    replace_durably(path, position.to_json())
