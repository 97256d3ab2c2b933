"""PostgreSQL: one row per line, ``(room, generation, id)`` the primary key.

Why it looks like this:
- The table (``dead_drop_messages`` by default, ``?table=NAME`` in the URL; one per
  log directory you ship) is created if missing: the key, the message's columns as
  logged (as text: a value is what the line holds, whatever its JSON type), ``raw``
  (the line as ``jsonb``, to query) and ``line`` (its exact bytes as text, without the
  newline: ``jsonb`` reorders keys and drops whitespace, and cannot hold ``\\u0000``,
  for which ``raw`` is NULL).
- Each batch is one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`` in
  one transaction: a line already there (a batch repeated after a crash) is skipped
  by the key, so the table holds each line once. A row skipped whose stored ``line``
  differs is not a repeat but a collision the generations could not see (see
  :mod:`.position`): it is logged as a warning, never dropped silently.
- ``generation`` is 0 except for a room's lines after its database was replaced.
"""

from __future__ import annotations

import contextlib
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
                        "CREATE TABLE IF NOT EXISTS {} (room text NOT NULL,"
                        " generation integer NOT NULL, id bigint NOT NULL, {},"
                        " raw jsonb, line text NOT NULL, PRIMARY KEY (room, generation, id))"
                    ).format(sql.Identifier(self.table), columns)
                )
            self.conn.commit()
        except psycopg.Error as exc:
            self.close()
            raise SinkError(_said(exc)) from None

    def reconcile(self, items: Sequence[Item]) -> Sequence[Item]:
        return items  # the key makes a repeat harmless, however late

    def send(self, items: Sequence[Item]) -> None:
        rooms = [item.room or "" for item in items]
        gens = [item.generation for item in items]
        ids = [item.id for item in items]
        lines = [item.raw[:-1].decode("utf-8", "surrogateescape") for item in items]
        raws = [None if "\\u0000" in line else line for line in lines]
        extract = sql.SQL(", ").join(
            sql.SQL("u.raw::jsonb ->> {}").format(sql.Literal(c)) for c in COLUMNS
        )
        names = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        query = sql.SQL(
            "INSERT INTO {t} (room, generation, id, {names}, raw, line)"
            " SELECT u.room, u.generation, u.id, {extract}, u.raw::jsonb, u.line"
            " FROM unnest(%s::text[], %s::integer[], %s::bigint[], %s::text[], %s::text[])"
            " AS u(room, generation, id, raw, line)"
            " ON CONFLICT DO NOTHING RETURNING room, generation, id"
        ).format(t=sql.Identifier(self.table), names=names, extract=extract)
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, (rooms, gens, ids, raws, lines))
                inserted = {(r, g, i) for r, g, i in cur.fetchall()}
                if len(inserted) != len(items):
                    self._check_repeats(cur, rooms, gens, ids, lines, inserted)
            self.conn.commit()
        except psycopg.Error as exc:
            self.close()
            raise SinkError(_said(exc)) from None

    def _check_repeats(
        self,
        cur: Any,
        rooms: list[str],
        gens: list[int],
        ids: list[int],
        lines: list[str],
        inserted: set[tuple[str, int, int]],
    ) -> None:
        """Rows the key skipped: a repeat (the same line) is fine; other bytes under
        the same key are a collision, said loudly."""
        skipped = [
            (r, g, i, line)
            for r, g, i, line in zip(rooms, gens, ids, lines, strict=True)
            if (r, g, i) not in inserted
        ]
        cur.execute(
            sql.SQL(
                "SELECT t.room, t.generation, t.id, t.line FROM {} t JOIN"
                " unnest(%s::text[], %s::integer[], %s::bigint[]) AS u(room, generation, id)"
                " USING (room, generation, id)"
            ).format(sql.Identifier(self.table)),
            ([s[0] for s in skipped], [s[1] for s in skipped], [s[2] for s in skipped]),
        )
        stored = {(r, g, i): line for r, g, i, line in cur.fetchall()}
        for r, g, i, line in skipped:
            if stored.get((r, g, i)) != line:
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


def _said(exc: BaseException) -> str:
    """The server's message, one line (never the connection string)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
