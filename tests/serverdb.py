"""A stand-in for the Dead Drop server: builds and writes databases exactly as it does.

The one place tests (and benchmarks) get their source databases from:
- ``PRAGMA journal_mode=WAL`` and ``busy_timeout=5000``;
- the server's ``messages`` table, later extended by ``ALTER TABLE`` with ``task_id``
  and ``reply_to``, plus the other tables it keeps;
- one send = one transaction: the message plus one CC row per team lead
  (``is_cc=1``, ``cc_original_to`` = the original recipient);
- ``timestamp`` = ``datetime.now().isoformat()`` (local wall time, no zone).

It also archives a hub room the way the Dead Drop hub does (``archive_room``).

Run as a script it is a concurrent writer process:
``python tests/serverdb.py DB --sends N [--interval S] [--prefix TEXT]`` (each send
CC'd to the lead, as the server does; ``--help`` says more).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import heapq
import json
import os
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

AGENTS = ("juno", "atlas", "vega", "orion")
LEADS = ("lead",)


def create(path: Path) -> None:
    """Create an empty database with the server's schema and settings."""
    conn = connect(path)
    with conn:
        create_agents_table(conn)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " from_agent TEXT, to_agent TEXT, content TEXT, timestamp TEXT,"
            " read_flag INTEGER DEFAULT 0, is_cc INTEGER DEFAULT 0,"
            " cc_original_to TEXT DEFAULT NULL)"
        )
        conn.execute("ALTER TABLE messages ADD COLUMN task_id TEXT DEFAULT NULL")
        conn.execute("ALTER TABLE messages ADD COLUMN reply_to INTEGER DEFAULT NULL")
        create_tasks_table(conn)
    conn.close()


# -- agents and tasks: the server's own SQL (src/dead_drop/server.py), verbatim ------------
# The server's init_db creates both tables, then migrates them with ALTER TABLE (agents:
# heartbeat_at and team; tasks: role_hat), so their columns come in this order. Each
# tool below is one transaction, with "now" = datetime.now().isoformat() as the server
# stamps it, unless the test passes its own.

TASK_TRANSITIONS = {
    ("pending", "assigned"): "lead",
    ("assigned", "in_progress"): "assignee",
    ("in_progress", "review"): "assignee",
    ("in_progress", "failed"): "assignee",
    ("review", "completed"): "lead",
    ("review", "in_progress"): "lead",  # rework
    ("failed", "assigned"): "lead",  # retry/reassign
}
"""The server's ``_TASK_TRANSITIONS``: (from, to) -> who may do it."""


def create_agents_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS agents (
            name TEXT PRIMARY KEY,
            registered_at TEXT,
            last_seen TEXT,
            last_inbox_check TEXT,
            role TEXT DEFAULT NULL,
            description TEXT DEFAULT NULL,
            status TEXT DEFAULT 'offline'
        )
    """
    )
    cols = [c[1] for c in conn.execute("PRAGMA table_info(agents)")]
    if "heartbeat_at" not in cols:
        conn.execute("ALTER TABLE agents ADD COLUMN heartbeat_at TEXT DEFAULT NULL")
    if "team" not in cols:
        conn.execute("ALTER TABLE agents ADD COLUMN team TEXT DEFAULT ''")


def create_tasks_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS tasks (
            id TEXT PRIMARY KEY,
            project TEXT DEFAULT '',
            title TEXT NOT NULL,
            description TEXT DEFAULT '',
            assigned_to TEXT,
            created_by TEXT NOT NULL,
            status TEXT DEFAULT 'pending'
                CHECK(status IN ('pending','assigned','in_progress','review','completed','failed')),
            result TEXT DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            completed_at TEXT
        )
    """
    )
    cols = [c[1] for c in conn.execute("PRAGMA table_info(tasks)")]
    if "role_hat" not in cols:
        conn.execute("ALTER TABLE tasks ADD COLUMN role_hat TEXT DEFAULT NULL")


def _now(now: str | None) -> str:
    return dt.datetime.now().isoformat() if now is None else now


def register(
    conn: sqlite3.Connection,
    name: str,
    *,
    role: str = "",
    description: str = "",
    team: str = "",
    now: str | None = None,
) -> None:
    """The server's ``register``: insert, or refresh an agent registered before (its
    status back to "waiting for work")."""
    stamp = _now(now)
    with _transaction(conn):
        conn.execute(
            """
            INSERT INTO agents (name, registered_at, last_seen, role, description, status, team)
            VALUES (?, ?, ?, ?, ?, 'waiting for work', ?)
            ON CONFLICT(name) DO UPDATE SET
                last_seen = ?,
                role = COALESCE(NULLIF(?, ''), agents.role),
                description = COALESCE(NULLIF(?, ''), agents.description),
                team = COALESCE(NULLIF(?, ''), agents.team),
                status = 'waiting for work'
        """,
            (name, stamp, stamp, role or None, description or None, team or "",
             stamp, role, description, team),
        )  # fmt: skip


def ping(conn: sqlite3.Connection, name: str, *, now: str | None = None) -> None:
    """The server's ``ping``: the heartbeat."""
    stamp = _now(now)
    with _transaction(conn):
        conn.execute(
            "UPDATE agents SET heartbeat_at = ?, last_seen = ? WHERE name = ?", (stamp, stamp, name)
        )


def set_status(conn: sqlite3.Connection, name: str, text: str, *, now: str | None = None) -> None:
    """The server's ``set_status``: free text ("working on TASK-004")."""
    with _transaction(conn):
        conn.execute(
            "UPDATE agents SET status = ?, last_seen = ? WHERE name = ?", (text, _now(now), name)
        )


def deregister(conn: sqlite3.Connection, name: str) -> None:
    """The server's ``deregister``: the row is deleted."""
    with _transaction(conn):
        conn.execute("DELETE FROM agents WHERE name = ?", (name,))


def _leads(conn: sqlite3.Connection) -> list[str]:
    """The server's ``_get_leads``: agents whose comma-separated role includes "lead"."""
    rows = conn.execute("SELECT name, role FROM agents WHERE role IS NOT NULL").fetchall()
    return [name for name, role in rows if "lead" in [r.strip() for r in (role or "").split(",")]]


def create_task(
    conn: sqlite3.Connection,
    creator: str,
    title: str,
    *,
    description: str = "",
    assign_to: str = "",
    project: str = "",
    role_hat: str = "",
    now: str | None = None,
) -> str:
    """The server's ``create_task``: the next ``TASK-NNN``, "assigned" when assigned
    (with its "TASK ASSIGNED" message to the assignee and CC rows to the other leads),
    else "pending" (no message). Returns the id."""
    stamp = _now(now)
    with _transaction(conn):
        row = conn.execute(
            "SELECT id FROM tasks ORDER BY CAST(SUBSTR(id, 6) AS INTEGER) DESC LIMIT 1"
        ).fetchone()
        task_id = f"TASK-{(int(row[0].split('-')[1]) + 1) if row else 1:03d}"
        status = "assigned" if assign_to else "pending"
        conn.execute(
            "INSERT INTO tasks (id, project, title, description, assigned_to, created_by, status,"
            " created_at, updated_at, role_hat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (task_id, project, title, description, assign_to or None, creator, status, stamp,
             stamp, role_hat or None),
        )  # fmt: skip
        if assign_to:
            msg = f"[{task_id}] TASK ASSIGNED: {title}"
            if role_hat:
                msg += f"\nROLE HAT: {role_hat}"
            if description:
                msg += f"\n\n{description}"
            conn.execute(
                "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag, is_cc,"
                " task_id) VALUES (?, ?, ?, ?, 0, 0, ?)",
                (creator, assign_to, msg, stamp, task_id),
            )
            for lead in [x for x in _leads(conn) if x not in (creator, assign_to)]:
                conn.execute(
                    "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag,"
                    " is_cc, cc_original_to, task_id) VALUES (?, ?, ?, ?, 0, 1, ?, ?)",
                    (creator, lead, msg, stamp, assign_to, task_id),
                )
    return task_id


def update_task(
    conn: sqlite3.Connection,
    agent_name: str,
    task_id: str,
    status: str,
    *,
    result: str = "",
    now: str | None = None,
) -> None:
    """The server's ``update_task``: one allowed transition, by whom it allows (a lead or
    the assignee), with its "[TASK-NNN] Status: a → b" message(s). Raises ValueError
    where the server answers with a refusal (and writes nothing)."""
    stamp = _now(now)
    with _transaction(conn):
        task = conn.execute(
            "SELECT status, assigned_to FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        if task is None:
            raise ValueError(f"Task {task_id} not found.")
        old_status, assignee = task
        required = TASK_TRANSITIONS.get((old_status, status))
        if required is None:
            raise ValueError(f"Invalid transition: {old_status} → {status}")
        leads = _leads(conn)
        if required == "lead" and agent_name not in leads:
            raise ValueError(f"Only a lead can transition {old_status} → {status}.")
        if required == "assignee" and agent_name != assignee:
            raise ValueError(f"Only the assigned agent can transition {old_status} → {status}.")
        fields, params = "status = ?, updated_at = ?", [status, stamp]
        if result:
            fields += ", result = ?"
            params.append(result)
        if status == "completed":
            fields += ", completed_at = ?"
            params.append(stamp)
        conn.execute(f"UPDATE tasks SET {fields} WHERE id = ?", [*params, task_id])
        msg = f"[{task_id}] Status: {old_status} → {status}"
        if result:
            msg += f"\n\n{result}"
        insert = (
            "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag, is_cc,"
            " task_id) VALUES (?, ?, ?, ?, 0, 0, ?)"
        )
        if required == "assignee":
            for lead in leads:
                conn.execute(insert, (agent_name, lead, msg, stamp, task_id))
        elif assignee:
            conn.execute(insert, (agent_name, assignee, msg, stamp, task_id))


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on an autocommit connection (``connect``): each server tool
    commits once (and a refusal writes nothing)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- end of agents and tasks ------------------------------------------------------------


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def send(
    conn: sqlite3.Connection,
    from_agent: str,
    to_agent: str,
    content: object,
    *,
    leads: Sequence[str] = LEADS,
    timestamp: object = None,
    task_id: str | None = None,
    reply_to: int | None = None,
    bytes_as_text: bool = False,
) -> list[int]:
    """One send as the server does it: one transaction, the message plus its CC rows.

    ``bytes_as_text`` stores bytes ``content`` as TEXT (``CAST(? AS TEXT)``), so it
    can be invalid UTF-8; otherwise bytes are a BLOB."""
    stamp = dt.datetime.now().isoformat() if timestamp is None else timestamp
    value = "CAST(? AS TEXT)" if bytes_as_text else "?"
    ids: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "INSERT INTO messages (from_agent, to_agent, content, timestamp, task_id, reply_to)"
            f" VALUES (?, ?, {value}, ?, ?, ?)",
            (from_agent, to_agent, content, stamp, task_id, reply_to),
        )
        ids.append(int(cur.lastrowid or 0))
        for lead in leads:
            if lead in (from_agent, to_agent):
                continue
            cur = conn.execute(
                "INSERT INTO messages (from_agent, to_agent, content, timestamp, is_cc,"
                f" cc_original_to, task_id, reply_to) VALUES (?, ?, {value}, ?, 1, ?, ?, ?)",
                (from_agent, lead, content, stamp, to_agent, task_id, reply_to),
            )
            ids.append(int(cur.lastrowid or 0))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return ids


def send_many(
    path: Path, count: int, *, prefix: str = "msg", timestamp: object = None
) -> list[int]:
    """``count`` sends from rotating agents; returns every id written (CC rows too).

    ``timestamp`` as for :func:`send` (default: each send's "now").
    """
    conn = connect(path)
    ids: list[int] = []
    for i in range(count):
        sender = AGENTS[i % len(AGENTS)]
        recipient = AGENTS[(i + 1) % len(AGENTS)] if i % 5 else "all"
        text = f"{prefix} {i}: status update\nline two"
        ids += send(conn, sender, recipient, text, timestamp=timestamp)
    conn.close()
    return ids


def all_ids(path: Path) -> list[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY id")]
    finally:
        conn.close()


def room_db(rooms_dir: Path, name: str) -> Path:
    """Where the hub keeps room NAME's database: ``$DD_ROOM_DATA_DIR/NAME/messages.db``."""
    return rooms_dir / name / "messages.db"


def archive_room(rooms_dir: Path, name: str, archive_dir: Path, when: dt.datetime) -> Path:
    """Archive a room exactly as the hub's ``Spawner.archive_room`` does, once its server
    has stopped: ``index.json`` built through a read-write connection, then
    ``messages.db`` (the main file only, not its ``-wal``) gzipped into
    ``ARCHIVE/NAME_YYYYMMDD-HHMMSS/messages.db.gz``, then the room's directory deleted.
    Returns the archive's directory."""
    room_dir = rooms_dir / name
    db_file = room_db(rooms_dir, name)
    stamp = when.strftime("%Y%m%d-%H%M%S")
    archive_path = archive_dir / f"{name}_{stamp}"
    archive_path.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_file)
    try:
        count = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        first, last = conn.execute("SELECT MIN(timestamp), MAX(timestamp) FROM messages").fetchone()
        agents = [
            {"name": r[0], "role": r[1]} for r in conn.execute("SELECT name, role FROM agents")
        ]
    finally:
        conn.close()
    index = {
        "room_name": name,
        "archived_at": stamp,
        "agents": agents,
        "message_count": count,
        "tasks": [],
        "date_range": {"first": first, "last": last} if first else {},
    }
    (archive_path / "index.json").write_text(json.dumps(index, indent=2))
    with open(db_file, "rb") as f_in, gzip.open(archive_path / "messages.db.gz", "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)
    shutil.rmtree(room_dir, ignore_errors=True)
    assert not os.path.exists(room_dir)
    return archive_path


TEAM_LINES = (
    "Can you take {task}? The deploy <script> step fails on staging, see https://example.test/ci",
    "On it. Looking at the logs for {task} now.",
    "Found it: the migration runs twice. Patch coming for {task}.",
    "Review please: {task} patch is up, tests green.",
    "Looks good, one nit on naming. Approved.",
    "Merged {task}. Closing it out.",
    "Blocked on {task} until the schema change lands.",
    "Standup in 10 minutes: bring your numbers.",
)


def simulate_team(path: Path, start: dt.datetime, days: int = 14, seed: int = 7) -> int:
    """A realistic team's traffic, as the server would store it: conversations in working
    hours (fewer at weekends), each about a task or not, answered after minutes to hours
    with ``reply_to`` set, plus the lead's broadcasts. Sends in time order; returns how
    many. Deterministic for a ``seed`` (for the README's screenshot and the report test).
    """
    rng = random.Random(seed)
    people = (*AGENTS, "lead")
    queue: list[tuple[dt.datetime, int, str, str, str | None, int | None, int]] = []
    serial = 0
    for day in range(days):
        date = start + dt.timedelta(days=day)
        busy = 3 if date.weekday() >= 5 else 14
        for _ in range(rng.randint(busy // 2, busy)):
            at = date.replace(hour=rng.choice((8, 9, 9, 10, 10, 11, 13, 14, 14, 15, 16, 17, 19)))
            at += dt.timedelta(minutes=rng.randrange(60))
            a, b = rng.sample(people, 2)
            task = f"T-{100 + rng.randrange(days * 2)}" if rng.random() < 0.7 else None
            serial += 1
            turns = rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 11))
            heapq.heappush(queue, (at, serial, a, b, task, None, turns))
        if rng.random() < 0.6:
            serial += 1
            at = date.replace(hour=9, minute=rng.randrange(30))
            heapq.heappush(queue, (at, serial, "lead", "all", None, None, 1))
    conn = connect(path)
    sends = 0
    while queue:
        at, _, a, b, task, reply_to, turns = heapq.heappop(queue)
        text = TEAM_LINES[-1] if b == "all" else TEAM_LINES[rng.randrange(len(TEAM_LINES) - 1)]
        ids = send(
            conn, a, b, text.format(task=task or "this"), timestamp=at.isoformat(),
            task_id=task, reply_to=reply_to,
        )  # fmt: skip
        sends += 1
        if turns > 1 and b != "all":
            delay = dt.timedelta(seconds=min(20 * 3600, rng.expovariate(1 / 1500) + 20))
            serial += 1
            heapq.heappush(queue, (at + delay, serial, b, a, task, ids[0], turns - 1))
    conn.close()
    return sends


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write messages into a Dead Drop database as the server does: one"
        " transaction per send, a CC row for the lead. Example: python tests/serverdb.py"
        " /tmp/messages.db --sends 1000 --interval 0.01",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("db", type=Path, help="the database (created if missing)")
    parser.add_argument("--sends", type=int, default=100, help="how many messages to send")
    parser.add_argument(
        "--interval", type=float, default=0.0, help="seconds to wait after each send"
    )
    parser.add_argument(
        "--prefix", default="live", help='each content is "PREFIX N" (N counts from 0)'
    )
    args = parser.parse_args(argv)
    if not args.db.exists():
        args.db.parent.mkdir(parents=True, exist_ok=True)
        create(args.db)
    conn = connect(args.db)
    for i in range(args.sends):
        sender = AGENTS[i % len(AGENTS)]
        send(conn, sender, AGENTS[(i + 1) % len(AGENTS)], f"{args.prefix} {i}")
        if args.interval:
            time.sleep(args.interval)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
