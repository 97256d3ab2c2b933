"""The team's live state: the server's ``agents`` and ``tasks`` tables, read as they are.

Why it looks like this: ``top`` and ``agents --json`` show who is alive and what is
open *now*, which only the database knows (the logs hold what was said, not the
current rows). So the same rules as :mod:`.source` apply to reading it: opened with a
``mode=ro`` URI (never a write, not even a WAL checkpoint), every read one short read
transaction with a short busy timeout, text the server may have stored as invalid UTF-8
read with replacement characters rather than failing. A table that is absent (a server
older than its tasks, a database not created yet) is no error: it is None, and the view
leaves out what it would have shown.

``changed`` is one ``stat`` and ``PRAGMA data_version`` on a kept connection, so a
caller ticking every second to age the health of its agents reads the rows again
only after a commit (or when the file was replaced).
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

Row = dict[str, object]
OPEN_TASKS = "SELECT * FROM tasks WHERE status IS NULL OR status NOT IN ('completed', 'verified')"


@dataclass(frozen=True)
class TeamRows:
    """One database's agents and open tasks (None: no such table), or why not."""

    agents: list[Row] | None = None
    tasks: list[Row] | None = None
    problem: str | None = None  # the database could not be read (then both are None)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class TeamSource:
    """One server database, opened read-only on demand."""

    def __init__(self, path: Path, *, busy_timeout: float = 0.5) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._version: int | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._identity = None
        self._version = None

    def _connection(self) -> sqlite3.Connection:
        st = os.stat(self.path)  # FileNotFoundError: no database (yet)
        identity = (st.st_dev, st.st_ino)
        if self._conn is not None and identity == self._identity:
            return self._conn
        self.close()
        uri = "file:" + urllib.parse.quote(str(self.path.absolute())) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=self.busy_timeout)
        conn.text_factory = _text
        self._conn, self._identity = conn, identity
        return conn

    def changed(self) -> bool:
        """Whether something may have been committed (or the file replaced) since the
        last call; True when it cannot tell."""
        try:
            had = self._conn is not None and self._identity is not None
            conn = self._connection()
            version = conn.execute("PRAGMA data_version").fetchone()[0]
        except (OSError, sqlite3.Error):
            self.close()
            return True
        same = had and version == self._version and self._conn is conn
        self._version = version
        return not same

    def read(self) -> TeamRows:
        """The agents and the open tasks, in one read transaction."""
        try:
            conn = self._connection()
        except FileNotFoundError:
            return TeamRows(problem=f"no database at {self.path} (yet)")
        except (OSError, sqlite3.Error) as exc:
            self.close()
            return TeamRows(problem=f"cannot open {self.path}: {exc}")
        try:
            conn.execute("BEGIN")
            try:
                agents = self._rows(conn, "SELECT * FROM agents ORDER BY name")
                tasks = self._rows(conn, OPEN_TASKS + " ORDER BY id")
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.close()
            return TeamRows(problem=f"cannot read {self.path}: {exc}")
        return TeamRows(agents, tasks)

    @staticmethod
    def _rows(conn: sqlite3.Connection, sql: str) -> list[Row] | None:
        try:
            cursor = conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "no such column" in str(exc):
                return None
            raise
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
