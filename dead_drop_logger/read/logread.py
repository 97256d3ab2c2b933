"""The one reader of log directories: every command that reads the logs goes through it.

Why it looks like this:
- Files are chosen by the date in their name (:mod:`.layout`), so a one-day range opens
  one day's files, and are read in day, then part, order; the ``messages-current.json``
  link, the state and lock files are never read. A day part present both plain and
  ``.gz`` (a compression between its rename and its unlink) is read once, from the gzip.
- Data comes in large blocks of whole lines (:class:`Chunk`), so a caller can search a
  whole block with ``bytes.find`` and split only where it matters; lines are the bytes
  exactly as stored. A last line without its newline is a line still being appended:
  it is not returned (nor counted as corrupt) until it is complete.
- Every chunk says which directory (room) and file it came from and at which offset of
  the file's uncompressed bytes it starts, so a follower can resume at (file, offset)
  even after the file has been compressed.
- Parsed messages (:meth:`Reader.messages`) apply the time window to each message's own
  ``timestamp`` (naive local time, as the server writes it); a line that is not a JSON
  object is skipped and counted in :attr:`Reader.corrupt`, per file.
- A damaged gzip (cut short, a bad block) is read up to the damage and named in
  :attr:`Reader.damaged`: one bad file must not hide every other day's messages.
- An encrypted segment (``.json.age``: docs/encryption.md) is decrypted here, in memory,
  with the configured identity, and read as a whole file that never changes; without
  an identity (or with the wrong one) the reader stops with one line
  (:class:`..crypt.CryptError`), since nothing in that day could be shown. Nothing
  decrypted is ever written to disk.
- So is a file (or a room's directory) that cannot be read at all, permission denied or
  a failing disk: it is named in :attr:`Reader.unreadable` and the others are read, as
  grep reads the files it can (the commands warn of each and exit 2 at the end).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import json
import os
import re
import threading
import zlib
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..crypt import segments
from ..logdir import layout
from ..logdir.layout import LogFile
from .committed import committed_ends

BLOCK = 1 << 20  # big reads: the fast path searches whole blocks, not lines
READ_AHEAD = 2  # blocks read ahead of the caller
PEEK = 1 << 14  # where a block's last line break is looked for first
Message = dict[str, Any]
Stream = io.RawIOBase | io.BufferedIOBase


class LogReadError(Exception):
    """A log directory or file cannot be read (the message is fit for the user)."""


class DamagedFile(LogReadError):
    """A file's content ends in damage (a gzip cut short or corrupt); every whole line
    before it was read."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is damaged ({reason}): read up to the damage")
        self.path = path
        self.reason = reason


class UnreadableFile(LogReadError):
    """A file (or directory) cannot be read at all, or not past some point (an I/O
    error); whatever was read before the error was returned."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path = path
        self.reason = reason


DAMAGE = (EOFError, zlib.error, gzip.BadGzipFile)
"""What a damaged gzip raises while it is read (not a failing disk: that is OSError)."""


@dataclass(frozen=True)
class Window:
    """``[since, until)`` in naive local time; None is unbounded on that side."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def admits_day(self, day: dt.date, slack_days: int = 0) -> bool:
        """Whether a file named for ``day`` can hold a message inside the window.

        ``slack_days`` widens the test (1 for files dated in UTC, whose day differs from
        the local date of the messages in it by up to a day)."""
        slack = dt.timedelta(days=slack_days)
        if self.since is not None and day + slack < self.since.date():
            return False
        if self.until is not None:
            midnight = dt.datetime.combine(day - slack, dt.time())
            if midnight >= self.until:
                return False
        return True

    def admits(self, stamp: dt.datetime | None) -> bool:
        """Whether a message stamped ``stamp`` is inside; an unknown time is only inside
        an unbounded window."""
        if stamp is None:
            return not self.bounded
        if self.since is not None and stamp < self.since:
            return False
        return self.until is None or stamp < self.until


EVERYTHING = Window()


def timestamp_of(message: Message) -> dt.datetime | None:
    """A message's ``timestamp`` as naive wall time (a zone, if any, is dropped: the
    logger files a message by the date written in it), None if missing or unparseable."""
    value = message.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=None)
    except ValueError:
        return None


@dataclass(frozen=True)
class LogDir:
    """A directory of log files; ``room`` names it for output (None: the main log)."""

    path: Path
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """Whole lines (each ending in ``\\n``) read from one file.

    ``offset`` is where ``data`` starts in the file's uncompressed bytes; the next read
    of that file resumes at ``end``."""

    source: LogDir
    file: LogFile
    offset: int
    data: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.data)

    def lines(self) -> Iterator[bytes]:
        """The lines, each with its ``\\n``."""
        data = self.data
        start = 0
        while start < len(data):
            stop = data.index(b"\n", start) + 1
            yield data[start:stop]
            start = stop


@dataclass(frozen=True, slots=True)
class Line:
    """One stored line (``raw`` ends in ``\\n``) and where it came from."""

    source: LogDir
    file: LogFile
    offset: int
    raw: bytes


class Entry:
    """A message with its stored line; parsed when first asked for (a line found
    through the index and printed as stored, or only counted, is never parsed)."""

    __slots__ = ("_message", "line")

    def __init__(self, line: Line, message: Message | None = None) -> None:
        self.line = line
        self._message = message

    @property
    def message(self) -> Message:
        if self._message is None:
            found = parse_line(self.line.raw)
            self._message = {} if found is None else found
        return self._message


def parse_line(raw: bytes) -> Message | None:
    """The JSON object on a stored line, None if the line is not one (corrupt)."""
    try:
        value = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    return value if isinstance(value, dict) else None


def select_files(
    log_dir: Path, window: Window = EVERYTHING, *, utc: bool = False, kind: str = layout.MESSAGES
) -> list[LogFile]:
    """The directory's log files a window needs, in day/part order, each part once
    (``kind``: messages by default; read/tasklog.py reads tasks and agents).

    Raises UnreadableFile when the directory exists but cannot be listed; a missing
    directory holds no files."""
    if log_dir.exists() and not log_dir.is_dir():
        raise UnreadableFile(log_dir, "not a directory")
    try:
        found = layout.log_files(log_dir, (kind,))
    except OSError as exc:
        raise UnreadableFile(log_dir, exc.strerror or str(exc)) from None
    chosen: dict[tuple[dt.date, int], LogFile] = {}
    slack = 1 if utc else 0
    for entry in found:  # sorted: plain before .gz, so the gzip wins a tie
        if window.admits_day(entry.day, slack):
            chosen[(entry.day, entry.part)] = entry
    return sorted(chosen.values())


def _open(entry: LogFile) -> tuple[Stream, bool]:
    """Open a log file (and say whether it is a stream: a gzip); a plain file
    compressed since it was listed is read as its .gz."""
    if entry.compressed:
        return gzip.open(entry.path, "rb"), True
    try:
        return open(entry.path, "rb", buffering=0), False
    except FileNotFoundError:
        packed = layout.compressed_path(entry.path)
        if not packed.exists():
            raise
        return gzip.open(packed, "rb"), True


def _skip(stream: Stream, offset: int, compressed: bool) -> None:
    if not offset:
        return
    if not compressed:
        stream.seek(offset)
        return
    remaining = offset
    while remaining:
        got = stream.read(min(remaining, BLOCK))
        if not got:
            break
        remaining -= len(got)


def read_chunks(
    source: LogDir, entry: LogFile, start: int = 0, block: int = BLOCK
) -> Iterator[Chunk]:
    """The whole lines of one file from byte ``start`` on, in blocks of about ``block``.

    A final line without its newline is being appended: it is left for a later read
    (resume at the last chunk's ``end``). A file gone since it was listed (pruned)
    yields nothing; a damaged gzip yields its lines up to the damage, then raises
    DamagedFile; other read errors raise UnreadableFile."""
    if entry.encrypted:
        try:
            plain = segments.read_segment(entry.path)  # in memory, never to disk
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UnreadableFile(entry.path, exc.strerror or str(exc)) from None
        yield from _memory_chunks(plain, source, entry, start, block)
        return
    try:
        stream, compressed = _open(entry)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnreadableFile(entry.path, exc.strerror or str(exc)) from None
    with stream:
        try:
            _skip(stream, start, compressed)
            if compressed:
                yield from _stream_chunks(stream, source, entry, start, block)
            else:
                yield from _file_chunks(stream, source, entry, start, block)
        except DAMAGE as exc:
            raise DamagedFile(entry.path, str(exc) or type(exc).__name__) from None
        except OSError as exc:
            raise UnreadableFile(entry.path, exc.strerror or str(exc)) from None


def _file_chunks(
    stream: Stream, source: LogDir, entry: LogFile, offset: int, block: int
) -> Iterator[Chunk]:
    """A plain file, read with ``pread`` in blocks that end at a line boundary: the end
    of each block is looked up first in a small read of its last bytes, so the block
    itself is read once, to the byte, and never copied to cut off a partial line."""
    fd = stream.fileno()
    while True:
        peek_at = max(offset, offset + block - PEEK)
        tail = os.pread(fd, offset + block - peek_at, peek_at)
        last = tail.rfind(b"\n")
        if last >= 0:
            cut = peek_at + last + 1 - offset
            data = os.pread(fd, cut, offset)
            if len(data) != cut:  # cannot happen to an append-only file; be safe
                return
        else:  # a line longer than PEEK (or the block), or no whole line left
            data = os.pread(fd, block, offset)
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) < block:
                    return
                block *= 2
                continue
            data = data[:cut] if cut < len(data) else data
        yield Chunk(source, entry, offset, data)
        offset += cut


def _memory_chunks(
    data: bytes, source: LogDir, entry: LogFile, offset: int, block: int
) -> Iterator[Chunk]:
    """A decrypted segment, whole in memory (a segment is sealed at about 1 MiB): handed
    on as one chunk, not copied, when it fits in two blocks; else cut at line breaks."""
    end = data.rfind(b"\n") + 1
    if offset == 0 and end == len(data) and end <= 2 * block:
        if end:
            yield Chunk(source, entry, 0, data)
        return
    while offset < end:
        cut = data.rfind(b"\n", offset, offset + block) + 1
        if cut <= offset:  # a line longer than the block
            cut = data.index(b"\n", offset) + 1
        yield Chunk(source, entry, offset, data[offset:cut])
        offset = cut


def _stream_chunks(
    stream: Stream, source: LogDir, entry: LogFile, offset: int, block: int
) -> Iterator[Chunk]:
    """A gzip stream (no cheap seeking back): the partial line is carried over. Read
    in the gzip's own steps (``read1``), so damage loses only the step it is in: the
    whole lines before it are yielded, then the damage is raised."""
    carry = b""
    while True:
        pieces, size, damage = [], 0, None
        try:
            while size < block:
                piece = stream.read1(block - size)  # type: ignore[union-attr]
                if not piece:
                    break
                pieces.append(piece)
                size += len(piece)
        except DAMAGE as exc:
            damage = exc
        if not pieces and damage is None:
            return
        data = b"".join([carry, *pieces])
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            yield Chunk(source, entry, offset, data[:cut] if carry else data)
            offset += cut
        if damage is not None:
            raise damage


_END = object()


def read_ahead(chunks: Generator[Chunk, None, None], depth: int) -> Iterator[Chunk]:
    """``chunks``, produced by a background thread at most ``depth`` ahead; its errors
    are raised here, and stopping early (``--limit``, an error) stops the thread."""
    import queue  # the scan's alone: not loaded by an answer through the index

    ready: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        ready.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)
        finally:
            chunks.close()  # its open file, at once

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Chunk)
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)


@dataclass
class Reader:
    """Reads one or more log directories (rooms) for a window, in day order.

    What was skipped: ``corrupt_in`` counts the corrupt lines of each file (``corrupt``
    is their total), ``damaged`` names each damaged file and why, ``unreadable`` each
    file or directory that could not be read and why."""

    sources: Sequence[LogDir]
    window: Window = EVERYTHING
    utc: bool = False
    block: int = BLOCK
    kind: str = layout.MESSAGES  # which day files (tasklog reads tasks and agents)
    corrupt_in: Counter[Path] = field(default_factory=Counter, init=False)
    damaged: dict[Path, str] = field(default_factory=dict, init=False)
    unreadable: dict[Path, str] = field(default_factory=dict, init=False)
    notes: list[str] = field(default_factory=list, init=False)  # e.g. a damaged index
    links: list[Path] = field(default_factory=list, init=False)  # rooms' links, not read

    @property
    def corrupt(self) -> int:
        return sum(self.corrupt_in.values())

    def skip(self, file: LogFile) -> None:
        """Count one corrupt line of ``file``."""
        self.corrupt_in[file.path] += 1

    def read_file(
        self, source: LogDir, entry: LogFile, start: int = 0
    ) -> Generator[Chunk, None, None]:
        """:func:`read_chunks` of one file; a damaged file's lines up to the damage,
        the damage noted in :attr:`damaged`; a file that cannot be read, its lines up to
        the error (none at all if it cannot be opened), noted in :attr:`unreadable`."""
        try:
            yield from read_chunks(source, entry, start, self.block)
        except DamagedFile as exc:
            self.damaged[exc.path] = exc.reason
        except UnreadableFile as exc:
            self.unreadable[exc.path] = exc.reason

    @classmethod
    def of(cls, log_dir: Path, window: Window = EVERYTHING, *, utc: bool = False) -> Reader:
        return cls([LogDir(log_dir)], window, utc)

    @property
    def rooms(self) -> bool:
        """Whether a room's directory is read: then every output names each row's room
        (a plain log directory's output stays as it was before rooms existed)."""
        return any(source.room is not None for source in self.sources)

    def files(self) -> list[tuple[LogDir, LogFile]]:
        """Every (directory, file) to read: by day, then directory (in the order
        given), then part. A directory that cannot be listed is noted in
        :attr:`unreadable` and the others are read."""
        pairs: list[tuple[tuple[dt.date, int, int], LogDir, LogFile]] = []
        for index, source in enumerate(self.sources):
            try:
                found = select_files(source.path, self.window, utc=self.utc, kind=self.kind)
            except UnreadableFile as exc:
                self.unreadable[exc.path] = exc.reason
                continue
            for entry in found:
                pairs.append(((entry.day, index, entry.part), source, entry))
        pairs.sort(key=lambda item: item[0])
        return [(source, entry) for _key, source, entry in pairs]

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk of every file, the next ones read ahead in a thread (reads and
        gzip inflation release the GIL, so they overlap the caller's searching)."""
        return read_ahead(self._chunks(), READ_AHEAD)

    def _chunks(self) -> Generator[Chunk, None, None]:
        for source, entry in self.files():
            yield from self.read_file(source, entry)

    def lines(self) -> Iterator[Line]:
        """Every complete stored line, with no window applied (that needs parsing)."""
        for chunk in self.chunks():
            offset = chunk.offset
            for raw in chunk.lines():
                yield Line(chunk.source, chunk.file, offset, raw)
                offset += len(raw)

    def messages(self) -> Iterator[Entry]:
        """Every message inside the window, parsed; corrupt lines counted and skipped."""
        yield from self.parse(self.lines())

    def parse(self, lines: Iterable[Line]) -> Iterator[Entry]:
        """Parse ``lines`` (the exact, slow path), applying the window."""
        window = self.window
        for line in lines:
            message = parse_line(line.raw)
            if message is None:
                self.skip(line.file)
                continue
            if window.bounded and not window.admits(timestamp_of(message)):
                continue
            yield Entry(line, message)


def gzip_size(path: Path) -> int | None:
    """The uncompressed size a gzip's trailer records (modulo 2**32), None if unreadable."""
    try:
        with open(path, "rb") as raw:
            raw.seek(-4, 2)
            return int.from_bytes(raw.read(4), "little")
    except OSError:
        return None


_ID = re.compile(rb'\{"id":(-?\d+)[,}]')
HEAD = 40  # bytes of a line remembered to recognise it again (its ``{"id":N,``)


def line_id(line: bytes) -> int | None:
    """The id a stored line starts with (every logged line starts ``{"id":N,``)."""
    match = _ID.match(line)
    return int(match.group(1)) if match else None


@dataclass
class Tail:
    """Where reading got to in every file of some log directories, so that each
    :meth:`poll` yields only the whole, committed lines added (or files created) since
    the last.

    The first poll reads everything in the window, which makes it the initial search of
    ``--follow``. Files are keyed by (directory, day, part), so a day file compressed
    after it was read is recognised as the same file (its gzip trailer says whether it
    grew first) and a new day or part is read from its start.

    Only committed lines are read (:mod:`.committed`): each file up to the end its
    directory's state says no crash can cut back. So a line shown is never cut back,
    nor written again with other bytes (which a crash does to the lines past that end).
    Where to resume is the last line read from each file, recognised by its id and
    first bytes; its offset only says where to look first. A file whose line is no
    longer there (a log directory restored from a backup, a file replaced) is searched
    for the last id read, and read on after it.
    """

    reader: Reader
    positions: dict[tuple[LogDir, dt.date, int], int] = field(default_factory=dict)
    finished: set[tuple[LogDir, dt.date, int]] = field(default_factory=set)  # read .gz
    # The last line read from each file: where it starts, and its first bytes.
    last: dict[tuple[LogDir, dt.date, int], tuple[int, bytes]] = field(default_factory=dict)

    def poll(self) -> Iterator[Chunk]:
        """The committed chunks added since the last poll, in the reader's file order."""
        seen: set[tuple[LogDir, dt.date, int]] = set()
        files = self.reader.files()
        ends = committed_ends(
            (source.path, entry)
            for source, entry in files
            if (source, entry.day, entry.part) not in self.finished
        )
        for source, entry in files:
            key = (source, entry.day, entry.part)
            seen.add(key)
            if entry.sealed and key in self.finished:  # a gzip, a segment never changes
                continue
            start = self.positions.get(key, 0)
            end = ends.get(entry.path)
            if entry.encrypted:  # committed whole (None), or not yet at all (0)
                if end == 0:
                    continue
                end = None
            if key in self.positions and not self._may_have_grown(entry, start, end):
                if entry.compressed:
                    self.finished.add(key)
                continue
            if key in self.last and not entry.sealed and not self._still_there(key, entry):
                start = self._find(source, entry, key, end)
            for chunk in self._upto(self.reader.read_file(source, entry, start), end):
                self.positions[key] = chunk.end
                head = chunk.data.rfind(b"\n", 0, len(chunk.data) - 1) + 1
                self.last[key] = (chunk.offset + head, chunk.data[head : head + HEAD])
                yield chunk
            self.positions.setdefault(key, start)
            if entry.sealed:
                self.finished.add(key)
        for gone in set(self.positions) - seen:  # pruned by retention
            del self.positions[gone]
            self.finished.discard(gone)
            self.last.pop(gone, None)

    @staticmethod
    def _upto(chunks: Iterator[Chunk], end: int | None) -> Iterator[Chunk]:
        """``chunks`` up to the whole line that ends at or before ``end`` (None: all)."""
        try:
            for chunk in chunks:
                if end is None or chunk.end <= end:
                    yield chunk
                    continue
                cut = chunk.data.rfind(b"\n", 0, max(0, end - chunk.offset)) + 1
                if cut:
                    yield Chunk(chunk.source, chunk.file, chunk.offset, chunk.data[:cut])
                return
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # its open file, at once

    @staticmethod
    def _may_have_grown(entry: LogFile, start: int, end: int | None) -> bool:
        if entry.compressed:
            return gzip_size(entry.path) != start % (1 << 32)
        if end is None:  # compressed (or pruned) since it was listed
            return True
        return end != start  # (below it: the file replaced, so it is looked at again)

    def _still_there(self, key: tuple[LogDir, dt.date, int], entry: LogFile) -> bool:
        """Whether the last line read from the file still starts where it did."""
        at, head = self.last[key]
        try:
            with open(entry.path, "rb", buffering=0) as raw:
                before = (
                    os.pread(raw.fileno(), len(head) + 1, at - 1)
                    if at
                    else b"\n" + (os.pread(raw.fileno(), len(head), 0))
                )
        except OSError:  # gone (to its gzip, say): its bytes are the same
            return True
        return before == b"\n" + head

    def _find(
        self, source: LogDir, entry: LogFile, key: tuple[LogDir, dt.date, int], end: int | None
    ) -> int:
        """Where to resume in a file whose last line read is no longer where it was:
        after the line with that id, else before the first line with a greater id,
        else at the end of its committed lines."""
        wanted = line_id(self.last[key][1])
        after: int | None = None
        greater: int | None = None
        offset = 0
        for chunk in self._upto(self.reader.read_file(source, entry, 0), end):
            offset = chunk.offset
            for raw in chunk.lines():
                found = line_id(raw)
                if wanted is not None and found == wanted:
                    after, greater = offset + len(raw), None
                elif (
                    wanted is not None
                    and found is not None
                    and found > wanted
                    and greater is None
                    and after is None
                ):
                    greater = offset
                offset += len(raw)
        if after is not None:
            return after
        return greater if greater is not None else offset


def find_ids(
    sources: Sequence[LogDir], ids: Iterable[int], days: Iterable[dt.date]
) -> dict[int, Message]:
    """The stored messages with these ids, looked for in the files of ``days`` only.

    Found by bytes (a line starts with ``{"id":N,``, as every logged line does: ``id``
    is the table's first column) and parsed only when found; a corrupt line is not found.
    For a few ids (a report's thread roots), not for scanning: reads whole day files."""
    wanted = {int(i) for i in ids}
    chosen = set(days)
    found: dict[int, Message] = {}
    for source in sources:
        for entry in select_files(source.path):
            if entry.day not in chosen:
                continue
            for chunk in _undamaged(read_chunks(source, entry)):
                for msg_id in wanted - found.keys():
                    message = _find_line(chunk.data, msg_id)
                    if message is not None:
                        found[msg_id] = message
            if len(found) == len(wanted):
                return found
    return found


def _undamaged(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """``chunks`` up to a damage or a read error, which ends them quietly (a preview is
    not worth a warning: the command reading the numbers warns of it)."""
    with contextlib.suppress(DamagedFile, UnreadableFile):
        yield from chunks


def _find_line(data: bytes, msg_id: int) -> Message | None:
    key = b'{"id":%d,' % msg_id
    at = data.find(key)
    while at >= 0:
        if at == 0 or data[at - 1] == 0x0A:
            message = parse_line(data[at : data.index(b"\n", at) + 1])
            if message is not None and message.get("id") == msg_id:
                return message
        at = data.find(key, at + 1)
    return None
