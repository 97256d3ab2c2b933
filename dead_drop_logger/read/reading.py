"""What ``search``, ``thread`` and ``agents`` do with their options, without click.

Turns the options into a :class:`.logread.Reader` and :class:`.search.Filters`
(a mistake the user made raises :class:`RequestError`, which the CLI reports in one
line with exit code 2, as grep does), and writes the results to a binary stream:
``--json`` lines byte for byte as stored, the text format (or ``--oneline``) as UTF-8
whatever the locale, flushed after every batch so ``--follow`` output reaches a pipe at
once.

``--follow`` starts as ``tail -f`` does: the last :data:`FOLLOW_LAST` matches so far (or
``--limit N``), then every new one; a follow never stops after N matches.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..crypt import agentkeys
from ..logdir.layout import room_dirs, room_links
from .logread import Chunk, Entry, LogDir, LogReadError, Reader, Tail, Window
from .search import Filters, Search
from .textformat import format_message, format_oneline
from .when import parse_when

if TYPE_CHECKING:
    from .agents import AgentRow
    from .teamview import Frame

FOLLOW_LAST = 10  # the matches --follow shows before the new ones, as tail -f's lines


class RequestError(Exception):
    """Options that cannot work (a bad date, regex or directory): exit code 2."""


def make_window(since: str | None, until: str | None, now: dt.datetime | None = None) -> Window:
    first = _when("--since", since, now)
    last = _when("--until", until, now)
    if first is not None and last is not None and first >= last:
        raise RequestError(
            f"--since {since} is not before --until {until}: no message can be in that range"
        )
    return Window(first, last)


def _when(option: str, value: str | None, now: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value, now)
    except ValueError as exc:
        raise RequestError(f"{option}: {exc}") from None


def make_reader(
    log_dir: Path, window: Window, utc: bool, rooms: Sequence[str] | None = None
) -> Reader:
    """A reader of ``log_dir``, which must be a readable directory.

    ``rooms``: None reads ``log_dir`` alone; ``()`` also every room's directory in it
    (``LOG_DIR/NAME/``); names read only those rooms."""
    path = log_dir.expanduser()
    _check_dir(path)
    if rooms is None:
        return Reader([LogDir(path)], window, utc)
    if not rooms:
        every = [LogDir(room, room.name) for room in room_dirs(path)]
        reader = Reader([LogDir(path), *every], window, utc)
        reader.links = room_links(path)
        return reader
    for name in rooms:
        if (path / name).is_symlink():
            raise RequestError(
                f"room {name!r}'s log directory {path / name} is a symbolic link, which the"
                " logger never writes through; not reading it (make it a directory)"
            )
        if not (path / name).is_dir():
            raise RequestError(f"no room {name!r} in {path} (no directory {path / name})")
        _check_dir(path / name)
    return Reader([LogDir(path / name, name) for name in dict.fromkeys(rooms)], window, utc)


def _check_dir(path: Path) -> None:
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise RequestError(f"log directory {path} {what}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise RequestError(f"log directory {path} cannot be read (permission denied)")


def read_where(reader: Reader, log_dir: Path) -> tuple[str, str]:
    """Which logs were read, for a "nothing found" line: ``DIR``, ``DIR and its rooms
    (a, b)`` or ``room a (DIR/a)``; and a hint naming the rooms left out (``--room``)."""
    path = log_dir.expanduser()
    rooms = [source.room for source in reader.sources if source.room is not None]
    if not rooms:
        return str(path), ""
    if any(source.room is None for source in reader.sources):
        return f"{path} and its rooms ({', '.join(rooms)})", ""
    where = ", ".join(f"room {room} ({path / room})" for room in rooms)
    others = [room.name for room in room_dirs(path) if room.name not in rooms]
    hint = f"; other rooms: {', '.join(others)} (--room NAME)" if others else ""
    return where, hint


NAMED_FILES = 3  # files a warning names; the rest are counted


def warnings(reader: Reader) -> Iterator[str]:
    """What the reader skipped, for stderr: each file it could not read, each room's
    link it would not read through, each damaged file, and the corrupt lines with the
    files they are in (the most first)."""
    for path, reason in reader.unreadable.items():
        yield f"cannot read {path}: {reason}"
    for link in reader.links:
        yield (
            f"{link} is a symbolic link, which the logger never writes through; not read"
            " (make it a directory)"
        )
    yield from reader.notes
    for path, reason in reader.damaged.items():
        yield f"{path} is damaged ({reason}): read up to the damage"
    if not reader.corrupt:
        return
    files = reader.corrupt_in.most_common()
    named = [f"{count} in {path}" for path, count in files[:NAMED_FILES]]
    if len(files) > NAMED_FILES:
        named.append(f"{len(files) - NAMED_FILES} more files")
    yield f"skipped {reader.corrupt} corrupt lines: {', '.join(named)}"


def make_filters(
    *,
    senders: Iterable[str] = (),
    recipients: Iterable[str] = (),
    agents: Iterable[str] = (),
    task: str | None = None,
    contains: Iterable[str] = (),
    ignore_case: bool = False,
    regex: str | None = None,
    no_cc: bool = False,
) -> Filters:
    pattern = None
    if regex is not None:
        try:
            pattern = re.compile(regex, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise RequestError(f"--regex {regex!r}: {exc}") from None
    return Filters(
        tuple(senders),
        tuple(recipients),
        tuple(agents),
        task,
        tuple(contains),
        ignore_case,
        pattern,
        no_cc,
    )


def wants_colour(stream: BinaryIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return "NO_COLOR" not in os.environ and stream.isatty()


def line_width(stream: BinaryIO) -> int | None:
    """The columns ``--oneline`` may fill: ``$COLUMNS`` when set, else the terminal's
    when ``stream`` is one; None (lines whole) into a pipe or a file, for grep."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if stream.isatty():
        import shutil  # (and its compressors) for a terminal only: start-up

        return shutil.get_terminal_size().columns
    return None


@dataclass
class Printer:
    """Writes messages to ``out`` as stored lines or as text."""

    out: BinaryIO
    as_json: bool = False
    colour: bool = False
    oneline: bool = False
    full: bool = False  # content never cut (neither at CUT_AT nor at ``width``)
    width: int | None = None  # --oneline's columns; None: whole lines
    printed: int = 0

    def entry(self, entry: Entry, depth: int = 0, note: str | None = None) -> None:
        sealed = agentkeys.sealed_line(entry.line.raw)
        if self.as_json:  # opened: the line as if logged plain; else as stored
            raw = entry.line.raw  # not sealed: as stored, never parsed (the index found it)
            self.out.write(agentkeys.shown_line(raw, entry.message, stored=True) if sealed else raw)
            self.printed += 1
            return
        message = entry.message
        if sealed:  # (maybe opened already, by the filters)
            message = agentkeys.shown(message)
        if self.oneline:
            line = format_oneline(
                message,
                colour=self.colour,
                depth=depth,
                note=note,
                room=entry.line.source.room,
                width=None if self.full else self.width,
            )
            self.out.write((line + "\n").encode("utf-8", "replace"))
        else:
            lines = format_message(
                message,
                colour=self.colour,
                depth=depth,
                note=note,
                room=entry.line.source.room,
                full=self.full,
            )
            text = "\n".join(lines) + "\n\n"
            self.out.write(text.encode("utf-8", "replace"))
        self.printed += 1

    def text(self, line: str) -> None:
        self.out.write((line + "\n").encode("utf-8", "replace"))

    def flush(self) -> None:
        self.out.flush()


def _until_stopped(chunks: Iterable[Chunk], stop: threading.Event) -> Iterator[Chunk]:
    for chunk in chunks:
        if stop.is_set():
            return
        yield chunk


def run_search(
    search: Search,
    printer: Printer,
    *,
    count: bool = False,
    limit: int | None = None,
    reverse: bool = False,
    follow: bool = False,
    interval: float = 0.5,
    stop: threading.Event | None = None,
) -> int:
    """Print the matches (or their number); returns how many matched.

    ``limit``: the first N matches; with ``reverse`` the last N, newest first; with
    ``follow`` the last N (default :data:`FOLLOW_LAST`) before the new ones."""
    if follow and (reverse or count):
        raise RequestError("--follow cannot be combined with --reverse or --count")
    if count and printer.as_json:
        raise RequestError("--count cannot be combined with --json (it prints one number)")
    if printer.oneline and (count or printer.as_json):
        raise RequestError("--oneline cannot be combined with --json or --count")
    halt = stop or threading.Event()
    if limit == 0 and not follow:  # as grep -m 0: nothing
        batches: Iterator[Iterator[Entry]] = iter([])
    elif count and not follow:
        try:
            matched = search.count()
        except LogReadError as exc:
            raise RequestError(str(exc)) from None
        matched = matched if limit is None else min(matched, limit)
        printer.text(str(matched))
        printer.flush()
        return matched
    elif reverse:
        batches = iter([search.newest_first(limit)])
    else:
        batches = _batches(search, follow, interval, halt)
        if follow:  # as tail -f: the last N so far, then every new one, with no end
            batches = _from_last(batches, FOLLOW_LAST if limit is None else limit)
            limit = None
    matched = 0
    try:
        for batch in batches:
            for entry in batch:
                matched += 1
                if not count:
                    printer.entry(entry)
                if matched == limit:
                    break
            else:
                printer.flush()
                continue
            break
    except LogReadError as exc:
        raise RequestError(str(exc)) from None
    if count:
        printer.text(str(matched))
    printer.flush()
    return matched


def _from_last(batches: Iterator[Iterator[Entry]], last: int) -> Iterator[Iterator[Entry]]:
    """The batches, the first (every match so far) cut to its last ``last`` matches."""
    first = next(batches, None)
    if first is None:
        return
    yield iter(deque(first, maxlen=last))
    yield from batches


def _batches(
    search: Search, follow: bool, interval: float, stop: threading.Event
) -> Iterator[Iterator[Entry]]:
    """The matches of the files as they are, then (``--follow``) of what each poll finds."""
    if not follow:
        yield search.run()
        return
    tail = Tail(search.reader)
    while not stop.is_set():
        yield search.entries(_until_stopped(tail.poll(), stop))
        if stop.wait(interval):
            return


def run_thread(reader: Reader, message_id: int, printer: Printer) -> bool:
    """Print the thread of ``message_id``; False when that id is not logged."""
    from .thread import AmbiguousId, thread  # each command imports only what it runs

    try:
        posts = thread(reader, message_id)
    except (LogReadError, AmbiguousId) as exc:
        raise RequestError(str(exc)) from None
    if posts is None:
        return False
    for post in posts:
        printer.entry(post.entry, post.depth, post.note)
    printer.flush()
    return True


def run_agents(reader: Reader, printer: Printer, now: Frame | None = None) -> int:
    """Print one row per agent; returns the number of agents. ``now``: the team as the
    database shows it, whose live fields each JSON row gains (:mod:`.teamview`)."""
    from . import agents as agent_table

    try:
        rows = agent_table.tally(reader)
    except LogReadError as exc:
        raise RequestError(str(exc)) from None
    if printer.as_json:
        lines = agent_json_lines(reader, rows, now)  # with the silent registered agents
        for line in lines:
            printer.text(line)
        printer.flush()
        return len(lines)
    if rows:
        for line in agent_table.format_table(rows, reader.rooms):
            printer.text(line)
    printer.flush()
    return len(rows)


def agent_json_lines(reader: Reader, rows: list[AgentRow], now: Frame | None) -> list[str]:
    """``agents --json``'s lines (and ``serve``'s ``/v1/agents``): each row of the logs,
    with the live fields of ``now`` when the database could be read; an agent
    registered there but silent in the logs gets a row too."""
    from . import agents as agent_table
    from .teamview import AgentView

    rows = list(rows)
    live = {} if now is None else {(a.room, a.agent): a.fields() for a in now.agents}
    if now is not None:
        known = {(row.room, row.agent) for row in rows}
        rooms = {source.room for source in reader.sources}
        rows += [
            agent_table.AgentRow(a.agent, a.room)
            for a in now.agents
            if (a.room, a.agent) not in known and a.room in rooms
        ]
    if now is None:
        return [row.to_json(reader.rooms) for row in rows]
    blank = dict.fromkeys(AgentView.FIELDS)
    return [row.to_json(reader.rooms, live.get((row.room, row.agent), blank)) for row in rows]
