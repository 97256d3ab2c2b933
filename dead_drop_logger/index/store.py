"""The index file itself: a SQLite database beside the logs, and what it holds of each line.

Why it looks like this:
- It is a cache. Every row is derived from the bytes of a log file, and a reader trusts
  the rows of a file only after checking, each time, that the file still holds what was
  indexed (its first line, and its last indexed line at the same offset: see
  :class:`FileRecord`). Deleting the file loses nothing; a damaged one is reported in one
  line and the logs are scanned instead; ``index --rebuild`` makes a new one.
- Rows keep *where* a line is (file, offset, length), never its text: output bytes are
  read from the log file by offset, so the index never re-serialises a message. The
  columns are only what the filters and the counting readers ask (id, time, sender,
  recipient, task, reply, the CC flags), names stored once (``names``).
- A line whose values the columns cannot say exactly (not a JSON object, an id that is
  not an integer, a sender that is not a string, a lone surrogate...) is *odd*: a file
  holding one is read by scanning, as without an index, so an answer through the index
  is always the scan's answer.
- The row key is ``fid << 40 | offset``: the rows of one file are one range of keys, in
  file order, with no separate index.
- The full-text index (FTS5, contentless, ``detail=none``: just which rows hold which
  words) is one table per file, so a file dropped (retention, a replaced file) drops
  its table, with no need for the text it had. Its words are the runs of ASCII letters
  (three or more) of the content *case-folded*, every distinct word (``terms``) listed
  once. ``contains`` is a substring test, so a needle's word can be the middle of a
  content's word: its candidates are the rows holding any listed word that contains it
  (case-folding maps each character on its own, so a content holding the needle, in
  any case, holds the needle's runs inside its own runs). That is a superset; the
  candidate lines are then read and tested exactly. Without content (an encrypted log
  directory, ``content=False``) there is no such table, nor ``terms``, and
  ``contains`` reads the candidate lines of the other filters.
- Written in transactions (a crash leaves the last committed state); a rebuild is
  written to a temporary file renamed over the old one. The file is 0600, and so are
  SQLite's journal files (it gives them the database's mode).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

INDEX_NAME = ".dead-drop-logger.index"
SCHEMA = 2  # 2: the per-file partial numbers of ``stats`` (``partials``)
KEY_BITS = 40  # offsets below 1 TiB per file; fid above
HEAD = 48  # bytes of a line kept to recognise it

CC = 1  # is_cc in (1, True): a CC copy (agents, stats, thread)
CC_DEFAULT = 2  # message.get("is_cc", 1) in (1, True): what --no-cc leaves out
CC_RAW = 4  # the bytes '"is_cc":1,' are in the line (thread's test for a root's copy)
ODD = 8  # the columns cannot say this line exactly

MIN_WORD = 3  # shorter needles and words are not looked up
_WORD = re.compile(r"[a-z]{3,}")
_MIN = dt.datetime.min
_US = dt.timedelta(microseconds=1)


class IndexError_(Exception):
    """The index file cannot be used (damaged, another schema): the message says why."""


def busy(exc: BaseException) -> bool:
    """Whether a SQLite error only says another process holds the index for now."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def micros(stamp: dt.datetime) -> int:
    """A naive time as microseconds since 0001-01-01 (what ``ts`` holds): same order."""
    return (stamp - _MIN) // _US


def from_micros(value: int) -> dt.datetime:
    return _MIN + value * _US


def key_of(fid: int, offset: int) -> int:
    return (fid << KEY_BITS) | offset


def key_range(fid: int) -> tuple[int, int]:
    return fid << KEY_BITS, ((fid + 1) << KEY_BITS) - 1


@dataclass
class FileRecord:
    """What the index holds of one log file (a day and part): its rows cover the bytes
    ``[0, end)``, the first line starts with ``first``, the last starts at ``last_off``
    with ``last``; ``stamp``: (inode, size, mtime) of a gzip checked whole."""

    fid: int
    day: str
    part: int
    name: str
    end: int
    first: bytes
    last_off: int
    last: bytes
    lines: int
    odd: int
    stamp: str | None


@dataclass(frozen=True, slots=True)
class Row:
    """The columns of one line (names as text; the store maps them to numbers)."""

    msg_id: int | None
    ts: int | None
    sender: str | None
    recipient: str | None
    task: str | None
    reply: int | None
    flags: int
    content: str | None
    words: frozenset[str] = frozenset()
    stamp: str | None = None  # the timestamp as logged, when ts is not None


def _text(value: object) -> str | None:
    """A string the columns can hold exactly (UTF-8, no NUL), else None."""
    if not isinstance(value, str) or "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


_ODD_ROW = Row(None, None, None, None, None, None, ODD, None)
_loads = json.JSONDecoder().decode


def row_of(raw: bytes) -> Row:
    """The columns of one stored line; ODD when they cannot say it exactly."""
    try:
        message = _loads(raw.decode("utf-8"))
    except ValueError:  # (UnicodeDecodeError too: not UTF-8, as json.loads says)
        return _ODD_ROW
    if type(message) is not dict:
        return _ODD_ROW
    get = message.get
    msg_id = get("id")
    sender = get("from_agent")
    recipient = get("to_agent")
    content = get("content")
    task = get("task_id")
    reply = get("reply_to")
    stamp = get("timestamp")
    cc_value = get("is_cc", 1)
    if b"\\u" in raw:  # an escape: maybe a NUL or a lone surrogate, which no column holds
        sender, recipient, content = _text(sender), _text(recipient), _text(content)
        task = task if task is None else (_text(task) or 0)
    flags = 0
    if get("is_cc") in (1, True):
        flags |= CC
    if cc_value in (1, True):
        flags |= CC_DEFAULT
    if b'"is_cc":1,' in raw:
        flags |= CC_RAW
    ts: int | None = None
    if type(stamp) is str:
        try:
            when = dt.datetime.fromisoformat(stamp)
            if when.tzinfo is not None:  # (a copy per line otherwise: a tenth of a build)
                when = when.replace(tzinfo=None)
            ts = (when - _MIN) // _US
        except ValueError:
            ts = None
    if not (
        type(msg_id) is int
        and type(sender) is str
        and type(recipient) is str
        and type(content) is str
        and (task is None or type(task) is str)
        and (reply is None or type(reply) is int)
        and type(cc_value) is int
        and cc_value in (0, 1)
        and (stamp is None or type(stamp) is str)
    ):
        return Row(
            msg_id if type(msg_id) is int else None,
            ts,
            sender if type(sender) is str else None,
            recipient if type(recipient) is str else None,
            task if type(task) is str else None,
            reply if type(reply) is int else None,
            flags | ODD,
            None,
            stamp=stamp if ts is not None else None,
        )
    return Row(
        msg_id,
        ts,
        sender,
        recipient,
        task,
        reply,
        flags,
        content,
        frozenset(_WORD.findall(content.casefold())),
        stamp if ts is not None else None,
    )


class Batch(NamedTuple):
    """Lines parsed for :meth:`Store.add_rows`, as plain tuples (a worker process of
    a big build hands them over cheaply)."""

    # (offset, length, id, ts, sender, recipient, task, reply, flags, the timestamp's text
    # when ts is not None: what ``stats`` prints and keeps per file, see ``partials``)
    lines: list[tuple[Any, ...]]
    texts: list[tuple[int, str]]  # (offset, its words joined by spaces): the lines with words
    words: set[str]  # every word of those
    odd: int  # lines whose columns cannot say them (ODD)


def batch_of(offset: int, data: bytes) -> Batch:
    """The lines of ``data`` (whole lines, read at ``offset`` of their file)."""
    lines: list[tuple[Any, ...]] = []
    texts: list[tuple[int, str]] = []
    words: set[str] = set()
    odd = 0
    start = 0
    while start < len(data):
        stop = data.index(b"\n", start) + 1
        row = row_of(data[start:stop])
        at = offset + start
        lines.append(
            (
                at,
                stop - start,
                row.msg_id,
                row.ts,
                row.sender,
                row.recipient,
                row.task,
                row.reply,
                row.flags,
                row.stamp,
            )
        )
        if row.words:
            texts.append((at, " ".join(row.words)))
            words |= row.words
        if row.flags & ODD:
            odd += 1
        start = stop
    return Batch(lines, texts, words, odd)


_TABLES = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE files(fid INTEGER PRIMARY KEY, day TEXT NOT NULL, part INTEGER NOT NULL,
  name TEXT NOT NULL, "end" INTEGER NOT NULL, first BLOB NOT NULL, last_off INTEGER NOT NULL,
  last BLOB NOT NULL, lines INTEGER NOT NULL, odd INTEGER NOT NULL, stamp TEXT,
  UNIQUE(day, part));
CREATE TABLE names(nid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE terms(term TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE lines(key INTEGER PRIMARY KEY, len INTEGER NOT NULL, id INTEGER, ts INTEGER,
  sender INTEGER, recipient INTEGER, task INTEGER, reply INTEGER, flags INTEGER NOT NULL);
CREATE TABLE pairs(fid INTEGER NOT NULL, sender INTEGER, recipient INTEGER, cc INTEGER NOT NULL,
  n INTEGER NOT NULL, first INTEGER, last INTEGER, PRIMARY KEY(fid, sender, recipient, cc));
CREATE TABLE partials(fid INTEGER PRIMARY KEY, "end" INTEGER NOT NULL, state TEXT NOT NULL,
  ints BLOB NOT NULL, texts TEXT NOT NULL, waits BLOB NOT NULL);
CREATE INDEX lines_id ON lines(id);
CREATE INDEX lines_reply ON lines(reply) WHERE reply IS NOT NULL;
"""


def index_path(log_dir: Path) -> Path:
    return log_dir / INDEX_NAME


def fts_available() -> bool:
    """Whether this Python's SQLite has FTS5."""
    try:
        conn = sqlite3.connect(":memory:")
        try:
            conn.execute("CREATE VIRTUAL TABLE t USING fts5(c)")
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return True


class Store:
    """An open index file. ``content``: whether it holds a full-text index of the
    messages' content (False for an encrypted log directory: no text at rest)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, writable: bool) -> None:
        self.conn = conn
        self.path = path
        self.writable = writable
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("schema") != str(SCHEMA):
            raise IndexError_(
                f"index {path} has another schema (made by another version: its schema"
                f" {meta.get('schema')}, this version's {SCHEMA})"
            )
        self.content = meta.get("content") == "1"
        self._names: dict[str, int] | None = None
        self._by_nid: dict[int, str] | None = None
        self._terms: set[str] | None = None
        # the partial numbers of stats per file kept in memory between updates (the
        # logger's thread sets it: read/statfile.py); None: saved at every update
        self.partials_cache: dict[int, Any] | None = None

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(cls, log_dir: Path, *, write: bool = False) -> Store | None:
        """The index of ``log_dir``, None when there is none. ``write``: open it for
        updating (None when the directory or file cannot be written). Raises
        IndexError_ when the file is damaged."""
        path = index_path(log_dir)
        if not os.path.isfile(path) or os.path.islink(path):
            return None
        writable = write and os.access(path, os.W_OK) and os.access(log_dir, os.W_OK)
        if write and not writable:
            return None
        try:
            mode = "rw" if writable else "ro"
            conn = sqlite3.connect(
                f"file:{path}?mode={mode}", uri=True, timeout=2, isolation_level=None
            )
            conn.execute("PRAGMA query_only=0" if writable else "PRAGMA query_only=1")
            return cls(conn, path, writable)
        except sqlite3.DatabaseError as exc:
            raise IndexError_(f"index {path} is damaged ({exc})") from None

    @classmethod
    def create(cls, path: Path, *, content: bool) -> Store:
        """A new, empty index at ``path`` (0600), replacing nothing (the caller renames)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        conn = sqlite3.connect(path, timeout=5, isolation_level=None)
        conn.executescript(f"BEGIN;{_TABLES}")
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [("schema", str(SCHEMA)), ("content", "1" if content and fts_available() else "0")],
        )
        conn.execute("COMMIT")
        return cls(conn, path, True)

    def close(self) -> None:
        self.conn.close()

    # -- files ---------------------------------------------------------------------

    def records(self) -> dict[tuple[str, int], FileRecord]:
        rows = self.conn.execute(
            'SELECT fid, day, part, name, "end", first, last_off, last, lines, odd, stamp'
            " FROM files"
        )
        return {(r[1], r[2]): FileRecord(*r) for r in rows}

    def drop_file(self, record: FileRecord) -> None:
        low, high = key_range(record.fid)
        self.conn.execute("DELETE FROM lines WHERE key BETWEEN ? AND ?", (low, high))
        self.conn.execute(f"DROP TABLE IF EXISTS fts_{record.fid}")
        self.conn.execute("DELETE FROM files WHERE fid = ?", (record.fid,))
        self.conn.execute("DELETE FROM pairs WHERE fid = ?", (record.fid,))
        self.conn.execute("DELETE FROM partials WHERE fid = ?", (record.fid,))
        if self.partials_cache is not None:
            self.partials_cache.pop(record.fid, None)

    def new_file(self, day: str, part: int, name: str) -> FileRecord:
        cur = self.conn.execute(
            'INSERT INTO files(day, part, name, "end", first, last_off, last, lines, odd)'
            " VALUES (?, ?, ?, 0, x'', 0, x'', 0, 0)",
            (day, part, name),
        )
        fid = cur.lastrowid
        assert fid is not None
        if self.content:
            self.conn.execute(
                f"CREATE VIRTUAL TABLE fts_{fid} USING fts5(c, content='', detail=none,"
                " tokenize='ascii')"
            )
        return FileRecord(fid, day, part, name, 0, b"", 0, b"", 0, 0, None)

    def save_file(self, record: FileRecord) -> None:
        self.conn.execute(
            'UPDATE files SET name = ?, "end" = ?, first = ?, last_off = ?, last = ?,'
            " lines = ?, odd = ?, stamp = ? WHERE fid = ?",
            (
                record.name,
                record.end,
                record.first,
                record.last_off,
                record.last,
                record.lines,
                record.odd,
                record.stamp,
                record.fid,
            ),
        )

    # -- rows ----------------------------------------------------------------------

    def names(self) -> dict[str, int]:
        if self._names is None:
            self._names = dict(self.conn.execute("SELECT name, nid FROM names"))
        return self._names

    def name_of(self, nid: int) -> str:
        if self._by_nid is None:
            self._by_nid = {v: k for k, v in self.names().items()}
        return self._by_nid[nid]

    def nid(self, name: str | None) -> int | None:
        if name is None:
            return None
        names = self.names()
        found = names.get(name)
        if found is None:
            cur = self.conn.execute("INSERT INTO names(name) VALUES (?)", (name,))
            found = names[name] = cur.lastrowid or 0
            self._by_nid = None
        return found

    def add_rows(self, record: FileRecord, batch: Batch) -> None:
        """Lines of ``record``'s file, in file order, as :func:`batch_of` parsed them."""
        nid = self.nid
        fid = record.fid
        values = [
            (key_of(fid, off), length, msg_id, ts, nid(s), nid(r), nid(t), reply, flags)
            for off, length, msg_id, ts, s, r, t, reply, flags, _stamp in batch.lines
        ]
        self.conn.executemany(
            "INSERT INTO lines(key, len, id, ts, sender, recipient, task, reply, flags)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        pairs: dict[tuple[int | None, int | None, int], list[Any]] = {}
        for _key, _len, _id, ts, sender, recipient, _task, _reply, flags in values:
            found = pairs.get((sender, recipient, flags & CC))
            if found is None:
                pairs[(sender, recipient, flags & CC)] = [1, ts, ts]
                continue
            found[0] += 1
            if ts is not None:
                if found[1] is None or ts < found[1]:
                    found[1] = ts
                if found[2] is None or ts > found[2]:
                    found[2] = ts
        self.conn.executemany(
            "INSERT INTO pairs(fid, sender, recipient, cc, n, first, last)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(fid, sender, recipient, cc) DO UPDATE"
            " SET n = n + excluded.n,"
            " first = coalesce(min(first, excluded.first), first, excluded.first),"
            " last = coalesce(max(last, excluded.last), last, excluded.last)",
            [(fid, *key, *found) for key, found in pairs.items()],
        )
        if self.content:
            if self._terms is None:
                self._terms = {t for (t,) in self.conn.execute("SELECT term FROM terms")}
            new = batch.words - self._terms
            if new:
                self.conn.executemany("INSERT INTO terms(term) VALUES (?)", [(t,) for t in new])
                self._terms |= new
            self.conn.executemany(
                f"INSERT INTO fts_{fid}(rowid, c) VALUES (?, ?)",
                [(key_of(fid, off), text) for off, text in batch.texts],
            )
        rows = batch.lines
        if rows and not self.dupes():
            first, last = key_of(record.fid, rows[0][0]), key_of(record.fid, rows[-1][0])
            for _hit in self.conn.execute(
                "SELECT 1 FROM lines AS n WHERE n.key BETWEEN ? AND ? AND n.id IS NOT NULL"
                " AND EXISTS (SELECT 1 FROM lines AS o WHERE o.id = n.id AND o.key != n.key)"
                " LIMIT 1",
                (first, last),
            ):
                self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('dupes', '1')")
        record.lines += len(rows)
        record.odd += batch.odd

    # -- the partial numbers of stats ----------------------------------------------

    def partial(self, fid: int) -> tuple[int, str, bytes, str] | None:
        """The partial numbers kept for file ``fid`` (:mod:`..read.statfile`): the end
        of the bytes they cover, their state, the threads' ints and texts (the waiting
        messages apart, :meth:`partial_waits`); None when none are kept."""
        for end, state, ints, texts in self.query(
            'SELECT "end", state, ints, texts FROM partials WHERE fid = ?', (fid,)
        ):
            return int(end), state, bytes(ints), texts
        return None

    def partial_waits(self, fid: int, end: int) -> bytes | None:
        """The waiting messages' ints of the partial of ``fid`` kept up to ``end``
        (None: it has changed since)."""
        for (waits,) in self.query(
            'SELECT waits FROM partials WHERE fid = ? AND "end" = ?', (fid, end)
        ):
            return bytes(waits)
        return None

    def save_partial(
        self, fid: int, end: int, state: str, ints: bytes, texts: str, waits: bytes
    ) -> None:
        self.conn.execute(
            'INSERT OR REPLACE INTO partials(fid, "end", state, ints, texts, waits)'
            " VALUES (?, ?, ?, ?, ?, ?)",
            (fid, end, state, ints, texts, waits),
        )

    # -- transactions --------------------------------------------------------------

    def dupes(self) -> bool:
        """Whether some id has been indexed twice (in this directory's files: a copy
        of a day beside it, say); sticky until the index is rebuilt."""
        for _hit in self.query("SELECT 1 FROM meta WHERE key = 'dupes'"):
            return True
        return False

    def begin(self) -> bool:
        """Start a write transaction; False when another process holds one (it is
        bringing the index up to date itself)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        return True

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self._names = self._by_nid = None  # what was added is gone with it
        self._terms = None

    def query(self, sql: str, params: Any = ()) -> Iterator[Any]:
        try:
            yield from self.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise IndexError_(f"index {self.path} is damaged ({exc})") from None
