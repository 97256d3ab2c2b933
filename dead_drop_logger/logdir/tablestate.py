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
   tasks/agents file the batch will append to;
2. the lines are appended and fsynced;
3. the new rows are saved with generation G+1: the batch is committed.

Both saves are write-temp, fsync, rename, fsync-directory, so each file on disk is
whole, before or after. A pending record newer than the rows (its generation above
theirs) is a batch that did not commit: whoever next commits (the follower's first
tick after a restart) cuts those files back to the recorded sizes, which removes
exactly the lines of that batch, and compares the database with the rows saved before
it: the changes are recorded again, once. The lines and the record of what was seen
therefore never disagree. The file policies (retention, compression) leave the files of
the last pending record alone (:func:`pending_names`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..files import create_private, fsync_dir, read_whole

log = logging.getLogger(__name__)

TABLES_NAME = ".dead-drop-logger.tables"
PENDING_NAME = TABLES_NAME + ".pending"
FORMAT = 1


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
    health, ``heartbeat_at`` and ``last_seen``."""

    row: str
    status: str | None
    health: str | None
    heartbeat: str | None
    last_seen: str | None


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

    def to_json(self, cache: dict[str, tuple[TaskSeen, str]] | None = None) -> bytes:
        """The file's bytes. ``cache`` (kept by the caller between saves): each task's
        encoded entry, reused while the task's TaskSeen is the same object (they are
        replaced, never changed), so a save of 10,000 tasks encodes only those that
        changed."""
        data = {
            "format": FORMAT,
            "tasks": None,
            "agents": None
            if self.agents is None
            else {
                k: [v.row, v.status, v.health, v.heartbeat, v.last_seen]
                for k, v in self.agents.items()
            },
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
            agents=None
            if agents is None
            else {str(k): AgentSeen(str(v[0]), v[1], v[2], v[3], v[4]) for k, v in agents.items()},
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
    """Loads and saves one log directory's table state (the caller holds the lock)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.path = log_dir / TABLES_NAME
        self.tmp_path = log_dir / (TABLES_NAME + ".tmp")
        self.pending_path = log_dir / PENDING_NAME
        self.pending_tmp = log_dir / (PENDING_NAME + ".tmp")
        self._entries: dict[str, tuple[TaskSeen, str]] = {}  # see TableState.to_json

    def load(self) -> TableState | None:
        """The saved state; None when there is none; raises ValueError/OSError when it
        cannot be read."""
        try:
            raw = read_whole(self.path)
        except FileNotFoundError:
            return None
        try:
            return TableState.from_json(raw)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(str(exc)) from None

    def set_aside(self) -> Path:
        target = self.path.with_name(TABLES_NAME + ".corrupt")
        os.replace(self.path, target)
        return target

    def identity(self) -> tuple[int, int, int] | None:
        """What tells the file saved last from another (None: no file)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def save(self, state: TableState) -> None:
        """Atomically replace the rows' file (durable once this returns)."""
        self._replace(self.path, self.tmp_path, state.to_json(self._entries))

    def save_pending(self, generation: int, sizes: dict[str, tuple[int, int]]) -> None:
        """Atomically record a batch about to append to ``sizes``'s files."""
        data = {"generation": generation, "pending": {k: list(v) for k, v in sizes.items()}}
        raw = (json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        self._replace(self.pending_path, self.pending_tmp, raw)

    def load_pending(self) -> tuple[int, dict[str, tuple[int, int]]] | None:
        """The last pending record (generation, sizes); None when there is none or it
        cannot be read."""
        try:
            data = json.loads(read_whole(self.pending_path))
            sizes = {str(k): (int(v[0]), int(v[1])) for k, v in data["pending"].items()}
            return int(data["generation"]), sizes
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            log.warning("%s is unreadable (%s); ignored", self.pending_path, exc)
            return None

    def _replace(self, path: Path, tmp: Path, data: bytes) -> None:
        fd = create_private(tmp)  # afresh: never written through a planted link
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self.log_dir)


def pending_names(log_dir: Path) -> set[str]:
    """The files of the last pending record (a batch that may not have committed, to be
    cut back by the follower): the file policies leave them alone."""
    found = TableStore(log_dir).load_pending()
    return set(found[1]) if found is not None else set()
