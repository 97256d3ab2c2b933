"""A stand-in for the Dead Drop server: builds and writes databases exactly as it does.

The one place tests (and benchmarks) get their source databases from:
- the server's ``agents`` and ``tasks`` tables and the SQL of its agent and task tools
  (``register``, ``ping``, ``set_status``, ``create_task``, ``update_task``, ...: below);
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
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

AGENTS = ("juno", "atlas", "vega", "orion")
LEADS = ("lead",)


def create(path: Path, *, tasks: bool = True, verification: bool = True) -> None:
    """Create an empty database with the server's schema and settings: its ``init_db``
    statement for statement (every table it keeps, then its migrations).
    ``tasks=False``: as a server from before its tasks made it (no ``tasks`` table).
    ``verification=False``: the stored server exactly; by default ``tasks`` also has the
    verification columns and status modelled after issue 19 (see below)."""
    conn = connect(path)
    with conn:
        conn.execute(AGENTS_TABLE)
        conn.execute(MESSAGES_TABLE)
        conn.execute(BROADCAST_READS_TABLE)
        if tasks:
            conn.execute(TASKS_TABLE if verification else STORED_TASKS_TABLE)
        for table in OTHER_TABLES:
            conn.execute(table)
        cols = [c[1] for c in conn.execute("PRAGMA table_info(agents)")]
        for column in AGENT_MIGRATIONS:
            if column.split()[0] not in cols:
                conn.execute(f"ALTER TABLE agents ADD COLUMN {column}")
        mcols = [c[1] for c in conn.execute("PRAGMA table_info(messages)")]
        for column in MESSAGE_MIGRATIONS:
            if column.split()[0] not in mcols:
                conn.execute(f"ALTER TABLE messages ADD COLUMN {column}")
        if tasks:
            _migrate_tasks(conn, verification)
    conn.close()


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
    leads: Sequence[str] | None = LEADS,
    timestamp: object = None,
    task_id: str | None = None,
    reply_to: int | None = None,
    bytes_as_text: bool = False,
    register_sender: bool = False,
    inherit_task: bool = False,
) -> list[int]:
    """One send as the server does it when it accepts it: one transaction, the sender
    registered if unknown (``register_sender``), the message, plus a CC row per lead.

    The server's statements, quoted in ``send``: ``INSERT OR IGNORE INTO agents (name,
    registered_at, last_seen) VALUES (?, ?, ?)``; ``SELECT task_id FROM messages WHERE
    id = ?`` (a reply inherits its task); ``INSERT INTO messages (from_agent, to_agent,
    content, timestamp, read_flag, is_cc, task_id, reply_to) VALUES (?, ?, ?, ?, 0, 0,
    ?, ?)``; per CC ``INSERT INTO messages (from_agent, to_agent, content, timestamp,
    read_flag, is_cc, cc_original_to, task_id, reply_to) VALUES (?, ?, ?, ?, 0, 1, ?, ?,
    ?)``. The server always registers the sender and lets a reply inherit its task; here
    ``register_sender`` and ``inherit_task`` do (the task scripts turn both on), off by
    default because the message tests script agents, threads and tasks by hand (a reply
    with no task of its own, a sender with no agent row). Apart from the server: the CC
    list is ``leads`` (the server takes every agent whose role includes lead, as
    ``leads=None`` does here, plus an explicit ``cc``), and nothing is refused (the
    server refuses a sender with unread messages, and resolves a team-scoped recipient:
    both write nothing or only change ``to_agent``).

    ``bytes_as_text`` stores bytes ``content`` as TEXT (``CAST(? AS TEXT)``), so it
    can be invalid UTF-8; otherwise bytes are a BLOB."""
    team_leads = leads
    stamp = dt.datetime.now().isoformat() if timestamp is None else timestamp
    value = "CAST(? AS TEXT)" if bytes_as_text else "?"
    ids: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        if register_sender:  # the server's "Auto-register unknown senders"
            conn.execute(
                "INSERT OR IGNORE INTO agents (name, registered_at, last_seen) VALUES (?, ?, ?)",
                (from_agent, stamp, stamp),
            )
        if inherit_task and reply_to and not task_id:  # "Auto-inherit task_id from reply_to"
            row = conn.execute("SELECT task_id FROM messages WHERE id = ?", (reply_to,)).fetchone()
            if row and row[0]:
                task_id = row[0]
        cur = conn.execute(
            "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag, is_cc,"
            f" task_id, reply_to) VALUES (?, ?, {value}, ?, 0, 0, ?, ?)",
            (from_agent, to_agent, content, stamp, task_id or None, reply_to or None),
        )
        ids.append(int(cur.lastrowid or 0))
        for lead in _get_leads(conn) if team_leads is None else team_leads:
            if lead in (from_agent, to_agent):
                continue
            cur = conn.execute(
                "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag,"
                f" is_cc, cc_original_to, task_id, reply_to) VALUES (?, ?, {value}, ?, 0, 1,"
                " ?, ?, ?)",
                (from_agent, lead, content, stamp, to_agent, task_id or None, reply_to or None),
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


# -- the server's agents and tasks (src/dead_drop/server.py) ----------------------------
#
# The tables and the SQL of its tools, statement for statement, as in the newest stored
# copy of the server (drpepper2233/dead-drop-teams-1, src/dead_drop/server.py, commit
# 0f6e1f5; hub.py keeps only its own teams/rooms/workspaces and writes no task or agent
# row): ``register``, ``ping`` (heartbeat), ``set_status``, ``deregister``,
# ``check_inbox``, ``send``'s auto-registration, and the task tools ``create_task``,
# ``update_task``, ``submit_for_review``, ``approve_task``, ``reject_task`` and
# ``assign_role_hat``, each one transaction (or two, where the server commits twice:
# ``create_task`` commits the task, then its assignment message). Every ``now`` is
# ``datetime.now().isoformat()``; pass ``now=`` to script time. The server's refusals
# (an invalid transition, not a lead, a hat conflict...) raise ServerRefused and write
# nothing, as the server returns an error string and commits nothing.
#
# What that stored copy lacks, and issue 19 describes, is modelled and marked so: a
# ``verify_task`` tool (completed -> verified, or completed -> in_progress when the
# verification fails, with ``[VERIFIED] TASK: title`` / ``[VERIFICATION FAILED] TASK:
# title`` to the assignee), the status 'verified' in the CHECK of ``tasks``, and the
# columns ``goal_id``, ``verified_by``, ``verified_at``, ``approved_by`` (added by
# migration after ``role_hat``; ``verify_task`` sets ``verified_by``/``verified_at``;
# nothing sets ``goal_id`` or ``approved_by``: the stored ``approve_task`` does not).
# ``create(verification=False)`` makes the stored server's schema exactly.

AGENTS_TABLE = """
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
MESSAGES_TABLE = """
        CREATE TABLE IF NOT EXISTS messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            from_agent TEXT,
            to_agent TEXT,
            content TEXT,
            timestamp TEXT,
            read_flag INTEGER DEFAULT 0,
            is_cc INTEGER DEFAULT 0,
            cc_original_to TEXT DEFAULT NULL
        )
    """
BROADCAST_READS_TABLE = """
        CREATE TABLE IF NOT EXISTS broadcast_reads (
            agent_name TEXT,
            message_id INTEGER,
            PRIMARY KEY (agent_name, message_id)
        )
    """
STORED_TASKS_TABLE = """
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
# Modelled (see above): 'verified' allowed.
TASKS_TABLE = STORED_TASKS_TABLE.replace(
    "'completed','failed')", "'completed','failed','verified')"
)
# The rest of init_db (no follower reads them), verbatim but for one thing: the server
# writes ``DEFAULT (datetime("now"))``, a double-quoted string that this SQLite (built
# without double-quoted string literals) refuses as "not constant"; here 'now'.
OTHER_TABLES = (
    """
        CREATE TABLE IF NOT EXISTS handshakes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            initiated_by TEXT NOT NULL,
            message_id INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            status TEXT DEFAULT 'pending'
                CHECK(status IN ('pending','completed'))
        )
    """,
    """
        CREATE TABLE IF NOT EXISTS handshake_acks (
            handshake_id INTEGER,
            agent_name TEXT,
            acked_at TEXT NOT NULL,
            PRIMARY KEY (handshake_id, agent_name)
        )
    """,
    """
        CREATE TABLE IF NOT EXISTS contracts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project TEXT DEFAULT '',
            name TEXT NOT NULL,
            type TEXT NOT NULL
                CHECK(type IN ('function','dom_id','css_class','file_path','api_endpoint','event','other')),
            owner TEXT NOT NULL,
            spec TEXT DEFAULT '',
            version INTEGER DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE(project, name, type)
        )
    """,  # noqa: E501 (the server's statement, verbatim)
    """
        CREATE TABLE IF NOT EXISTS spawn_policy (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            scope TEXT NOT NULL UNIQUE,
            enabled BOOLEAN DEFAULT 1,
            max_minions INTEGER DEFAULT 3,
            set_by TEXT NOT NULL,
            set_at TEXT NOT NULL DEFAULT (datetime('now'))
        )
    """,
    """
        CREATE TABLE IF NOT EXISTS minion_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pilot TEXT NOT NULL,
            task_description TEXT NOT NULL,
            status TEXT DEFAULT "spawned",
            spawned_at TEXT NOT NULL DEFAULT (datetime('now')),
            completed_at TEXT,
            result TEXT
        )
    """,
)
# The server's migrations, in its order (each only where the column is missing).
AGENT_MIGRATIONS = (
    "last_inbox_check TEXT",
    "role TEXT DEFAULT NULL",
    "description TEXT DEFAULT NULL",
    "status TEXT DEFAULT 'offline'",
    "heartbeat_at TEXT DEFAULT NULL",
    "team TEXT DEFAULT ''",
)
MESSAGE_MIGRATIONS = (
    "is_cc INTEGER DEFAULT 0",
    "cc_original_to TEXT DEFAULT NULL",
    "task_id TEXT DEFAULT NULL",
    "reply_to INTEGER DEFAULT NULL",
)
STORED_TASK_MIGRATIONS = ("role_hat TEXT DEFAULT NULL",)
TASK_MIGRATIONS = (  # with the modelled verification columns
    *STORED_TASK_MIGRATIONS,
    "goal_id TEXT DEFAULT NULL",
    "verified_by TEXT DEFAULT NULL",
    "verified_at TEXT DEFAULT NULL",
    "approved_by TEXT DEFAULT NULL",
)

# The server's _TASK_TRANSITIONS, (from, to) -> who may make the move with update_task.
TASK_TRANSITIONS = {
    ("pending", "assigned"): "lead",
    ("assigned", "in_progress"): "assignee",
    ("in_progress", "review"): "assignee",
    ("in_progress", "failed"): "assignee",
    ("review", "completed"): "lead",
    ("review", "in_progress"): "lead",  # rework
    ("failed", "assigned"): "lead",  # retry/reassign
}

# The server's _CONFLICTING_HATS (create_task and assign_role_hat refuse these).
CONFLICTING_HATS = {
    "builder": {"tester", "reviewer"},
    "tester": {"builder", "shipper"},
    "reviewer": {"builder"},
    "fixer": {"reviewer", "tester"},
    "shipper": {"tester"},
    "pen": {"builder"},
}

_INSERT_MESSAGE = (
    "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag, is_cc,"
    " task_id) VALUES (?, ?, ?, ?, 0, 0, ?)"
)


class ServerRefused(Exception):
    """The tool returned an error string (an invalid transition, not a lead...)."""


def create_tasks_table(conn: sqlite3.Connection, *, verification: bool = True) -> None:
    """The server's ``tasks`` table with its migrated columns (for a database made
    without it: the table added later, as a server upgraded)."""
    conn.execute(TASKS_TABLE if verification else STORED_TASKS_TABLE)
    _migrate_tasks(conn, verification)


def _migrate_tasks(conn: sqlite3.Connection, verification: bool) -> None:
    tcols = [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
    for column in TASK_MIGRATIONS if verification else STORED_TASK_MIGRATIONS:
        if column.split()[0] not in tcols:
            conn.execute(f"ALTER TABLE tasks ADD COLUMN {column}")


def _now(now: str | None) -> str:
    return dt.datetime.now().isoformat() if now is None else now


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def leads(conn: sqlite3.Connection) -> list[str]:
    """The server's ``_get_leads``: agents whose comma-separated role includes lead."""
    found = []
    for name, role in conn.execute("SELECT name, role FROM agents WHERE role IS NOT NULL"):
        if "lead" in [r.strip() for r in (role or "").split(",")]:
            found.append(name)
    return found


_get_leads = leads  # (``send`` has a parameter of that name)


def register(
    conn: sqlite3.Connection,
    name: str,
    *,
    role: str = "",
    description: str = "",
    team: str = "",
    now: str | None = None,
) -> None:
    """``register``: insert, or on a second registration refresh ``last_seen`` (and
    role, description, team when given); the status becomes 'waiting for work'."""
    stamp = _now(now)
    with _transaction(conn):
        conn.execute(
            """INSERT INTO agents (name, registered_at, last_seen, role, description, status, team)
            VALUES (?, ?, ?, ?, ?, 'waiting for work', ?)
            ON CONFLICT(name) DO UPDATE SET
                last_seen = ?,
                role = COALESCE(NULLIF(?, ''), agents.role),
                description = COALESCE(NULLIF(?, ''), agents.description),
                team = COALESCE(NULLIF(?, ''), agents.team),
                status = 'waiting for work'""",
            (name, stamp, stamp, role or None, description or None, team or "",
             stamp, role, description, team),
        )  # fmt: skip


def ping(conn: sqlite3.Connection, name: str, *, now: str | None = None) -> None:
    """``ping``, the heartbeat: ``heartbeat_at`` and ``last_seen`` set to now."""
    stamp = _now(now)
    with _transaction(conn):
        conn.execute(
            "UPDATE agents SET heartbeat_at = ?, last_seen = ? WHERE name = ?", (stamp, stamp, name)
        )


def set_status(conn: sqlite3.Connection, name: str, status: str, *, now: str | None = None) -> None:
    """``set_status``: the free status text, and ``last_seen``."""
    stamp = _now(now)
    with _transaction(conn):
        conn.execute(
            "UPDATE agents SET status = ?, last_seen = ? WHERE name = ?", (status, stamp, name)
        )


def check_inbox(conn: sqlite3.Connection, name: str, *, now: str | None = None) -> None:
    """``check_inbox``: the agent's ``last_seen`` and ``last_inbox_check`` stamped, its
    unread direct messages (to its name or its team-scoped name) marked read, its unread
    broadcasts recorded in ``broadcast_reads``; one commit."""
    stamp = _now(now)
    with _transaction(conn):
        conn.execute(
            "UPDATE agents SET last_seen = ?, last_inbox_check = ? WHERE name = ?",
            (stamp, stamp, name),
        )
        team_row = conn.execute("SELECT team FROM agents WHERE name = ?", (name,)).fetchone()
        name_variants = [name]
        if team_row and team_row[0]:
            name_variants.append(f"{team_row[0]}/{name}")
        placeholders = ",".join(["?"] * len(name_variants))
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT * FROM messages WHERE to_agent IN ({placeholders}) AND read_flag = 0",
                name_variants,
            )
        ]
        if ids:
            conn.execute(
                f"UPDATE messages SET read_flag = 1 WHERE id IN ({','.join(['?'] * len(ids))})",
                ids,
            )
        broadcasts = conn.execute(
            "SELECT * FROM messages WHERE to_agent = 'all'"
            " AND id NOT IN (SELECT message_id FROM broadcast_reads WHERE agent_name = ?)",
            (name,),
        ).fetchall()
        for msg in broadcasts:
            conn.execute(
                "INSERT INTO broadcast_reads (agent_name, message_id) VALUES (?, ?)",
                (name, msg[0]),
            )


def deregister(conn: sqlite3.Connection, name: str) -> None:
    """``deregister``: the agent's row deleted."""
    with _transaction(conn):
        conn.execute("DELETE FROM agents WHERE name = ?", (name,))


def _next_task_id(conn: sqlite3.Connection) -> str:
    row = conn.execute(
        "SELECT id FROM tasks ORDER BY CAST(SUBSTR(id, 6) AS INTEGER) DESC LIMIT 1"
    ).fetchone()
    return f"TASK-{int(row[0].split('-')[1]) + 1 if row else 1:03d}"


def _task(conn: sqlite3.Connection, task_id: str) -> dict[str, object]:
    cur = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,))
    row = cur.fetchone()
    if row is None:
        raise ServerRefused(f"Task {task_id} not found.")
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def _check_hat_conflict(
    conn: sqlite3.Connection, agent_name: str, role_hat: str, project: str
) -> None:
    """The server's ``_check_hat_conflict``: ServerRefused where it returns BLOCKED."""
    blocked_by = CONFLICTING_HATS.get(role_hat)
    if not role_hat or not project or not blocked_by:
        return
    placeholders = ",".join(["?"] * len(blocked_by))
    row = conn.execute(
        f"SELECT role_hat FROM tasks WHERE assigned_to = ? AND project = ? AND role_hat IN"
        f" ({placeholders}) AND status IN ('completed', 'review', 'in_progress') LIMIT 1",
        (agent_name, project, *blocked_by),
    ).fetchone()
    if row:
        raise ServerRefused(f"BLOCKED: {agent_name} was a {row[0]} on project '{project}'")


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
    """``create_task``: the task (status assigned when ``assign_to``, else pending) in
    one commit; then, if assigned, ``[TASK] TASK ASSIGNED: title`` to the assignee and a
    CC to each lead but the creator and assignee, in a second. Returns the task id."""
    stamp = _now(now)
    with _transaction(conn):
        if role_hat and project and assign_to:
            _check_hat_conflict(conn, assign_to, role_hat, project)
        task_id = _next_task_id(conn)
        status = "assigned" if assign_to else "pending"
        conn.execute(
            "INSERT INTO tasks (id, project, title, description, assigned_to, created_by,"
            " status, created_at, updated_at, role_hat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (task_id, project, title, description, assign_to or None, creator, status,
             stamp, stamp, role_hat or None),
        )  # fmt: skip
    if assign_to:
        msg = f"[{task_id}] TASK ASSIGNED: {title}"
        if role_hat:
            msg += f"\nROLE HAT: {role_hat}"
        if description:
            msg += f"\n\n{description}"
        with _transaction(conn):
            conn.execute(_INSERT_MESSAGE, (creator, assign_to, msg, stamp, task_id))
            for lead in [x for x in leads(conn) if x not in (creator, assign_to)]:
                conn.execute(
                    "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag,"
                    " is_cc, cc_original_to, task_id) VALUES (?, ?, ?, ?, 0, 1, ?, ?)",
                    (creator, lead, msg, stamp, assign_to, task_id),
                )
    return task_id


def update_task(
    conn: sqlite3.Connection,
    agent: str,
    task_id: str,
    status: str,
    *,
    result: str = "",
    assign_to: str = "",
    now: str | None = None,
) -> None:
    """``update_task``: a transition of the state machine (checked as the server does:
    ServerRefused otherwise), with ``[TASK] Status: a → b`` to every lead (when the
    assignee moved it) or to the assignee (when a lead did), in the same commit.

    ``assign_to`` is modelled (not in the stored server): its ``update_task`` changes
    only ``status``, ``result`` and ``completed_at``, and no other tool sets
    ``assigned_to`` after ``create_task``, so a task created pending can be moved to
    assigned but never started (only its assignee may start it), and a failed one is
    retried by the same agent. Issue 19's pending → assigned and failed → assigned
    (reassign) take the new assignee here: ``assigned_to`` set in the same UPDATE, and
    the status message goes to the new assignee."""
    stamp = _now(now)
    with _transaction(conn):
        task = _task(conn, task_id)
        old = str(task["status"])
        required = TASK_TRANSITIONS.get((old, status))
        if required is None:
            raise ServerRefused(f"Invalid transition: {old} → {status}")
        if assign_to and status != "assigned":
            raise ServerRefused("assign_to (modelled) only with a move to assigned")
        team_leads = leads(conn)
        if required == "lead" and agent not in team_leads:
            raise ServerRefused(f"Only a lead can transition {old} → {status}.")
        if required == "assignee" and agent != task["assigned_to"]:
            raise ServerRefused(f"Only the assigned agent can transition {old} → {status}.")
        fields = "status = ?, updated_at = ?"
        params: list[object] = [status, stamp]
        if result:
            fields += ", result = ?"
            params.append(result)
        if status == "completed":
            fields += ", completed_at = ?"
            params.append(stamp)
        if assign_to:  # modelled (see above)
            fields += ", assigned_to = ?"
            params.append(assign_to)
            task["assigned_to"] = assign_to
        params.append(task_id)
        conn.execute(f"UPDATE tasks SET {fields} WHERE id = ?", params)
        msg = f"[{task_id}] Status: {old} → {status}"
        if result:
            msg += f"\n\n{result}"
        if required == "assignee" and team_leads:
            for lead in team_leads:
                conn.execute(_INSERT_MESSAGE, (agent, lead, msg, stamp, task_id))
        elif required == "lead" and task["assigned_to"]:
            conn.execute(_INSERT_MESSAGE, (agent, task["assigned_to"], msg, stamp, task_id))


def submit_for_review(
    conn: sqlite3.Connection,
    agent: str,
    task_id: str,
    summary: str,
    *,
    files_changed: str = "",
    test_results: str = "",
    now: str | None = None,
) -> None:
    """``submit_for_review``: in_progress -> review, ``result`` the review's JSON, and
    ``[REVIEW] TASK: title`` to every lead, in one commit."""
    stamp = _now(now)
    with _transaction(conn):
        task = _task(conn, task_id)
        if task["status"] != "in_progress":
            raise ServerRefused(f"Task {task_id} is '{task['status']}', must be 'in_progress'")
        if task["assigned_to"] != agent:
            raise ServerRefused(f"Task {task_id} is assigned to '{task['assigned_to']}'")
        review = json.dumps(
            {"summary": summary, "files_changed": files_changed, "test_results": test_results}
        )
        conn.execute(
            "UPDATE tasks SET status = 'review', result = ?, updated_at = ? WHERE id = ?",
            (review, stamp, task_id),
        )
        msg = f"[REVIEW] {task_id}: {task['title']}\n\nSUMMARY: {summary}"
        if files_changed:
            msg += f"\nFILES: {files_changed}"
        if test_results:
            msg += f"\nTESTS: {test_results}"
        msg += "\n\nAwaiting review. Use approve_task or reject_task."
        for lead in leads(conn):
            conn.execute(_INSERT_MESSAGE, (agent, lead, msg, stamp, task_id))


def _lead_move(
    conn: sqlite3.Connection, agent: str, task_id: str, must_be: str
) -> dict[str, object]:
    team_leads = leads(conn)
    if team_leads and agent not in team_leads:
        raise ServerRefused(f"Only a lead ({', '.join(team_leads)}) can do that.")
    task = _task(conn, task_id)
    if task["status"] != must_be:
        raise ServerRefused(f"Task {task_id} is '{task['status']}', must be '{must_be}'")
    return task


def approve_task(
    conn: sqlite3.Connection, agent: str, task_id: str, *, notes: str = "", now: str | None = None
) -> None:
    """``approve_task``: review -> completed (``completed_at``) and ``[APPROVED] TASK:
    title`` to the assignee, in one commit."""
    stamp = _now(now)
    with _transaction(conn):
        task = _lead_move(conn, agent, task_id, "review")
        conn.execute(
            "UPDATE tasks SET status = 'completed', completed_at = ?, updated_at = ? WHERE id = ?",
            (stamp, stamp, task_id),
        )
        if task["assigned_to"]:
            msg = f"[APPROVED] {task_id}: {task['title']}"
            if notes:
                msg += f"\n\nNotes: {notes}"
            conn.execute(_INSERT_MESSAGE, (agent, task["assigned_to"], msg, stamp, task_id))


def reject_task(
    conn: sqlite3.Connection, agent: str, task_id: str, reason: str, *, now: str | None = None
) -> None:
    """``reject_task``: review -> in_progress (rework) and ``[REWORK] TASK: title`` to
    the assignee, in one commit."""
    stamp = _now(now)
    with _transaction(conn):
        task = _lead_move(conn, agent, task_id, "review")
        conn.execute(
            "UPDATE tasks SET status = 'in_progress', updated_at = ? WHERE id = ?", (stamp, task_id)
        )
        if task["assigned_to"]:
            msg = f"[REWORK] {task_id}: {task['title']}\n\nREASON: {reason}"
            conn.execute(_INSERT_MESSAGE, (agent, task["assigned_to"], msg, stamp, task_id))


def assign_role_hat(
    conn: sqlite3.Connection, agent: str, task_id: str, role: str, *, now: str | None = None
) -> None:
    """``assign_role_hat``: a lead sets the role hat the assignee wears (one of its
    registered roles, no conflict): ``role_hat`` and ``updated_at``, no message, so a
    change of the row that is not a change of status."""
    stamp = _now(now)
    with _transaction(conn):
        team_leads = leads(conn)
        if team_leads and agent not in team_leads:
            raise ServerRefused(f"Only a lead ({', '.join(team_leads)}) can assign role hats.")
        task = _task(conn, task_id)
        assignee = task.get("assigned_to")
        if not assignee:
            raise ServerRefused(f"Task {task_id} has no assignee. Assign the task first.")
        agent_row = conn.execute("SELECT role FROM agents WHERE name = ?", (assignee,)).fetchone()
        if not agent_row or not agent_row[0]:
            raise ServerRefused(f"Agent '{assignee}' has no registered roles.")
        if role not in [r.strip() for r in agent_row[0].split(",")]:
            raise ServerRefused(f"Role '{role}' is not in {assignee}'s registered roles")
        if task.get("project"):
            _check_hat_conflict(conn, str(assignee), role, str(task["project"]))
        conn.execute(
            "UPDATE tasks SET role_hat = ?, updated_at = ? WHERE id = ?", (role, stamp, task_id)
        )


def verify_task(
    conn: sqlite3.Connection,
    agent: str,
    task_id: str,
    *,
    passed: bool = True,
    notes: str = "",
    now: str | None = None,
) -> None:
    """``verify_task`` (modelled: see above): completed -> verified (``verified_by``,
    ``verified_at``) with ``[VERIFIED] TASK: title``, or, ``passed=False``, completed ->
    in_progress with ``[VERIFICATION FAILED] TASK: title``, to the assignee, one commit."""
    stamp = _now(now)
    with _transaction(conn):
        task = _lead_move(conn, agent, task_id, "completed")
        if passed:
            conn.execute(
                "UPDATE tasks SET status = 'verified', verified_by = ?, verified_at = ?,"
                " updated_at = ? WHERE id = ?",
                (agent, stamp, stamp, task_id),
            )
            msg = f"[VERIFIED] {task_id}: {task['title']}"
        else:
            conn.execute(
                "UPDATE tasks SET status = 'in_progress', updated_at = ? WHERE id = ?",
                (stamp, task_id),
            )
            msg = f"[VERIFICATION FAILED] {task_id}: {task['title']}"
        if notes:
            msg += f"\n\nNotes: {notes}"
        if task["assigned_to"]:
            conn.execute(_INSERT_MESSAGE, (agent, task["assigned_to"], msg, stamp, task_id))


def task_lifecycle(
    conn: sqlite3.Connection, task_id: str, assignee: str, lead: str = "lead", *,
    rework: bool = False,
) -> None:  # fmt: skip
    """An assigned task taken through to verified: start, review, (a rework and a
    second review,) approve, verify."""
    update_task(conn, assignee, task_id, "in_progress")
    submit_for_review(conn, assignee, task_id, "done")
    if rework:
        reject_task(conn, lead, task_id, "tests missing")
        submit_for_review(conn, assignee, task_id, "done, with tests")
    approve_task(conn, lead, task_id)
    verify_task(conn, lead, task_id)


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


def task_path(number: int) -> list[str]:
    """The statuses task ``number`` (from 0) of :func:`task_script` goes through."""
    rework = ["in_progress", "review"] if number % 3 == 0 else []
    return ["assigned", "in_progress", "review", *rework, "completed", "verified"]


def task_script(conn: sqlite3.Connection, count: int, *, interval: float = 0.0) -> None:
    """``count`` tasks taken through the task tools by a lead and an assignee (every
    third with a rework), each step its own tool call, with a send and a status text
    between, ``interval`` seconds apart; SIGTERM stops after the task in hand."""
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    register(conn, "lead", role="lead")
    register(conn, "juno", role="builder")
    for number in range(count):
        if stop["now"]:
            break
        task_id = create_task(conn, "lead", f"task {number}", assign_to="juno")
        statuses = task_path(number)
        for before, status in itertools.pairwise(statuses):
            if status == "review":
                submit_for_review(conn, "juno", task_id, "done")
            elif before == "review" and status == "in_progress":
                reject_task(conn, "lead", task_id, "tests missing")
            elif status == "completed":
                approve_task(conn, "lead", task_id)
            elif status == "verified":
                verify_task(conn, "lead", task_id)
            else:
                update_task(conn, "juno", task_id, status)
            send(
                conn, "juno", "lead", f"note on {task_id}", task_id=task_id,
                leads=None, register_sender=True, inherit_task=True,
            )  # fmt: skip
            if interval:
                time.sleep(interval)
        set_status(conn, "juno", f"done {task_id}")


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
    parser.add_argument(
        "--tasks",
        type=int,
        default=0,
        help="instead of sends: take this many tasks through the server's task tools"
        " (see task_script); SIGTERM ends it after the task in hand",
    )
    args = parser.parse_args(argv)
    if not args.db.exists():
        args.db.parent.mkdir(parents=True, exist_ok=True)
        create(args.db)
    conn = connect(args.db)
    if args.tasks:
        task_script(conn, args.tasks, interval=args.interval)
        conn.close()
        return 0
    for i in range(args.sends):
        sender = AGENTS[i % len(AGENTS)]
        send(conn, sender, AGENTS[(i + 1) % len(AGENTS)], f"{args.prefix} {i}")
        if args.interval:
            time.sleep(args.interval)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
