"""Read-only, paged, schema-driven access to the server's ``messages`` table.

Why it looks like this:
- The database is opened with ``mode=ro``, so it is never created or written.
- Every query is a single autocommit statement whose rows are fetched in full, so no
  read transaction (and no WAL read mark) outlives a call: the server's checkpoints
  are never held back.
- The connection itself is kept between polls so that ``PRAGMA data_version`` gives a
  near-free "did anything change?" check when idle; it is reopened whenever the file's
  identity changes (deleted, replaced, restored).
- Lines are built inside SQLite with ``json_object`` and a whole page comes back as one
  ``group_concat`` (one Python object per page, not per row: as fast as
  ``sqlite3 -json``); rows that cannot be expressed exactly that way (BLOB, REAL,
  invalid UTF-8) fall back to :mod:`.encoding`, row by row, and so does a page whose
  aggregate does not check out. ``tests/test_fast_path.py`` holds both paths equal.
"""

from __future__ import annotations

import codecs
import logging
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..encoding import LINE_SEPARATORS, encode_row

log = logging.getLogger(__name__)

TABLE = "messages"
TIMESTAMP_COLUMN = "timestamp"


class SourceError(Exception):
    """The database cannot be read right now; the caller retries later."""


class SourceMissing(SourceError):
    """The database file does not exist (yet)."""


class SourceUnusable(SourceError):
    """The file exists but is not a usable Dead Drop database (corrupt, no table)."""


class SourceNoTable(SourceUnusable):
    """A database without a ``messages`` table (yet): the server has not set it up."""


class _NotFast(SourceError):
    """The page aggregate failed: a BLOB (json_object refuses it), or too big a string."""


# json_object() raises on a BLOB before 3.45; from 3.45 it may take one for JSONB, so
# BLOBs must be ruled out row by row (slower) to stay exact.
JSON_REJECTS_BLOBS = sqlite3.sqlite_version_info < (3, 45, 0)
_DAY_SEP = b"\x1f"
_UTF8_SLICE = 1 << 18  # validate in slices: no page-sized str (4 bytes a char) in memory
_DAY_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class Run:
    """Messages of one page, in id order, all bound for the same day file.

    ``data`` is their lines, each ending in ``\\n``; ``day`` is YYYY-MM-DD from the
    messages' own timestamp, None if unusable (filed under today).
    """

    day: str | None
    data: bytes
    first_id: int
    last_id: int


@dataclass(slots=True)
class Page:
    """One read: ``len()`` is the number of rows read (what paging goes by).

    ``after_stamp`` and ``last_stamp``: the :meth:`Source.fingerprint` of the row the
    read started after and of its last row, read with the page (in the same statement,
    so of the same snapshot): a follower's batch needs both, and a statement of its own
    for each cost a read transaction each (the page cache starts cold in every one
    while the server writes).
    """

    runs: list[Run] = field(default_factory=list)
    count: int = 0
    last_id: int = 0
    after_stamp: str | None = None
    last_stamp: str | None = None

    def __len__(self) -> int:
        return self.count


@dataclass
class Answer:
    """What the page statement of :meth:`Source.ask` answered, before the checks of
    :meth:`Source.page`: ``found`` is its row (None: the page cannot be read in one
    statement). ``count`` and ``last_id`` are the page's as the statement counted them,
    so the next page can be asked for before this one is checked."""

    by: Source
    params: tuple[int, int, int]
    found: tuple[object, ...] | None

    @property
    def count(self) -> int | None:
        return None if self.found is None else cast(int, self.found[0])

    @property
    def last_id(self) -> int:
        return 0 if self.found is None or not self.found[0] else cast(int, self.found[3])


def _text(value: object) -> str:
    """A TEXT value fetched raw (``text_factory=bytes``) as str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text_affinity(declared: str) -> bool:
    """SQLite's rule: a column whose type names CHAR, CLOB or TEXT (and not INT) is TEXT.

    Such a column stores every number as text, so it can never hold a REAL.
    """
    upper = declared.upper()
    return "INT" not in upper and any(word in upper for word in ("CHAR", "CLOB", "TEXT"))


def _check_utf8(data: bytes) -> tuple[bool, bool]:
    """Whether ``data`` is valid UTF-8, and whether it holds U+2028/U+2029.

    One pass in slices, so no page-sized str (up to 4 bytes a character) is ever held.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    separators = False
    try:
        for start in range(0, len(view), _UTF8_SLICE):
            text = decoder.decode(view[start : start + _UTF8_SLICE])
            separators = separators or "\u2028" in text or "\u2029" in text
        decoder.decode(b"", True)
    except UnicodeDecodeError:
        return False, False
    return True, separators


def _escape_separators(data: bytes) -> bytes:
    """U+2028/U+2029 escaped in valid UTF-8, as :func:`.encoding.escape_separators` does
    (``json_object`` leaves them raw)."""
    for raw, escaped in LINE_SEPARATORS:
        data = data.replace(raw.encode(), escaped.encode())
    return data


def is_real_date(expr: str) -> str:
    """SQL: ``expr`` is a real YYYY-MM-DD date.

    date() alone also reads numbers (as Julian days: 1763100000, 'now') and lets
    2026-02-30 through unchanged; '+0 days' makes it normalise that to 2026-03-02, so
    only a real date equals itself. Year 0 is one to SQLite, not to Python's ``date``
    (a day file named by it stopped the writer): not a real date here.
    """
    return f"(date({expr}, '+0 days') = {expr} AND {expr} >= '0001-01-01')"


def stamp_date(column: str) -> str:
    """SQL: the first ten characters of a timestamp, its date when it has one (the
    local day, once :func:`is_real_date` holds of it)."""
    return f"substr({_quote(column)}, 1, 10)"


def day_expression(column: str, utc: bool) -> str:
    """SQL for the routing day of a timestamp, NULL when it is missing or unparseable.

    Local mode takes the date as the server wrote it (its local wall time); UTC mode
    converts a zone-less timestamp from local time to UTC (SQLite's ``utc`` modifier
    leaves one with an explicit offset as it is, already converted).
    """
    ts = _quote(column)
    head = stamp_date(column)
    valid = is_real_date(head)
    if not utc:
        return f"CASE WHEN {valid} THEN {head} END"
    # a day from the first or the last of Python's dates may move out of its range
    edges = f"{head} BETWEEN '0001-01-02' AND '9999-12-30'"
    return f"CASE WHEN {valid} AND {edges} THEN date({ts}, 'utc') END"


class Source:
    """The server's database, opened read-only on demand."""

    def __init__(
        self,
        path: Path,
        *,
        utc: bool = False,
        busy_timeout: float = 0.5,
        cache_kib: int | None = None,
    ) -> None:
        """``cache_kib``: SQLite's page cache per connection (None: its default, 2 MB)."""
        self.path = path
        self.utc = utc
        self.busy_timeout = busy_timeout
        self.cache_kib = cache_kib
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._data_version: int | None = None
        self._schema_version: int | None = None
        self._columns: list[str] = []
        self._types: list[str] = []
        self._page_sql = ""
        self._rows_sql = ""
        self._row_sql = ""
        self._days: dict[bytes, str | None] = {}
        self._pinned = False

    # -- connection ------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def pin(self) -> None:
        """Keep reading through the open connection whatever the path names now.

        For a database whose file was deleted under us (a hub archiving a room deletes
        its directory): the open descriptors keep the file and its WAL readable, so what
        it still holds can be logged. Ends at :meth:`close`.
        """
        self._pinned = self._conn is not None

    def replaced(self) -> bool:
        """Whether a connection is open on a file the path no longer names (deleted,
        renamed over, replaced): what that file still holds, its WAL included, is
        readable only through this connection, so it is read (:meth:`pin`) before any
        reopen."""
        if self._conn is None:
            return False
        try:
            return self._file_identity() != self._identity
        except SourceMissing:
            return True
        except SourceError:  # cannot stat: not known to be another file
            return False

    def close(self) -> None:
        self._pinned = False
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
        if self._pinned and self._conn is not None:
            return self._conn
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
            cause = self.cause(str(exc))
            if cause is not None:
                raise SourceError(f"cannot read database {self.path}: {cause}") from None
            raise SourceError(f"cannot open database {self.path}: {exc}") from None
        conn.text_factory = bytes
        self._conn = conn
        self._identity = identity
        if self.cache_kib is not None:  # (it reads the header: its errors said as any read's)
            self._execute(f"PRAGMA cache_size = -{int(self.cache_kib)}")
        return conn

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run one statement to completion (no cursor or read transaction is left open)."""
        conn = self._connection()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            cause = self.cause(text)
            if cause is not None:
                self.close()
                raise SourceError(f"cannot read database {self.path}: {cause}") from None
            if "cannot hold BLOB" in text or isinstance(exc, sqlite3.DataError):
                raise _NotFast(text) from None
            if isinstance(exc, sqlite3.OperationalError) and (
                "locked" in text or "busy" in text or "unable to open" in text
            ):
                raise SourceError(f"database {self.path} is busy: {text}") from None
            if "no such table" in text or "no such column" in text:
                self._schema_version = None
                kind = SourceNoTable if f"no such table: {TABLE}" in text else SourceUnusable
                raise kind(f"database {self.path}: {text}") from None
            if isinstance(exc, sqlite3.OperationalError) and "disk I/O" in text:
                self.close()
                raise SourceError(f"database {self.path}: {text}") from None
            self.close()
            raise SourceUnusable(f"database {self.path} is not usable: {text}") from None

    def cause(self, sqlite_says: str) -> str | None:
        """What SQLite's "unable to open database file" or "attempt to write a readonly
        database" means here, in the words of the file system; None when it is not
        about the files (or nothing more is known). A WAL database is opened read-only
        only where its ``-shm`` file exists or can be made beside it."""
        if "unable to open" not in sqlite_says and "readonly" not in sqlite_says:
            return None
        try:
            with open(self.path, "rb") as file:
                header = file.read(20)
        except FileNotFoundError:
            return None  # (missing: said as such)
        except PermissionError:
            return "permission denied"
        except OSError as exc:
            return exc.strerror or str(exc)
        directory = self.path.absolute().parent
        wal = len(header) == 20 and header[18] == 2  # the file format's WAL versions
        shm = Path(f"{self.path}-shm")
        if wal and not shm.exists() and not os.access(directory, os.W_OK | os.X_OK):
            return (
                f"it is in WAL mode and its directory {directory} is read-only (reading it"
                f" needs {shm.name} there: make the directory writable for this user)"
            )
        if wal and shm.exists() and not os.access(shm, os.R_OK | os.W_OK):
            return f"permission denied on {shm} (WAL mode: readers need it readable and writable)"
        return None

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

    def data_version(self) -> int:
        """``PRAGMA data_version`` on the kept connection: changes whenever another
        connection commits (the tables' follower keeps its own last value of it)."""
        version = self._scalar("PRAGMA data_version")
        assert isinstance(version, int)
        return version

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """One read-only statement on the kept connection, run to completion (for the
        other tables the follower reads: see :mod:`.tables`); raises SourceError."""
        try:
            return self._execute(sql, params)
        except _NotFast as exc:
            raise SourceUnusable(f"database {self.path}: {exc}") from None

    def _refresh_schema(self) -> None:
        version = self._scalar("PRAGMA schema_version")
        if version == self._schema_version and self._columns:
            return
        info = self._execute(f"PRAGMA table_info({TABLE})")
        columns = [_text(r[1]) for r in info]
        self._types = [_text(r[2]) for r in info]
        if not columns:
            raise SourceNoTable(f"database {self.path} has no {TABLE} table")
        if columns != self._columns and self._columns:
            log.info("messages columns changed: %s", ", ".join(columns))
        self._columns = columns
        self._schema_version = version if isinstance(version, int) else None
        self._build_queries()

    def _build_queries(self) -> None:
        cols = self._columns
        has_ts = TIMESTAMP_COLUMN in cols
        day = day_expression(TIMESTAMP_COLUMN, self.utc) if has_ts else "NULL"
        exact = " AND ".join(f"typeof({_quote(c)}) IN ('integer','text','null')" for c in cols)
        pairs = ",".join(f"'{c.replace(chr(39), chr(39) * 2)}',{_quote(c)}" for c in cols)
        page = f" FROM {TABLE} WHERE rowid > ?1 AND rowid <= ?2 ORDER BY rowid LIMIT ?3"
        # The straightforward query: one row each, line and day built per row.
        line = (
            f"replace(replace(json_object({pairs}), char(8232), '\\u2028'),"
            f" char(8233), '\\u2029') || char(10)"
        )
        self._rows_sql = f"SELECT rowid, CASE WHEN {exact} THEN {line} END, {day}" + page
        # The fast one: the whole page as one aggregate. A row json_object cannot
        # express exactly gives NULL (so the count of lines falls short and the page is
        # read the straightforward way); the day is only cut out of the timestamp
        # (checked once per distinct value, in _day). A REAL can only sit in a column
        # without TEXT affinity; before 3.45 a BLOB makes json_object fail (the page is
        # then read the straightforward way too), from 3.45 it is ruled out here.
        inexact = [
            f"typeof({_quote(c)}) IN ('blob','real')"
            if not JSON_REJECTS_BLOBS
            else f"typeof({_quote(c)}) = 'real'"
            for c, t in zip(cols, self._types, strict=True)
            if not (JSON_REJECTS_BLOBS and _text_affinity(t))
        ]
        line = f"json_object({pairs})"
        if inexact:
            line = f"CASE WHEN {' OR '.join(inexact)} THEN NULL ELSE {line} END"
        cheap_day = stamp_date(TIMESTAMP_COLUMN) if has_ts and not self.utc else day
        # With it, in the same statement (one read transaction for the whole batch):
        # the stamps (see Page) and the schema version the columns must still match.
        stamp = f"SELECT {_quote(TIMESTAMP_COLUMN)} FROM {TABLE} WHERE rowid ="
        stamps = f"({stamp} p.hi), ({stamp} ?1)" if has_ts else "NULL, NULL"
        self._page_sql = (
            f"SELECT p.*, {stamps}, (SELECT schema_version FROM pragma_schema_version)"
            " FROM (SELECT count(*), count(l), min(id), max(id) AS hi, group_concat(id),"
            " group_concat(ifnull(d, ''), char(31)), group_concat(l || char(10), '')"
            f" FROM (SELECT rowid AS id, {line} AS l, {cheap_day} AS d" + page + ")) p"
        )
        typed = ", ".join(f"{_quote(c)}, typeof({_quote(c)})" for c in cols)
        self._row_sql = f"SELECT {typed} FROM {TABLE} WHERE rowid = ?"

    # -- reads -------------------------------------------------------------------------

    def max_id(self) -> int:
        self._refresh_schema()
        value = self._scalar(f"SELECT max(rowid) FROM {TABLE}")
        return int(value) if isinstance(value, int) else 0

    def sequence(self) -> int:
        """The highest id AUTOINCREMENT ever handed out (0 if unknown).

        Unlike ``max(id)`` it survives deleting the newest rows, so it tells a database
        whose last messages were deleted from one that was replaced by a younger one.
        """
        try:
            value = self._scalar("SELECT seq FROM sqlite_sequence WHERE name = ?", (TABLE,))
        except SourceUnusable:  # no AUTOINCREMENT table at all
            return 0
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
        return _stamp(value)

    def read(self, after: int, upto: int | None, limit: int) -> Page:
        """Up to ``limit`` rows with ``after < id <= upto``, in id order, in one short read.

        The schema is checked in the same statement: the query is built again (and run
        again) only when the version it reports is not the one it was built for.
        """
        return self.page(self.ask(after, upto, limit))

    def ask(self, after: int, upto: int | None, limit: int) -> Answer:
        """The first half of :meth:`read`: the page's one statement, run. It is SQLite's
        work (without the GIL), so a thread reading ahead does it while :meth:`page`,
        the checks that hold the GIL, runs on the page before in the caller's."""
        if self._schema_version is None or not self._columns:
            self._refresh_schema()
        params = (after, upto if upto is not None else 2**63 - 1, limit)
        try:
            found = self._execute(self._page_sql, params)[0]
            if found[-1] != self._schema_version:  # the columns may have changed
                self._refresh_schema()
                found = self._execute(self._page_sql, params)[0]
        except _NotFast:  # a BLOB, or too big for one string
            return Answer(self, params, None)
        return Answer(self, params, found)

    def page(self, answer: Answer) -> Page:
        """The second half of :meth:`read`: the page from its statement's answer (its
        UTF-8 checked, split by day), or, when that does not check out, read the
        straightforward way on this connection (its schema read again first when the
        answer came from another's)."""
        page = self.checked(answer)
        if page is None:
            if answer.by is not self:
                self._refresh_schema()
            return self._read_rows(answer.params)
        return page

    def checked(self, answer: Answer) -> Page | None:
        """The page from its statement's answer when that checks out; None otherwise."""
        page = None if answer.found is None else self._fast_page(answer.found[:7])
        if page is None:
            return None
        assert answer.found is not None
        after = answer.params[0]
        page.last_stamp = _stamp(answer.found[7]) if page.count else None
        page.after_stamp = _stamp(answer.found[8]) if after > 0 else None
        return page

    def _fast_page(self, found: tuple[object, ...]) -> Page | None:
        """The page from the aggregate row; None when it must be read the
        straightforward way."""
        count, lines_count, low, high, ids, days, lines = found
        if not count:
            return Page()
        if lines_count != count:  # some row json_object cannot express exactly
            return None
        assert isinstance(count, int) and isinstance(high, int) and isinstance(low, int)
        assert isinstance(ids, bytes) and isinstance(days, bytes) and isinstance(lines, bytes)
        valid, separators = _check_utf8(lines)
        if not valid or not (  # group_concat went in id order (it always does)
            ids.startswith(b"%d," % low if count > 1 else b"%d" % low)
            and ids.endswith(b",%d" % high if count > 1 else b"%d" % high)
        ):
            return None
        if separators:
            lines = _escape_separators(lines)
        first = days.partition(_DAY_SEP)[0]
        if days == (first + _DAY_SEP) * (count - 1) + first:  # all of the same day
            return Page([Run(self._day(first), lines, low, high)], count, high)
        # Several days: split the page into runs. (JSON has no raw newline, so one line
        # per row; a timestamp holding the separator is caught by the length check.)
        id_list = [int(i) for i in ids.split(b",")]
        line_list = lines.split(b"\n")[:-1]
        day_list = days.split(_DAY_SEP)
        if not len(id_list) == len(line_list) == len(day_list) == count:
            return None
        rows = [
            Run(self._day(day), line, row_id, row_id)
            for row_id, line, day in zip(id_list, line_list, day_list, strict=True)
        ]
        return Page(_merge(rows), count, high)

    def _read_rows(self, params: tuple[int, int, int]) -> Page:
        """The straightforward read: one result row (and one line) per message (with the
        stamps read apart: a rare page, with a BLOB or a REAL)."""
        raw = self._execute(self._rows_sql, params)
        rows: list[Run] = []
        for row_id, line, day in raw:
            assert isinstance(row_id, int)
            text_day = day.decode("ascii") if isinstance(day, bytes) else None
            if isinstance(line, bytes) and not _check_utf8(line)[0]:
                line = None
            if not isinstance(line, bytes):
                line = self._encode_slowly(row_id)
                if line is None:  # vanished between the two reads: it no longer exists
                    continue
            rows.append(Run(text_day, line[:-1], row_id, row_id))
        last = raw[-1][0] if raw else 0
        assert isinstance(last, int)
        after = params[0]
        return Page(
            _merge(rows),
            len(raw),
            last,
            after_stamp=self.fingerprint(after) if after > 0 else None,
            last_stamp=self.fingerprint(last) if raw else None,
        )

    def _day(self, raw: bytes) -> str | None:
        """The routing day for a day column value, as :func:`day_expression` decides it.

        The page query only cuts ``substr(timestamp, 1, 10)``; whether that is a real
        date is asked of SQLite itself, once per distinct value.
        """
        if raw in self._days:
            return self._days[raw]
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            day = None
        else:
            value = self._scalar(f"SELECT CASE WHEN {is_real_date('?1')} THEN ?1 END", (text,))
            day = value.decode("ascii") if isinstance(value, bytes) else None
        if len(self._days) >= _DAY_CACHE_MAX:
            self._days.clear()
        self._days[raw] = day
        return day

    def _encode_slowly(self, row_id: int) -> bytes | None:
        found = self._execute(self._row_sql, (row_id,))
        if not found:
            return None
        flat = found[0]
        values = flat[0::2]
        types = [_text(t) for t in flat[1::2]]
        return encode_row(self._columns, values, types)


def _stamp(value: object) -> str | None:
    """A fingerprint as :meth:`Source.fingerprint` gives it."""
    return None if value is None else _text(value)


def _merge(rows: list[Run]) -> list[Run]:
    """Single-row runs (lines without their newline) joined into runs of one day each.

    Consecutive rows only: a file's lines stay in id order.
    """
    runs: list[Run] = []
    start = 0
    for index in range(1, len(rows) + 1):
        if index == len(rows) or rows[index].day != rows[start].day:
            group = rows[start:index]
            data = b"\n".join(r.data for r in group) + b"\n"
            runs.append(Run(group[0].day, data, group[0].first_id, group[-1].last_id))
            start = index
    return runs
