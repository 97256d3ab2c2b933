"""``/v1/events``: Server-Sent Events of committed lines, resumed exactly by Last-Event-ID.

Why it looks like this:

- **One reader for every client.** One :class:`..read.feed.Feed` (committed lines only,
  every room, rooms made later included) is polled by one thread (:class:`Hub`), woken
  by inotify on the log directories (the timer, every second, as the safety net), and
  each new line is handed to every connected client, which applies its own filters
  (:class:`..read.search.Filters`, the window, the rooms). Ten clients cost what one
  does: one ``stat`` round a second when idle.
- **The id is the position.** Each event's id starts with its message's key
  ``ROOM:ID`` (``:ID`` in the log directory itself) and goes on with the key of the last
  line delivered in each other room, comma-separated (room names percent-encoded, so a
  comma or colon in a name is no separator): ``ops:1234,dev:87,:5``. With one room the
  id is just ``ROOM:ID``. A browser sends the last id back as ``Last-Event-ID`` when it
  reconnects, so the client, not the server, holds where it got to in *every* room: a
  restart of ``serve`` loses nothing, and no server-side session is kept. Lines that do
  not match a client's filters still move its position; when a batch held none for it,
  it gets an ``event: position`` (no data but ``{}``) so its id is current anyway. A new
  client (no ``Last-Event-ID``) gets one at once, so even a client that disconnects
  before any message resumes exactly.
- **Resuming** (:func:`resume`): for each room of the id, the line with that id is
  looked for in the room's files (newest first, committed lines only); the feed starts
  just after it, in that file, and at the start of every later file. That is the feed's
  own rule (a position is a line, recognised by content), so a day rotated into parts,
  compressed or deleted after it does not matter. A room the id does not name (made
  since) is read from its first line. A room whose line is gone (retention deleted its
  day) falls back to every line with a greater id: the ids of a room grow as the
  server gives them, so nothing newer is lost.
- **The hand-over** from catching up to live (:meth:`Hub.subscribe`): the client's own
  feed reads from its position to the committed end *while the hub's lock is held*, so
  the hub cannot poll in between; it then joins the hub, and drops any live line of a
  file before the end its catch-up reached in that file (the catch-up read later than
  the hub, so it may be further on). No gap, no repeat, whatever the timing.
- An event's data is the line as stored, as ``/v1/messages`` hands it on: a content
  sealed per agent opened with ``serve``'s identity, else ``search``'s placeholder
  (:func:`..crypt.agentkeys.shown_line`), for each client it reaches (the opener keeps
  the last contents it opened: after the first client, a dictionary lookup).
- Events only ever carry committed lines (:mod:`..read.committed`): a line a crash can
  cut back is never sent, so a restart of the logger never makes a client see a line
  twice or one that then vanishes.

Everything but :class:`Hub`'s thread is plain functions over lines: unit tests check
ids, filters and resumption without a socket.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..crypt import agentkeys
from ..logdir.layout import LogFile, rooms_to_watch
from ..logdir.state import STATE_NAME
from ..read.committed import committed_ends
from ..read.feed import Feed, FeedLine, Position, at_end, mark_read, sources
from ..read.logread import (
    EVERYTHING,
    HEAD,
    LogDir,
    Window,
    parse_line,
    read_chunks,
    timestamp_of,
)
from ..read.logread import line_id as raw_id
from ..read.search import Filters
from .query import BadRequest

log = logging.getLogger(__name__)

Vector = dict[str | None, int]
"""Where a client got to: each room's last line delivered (its id); None: the log
directory itself."""

MAX_ID = 4096  # a Last-Event-ID longer than this is refused (request limits)
TIMER = 1.0  # the safety net: the hub looks every second even without a notification
QUEUE_MAX = 10_000  # events waiting for a slow client before it is dropped (it resumes)


def _room_text(room: str | None) -> str:
    return "" if room is None else urllib.parse.quote(room, safe="")


def key_text(room: str | None, message_id: int) -> str:
    return f"{_room_text(room)}:{message_id}"


def format_id(vector: Vector, first: str | None = None) -> str:
    """The event id: ``first``'s key (the event's own room) first, then every other
    room's, sorted."""
    keys = []
    if first in vector or (first is None and None in vector):
        keys.append(key_text(first, vector[first]))
    keys += [
        key_text(room, ident)
        for room, ident in sorted(vector.items(), key=lambda item: item[0] or "")
        if room != first
    ]
    return ",".join(keys)


def parse_id(text: str) -> Vector:
    """A Last-Event-ID back into a vector (BadRequest when it is not one of ours)."""
    if len(text) > MAX_ID:
        raise BadRequest(f"Last-Event-ID is longer than {MAX_ID} characters")
    vector: Vector = {}
    for part in text.split(","):
        room, colon, ident = part.strip().rpartition(":")
        if not colon or not ident.isdigit() or not ident.isascii():
            raise BadRequest(f"Last-Event-ID {text!r} is not ROOM:ID[,ROOM:ID...]")
        name = urllib.parse.unquote(room) if room else None
        if name is not None and ("/" in name or name.startswith(".") or "\0" in name):
            raise BadRequest(f"Last-Event-ID names no room: {name!r}")
        vector[name] = int(ident)
    return vector


def vector_at(position: Position, log_dir: Path) -> Vector:
    """The last line's id in each room at ``position``. A room with no line yet is left
    out (resuming, a room the id does not name is read from its first line, which is
    the same), but an id is never empty: ``:0`` when no room has a line."""
    newest: dict[str | None, tuple[dt.date, int, bytes]] = {}
    for (source, day, part), (_at, head) in position.last.items():
        if source.room not in newest or (day, part) > newest[source.room][:2]:
            newest[source.room] = (day, part, head)
    vector: Vector = {}
    for source in sources(log_dir):
        found = newest.get(source.room)
        ident = raw_id(found[2]) if found else None
        if ident is not None:
            vector[source.room] = ident
    return vector or {None: 0}  # never empty: a browser does not send an empty id back


@dataclass
class Resumed:
    """Where a returning client's feed starts, and the rooms whose line was not found
    (their lines count only above that id)."""

    position: Position
    above: Vector = field(default_factory=dict)


def resume(log_dir: Path, vector: Vector) -> Resumed:
    """The position just after each room's line of ``vector`` (see the module doc)."""
    done = Resumed(Position(log_dir))
    for source in sources(log_dir):
        if source.room not in vector:
            continue  # a room made since: from its first line
        wanted = vector[source.room]
        files = _files(source)
        ends = committed_ends((source.path, entry) for entry in files)
        for index in range(len(files) - 1, -1, -1):
            entry = files[index]
            end = ends.get(entry.path)
            found = _line_of(source, entry, wanted, end)
            if found is None:
                continue
            at, raw = found
            key = (source, entry.day, entry.part)
            done.position.positions[key] = at + len(raw)
            done.position.last[key] = (at, raw[:HEAD])
            for earlier in files[:index]:
                mark_read(done.position, source, earlier, ends.get(earlier.path))
            break
        else:
            done.above[source.room] = wanted
    return done


def _files(source: LogDir) -> list[LogFile]:
    from ..read.logread import select_files

    try:
        return select_files(source.path)
    except OSError:
        return []


def _line_of(
    source: LogDir, entry: LogFile, wanted: int, end: int | None
) -> tuple[int, bytes] | None:
    """Where the (last) line with id ``wanted`` starts in the file's committed part."""
    needle = b'{"id":%d,' % wanted
    found: tuple[int, bytes] | None = None
    with contextlib.suppress(OSError, EOFError, ValueError):
        for chunk in read_chunks(source, entry):
            data = chunk.data
            at = data.find(needle)
            while at >= 0:
                if at == 0 or data[at - 1] == 0x0A:
                    stop = data.index(b"\n", at) + 1
                    if end is None or entry.compressed or chunk.offset + stop <= end:
                        found = (chunk.offset + at, data[at:stop])
                at = data.find(needle, at + 1)
            if end is not None and not entry.compressed and chunk.end >= end:
                break
    return found


# -- one client -------------------------------------------------------------------------


@dataclass
class Subscriber:
    """One client: its filters, where it got to, and how events reach it."""

    filters: Filters
    window: Window = EVERYTHING
    rooms: frozenset[str] = frozenset()  # empty: every room and the log directory
    vector: Vector = field(default_factory=dict)
    above: Vector = field(default_factory=dict)  # rooms resumed by id (line not found)
    caught_up: dict[tuple[str | None, dt.date, int], int] = field(default_factory=dict)
    send: Callable[[bytes], bool] = lambda data: True  # False: the client is too slow
    close: Callable[[], None] = lambda: None  # end its stream (dropped: it resumes by id)

    def events(self, lines: Iterable[FeedLine], *, live: bool = True) -> bytes:
        """The SSE text for ``lines`` (the position moved past each)."""
        out: list[bytes] = []
        moved = False
        for line in lines:
            if live and self.caught_up:
                key = (line.room, line.file.day, line.file.part)
                if line.offset < self.caught_up.get(key, 0):
                    continue  # the catch-up sent it
            if line.id is None:
                continue  # a corrupt line: no key, no event (search skips it too)
            floor = self.above.get(line.room)
            if floor is not None and line.id <= floor:
                continue  # resumed by id: sent before the line went
            if line.room is not None and self.vector.get(None) == 0:
                del self.vector[None]  # the placeholder of "no line anywhere" (vector_at)
            self.vector[line.room] = line.id
            moved = True
            if self._admits(line):
                out.append(
                    b"id: "
                    + format_id(self.vector, line.room).encode()
                    + b"\ndata: "
                    + _shown(line.raw).rstrip(b"\n")
                    + b"\n\n"
                )
        if moved and not out:
            out.append(self.position_event())
        return b"".join(out)

    def position_event(self) -> bytes:
        return b"event: position\nid: " + format_id(self.vector).encode() + b"\ndata: {}\n\n"

    def _admits(self, line: FeedLine) -> bool:
        if self.rooms and (line.room or "") not in self.rooms:
            return False
        if not self.filters.any and not self.window.bounded:
            return True
        message = parse_line(line.raw)
        if message is None:
            return False
        if self.window.bounded and not self.window.admits(timestamp_of(message)):
            return False
        return self.filters.matches(message)


def _shown(raw: bytes) -> bytes:
    """A line as the events carry it: as stored, but a content sealed per agent opened
    with ``serve``'s identity, else ``search``'s placeholder (the readers' one rule,
    :func:`..crypt.agentkeys.shown_line`, as the API's messages)."""
    if not agentkeys.sealed_line(raw):
        return raw
    message = parse_line(raw)
    return raw if message is None else agentkeys.shown_line(raw, message)


# -- the hub ---------------------------------------------------------------------------


class Hub:
    """One feed, one thread, every client (see the module doc)."""

    def __init__(self, log_dir: Path, *, timer: float = TIMER) -> None:
        self.log_dir = log_dir
        self.timer = timer
        self.lock = threading.Lock()
        self.feed = Feed(log_dir, at_end(log_dir))
        self.subscribers: list[Subscriber] = []
        self.on_tick: list[Callable[[], bytes | None]] = []  # other events (the team)
        self.on_stop: list[Callable[[], None]] = []  # run by the thread as it ends
        self._stop = threading.Event()
        self._waker: object | None = None
        self._thread: threading.Thread | None = None

    # -- clients --------------------------------------------------------------------

    def subscribe(self, client: Subscriber, last_id: Vector | None) -> bytes:
        """Join ``client``; what it must be sent first (its catch-up, or its position)."""
        if last_id is None:
            with self.lock:
                client.vector = vector_at(self.feed.position, self.log_dir)
                self.subscribers.append(client)
            return client.position_event()
        resumed = resume(self.log_dir, last_id)
        client.vector = dict(last_id)
        client.above = dict(resumed.above)
        own = Feed(self.log_dir, resumed.position)
        first = client.events(own.poll(), live=False)  # the bulk, unlocked
        with self.lock:  # the rest, and the hand-over
            rest = client.events(own.poll(), live=False)
            client.caught_up = {
                (source.room, day, part): end
                for (source, day, part), end in own.position.positions.items()
            }
            self.subscribers.append(client)
        return first + rest

    def unsubscribe(self, client: Subscriber) -> None:
        with self.lock, contextlib.suppress(ValueError):
            self.subscribers.remove(client)

    # -- the thread -----------------------------------------------------------------

    def poll(self) -> int:
        """Read what was committed since the last poll and hand it to every client."""
        with self.lock:
            lines = list(self.feed.poll())
            if lines:
                for client in list(self.subscribers):
                    data = client.events(lines)
                    if data and not client.send(data):
                        self.subscribers.remove(client)
                        client.close()
        return len(lines)

    def tick(self) -> None:
        for hook in self.on_tick:
            try:
                data = hook()
            except Exception:  # a team read failing must not stop the events
                log.exception("serve: reading the team failed")
                continue
            if data:
                with self.lock:
                    for client in list(self.subscribers):
                        if not client.send(data):
                            self.subscribers.remove(client)
                            client.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serve-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        waker = self._waker
        if waker is not None:
            waker.stop()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        from ..record.watch import Waker, Watcher, WatcherUnavailable

        waker = Waker(gap=0.02, busy_gap=0.1)
        self._waker = waker
        watcher: Watcher | None
        try:
            watcher = Watcher(retry=1.0, thread=True)
        except WatcherUnavailable:
            watcher = None
        watched: set[Path] = set()

        def watch_new() -> None:
            if watcher is None:
                return
            for directory in [self.log_dir, *rooms_to_watch(self.log_dir)]:
                if directory not in watched:
                    watched.add(directory)
                    watcher.watch(directory, _log_files, waker, prefix=f"{directory.name}/")

        try:
            while not self._stop.is_set():
                watch_new()
                try:
                    found = self.poll()
                except Exception:  # reported, and tried again at the next wake-up
                    log.exception("serve: reading the logs failed")
                    found = 0
                waker.pace(found)
                self.tick()
                if waker.wait(self.timer).reason == "stop":
                    return
        finally:
            if watcher is not None:
                watcher.close()
            for hook in self.on_stop:
                hook()


def _log_files(name: str, is_dir: bool) -> bool:
    """What may hold new committed lines: a day file, the state (the commit), a room."""
    return is_dir or name.startswith("messages-") or name == STATE_NAME
