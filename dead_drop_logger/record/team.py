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

:class:`Team` (every database of a hub with its logs, kept up to date) lives here and not
in ``control/top.py`` so that ``top``, ``agents --json`` and ``serve``'s ``/v1/agents``
build their frames with the same code (``serve`` sits below ``control``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..clock import Clock
from ..read.logread import LogDir, Reader, Tail, Window
from ..read.teamview import Frame, LogFacts, RoomRows, build_frame

Row = dict[str, object]
LOG_WINDOW = dt.timedelta(days=1)  # the response rule's 24 hours
ROOM_DB_NAME = "messages.db"
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


@dataclass(frozen=True)
class Database:
    """A database to show, its room (None: the bare one) and its logs' directory."""

    room: str | None
    path: Path
    log_dir: Path


def databases(
    bare: Path | None, named: dict[str, Path], rooms_dir: Path | None, log_dir: Path
) -> list[Database]:
    """Every database now: the bare one, the named rooms and each room of ``rooms_dir``
    (rooms created later appear at the next look)."""
    found: list[Database] = []
    if bare is not None:
        found.append(Database(None, bare, log_dir))
    rooms = dict(named)
    if rooms_dir is not None:
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(rooms_dir), key=lambda e: e.name):
                if entry.is_dir() and entry.name not in rooms:
                    rooms[entry.name] = Path(entry.path) / ROOM_DB_NAME
    found += [Database(name, path, log_dir / name) for name, path in sorted(rooms.items())]
    return found


@dataclass
class Team:
    """Everything a frame is built from, kept up to date by :meth:`refresh`."""

    listing: Callable[[], list[Database]]
    clock: Clock
    utc: bool = False
    sources: dict[str | None, TeamSource] = field(default_factory=dict)
    rows: dict[str | None, RoomRows] = field(default_factory=dict)
    order: list[Database] = field(default_factory=list)
    facts: LogFacts | None = None
    tail: Tail | None = None
    log_dirs: tuple[Path, ...] = ()

    def refresh(self) -> bool:
        """Read what changed; True when something did."""
        changed = False
        order = self.listing()
        if order != self.order:
            self.order, changed = order, True
            wanted = {db.room for db in order}
            for room in list(self.sources):
                if room not in wanted:
                    self.sources.pop(room).close()
                    self.rows.pop(room, None)
        for db in self.order:
            source = self.sources.get(db.room)
            if source is None or source.path != db.path:
                source = self.sources[db.room] = TeamSource(db.path)
            if source.changed() or db.room not in self.rows:
                team = source.read()
                self.rows[db.room] = RoomRows(db.room, team.agents, team.tasks, team.problem)
                changed = True
        return self._read_logs() or changed

    def _read_logs(self) -> bool:
        dirs = tuple(d for d in dict.fromkeys(db.log_dir for db in self.order) if d.is_dir())
        if self.tail is None or dirs != self.log_dirs:
            present = list(dirs)
            if not present:
                return False
            since = self.clock.now().astimezone().replace(tzinfo=None) - LOG_WINDOW
            rooms = {db.log_dir: db.room for db in self.order}
            reader = Reader([LogDir(d, rooms[d]) for d in present], Window(since), self.utc)
            self.tail, self.facts, self.log_dirs = Tail(reader), LogFacts(), dirs
        assert self.tail is not None and self.facts is not None
        return self.facts.feed(self.tail.poll(), self.tail.reader) > 0

    def frame(self) -> Frame:
        rooms = [self.rows[db.room] for db in self.order if db.room in self.rows]
        return build_frame(rooms, self.facts, self.clock.now())

    def close(self) -> None:
        for source in self.sources.values():
            source.close()
