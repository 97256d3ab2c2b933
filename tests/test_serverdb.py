"""The test stand-in for the Dead Drop server (tests/serverdb.py) writes what the server
writes: its schema (the stored copy's exactly with ``verification=False``), its task and
agent statements, its refusals; and the real logger records a server of the stored
schema (no verification) as it records the modelled one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import serverdb
import tasklines
from conftest import LoggerProcess, wait_until

# The stored server's tables, column names in order, after its init_db and migrations
# (src/dead_drop/server.py, commit 0f6e1f5).
STORED = {
    "agents": [
        "name", "registered_at", "last_seen", "last_inbox_check", "role", "description",
        "status", "heartbeat_at", "team",
    ],
    "messages": [
        "id", "from_agent", "to_agent", "content", "timestamp", "read_flag", "is_cc",
        "cc_original_to", "task_id", "reply_to",
    ],
    "tasks": [
        "id", "project", "title", "description", "assigned_to", "created_by", "status",
        "result", "created_at", "updated_at", "completed_at", "role_hat",
    ],
    "broadcast_reads": ["agent_name", "message_id"],
    "handshakes": ["id", "initiated_by", "message_id", "created_at", "status"],
    "handshake_acks": ["handshake_id", "agent_name", "acked_at"],
    "contracts": [
        "id", "project", "name", "type", "owner", "spec", "version", "created_at", "updated_at",
    ],
    "spawn_policy": ["id", "scope", "enabled", "max_minions", "set_by", "set_at"],
    "minion_log": [
        "id", "pilot", "task_description", "status", "spawned_at", "completed_at", "result",
    ],
}  # fmt: skip


def columns(db: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            n: [r[1] for r in conn.execute(f"PRAGMA table_info({n})")]
            for n in names
            if n != "sqlite_sequence"
        }
    finally:
        conn.close()


def test_the_stored_schema_exactly_and_the_modelled_columns_after_it(tmp_path: Path) -> None:
    stored, modelled = tmp_path / "stored.db", tmp_path / "modelled.db"
    serverdb.create(stored, verification=False)
    serverdb.create(modelled)
    assert columns(stored) == STORED
    assert columns(modelled)["tasks"] == [
        *STORED["tasks"], "goal_id", "verified_by", "verified_at", "approved_by",
    ]  # fmt: skip
    conn = serverdb.connect(stored)
    serverdb.register(conn, "lead", role="lead")
    serverdb.register(conn, "juno", role="builder")
    task = serverdb.create_task(conn, "lead", "ship it", assign_to="juno")
    with pytest.raises(sqlite3.IntegrityError):  # the stored CHECK has no 'verified'
        conn.execute("UPDATE tasks SET status = 'verified' WHERE id = ?", (task,))
    conn.execute("ROLLBACK") if conn.in_transaction else None
    serverdb.update_task(conn, "juno", task, "in_progress")
    serverdb.submit_for_review(conn, "juno", task, "done")
    serverdb.approve_task(conn, "lead", task)
    with pytest.raises(serverdb.ServerRefused):  # not one of update_task's transitions
        serverdb.update_task(conn, "lead", task, "verified")
    row = conn.execute("SELECT status, completed_at, updated_at FROM tasks").fetchone()
    assert row[0] == "completed" and row[1] == row[2]


def test_send_registers_an_unknown_sender_and_a_reply_inherits_its_task(tmp_path: Path) -> None:
    db = tmp_path / "messages.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    server = {"leads": None, "register_sender": True, "inherit_task": True}
    first = serverdb.send(conn, "juno", "vega", "about it", task_id="TASK-007", **server)
    serverdb.send(conn, "vega", "juno", "sure", reply_to=first[0], **server)
    agents = conn.execute("SELECT name, registered_at = last_seen, status FROM agents").fetchall()
    assert sorted(agents) == [("juno", 1, "offline"), ("vega", 1, "offline")]
    rows = conn.execute("SELECT task_id, reply_to, read_flag, is_cc FROM messages").fetchall()
    assert rows == [("TASK-007", None, 0, 0), ("TASK-007", first[0], 0, 0)]  # no lead: no CC
    serverdb.register(conn, "boss", role="builder,lead")
    serverdb.send(conn, "juno", "vega", "again", **server)  # CC'd to the registered lead
    cc = conn.execute("SELECT to_agent, cc_original_to FROM messages WHERE is_cc = 1").fetchall()
    assert cc == [("boss", "vega")]


def test_check_inbox_marks_direct_messages_read_and_records_broadcasts(tmp_path: Path) -> None:
    db = tmp_path / "messages.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    serverdb.register(conn, "juno", team="red")
    serverdb.send(conn, "vega", "juno", "direct")
    serverdb.send(conn, "vega", "red/juno", "team-scoped")
    serverdb.send(conn, "vega", "all", "everyone")
    serverdb.check_inbox(conn, "juno", now="2026-12-06T10:00:00")
    read = conn.execute("SELECT content, read_flag FROM messages WHERE is_cc = 0").fetchall()
    assert read == [("direct", 1), ("team-scoped", 1), ("everyone", 0)]
    assert conn.execute("SELECT agent_name FROM broadcast_reads").fetchall() == [("juno",)]
    stamps = conn.execute("SELECT last_seen, last_inbox_check FROM agents WHERE name = 'juno'")
    assert stamps.fetchone() == ("2026-12-06T10:00:00", "2026-12-06T10:00:00")


def test_a_role_hat_and_a_hat_conflict_as_the_server_has_them(tmp_path: Path) -> None:
    db = tmp_path / "messages.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    serverdb.register(conn, "lead", role="lead")
    serverdb.register(conn, "juno", role="builder,tester")
    built = serverdb.create_task(
        conn, "lead", "build", assign_to="juno", project="web", role_hat="builder"
    )
    serverdb.update_task(conn, "juno", built, "in_progress")
    with pytest.raises(serverdb.ServerRefused, match="BLOCKED"):
        serverdb.create_task(
            conn, "lead", "test", assign_to="juno", project="web", role_hat="tester"
        )
    other = serverdb.create_task(conn, "lead", "docs", assign_to="juno", project="docs")
    serverdb.assign_role_hat(conn, "lead", other, "tester", now="2026-12-06T11:00:00")
    assert conn.execute(
        "SELECT role_hat, updated_at FROM tasks WHERE id = ?", (other,)
    ).fetchone() == (
        "tester",
        "2026-12-06T11:00:00",
    )


def test_the_logger_records_a_server_of_the_stored_schema(tmp_path: Path) -> None:
    """No verification columns, no 'verified': every transition and a role hat (a change
    that is not a move) recorded once."""
    db, log_dir = tmp_path / "messages.db", tmp_path / "logs"
    serverdb.create(db, verification=False)
    proc = LoggerProcess(db, log_dir).start()
    proc.wait_ready()
    conn = serverdb.connect(db)
    serverdb.register(conn, "lead", role="lead")
    serverdb.register(conn, "juno", role="builder,tester")
    task = serverdb.create_task(conn, "lead", "ship it", assign_to="juno", project="web")
    serverdb.update_task(conn, "juno", task, "in_progress")
    serverdb.assign_role_hat(conn, "lead", task, "builder")
    serverdb.submit_for_review(conn, "juno", task, "done")
    serverdb.reject_task(conn, "lead", task, "tests missing")
    serverdb.update_task(conn, "juno", task, "failed")
    want = ["assigned", "in_progress", "in_progress", "review", "in_progress", "failed"]
    wait_until(lambda: tasklines.complete(log_dir, {task: want}), what="the task's last step")
    assert proc.stop() == 0
    found = tasklines.lines(log_dir)
    assert tasklines.paths(found)[task] == [s for i, s in enumerate(want) if i != 2] or (
        tasklines.paths(found)[task] == want
    )
    assert list(found[-1]["row"]) == STORED["tasks"]
