"""Read-only, paged, schema-driven access to the server's ``messages`` table.

Why it looks like this:
- The database is opened with ``mode=ro``, so it is never created or written.
- Every query is a single autocommit statement whose rows are fetched in full, so no
  read transaction (and no WAL read mark) outlives a call: the server's checkpoints
  are never held back.
- The connection itself is kept between polls so that ``PRAGMA data_version`` gives a
  near-free "did anything change?" check when idle; it is reopened whenever the file's
  identity changes (deleted, replaced, restored).
- Lines are built inside SQLite with ``json_object`` (as fast as ``sqlite3 -json``);
  rows that cannot be expressed exactly that way fall back to :mod:`.encoding`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .encoding import encode_row

log = logging.getLogger(__name__)

TABLE = "messages"
TIMESTAMP_COLUMN = "timestamp"


class SourceError(Exception):
    """The database cannot be read right now; the caller retries later."""


class SourceMissing(SourceError):
    """The database file does not exist (yet)."""


class SourceUnusable(SourceError):
    """The file exists but is not a usable Dead Drop database (corrupt, no table)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One message ready for the log: its id, its line and the day it belongs to."""

    id: int
    line: bytes
    day: str | None  # YYYY-MM-DD from the message's own timestamp; None if unusable


def _text(value: object) -> str:
    """A TEXT value fetched raw (``text_factory=bytes``) as str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def day_expression(column: str, utc: bool) -> str:
    """SQL for the routing day of a timestamp, NULL when it is missing or unparseable.

    Local mode takes the date as the server wrote it (its local wall time); UTC mode
    converts a zone-less timestamp from local time to UTC (SQLite's ``utc`` modifier
    leaves one with an explicit offset as it is, already converted).
    """
    ts = _quote(column)
    if utc:
        return f"date({ts}, 'utc')"
    head = f"substr({ts}, 1, 10)"
    return f"CASE WHEN date({head}) = {head} THEN {head} END"


class Source:
    """The server's database, opened read-only on demand."""

    def __init__(self, path: Path, *, utc: bool = False, busy_timeout: float = 0.5) -> None:
        self.path = path
        self.utc = utc
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._data_version: int | None = None
        self._schema_version: int | None = None
        self._columns: list[str] = []
        self._page_sql = ""
        self._row_sql = ""

    # -- connection ------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._identity = None
        self._data_version = None
        self._schema_version = None

    def _file_identity(self) -> tuple[int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise SourceMissing(f"database {self.path} does not exist") from None
        except OSError as exc:
            raise SourceError(f"cannot stat database {self.path}: {exc.strerror}") from None
        return (st.st_dev, st.st_ino)

    def _connection(self) -> sqlite3.Connection:
        """The open connection, reopened when the path now names a different file."""
        identity = self._file_identity()
        if self._conn is not None and identity == self._identity:
            return self._conn
        if self._conn is not None:
            log.info("database file %s changed identity; reopening", self.path)
        self.close()
        uri = "file:" + urllib.parse.quote(str(self.path.absolute())) + "?mode=ro"
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                isolation_level=None,
                timeout=self.busy_timeout,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open database {self.path}: {exc}") from None
        conn.text_factory = bytes
        self._conn = conn
        self._identity = identity
        return conn

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run one statement to completion (no cursor or read transaction is left open)."""
        conn = self._connection()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError) and (
                "locked" in text or "busy" in text or "unable to open" in text
            ):
                raise SourceError(f"database {self.path} is busy: {text}") from None
            if "no such table" in text or "no such column" in text:
                self._schema_version = None
                raise SourceUnusable(f"database {self.path}: {text}") from None
            if isinstance(exc, sqlite3.OperationalError) and "disk I/O" in text:
                self.close()
                raise SourceError(f"database {self.path}: {text}") from None
            self.close()
            raise SourceUnusable(f"database {self.path} is not usable: {text}") from None

    def _scalar(self, sql: str, params: tuple[object, ...] = ()) -> object:
        rows = self._execute(sql, params)
        return rows[0][0] if rows else None

    # -- change detection and schema ---------------------------------------------------

    def changed(self) -> bool:
        """True when something may have been committed since the last call.

        One ``stat`` plus ``PRAGMA data_version`` on the kept connection: cheap enough to
        run on every tick while idle.
        """
        had = self._conn is not None
        version = self._scalar("PRAGMA data_version")
        assert isinstance(version, int)
        if had and version == self._data_version:
            return False
        self._data_version = version
        return True

    def _refresh_schema(self) -> None:
        version = self._scalar("PRAGMA schema_version")
        if version == self._schema_version and self._columns:
            return
        info = self._execute(f"PRAGMA table_info({TABLE})")
        columns = [_text(r[1]) for r in info]
        if not columns:
            raise SourceUnusable(f"database {self.path} has no {TABLE} table")
        if columns != self._columns and self._columns:
            log.info("messages columns changed: %s", ", ".join(columns))
        self._columns = columns
        self._schema_version = version if isinstance(version, int) else None
        self._build_queries()

    def _build_queries(self) -> None:
        cols = self._columns
        day = day_expression(TIMESTAMP_COLUMN, self.utc) if TIMESTAMP_COLUMN in cols else "NULL"
        exact = " AND ".join(f"typeof({_quote(c)}) IN ('integer','text','null')" for c in cols)
        pairs = ",".join(f"'{c.replace(chr(39), chr(39) * 2)}',{_quote(c)}" for c in cols)
        line = (
            f"replace(replace(json_object({pairs}), char(8232), '\\u2028'),"
            f" char(8233), '\\u2029') || char(10)"
        )
        self._page_sql = (
            f"SELECT rowid, CASE WHEN {exact} THEN {line} END, {day} FROM {TABLE}"
            " WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?"
        )
        typed = ", ".join(f"{_quote(c)}, typeof({_quote(c)})" for c in cols)
        self._row_sql = f"SELECT {typed} FROM {TABLE} WHERE rowid = ?"

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    # -- reads -------------------------------------------------------------------------

    def max_id(self) -> int:
        self._refresh_schema()
        value = self._scalar(f"SELECT max(rowid) FROM {TABLE}")
        return int(value) if isinstance(value, int) else 0

    def count_after(self, after: int) -> int:
        """How many messages have an id above ``after`` (the lag behind the database)."""
        value = self._scalar(f"SELECT count(*) FROM {TABLE} WHERE rowid > ?", (after,))
        return int(value) if isinstance(value, int) else 0

    def fingerprint(self, row_id: int) -> str | None:
        """Something of row ``row_id`` that never changes, to recognise the same database.

        The server's timestamp (microseconds) is used; ``read_flag`` changes, so whole
        rows cannot be compared. None when the row or the column does not exist.
        """
        if row_id <= 0:
            return None
        self._refresh_schema()
        if TIMESTAMP_COLUMN not in self._columns:
            return None
        value = self._scalar(
            f"SELECT {_quote(TIMESTAMP_COLUMN)} FROM {TABLE} WHERE rowid = ?", (row_id,)
        )
        return None if value is None else _text(value)

    def read(self, after: int, upto: int | None, limit: int) -> list[Row]:
        """Up to ``limit`` rows with ``after < id <= upto``, in id order, in one short read."""
        self._refresh_schema()
        high = upto if upto is not None else 2**63 - 1
        raw = self._execute(self._page_sql, (after, high, limit))
        rows: list[Row] = []
        for row_id, line, day in raw:
            assert isinstance(row_id, int)
            text_day = day.decode("ascii") if isinstance(day, bytes) else None
            if isinstance(line, bytes):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    line = None
            if not isinstance(line, bytes):
                line = self._encode_slowly(row_id)
                if line is None:  # vanished between the two reads: skip, it no longer exists
                    continue
            rows.append(Row(row_id, line, text_day))
        return rows

    def _encode_slowly(self, row_id: int) -> bytes | None:
        found = self._execute(self._row_sql, (row_id,))
        if not found:
            return None
        flat = found[0]
        values = flat[0::2]
        types = [_text(t) for t in flat[1::2]]
        return encode_row(self._columns, values, types)
