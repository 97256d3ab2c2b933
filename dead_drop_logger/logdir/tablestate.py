"""What the log directory has recorded of the ``tasks`` and ``agents`` tables.

The follower records each observed change of a task row, and each agent event, as a
line of ``tasks-DAY.json`` / ``agents-DAY.json`` (docs/tasks.md). To know what changed
it keeps what it last recorded of each row, here, in ``.dead-drop-logger.tables``,
beside the message state but apart from it: the message state is saved several times a
second under a busy server and must stay small, while this one holds a digest per task
and is saved only when a task or an agent changes.

Exactly once rests on the same two-step commit as the messages' (see :mod:`.state`),
under the same writer lock, with the pending record in a small file of its own
(``.dead-drop-logger.tables.pending``), so the lines are not held back by a save of
every task's record. Each save carries a generation number:

1. the pending record is saved with generation G+1: the size and inode of every
   tasks/agents file the batch will append to, as a line appended to the pending file
   and fdatasynced (the record is its last whole line; see :meth:`TableStore.save_pending`
   for why appending is safe);
2. the lines are appended and fsynced;
3. the new rows are saved with generation G+1: the batch is committed.

A pending record newer than the rows (its generation above
theirs) is a batch that did not commit: whoever next commits (the follower's first
tick after a restart) cuts those files back to the recorded sizes, which removes
exactly the lines of that batch, and compares the database with the rows saved before
it: the changes are recorded again, once. The lines and the record of what was seen
therefore never disagree. The file policies (retention, compression) leave the files of
the last pending record alone (:func:`pending_names`).

Step 3 writes only what the batch changed: the rows' file is a base (every row, as of
one generation) plus a journal beside it (``.dead-drop-logger.tables.journal``), one
line per committed batch holding the rows it changed or removed, appended and fsynced.
So a task change in a table of 10,000 tasks saves a line of a hundred bytes instead of
rewriting 800 KB (issue 19: the 50 ms target). A journal line is committed once it is
whole (ends in a newline): a torn last line is a batch that did not commit, and is cut
off before the next append. The state is the base with every journal line of a newer
generation applied in order. When the journal has grown past the base (and 64 KiB),
the next save writes the base afresh (atomically, as before) and then empties the
journal; killed in between, the journal's lines are all of older generations than the
new base and are skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import fsync_dir, open_private, read_whole, replace_durably

log = logging.getLogger(__name__)

TABLES_NAME = ".dead-drop-logger.tables"
PENDING_NAME = TABLES_NAME + ".pending"
JOURNAL_NAME = TABLES_NAME + ".journal"
FORMAT = 1
COMPACT_AFTER = 64 * 1024  # journal bytes, at least, before the base is written afresh
PENDING_COMPACT = 256 * 1024  # pending file bytes, at most, before it starts afresh


@dataclass
class TaskSeen:
    """What was recorded of one task: its status (as JSON), a digest of its whole row,
    its ``updated_at`` (None when it has none)."""

    status: str
    digest: str
    updated_at: str | None


@dataclass
class AgentSeen:
    """What was recorded of one agent: its row (as the line's JSON), its status text,
    health, ``heartbeat_at`` and ``last_seen``.

    ``digested``: ``row`` and ``status`` are digests (:func:`digested`), as an encrypted
    directory's record stores them (docs/encryption.md): enough to tell whether the
    status changed, not what it was."""

    row: str
    status: str | None
    health: str | None
    heartbeat: str | None
    last_seen: str | None
    digested: bool = False

    def status_differs(self, name: str, status: object) -> bool:
        """Whether ``status`` (read now) is not the status recorded."""
        if self.digested:
            return _status_digest(name, status) != self.status
        return status != self.status

    @property
    def known_status(self) -> str | None:
        """The recorded status text; None when only its digest was recorded."""
        return None if self.digested else self.status

    @property
    def known_row(self) -> str:
        """The recorded row's JSON; ``{}`` when only its digest was recorded."""
        return "{}" if self.digested else self.row


def _digest(name: str, text: str) -> str:
    data = name.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass")
    return "b2:" + hashlib.blake2b(data, digest_size=16).hexdigest()


def _status_digest(name: str, status: object) -> str | None:
    return None if status is None else _digest(name, _dump(status))


def digested(name: str, seen: AgentSeen) -> AgentSeen:
    """``seen`` as an encrypted directory's record keeps it: the row and the status
    text as digests (salted with the agent's name), the times and health as they are."""
    if seen.digested:
        return seen
    return dataclasses.replace(
        seen,
        row=_digest(name, seen.row),
        status=_status_digest(name, seen.status),
        digested=True,
    )


def _agent_entry(name: str, seen: AgentSeen, digest: bool) -> list[object]:
    """An agent's entry in the record (its row encoding); ``digest``: row and status as
    digests, with a sixth element 1 that says so."""
    if digest:
        seen = digested(name, seen)
    entry: list[object] = [seen.row, seen.status, seen.health, seen.heartbeat, seen.last_seen]
    if seen.digested:
        entry.append(1)
    return entry


def _agent_seen(entry: list[Any]) -> AgentSeen:
    """An agent's entry read back (its values as saved: a status is compared as read)."""
    digested_ = len(entry) > 5 and bool(entry[5])
    return AgentSeen(str(entry[0]), entry[1], entry[2], entry[3], entry[4], digested_)


@dataclass
class TableState:
    """``tasks``/``agents``: None until the table was first read (a first start takes
    what it finds then as already known, unless asked to import it); ``mark``: the last
    message id when the tasks were read (transition messages are looked for after it);
    ``generation``: of the last batch committed (see the module doc)."""

    tasks: dict[str, TaskSeen] | None = None
    agents: dict[str, AgentSeen] | None = None
    mark: int = 0
    generation: int = 0
    # Not saved: the ids of the tasks changed or removed since ``tasks`` was derived
    # from another state's dict (the second item), so a save compares only those.
    dirty: tuple[set[str], dict[str, TaskSeen]] | None = field(
        default=None, compare=False, repr=False
    )

    def to_json(
        self, cache: dict[str, tuple[TaskSeen, str]] | None = None, digest: bool = False
    ) -> bytes:
        """The file's bytes. ``cache`` (kept by the caller between saves): each task's
        encoded entry, reused while the task's TaskSeen is the same object (they are
        replaced, never changed), so a save of 10,000 tasks encodes only those that
        changed. ``digest``: agents' rows and status texts as digests (encrypted)."""
        data = {
            "format": FORMAT,
            "tasks": None,
            "agents": None
            if self.agents is None
            else {k: _agent_entry(k, v, digest) for k, v in self.agents.items()},
            "mark": self.mark,
            "generation": self.generation,
        }
        text = _dump(data)
        if self.tasks is not None:
            cache = {} if cache is None else cache
            entries = ",".join(_task_entry(k, v, cache) for k, v in self.tasks.items())
            for gone in cache.keys() - self.tasks.keys():
                del cache[gone]
            text = text.replace('"tasks":null', '"tasks":{' + entries + "}", 1)
        return (text + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TableState:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("unknown format")
        tasks = data.get("tasks")
        agents = data.get("agents")
        return cls(
            tasks=None
            if tasks is None
            else {str(k): TaskSeen(str(v[0]), str(v[1]), v[2]) for k, v in tasks.items()},
            agents=None if agents is None else {str(k): _agent_seen(v) for k, v in agents.items()},
            mark=int(data.get("mark", 0)),
            generation=int(data.get("generation", 0)),
        )


_dump = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _task_entry(key: str, seen: TaskSeen, cache: dict[str, tuple[TaskSeen, str]]) -> str:
    hit = cache.get(key)
    if hit is not None and hit[0] is seen:
        return hit[1]
    entry = _dump(key) + ":" + _dump([seen.status, seen.digest, seen.updated_at])
    cache[key] = (seen, entry)
    return entry


class TableStore:
    """Loads and saves one log directory's table state (the caller holds the lock): a
    base and its journal (see the module doc)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.path = log_dir / TABLES_NAME
        self.tmp_path = log_dir / (TABLES_NAME + ".tmp")
        self.journal_path = log_dir / JOURNAL_NAME
        self.pending_path = log_dir / PENDING_NAME
        self.pending_tmp = log_dir / (PENDING_NAME + ".tmp")
        self._entries: dict[str, tuple[TaskSeen, str]] = {}  # see TableState.to_json
        # As on disk after the last load or save (None: unknown, the next save writes
        # the base): the journal's next line holds what changed since.
        self._saved: TableState | None = None
        self._journal_end = 0  # where the last whole journal line ends
        self._base_size = 0
        # Agents' rows and status texts recorded as digests (an encrypted directory:
        # docs/encryption.md); set by the writer.
        self.digest_agents = False

    def load(self) -> TableState | None:
        """The saved state; None when there is none; raises ValueError/OSError when it
        cannot be read."""
        self._saved, self._journal_end = None, 0
        try:
            raw = read_whole(self.path)
        except FileNotFoundError:
            if self._journal_exists():
                raise ValueError(f"{self.journal_path} is there without its base") from None
            return None
        try:
            state = TableState.from_json(raw)
            self._journal_end = self._replay(state)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(str(exc)) from None
        self._base_size = len(raw)
        self._saved = _kept(state)
        if self.digest_agents and any(not a.digested for a in (state.agents or {}).values()):
            self._saved = None  # plain rows from before encryption: the next save replaces them
        return state

    def _journal_exists(self) -> bool:
        try:
            return os.stat(self.journal_path).st_size > 0
        except FileNotFoundError:
            return False

    def _replay(self, state: TableState) -> int:
        """Apply the journal's committed lines newer than the base to ``state``; returns
        where the last whole line ends (a torn line after it did not commit)."""
        try:
            raw = read_whole(self.journal_path)
        except FileNotFoundError:
            return 0
        end = raw.rfind(b"\n") + 1
        for line in raw[:end].splitlines():
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("a journal line is not an object")
            if int(entry["generation"]) <= state.generation:
                continue  # from before the base was written afresh
            _apply(state, entry)
        return end

    def set_aside(self) -> Path:
        target = self.path.with_name(TABLES_NAME + ".corrupt")
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path, target)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.journal_path, self.path.with_name(JOURNAL_NAME + ".corrupt"))
        self._saved = None
        return target

    def identity(self) -> tuple[int, ...] | None:
        """What tells the state saved last from another (None: no file)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        try:
            jt = os.stat(self.journal_path)
            journal: tuple[int, ...] = (jt.st_ino, jt.st_size, jt.st_mtime_ns)
        except FileNotFoundError:
            journal = ()
        return (st.st_ino, st.st_size, st.st_mtime_ns, *journal)

    def save(self, state: TableState) -> None:
        """Save ``state`` (durable once this returns): one journal line of what changed
        since the last save, or the base afresh (the first save, a table first read,
        a journal grown past the base)."""
        saved = self._saved
        if (
            saved is None
            or (saved.tasks is None) != (state.tasks is None)
            or (saved.agents is None) != (state.agents is None)
            or self._journal_end > max(COMPACT_AFTER, self._base_size)
        ):
            self._write_base(state)
            return
        line = _dump(_delta(saved, state, self.digest_agents)) + "\n"
        self._append(line.encode())
        self._saved = _kept(state)

    def _write_base(self, state: TableState) -> None:
        data = state.to_json(self._entries, self.digest_agents)
        self._replace(self.path, self.tmp_path, data)
        self._base_size = len(data)
        if self._journal_end or self._journal_exists():
            with contextlib.suppress(FileNotFoundError):
                fd = open_private(self.journal_path, os.O_WRONLY)
                try:
                    os.ftruncate(fd, 0)  # every line in it is older than the base now
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._journal_end = 0
        self._saved = _kept(state)

    def _append(self, data: bytes) -> None:
        fd = open_private(self.journal_path, os.O_WRONLY | os.O_CREAT)
        try:
            created = self._journal_end == 0
            if os.fstat(fd).st_size != self._journal_end:
                os.ftruncate(fd, self._journal_end)  # a torn line: it never committed
            os.lseek(fd, self._journal_end, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.log_dir)  # (a journal just created)
        self._journal_end += len(data)

    def save_pending(self, generation: int, sizes: dict[str, tuple[int, int]]) -> None:
        """Durably record a batch about to append to ``sizes``'s files: one line appended
        to the pending file and fdatasynced (one sync, where a write-temp, fsync, rename,
        fsync-directory took two and a rename before the lines could go out). The record
        is the file's last whole line. A torn last line (a save cut short) is cut off
        first; past PENDING_COMPACT bytes the file is replaced by the new line alone
        (write-temp, rename), once every thousand batches or so.

        Why appending is safe: the lines of a batch are appended only once its record is
        durable, and every earlier record is resolved (committed, or cut back and the
        rows saved past it) before a new one is saved. So a record cut short, or lost
        with a compaction cut short, belongs to a batch that appended nothing, and every
        line before the last is of a batch that is no longer pending."""
        data = {"generation": generation, "pending": {k: list(v) for k, v in sizes.items()}}
        raw = (json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        try:
            fd = open_private(self.pending_path, os.O_RDWR)
        except FileNotFoundError:
            self._replace(self.pending_path, self.pending_tmp, raw)  # (made durably)
            return
        try:
            end = os.fstat(fd).st_size
            if end and os.pread(fd, 1, end - 1) != b"\n":  # a torn line: cut off
                end = os.pread(fd, end, 0).rfind(b"\n") + 1
                os.ftruncate(fd, end)
            if end + len(raw) <= PENDING_COMPACT:
                os.lseek(fd, end, os.SEEK_SET)
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd)
                return
        finally:
            os.close(fd)
        self._replace(self.pending_path, self.pending_tmp, raw)

    def load_pending(self) -> tuple[int, dict[str, tuple[int, int]]] | None:
        """The last pending record (generation, sizes): the pending file's last whole
        line; None when there is none or it cannot be read."""
        try:
            raw = read_whole(self.pending_path)
            end = raw.rfind(b"\n")
            if end < 0:
                return None  # empty, or only a save cut short
            data = json.loads(raw[raw.rfind(b"\n", 0, end) + 1 : end])
            sizes = {str(k): (int(v[0]), int(v[1])) for k, v in data["pending"].items()}
            return int(data["generation"]), sizes
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            log.warning("%s is unreadable (%s); ignored", self.pending_path, exc)
            return None

    def _replace(self, path: Path, tmp: Path, data: bytes) -> None:
        replace_durably(path, data, tmp)  # (tmp afresh: never written through a link)


def _kept(state: TableState) -> TableState:
    """What was saved, kept to compare the next save with: the same dicts (a state's
    dicts are replaced, never changed, once handed to the store), in a state of its own
    (whose generation the caller may still set)."""
    return TableState(state.tasks, state.agents, state.mark, state.generation)


def _delta(old: TableState, new: TableState, digest: bool = False) -> dict[str, object]:
    """A journal line: what ``new`` changed of ``old`` (both with tasks and agents).
    Only the tasks ``new.dirty`` names are compared when it was derived from ``old``'s
    dict (a follower's batch: 10,000 tasks are not walked for one change)."""
    assert old.tasks is not None and new.tasks is not None
    assert old.agents is not None and new.agents is not None
    tasks: dict[str, list[str | None]] = {}
    gone: list[str] = []
    if new.tasks is not old.tasks:
        before = old.tasks
        if new.dirty is not None and new.dirty[1] is before:
            keys: Iterable[str] = new.dirty[0]
        else:
            keys = set(new.tasks) | set(before)
        for key in keys:
            seen, was = new.tasks.get(key), before.get(key)
            if seen is None:
                if was is not None:
                    gone.append(key)
            elif was is not seen and was != seen:
                tasks[key] = [seen.status, seen.digest, seen.updated_at]
    agents: dict[str, list[object]] = {}
    agents_gone: list[str] = []
    if new.agents is not old.agents:
        agents = {
            k: _agent_entry(k, v, digest) for k, v in new.agents.items() if old.agents.get(k) != v
        }
        agents_gone = [k for k in old.agents if k not in new.agents]
    return {
        "generation": new.generation,
        "mark": new.mark,
        "tasks": tasks,
        "gone": sorted(gone),
        "agents": agents,
        "agents_gone": agents_gone,
    }


def _apply(state: TableState, entry: dict[str, object]) -> None:
    """A journal line applied to ``state``."""
    tasks, agents = entry["tasks"], entry["agents"]
    gone, agents_gone = entry["gone"], entry["agents_gone"]
    if not (isinstance(tasks, dict) and isinstance(agents, dict)):
        raise TypeError("a journal line's rows are not objects")
    if not (isinstance(gone, list) and isinstance(agents_gone, list)):
        raise TypeError("a journal line's removals are not lists")
    if state.tasks is None or state.agents is None:
        raise ValueError("a journal line for a state without tables")
    for k, v in tasks.items():
        state.tasks[str(k)] = TaskSeen(str(v[0]), str(v[1]), v[2])
    for k in gone:
        state.tasks.pop(str(k), None)
    for k, v in agents.items():
        state.agents[str(k)] = _agent_seen(v)
    for k in agents_gone:
        state.agents.pop(str(k), None)
    state.mark = int(str(entry["mark"]))
    state.generation = int(str(entry["generation"]))


def pending_names(log_dir: Path) -> set[str]:
    """The files of the last pending record (a batch that may not have committed, to be
    cut back by the follower): the file policies leave them alone."""
    found = TableStore(log_dir).load_pending()
    return set(found[1]) if found is not None else set()
