"""Task changes and agent events: the ``tasks`` and ``agents`` tables, followed beside
the messages into ``tasks-DAY.json`` and ``agents-DAY.json`` (format: docs/tasks.md).

The server overwrites both tables in place, so the follower compares what it reads with
what it recorded last (:mod:`..logdir.tablestate`) and writes one line per change it
observes, exactly once (the two-step commit described there). Why it looks like this:

- Read like the messages: read-only, on the follower's kept connection, one short
  statement each, never a transaction left open; a table that is absent, added later,
  or whose columns change is read as it is at each read (the columns are looked up
  again whenever the schema version moves).
- The messages' hot path stays as it was: nothing is read unless ``PRAGMA data_version``
  moved since the last look (one statement a tick), and ``tasks`` is read from the
  newest ``updated_at`` recorded less a margin (every server tool stamps it), in the
  same statement as its row count and the last message id; every row is read again only
  when the count says a row came or went unseen (and at the first read).
- A task that moved more than once between two reads is marked ``gap``, and the
  server's transition messages (written in the same commit as the move) fill in
  ``via``: only the messages after the last read's message id are looked at.
- Health changes with time alone: the next threshold crossing of every agent is known,
  and the follower's wait ends there (:meth:`TableFollower.wait_time`), so a stale or
  dead agent is recorded when it happens, with no timer running otherwise.
- A first start takes the tables as they are as already known (like the messages: only
  what happens from now on), unless ``--import-historical`` asks for them (the current
  tasks as a snapshot, the agents as registered) or the database is new to the logger
  (then every row is new).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import server
from ..clock import Clock, today
from ..crypt import segments
from ..crypt.keys import CryptError
from ..encoding import encode_row, encode_value, escape_separators
from ..logdir import layout
from ..logdir.dirlock import PATIENCE, DirLock, LockTimeout
from ..logdir.state import StateError
from ..logdir.tablestate import AgentSeen, TableState, TableStore, TaskSeen
from . import taskdiff
from .source import Source
from .writer import Chunk, DayWriter

log = logging.getLogger(__name__)

# A task row stamped this much before the newest ``updated_at`` recorded is still
# read again (a server whose clock stepped back a little).
MARGIN = dt.timedelta(minutes=5)

SILENT = "silent"  # a first read is taken as known: no lines
IMPORT = "import"  # ... written as a snapshot (--import-historical)

_dump = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def digest(row: str) -> str:
    return hashlib.blake2b(row.encode("utf-8"), digest_size=10).hexdigest()


@dataclass
class _Row:
    """One row as read: its line's JSON, and the columns the rules need (as text)."""

    json: str
    fields: dict[str, str | None]
    fragments: dict[str, str]  # column -> its JSON value, as encoded in ``json``


@dataclass
class _Line:
    kind: str
    at: str | None
    data: str


class TableFollower:
    """Follows ``tasks`` and ``agents`` of one database into one log directory."""

    def __init__(
        self,
        source: Source,
        log_dir: Path,
        clock: Clock,
        *,
        utc: bool = False,
        max_bytes: int | None = None,
        let_go: Callable[[], None] = lambda: None,
        holding: Callable[[], bool] = lambda: False,
        archive: bool = False,
        files: DayWriter | None = None,
    ) -> None:
        self.source = source
        # An archived copy of a room's database (import-archive): possibly older than
        # what the room's follower recorded (the hub gzips the database without its
        # WAL), so a task is recorded only where its row is newer than the one recorded,
        # none is forgotten for being absent, and known agents are left as recorded.
        self.archive = archive
        self.log_dir = log_dir
        self.clock = clock
        self.utc = utc
        self.max_bytes = max_bytes
        self.store = TableStore(log_dir)
        self.lock = DirLock(log_dir)
        # appends, sizes, cut backs (encrypted: a SegmentWriter, a segment a batch)
        self.files = files or DayWriter(log_dir, clock, utc=utc)
        # Encrypted (sealed tasks/agents files): the record keeps agents' rows and
        # status texts as digests only (docs/encryption.md), not in plaintext.
        self.store.digest_agents = bool(getattr(self.files, "recipients", None))
        # The message pipeline's held transaction (group commit) holds the directory's
        # one lock in this process: a batch of task lines goes in it (``holding``), or,
        # if it may not, ends it first (``let_go``).
        self._let_go = let_go
        self._holding = holding
        self.first_read = SILENT
        self._version: int | None = None  # data_version at the last read
        self._schema: object = None
        self._columns: dict[str, list[str]] = {}  # table -> columns ([]: absent)
        self._state: TableState | None = None  # as on disk (None: load it first)
        self._identity: tuple[int, ...] | None = None
        self._due: dt.datetime | None = None  # next health threshold crossing
        self._full = True  # the next tasks read reads every row
        self._aggregate: object = None  # the tasks aggregate at the last read
        self.task_lines = 0  # task lines committed so far
        # The tasks the last comparison changed, and the dict it started from.
        self._dirty: tuple[set[str], dict[str, TaskSeen]] | None = None

    # -- the start ---------------------------------------------------------------------

    def begin(self, *, existed: bool, importing: bool) -> None:
        """Before the first start's position is recorded: a log directory with no table
        state gets one now, so a first start killed later never takes rows as known that
        changed after it (and a later start never mistakes itself for a first one).

        ``existed``: the database was there at start (else every row will be new: an
        empty state, like the messages' position 0). ``importing``
        (``--import-historical``): the first tick writes the rows as a snapshot.
        Otherwise the rows as they are now are recorded as known, with no lines.
        """
        self.first_read = IMPORT if importing else SILENT
        state = self._loaded()
        if state.tasks is not None and state.agents is not None:
            return
        if not existed:
            with self._locked():
                fresh = TableState(
                    tasks=state.tasks or {}, agents=state.agents or {}, generation=state.generation
                )
                self.store.save(fresh)
                self._state, self._identity = fresh, self.store.identity()
            return
        if not importing:
            self.tick()

    # -- the tick ----------------------------------------------------------------------

    def tick(self) -> int:
        """Record what changed since the last tick; returns the lines written. Raises
        SourceError, WriteError, StateError or OSError (the caller retries)."""
        version = self.source.data_version()
        now = self.clock.now()
        if version == self._version and (self._due is None or now < self._due):
            return 0
        state = self._loaded()
        tasks = agents = None
        mark = state.mark
        if version != self._version:
            self._refresh_schema()
            if self._columns.get("tasks"):
                tasks = self._read_tasks(state)
            if self._columns.get("agents"):
                agents = self._read_agents()
        lines: list[_Line] = []
        new = TableState(
            tasks=state.tasks, agents=state.agents, mark=mark, generation=state.generation
        )
        if tasks is not None:
            rows, gone, new.mark = tasks
            if self.archive:
                new.mark = max(new.mark, state.mark)
                gone = None
            new.tasks = self._diff_tasks(state, rows, gone, lines)
            if new.tasks is not state.tasks and self._dirty is not None:
                new.dirty = (self._dirty[0], self._dirty[1])
        elif state.tasks is None and self._columns.get("tasks") == []:
            new.tasks = self._diff_tasks(state, {}, None, lines)  # absent: all will be new
        if not (self.archive and state.agents is not None):
            new.agents = self._diff_agents(state, agents, now, lines)
        if lines or new.tasks is not state.tasks or state.agents is None:
            self._commit(state, new, lines)
        elif new.agents is not state.agents:
            # Only heartbeats, inbox checks, last_seen: no line, so no save either (a
            # save a heartbeat would cost an fsync each); kept in memory, saved with the
            # next batch. Lost in a crash, a heartbeat is read again from the table.
            self._state = new
        self.task_lines += sum(1 for line in lines if line.kind == layout.TASKS)
        self._version = version
        self._due = self._next_due(now)
        return len(lines)

    def wait_time(self) -> float | None:
        """Seconds until an agent's health next changes with time alone (None: none
        will), for the follower's wait."""
        if self._due is None:
            return None
        return max(0.0, (self._due - self.clock.now()).total_seconds())

    def _next_due(self, now: dt.datetime) -> dt.datetime | None:
        agents = self._state.agents if self._state is not None else None
        soonest: float | None = None
        for seen in (agents or {}).values():
            wait = server.next_change(seen.heartbeat, now)
            if wait is not None and (soonest is None or wait < soonest):
                soonest = wait
        return None if soonest is None else now + dt.timedelta(seconds=soonest)

    # -- reading -----------------------------------------------------------------------

    def _refresh_schema(self) -> None:
        version = self.source.query("PRAGMA schema_version")[0][0]
        if version == self._schema and self._columns:
            return
        for table in ("tasks", "agents", "messages"):
            info = self.source.query(f"PRAGMA table_info({table})")
            columns = [_text(r[1]) or "" for r in info]
            old = self._columns.get(table)
            if old and columns and old != columns and table != "messages":
                log.info("%s columns changed: %s", table, ", ".join(columns))
                self._full = True
            self._columns[table] = columns
        self._schema = version

    def _select(self, table: str, alias: str) -> str:
        return ", ".join(f"{alias}.{_q(c)}, typeof({alias}.{_q(c)})" for c in self._columns[table])

    def _decode(self, table: str, values: tuple[object, ...]) -> _Row:
        columns = self._columns[table]
        raw = list(values[0::2])
        types = [_text(t) or "null" for t in values[1::2]]
        line = encode_row(columns, raw, types).decode("utf-8")[:-1]
        fragments = {c: encode_value(v, t) for c, v, t in zip(columns, raw, types, strict=True)}
        fields = {c: _text(v) for c, v in zip(columns, raw, strict=True)}
        return _Row(line, fields, fragments)

    def _read_tasks(self, state: TableState) -> tuple[dict[str, _Row], set[str] | None, int] | None:
        """The task rows that changed since the last read, the ids gone (None: not
        looked for) and the last message id at the read; None when nothing changed.

        The first read (and the one after a failure or a change of columns) reads and
        compares every row. After it, a cheap aggregate (count, newest ``updated_at``,
        a checksum of the stamps to the microsecond: one pass in SQLite) says whether
        anything changed;
        if so, the stamps of the rows stamped at most MARGIN before the newest one
        recorded are compared (every server tool stamps ``updated_at``), or all stamps
        when a row came or went unseen or none of those moved (one stamped further
        back), and only the rows whose stamp moved are read whole.
        """
        columns = self._columns["tasks"]
        mark = "(SELECT max(rowid) FROM messages)" if self._columns.get("messages") else "0"
        if "updated_at" not in columns or "id" not in columns:  # not the server's: all
            rows, value = self._rows_where("1", (), mark)
            return rows, set(state.tasks or {}) - set(rows), value
        # The last message id is read with the aggregate, before the stamps: a task made
        # after the stamps were read is read next time, and the messages of its moves
        # must still be after the mark then (a mark read later would skip them).
        # The checksum: the stamps' microseconds and, apart, their whole seconds (from
        # julianday, which every SQLite has: unixepoch needs 3.38; rounded, so the sum
        # stays exact). With the microseconds alone, a row restamped to the same
        # microsecond (a whole second, as a scripted server writes) no later than the
        # newest stamp went unseen.
        found = self.source.query(
            "SELECT count(*), max(updated_at), total(CAST(substr(updated_at, -6) AS INTEGER)),"
            " total(round((julianday(updated_at) - 2440587.5) * 86400)),"
            f" {mark} FROM tasks"
        )[0]
        aggregate, early = found[:4], found[4]
        if not self._full and aggregate == self._aggregate:
            return None
        if self._full:
            rows, value = self._rows_where("1", (), mark)
            gone: set[str] | None = set(state.tasks or {}) - set(rows)
        else:
            known = state.tasks or {}
            stamps = self._stamps(self._since(self._aggregate))
            every = len(known) + sum(1 for i in stamps if i not in known) != aggregate[0]
            if every:
                stamps = self._stamps(None)
            wanted = [i for i, u in stamps.items() if i not in known or known[i].updated_at != u]
            if not wanted and not every:  # a row stamped further back than the margin
                every, stamps = True, self._stamps(None)
                wanted = [
                    i for i, u in stamps.items() if i not in known or known[i].updated_at != u
                ]
            rows, value = self._rows_by_id(wanted, mark)
            value = min(value, early) if isinstance(early, int) else value
            gone = set(known) - set(stamps) if every else None
        self._aggregate = aggregate
        self._full = False
        return rows, gone, value

    def _stamps(self, since: str | None) -> dict[str, str | None]:
        found = self.source.query(
            "SELECT id, updated_at FROM tasks WHERE ?1 IS NULL OR updated_at >= ?1", (since,)
        )
        return {_text(i) or "": _text(u) for i, u in found}

    def _rows_where(
        self, condition: str, params: tuple[object, ...], mark: str
    ) -> tuple[dict[str, _Row], int]:
        """Whole rows (in one statement with the last message id then)."""
        found = self.source.query(
            f"SELECT m.mark, t.rowid, {self._select('tasks', 't')}"
            f" FROM (SELECT {mark} AS mark) m LEFT JOIN tasks t ON {condition}",
            params,
        )
        rows: dict[str, _Row] = {}
        key = "id" if "id" in self._columns["tasks"] else None
        for record in found:
            if record[1] is None:  # the LEFT JOIN's row of an empty result
                continue
            row = self._decode("tasks", record[2:])
            ident = (row.fields.get(key) if key else None) or f"rowid {record[1]}"
            rows[ident] = row
        value = found[0][0] if found else 0
        return rows, int(value) if isinstance(value, int) else 0

    def _rows_by_id(self, ids: list[str], mark: str) -> tuple[dict[str, _Row], int]:
        rows: dict[str, _Row] = {}
        marks: list[int] = []
        for start in range(0, max(len(ids), 1), 500):  # (SQLite's variable limit)
            chunk = ids[start : start + 500]
            condition = f"t.id IN ({','.join('?' * len(chunk))})" if chunk else "0"
            found, value = self._rows_where(condition, tuple(chunk), mark)
            rows.update(found)
            marks.append(value)
        return rows, min(marks)

    @staticmethod
    def _since(aggregate: object) -> str | None:
        """MARGIN before the newest ``updated_at`` of the last read (every row the table
        held then was recorded by it; a row changed since is stamped later, or, by a
        clock set back further than MARGIN, found by the fallback to every stamp). Taken
        from the last read's aggregate, not from the record: a pass over every task's
        record at each read cost 10,000 tasks several milliseconds a change."""
        newest = aggregate[1] if isinstance(aggregate, tuple) and len(aggregate) > 1 else None
        stamp = taskdiff.parse_time(_text(newest))  # (the source reads text as bytes)
        return None if stamp is None else (stamp - MARGIN).isoformat()

    def _read_agents(self) -> dict[str, _Row]:
        found = self.source.query(f"SELECT {self._select('agents', 'a')} FROM agents a")
        rows: dict[str, _Row] = {}
        for record in found:
            row = self._decode("agents", record)
            rows[row.fields.get("name") or ""] = row
        return rows

    def _told(self, state: TableState, ids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """The server's messages about these tasks since the last read: ``{id:
        [(timestamp, content), ...]}`` in id order."""
        columns = self._columns.get("messages") or []
        told: dict[str, list[tuple[str, str]]] = {i: [] for i in ids}
        if not ids or not {"task_id", "timestamp", "content"} <= set(columns):
            return told
        marks = ",".join("?" * len(ids))
        found = self.source.query(
            "SELECT task_id, timestamp, content FROM messages"
            f" WHERE rowid > ? AND task_id IN ({marks}) ORDER BY rowid",
            (state.mark, *ids),
        )
        for task, stamp, content in found:
            key, when, text = _text(task), _text(stamp), _text(content)
            if key in told and when is not None and text is not None:
                told[key].append((when, text))
        return told

    # -- comparing ---------------------------------------------------------------------

    def _diff_tasks(
        self, state: TableState, rows: dict[str, _Row], gone: set[str] | None, lines: list[_Line]
    ) -> dict[str, TaskSeen]:
        old = state.tasks
        emit = old is not None or self.first_read != SILENT
        snapshot = old is None and self.first_read == IMPORT
        seen = dict(old or {})
        self._dirty = (set(), old) if old is not None else None
        changed = [k for k, r in rows.items() if k not in seen or seen[k].digest != digest(r.json)]
        told = self._told(state, changed) if emit and not snapshot else {}
        ordered = sorted(rows.items(), key=lambda kv: (kv[1].fields.get("updated_at") or "", kv[0]))
        touched = old is None
        for ident, row in ordered:
            mark = digest(row.json)
            before = seen.get(ident)
            if before is not None and before.digest == mark:
                continue
            if self.archive and before is not None and not _newer(row, before):
                continue  # the archive's copy is older than what was recorded
            touched = True
            status = row.fragments.get("status", "null")
            updated = row.fields.get("updated_at")
            seen[ident] = TaskSeen(status, mark, updated)
            if self._dirty is not None:
                self._dirty[0].add(ident)
            if not emit:
                continue
            parts = ['{"task":', _dump(ident), ',"from":']
            parts.append("null" if before is None else before.status)
            parts += [',"to":', status]
            if not snapshot:
                a = None if before is None else _plain(before.status)
                after = None if before is None else before.updated_at
                moves = taskdiff.moves_between(ident, told.get(ident, []), after, updated)
                gap, via = taskdiff.gap_and_via(a, _plain(status), moves)
                if via is not None:
                    parts += [',"via":', _dump(via)]
                if gap:
                    parts.append(',"gap":true')
            parts += [',"at":', row.fragments.get("updated_at", "null")]
            if snapshot:
                parts.append(',"snapshot":true')
            parts += [',"row":', row.json, "}"]
            lines.append(_Line(layout.TASKS, updated, escape_separators("".join(parts))))
        for ident in gone or ():  # deleted (no server tool does): forgotten
            if seen.pop(ident, None) is not None:
                touched = True
                if self._dirty is not None:
                    self._dirty[0].add(ident)
        return seen if touched else (old or {})

    def _diff_agents(
        self,
        state: TableState,
        rows: dict[str, _Row] | None,
        now: dt.datetime,
        lines: list[_Line],
    ) -> dict[str, AgentSeen] | None:
        old = state.agents
        if rows is None and old is None:
            return {} if self._columns.get("agents") == [] else None
        emit = old is not None or self.first_read != SILENT
        seen = dict(old or {})
        touched = old is None
        rows_now: dict[str, _Row | None] = (
            dict.fromkeys(seen) if rows is None else dict(rows)  # None: only time passed
        )
        for name, row in rows_now.items():
            before = seen.get(name)
            if row is None:
                assert before is not None
                fields = {"heartbeat_at": before.heartbeat, "last_seen": before.last_seen}
                status, row_json = before.known_status, before.known_row
            else:
                fields, status, row_json = row.fields, row.fields.get("status"), row.json
            beat = fields.get("heartbeat_at")
            health = server.health(beat, now)
            events: list[tuple[str, str | None, object]] = []  # (event, at, from)
            if before is None:
                at = (row.fields.get("registered_at") if row else None) or fields.get("last_seen")
                events.append(("registered", at, None))
            else:
                # (row None: only time passed, the status is the one recorded; from:
                # None when only its digest was recorded)
                if row is not None and before.status_differs(name, status):
                    events.append(("status", fields.get("last_seen"), before.known_status))
                was = before.health or server.UNKNOWN  # (null: unknown, in older records)
                if health != was:
                    if beat == before.heartbeat:
                        crossed = server.crossings(beat, was, health)
                        previous = was
                        for state_now, when in crossed:
                            events.append(("health", when, previous))
                            previous = state_now
                        if not crossed:
                            events.append(("health", _local(now), was))
                    else:
                        events.append(("health", fields.get("last_seen"), was))
            record = AgentSeen(row_json, status, health, beat, fields.get("last_seen"))
            if row is None and before is not None and before.digested:  # keep its digests
                record = dataclasses.replace(
                    before, health=health, heartbeat=beat, last_seen=fields.get("last_seen")
                )
            if before != record:
                seen[name] = record
                touched = True
            if not emit:
                continue
            healths = [health] * len(events)
            for i, (event, _, _prior) in enumerate(events):  # each line: the health after it
                if event == "health" and i + 1 < len(events):
                    healths[i] = str(events[i + 1][2])
            for (event, at, prior), shown in zip(events, healths, strict=True):
                lines.append(_agent_line(name, event, at, shown, status, prior, row_json))
        if rows is not None:
            for name in [n for n in seen if n not in rows]:
                gone = seen.pop(name)
                touched = True
                if emit:
                    at = _local(now)
                    lines.append(
                        _agent_line(
                            name, "deregistered", at, None, gone.known_status, None, gone.known_row
                        )
                    )
        return seen if touched else old

    # -- committing --------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._holding():  # this process holds the lock already (a busy follower)
            yield
            return
        self._let_go()
        try:
            with self.lock.held(PATIENCE):
                yield
        except LockTimeout as exc:
            raise StateError(str(exc)) from None

    def _loaded(self) -> TableState:
        """The state as on disk, an uncommitted batch cut back first."""
        if self._state is not None and self.store.identity() == self._identity:
            return self._state
        with self._locked():
            damaged = False
            try:
                state = self.store.load()
            except (ValueError, OSError) as exc:
                moved = self.store.set_aside()
                log.warning("%s is unreadable (%s); kept as %s", self.store.path, exc, moved)
                state, damaged = None, True
            pending = self.store.load_pending()
            committed = -1 if damaged else state.generation if state is not None else 0
            cut = pending is not None and pending[0] > committed
            if pending is not None and cut:
                self.files.truncate_back(pending[1])
            if damaged:
                state = rebuild(self.log_dir)  # (after the cut: from committed lines only)
            if state is None:
                state = TableState()
            if pending is not None and (cut or damaged):
                state.generation = max(state.generation, pending[0])  # resolved
                self.store.save(state)
            elif damaged:
                self.store.save(state)
            self._state, self._identity = state, self.store.identity()
            self._full = True
        return state

    def _commit(self, old: TableState, new: TableState, lines: list[_Line]) -> None:
        """The two-step commit (see :mod:`..logdir.tablestate`)."""
        try:
            with self._locked():
                if self.store.identity() != self._identity:
                    raise StateError(f"{self.store.path} changed under the logger; reading again")
                new.generation = old.generation + 1
                chunks = self.files.place(self._plan(lines))
                if chunks:
                    sizes = self.files.sizes(chunks)
                    self.store.save_pending(new.generation, sizes)
                    self.files.append(chunks, sizes)
                self.store.save(new)
                self._state, self._identity = new, self.store.identity()
        except BaseException:
            self._state = None  # reloaded (and cut back) by the next tick
            self._version = None
            raise

    def _day(self, at: str | None) -> str:
        stamp = taskdiff.parse_time(at)
        if stamp is not None and at is not None:
            if not self.utc:
                return at[:10] if stamp.tzinfo is None else stamp.date().isoformat()
            return stamp.astimezone(dt.UTC).date().isoformat()
        return today(self.clock, self.utc).isoformat()

    def _plan(self, lines: list[_Line]) -> list[Chunk]:
        """The lines grouped by file (kind, day of ``at``, part), in order."""
        groups: dict[tuple[str, str], list[bytes]] = {}
        for line in lines:
            groups.setdefault((line.kind, self._day(line.at)), []).append(
                line.data.encode("utf-8") + b"\n"
            )
        chunks: list[Chunk] = []
        for (kind, day), data in groups.items():
            if self.max_bytes is None:
                chunks.append(
                    Chunk(layout.day_path(self.log_dir, day, 0, kind).name, b"".join(data))
                )
                continue
            part, size = self._top_part(kind, day)
            current: list[bytes] = []
            for item in data:
                if size and size + len(item) > self.max_bytes:
                    name = layout.day_path(self.log_dir, day, part, kind).name
                    chunks.append(Chunk(name, b"".join(current)))
                    part, size, current = part + 1, 0, []
                current.append(item)
                size += len(item)
            if current:
                name = layout.day_path(self.log_dir, day, part, kind).name
                chunks.append(Chunk(name, b"".join(current)))
        return [c for c in chunks if c.data]

    def _top_part(self, kind: str, day: str) -> tuple[int, int]:
        entries = [f for f in layout.log_files(self.log_dir, (kind,)) if f.day.isoformat() == day]
        if not entries:
            return 0, 0
        top = max(entries)
        if top.compressed:
            return top.part + 1, 0
        try:
            return top.part, top.path.stat().st_size
        except FileNotFoundError:
            return top.part, 0


def _newer(row: _Row, before: TaskSeen) -> bool:
    """Whether ``row`` was stamped after the recorded ``before`` (a row without a
    readable stamp, or a recorded one without, is taken as newer)."""
    now, then = (
        taskdiff.parse_time(row.fields.get("updated_at")),
        taskdiff.parse_time(before.updated_at),
    )
    if now is None or then is None or (now.tzinfo is None) != (then.tzinfo is None):
        return True
    return now > then


def _plain(fragment: str) -> str:
    try:
        value = json.loads(fragment)
    except ValueError:
        return fragment
    return value if isinstance(value, str) else fragment


def _local(now: dt.datetime) -> str:
    """``now`` written as the server writes its times (local, no zone)."""
    return now.astimezone().replace(tzinfo=None).isoformat()


def _agent_line(
    name: str,
    event: str,
    at: str | None,
    health: str | None,
    status: str | None,
    prior: object,
    row: str,
) -> _Line:
    data = (
        '{"agent":' + _dump(name) + ',"event":' + _dump(event) + ',"at":' + _dump(at)
        + ',"health":' + _dump(health) + ',"status":' + _dump(status)
        + ',"from":' + _dump(prior) + ',"row":' + row + "}"
    )  # fmt: skip
    return _Line(layout.AGENTS, at, escape_separators(data))


def rebuild(log_dir: Path) -> TableState:
    """A lost table state rebuilt from the last line of each task and agent in the
    files (a torn last line cut off first), so nothing is recorded twice."""
    state = TableState(tasks={}, agents={})
    assert state.tasks is not None and state.agents is not None
    for entry in layout.log_files(log_dir, (layout.TASKS, layout.AGENTS)):
        for raw in _whole_lines(entry.path):
            _, sep, row = raw.partition(',"row":')
            if not sep:
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            row = row[:-1]
            if entry.kind == layout.TASKS and isinstance(obj.get("task"), str):
                status = _dump(obj.get("to"))
                at = obj.get("at") if isinstance(obj.get("at"), str) else None
                state.tasks[obj["task"]] = TaskSeen(status, digest(row), at)
            elif entry.kind == layout.AGENTS and isinstance(obj.get("agent"), str):
                if obj.get("event") == "deregistered":
                    state.agents.pop(obj["agent"], None)
                    continue
                fields = obj.get("row") if isinstance(obj.get("row"), dict) else {}
                state.agents[obj["agent"]] = AgentSeen(
                    row, obj.get("status"), obj.get("health"),
                    fields.get("heartbeat_at"), fields.get("last_seen"),
                )  # fmt: skip
    log.warning("rebuilt the tasks and agents state of %s from its files", log_dir)
    return state


def _whole_lines(path: Path) -> Iterator[str]:
    if path.suffix == layout.AGE:  # a sealed segment: read with the identity, or not at all
        try:
            data = segments.read_segment(path)
        except CryptError as exc:
            raise StateError(f"cannot rebuild the tasks and agents state: {exc}") from None
        for line in data.splitlines():
            yield line.decode("utf-8", "replace")
        return
    if path.suffix == ".gz":
        with contextlib.suppress(OSError, EOFError), gzip.open(path, "rb") as packed:
            for line in packed:
                yield line.decode("utf-8", "replace").rstrip("\n")
        return
    with open(path, "rb") as fh:
        data = fh.read()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(len(whole))
    for line in whole.splitlines():
        yield line.decode("utf-8", "replace")
