"""PostgreSQL: one row per line, ``(room, generation, id)`` the primary key.

Why it looks like this:
- The table (``dead_drop_messages`` by default, ``?table=NAME`` in the URL; one per
  log directory you ship) is created if missing: the key, the message's columns as
  logged (as text: a value is what the line holds, whatever its JSON type), ``raw``
  (the line as ``jsonb``, to query) and ``line`` (its exact bytes as text, without the
  newline: ``jsonb`` reorders keys and drops whitespace, and cannot hold ``\\u0000``,
  for which ``raw`` is NULL).
- Each batch is first copied (``COPY``) straight into the table, its columns taken
  out of each line here (:meth:`PostgresSink.prepare`, in the shipper's reading thread
  while the previous batch is in flight), in one transaction: a plain bulk load, the
  fastest PostgreSQL takes rows. ``COPY`` cannot skip a row: if any line of the batch
  is there already (a batch repeated after a crash, ``--from-start``), the key refuses
  it, the transaction rolls back whole, and the batch goes the careful way: copied
  into a temporary table, then moved by one ``INSERT ... SELECT ... ON CONFLICT DO
  NOTHING`` (the columns taken out of the jsonb by the server), which skips what is
  there, so the table holds each line once. The careful way stays in use until a
  batch inserts every one of its rows (the repeats are behind), since each refused
  ``COPY`` is work thrown away. ``ON CONFLICT`` costs about twice a plain ``COPY``
  (measured: 8,800 against 22,800 rows/s), which is why it is not the first try. A row
  skipped whose stored ``line`` differs is not a repeat but a collision the
  generations could not see (see :mod:`.position`): it is logged as a warning, never
  dropped silently.
- A line whose columns cannot be taken out here exactly as ``raw ->> 'column'``
  gives them (a column holding a fraction, an object or a list; text the UTF-8 codec
  refuses) sends its batch the careful way, where the server does it.
- ``generation`` is 0 except for a room's lines after its database was replaced;
  ``hub`` is ``?hub=NAME`` (``''`` without: one hub), so several hubs can share a
  table without their rooms' ids colliding.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from .position import Item
from .sink import SinkError
from .target import Target

log = logging.getLogger(__name__)

COLUMNS = (
    "from_agent",
    "to_agent",
    "content",
    "timestamp",
    "read_flag",
    "is_cc",
    "cc_original_to",
    "task_id",
    "reply_to",
)


class PostgresSink:
    def __init__(self, target: Target) -> None:
        self.target = target
        table = target.query("table", "dead_drop_messages")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", table):
            raise SinkError(f"table {table!r} is not a plain SQL name")
        self.table = table
        self.conn: Any = None
        self.conflicts = 0
        self.careful = False  # the last batch found rows there already: ON CONFLICT
        self.copy_sql = sql.SQL(
            "COPY {} (hub, room, generation, id, {}, raw, line) FROM STDIN"
        ).format(sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS))

    def open(self) -> None:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.target.url)
        # connect without the query's own settings (table=) and with the password apart
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        dsn = urlunsplit(("postgresql", f"{user}{host}{port}", parts.path, "", ""))
        kwargs: dict[str, Any] = {"connect_timeout": 10, "autocommit": False}
        password = self.target.password()
        if password is not None:
            kwargs["password"] = password
        try:
            self.conn = psycopg.connect(dsn, **kwargs)
            columns = sql.SQL(", ").join(
                sql.SQL("{} text").format(sql.Identifier(c)) for c in COLUMNS
            )
            with self.conn.cursor() as cur:
                cur.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (hub text NOT NULL, room text NOT NULL,"
                        " generation integer NOT NULL, id bigint NOT NULL, {},"
                        " raw jsonb, line text NOT NULL,"
                        " PRIMARY KEY (hub, room, generation, id))"
                    ).format(sql.Identifier(self.table), columns)
                )
            self.conn.commit()
        except psycopg.Error as exc:
            self.close()
            raise SinkError(_said(exc)) from None

    def reconcile(self, items: Sequence[Item]) -> Sequence[Item]:
        return items  # the key makes a repeat harmless, however late

    def prepare(self, items: Sequence[Item]) -> object:
        """The batch as the table's rows in COPY's text format (None: a line whose
        columns only the server can take out exactly; the batch goes the careful way)."""
        return _rows_text(self.target.hub, items)

    def send_prepared(self, items: Sequence[Item], prepared: object) -> None:
        if self.careful or not isinstance(prepared, bytes):
            self.send(items)
            return
        try:
            with self.conn.cursor() as cur, cur.copy(self.copy_sql) as copy:
                copy.write(prepared)
            self.conn.commit()
            return
        except psycopg.errors.UniqueViolation:
            self.conn.rollback()  # some were there: the careful way, which skips them
        except psycopg.Error as exc:
            self.close()
            raise SinkError(_said(exc)) from None
        self.send(items)

    def send(self, items: Sequence[Item]) -> None:
        """The careful way: through a temporary table, ``ON CONFLICT DO NOTHING``."""
        rooms = [item.room or "" for item in items]
        gens = [item.generation for item in items]
        ids = [item.id for item in items]
        lines = [item.raw[:-1].decode("utf-8", "surrogateescape") for item in items]
        extract = sql.SQL(", ").join(sql.SQL("j ->> {}").format(sql.Literal(c)) for c in COLUMNS)
        names = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        insert = sql.SQL(
            "INSERT INTO {t} (hub, room, generation, id, {names}, raw, line)"
            " SELECT {hub}, b.room, b.generation, b.id, {extract}, j, b.line"
            " FROM dead_drop_batch b, LATERAL (SELECT b.raw::jsonb AS j) p"
            " ON CONFLICT DO NOTHING"
        ).format(
            t=sql.Identifier(self.table),
            names=names,
            extract=extract,
            hub=sql.Literal(self.target.hub),
        )
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS dead_drop_batch (room text, generation"
                    " integer, id bigint, raw text, line text) ON COMMIT DELETE ROWS"
                )
                with cur.copy("COPY dead_drop_batch FROM STDIN") as copy:
                    copy.write(_copy_text(rooms, gens, ids, lines))
                cur.execute(insert)
                self.careful = cur.rowcount != len(items)
                if self.careful:  # some were there: repeats, or collisions?
                    self._check_repeats(cur, rooms, gens, ids, lines)
            self.conn.commit()
        except psycopg.Error as exc:
            self.close()
            raise SinkError(_said(exc)) from None

    def _check_repeats(
        self, cur: Any, rooms: list[str], gens: list[int], ids: list[int], lines: list[str]
    ) -> None:
        """Rows the key skipped: a repeat (the same line) is fine; other bytes under the
        same key are a collision, said loudly (never dropped silently)."""
        cur.execute(
            sql.SQL(
                "SELECT t.room, t.generation, t.id, t.line FROM {} t JOIN"
                " dead_drop_batch b USING (room, generation, id) WHERE t.hub = {}"
            ).format(sql.Identifier(self.table), sql.Literal(self.target.hub))
        )
        stored = {(r, g, i): line for r, g, i, line in cur.fetchall()}
        for key in zip(rooms, gens, ids, lines, strict=True):
            r, g, i, line = key
            if stored.get((r, g, i), line) != line:
                self.conflicts += 1
                log.warning(
                    "ship: %s already holds %s:%d (generation %d) with other bytes: this"
                    " line was not stored (a room reset the shipper did not see)",
                    self.table,
                    r,
                    i,
                    g,
                )

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(rooms: list[str], gens: list[int], ids: list[int], lines: list[str]) -> bytes:
    """The batch in COPY's text format, built at once (row by row through psycopg's
    pure-Python writer took longer than the server's whole insert)."""
    out = []
    for room, gen, msg_id, line in zip(rooms, gens, ids, lines, strict=True):
        text = _escaped(line)
        raw = "\\N" if "\\u0000" in line else text  # jsonb cannot hold \u0000
        out.append(f"{_escaped(room)}\t{gen}\t{msg_id}\t{raw}\t{text}\n")
    return "".join(out).encode("utf-8", "surrogateescape")


def _rows_text(hub: str, items: Sequence[Item]) -> bytes | None:
    """The table's rows for ``items`` in COPY's text format, each column as the
    careful way's ``raw ->> 'column'`` gives it; None when a line holds a value that
    only the server renders exactly (a fraction, an object, a list) or is not JSON."""
    hub_text = _escaped(hub)
    out = []
    loads = json.loads
    rooms: dict[str | None, str] = {}
    for item in items:
        line = item.raw[:-1].decode("utf-8", "surrogateescape")
        text = _escaped(line)
        room = rooms.get(item.room)
        if room is None:
            room = rooms[item.room] = _escaped(item.room or "")
        head = f"{hub_text}\t{room}\t{item.generation}\t{item.id}"
        if "\\u0000" in line:  # jsonb cannot hold it: raw NULL, and so every column
            out.append(f"{head}{_NO_COLUMNS}\t\\N\t{text}\n")
            continue
        try:
            value = loads(line)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        cells = []
        for column in COLUMNS:
            cell = value.get(column)
            if cell is None:
                cells.append("\\N")
            elif type(cell) is str:
                cells.append(_escaped(cell))
            elif type(cell) is int:
                cells.append(str(cell))
            elif type(cell) is bool:
                cells.append("true" if cell else "false")
            else:
                return None
        joined = "\t".join(cells)
        out.append(f"{head}\t{joined}\t{text}\t{text}\n")
    try:
        return "".join(out).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape: the server says
        return None


def _escaped(text: str) -> str:
    """``text`` as a COPY text field (translated only when it needs it: the test is
    thirty times cheaper than the translation)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


_NO_COLUMNS = "\t\\N" * len(COLUMNS)


def _said(exc: BaseException) -> str:
    """The server's message, one line (never the connection string)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
