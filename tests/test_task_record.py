"""Task changes and agent events recorded beside the messages (docs/tasks.md): by the
real ``dead-drop-logger run`` on databases written with the server's own SQL
(serverdb), and, for what time alone changes (agent health), by the follower's table
reader under an injected clock."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import serverdb
import tasklines
from conftest import WRITER, LoggerProcess, logged_ids, run_command, wait_until

from dead_drop_logger.keep import housekeeping
from dead_drop_logger.logdir import layout
from dead_drop_logger.logdir.state import STATE_NAME
from dead_drop_logger.logdir.tablestate import TableStore

pytestmark = pytest.mark.both_ways  # with change notifications and --no-watch


def start_tasks(db: Path, count: int, interval: float = 0.01) -> subprocess.Popen[bytes]:
    """The server taking ``count`` tasks through its tools (serverdb.task_script), with
    messages between the steps, in a process of its own."""
    return subprocess.Popen(
        [sys.executable, WRITER, str(db), "--tasks", str(count), "--interval", str(interval)],
        stdin=subprocess.DEVNULL,
    )


def expected(count: int) -> dict[str, list[str]]:
    return {f"TASK-{n + 1:03d}": serverdb.task_path(n) for n in range(count)}


def test_every_transition_once_across_a_restart(
    server_db: Path, log_dir: Path, logger, watch_mode: str
) -> None:
    first = logger().start()
    first.wait_ready()
    writer = start_tasks(server_db, 12)
    try:
        wait_until(lambda: len(tasklines.lines(log_dir)) >= 3, what="some task lines")
        assert first.stop() == 0
        second = logger().start()
        second.wait_ready()
        assert writer.wait(timeout=120) == 0
        want = expected(12)
        wait_until(lambda: tasklines.complete(log_dir, want), what="every task's last step")
        wait_until(lambda: logged_ids(log_dir) == serverdb.all_ids(server_db), what="messages")
        assert second.stop() == 0
    finally:
        writer.kill()
        writer.wait()
    found = tasklines.lines(log_dir)
    assert tasklines.paths(found) == want  # each step once, gaps filled from the messages
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)  # messages: each once
    assert all(json.loads(json.dumps(line))["row"]["id"] == line["task"] for line in found)
    first_lines = [line for line in found if line["from"] is None]
    assert [line["to"] for line in first_lines] != [] and all(
        line["to"] == "assigned" or line.get("via", ["assigned"])[0] == "assigned"
        for line in first_lines
    )
    assert "Traceback" not in first.stderr() + second.stderr()


def test_line_format_and_a_gap_the_messages_fill(server_db: Path, log_dir: Path, logger) -> None:
    conn = serverdb.connect(server_db)
    serverdb.register(conn, "lead", role="lead")
    serverdb.register(conn, "juno", role="builder")
    proc = logger().start()
    proc.wait_ready()
    task = serverdb.create_task(conn, "lead", "Fix the deploy", assign_to="juno", project="web")
    wait_until(lambda: tasklines.lines(log_dir), what="the new task's line")
    os.kill(proc.pid, signal.SIGSTOP)  # three moves between two reads
    try:
        serverdb.update_task(conn, "juno", task, "in_progress")
        serverdb.submit_for_review(conn, "juno", task, "done")
        serverdb.approve_task(conn, "lead", task)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    wait_until(lambda: len(tasklines.lines(log_dir)) == 2, what="the second line")
    assert proc.stop() == 0
    raw = sorted(log_dir.glob("tasks-*.json"))[-1].read_text().splitlines()
    new, moved = (json.loads(line) for line in raw)
    assert list(new) == ["task", "from", "to", "at", "row"]
    assert (new["task"], new["from"], new["to"]) == (task, None, "assigned")
    assert list(moved) == ["task", "from", "to", "via", "gap", "at", "row"]
    assert (moved["from"], moved["via"], moved["to"], moved["gap"]) == (
        "assigned", ["in_progress", "review"], "completed", True,
    )  # fmt: skip
    row = conn.execute("SELECT * FROM tasks").fetchone()
    columns = [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
    assert list(moved["row"]) == columns  # every column, in table order
    assert list(moved["row"].values()) == list(row)
    assert moved["at"] == row[columns.index("updated_at")]
    assert raw[1] == json.dumps(moved, ensure_ascii=False, separators=(",", ":"))  # compact
    assert oct(sorted(log_dir.glob("tasks-*.json"))[-1].stat().st_mode & 0o777) == "0o600"


def test_a_gap_no_message_tells(server_db: Path, log_dir: Path, logger) -> None:
    """An older server (no transition messages): pending -> in_progress is no one move."""
    conn = serverdb.connect(server_db)
    proc = logger().start()
    proc.wait_ready()
    task = serverdb.create_task(conn, "lead", "Unassigned")
    wait_until(lambda: tasklines.lines(log_dir), what="the new task's line")
    conn.execute("UPDATE tasks SET status = 'in_progress', updated_at = ? WHERE id = ?",
                 (dt.datetime.now().isoformat(), task))  # fmt: skip
    wait_until(lambda: len(tasklines.lines(log_dir)) == 2, what="the second line")
    conn.execute("UPDATE tasks SET result = 'half', updated_at = ? WHERE id = ?",
                 (dt.datetime.now().isoformat(), task))  # fmt: skip
    wait_until(lambda: len(tasklines.lines(log_dir)) == 3, what="the third line")
    assert proc.stop() == 0
    _, jump, edit = tasklines.lines(log_dir)
    assert (jump["from"], jump["to"], jump["gap"]) == ("pending", "in_progress", True)
    assert "via" not in jump
    assert (edit["from"], edit["to"], "gap" in edit) == ("in_progress", "in_progress", False)
    assert edit["row"]["result"] == "half"


def test_a_tasks_table_added_later(tmp_path: Path, log_dir: Path, logger) -> None:
    db = tmp_path / "old.db"
    serverdb.create(db, tasks=False)  # a server from before its tasks
    conn = serverdb.connect(db)
    serverdb.send(conn, "juno", "atlas", "before tasks")
    proc = logger(db=db).start()
    proc.wait_ready()
    wait_until(lambda: (log_dir / TableStore(log_dir).path.name).exists(), what="table state")
    serverdb.create_tasks_table(conn)  # the server upgraded: its migration adds the table
    serverdb.register(conn, "lead", role="lead")  # (update_task tells the leads)
    task = serverdb.create_task(conn, "lead", "First task", assign_to="juno")
    conn.execute("ALTER TABLE tasks ADD COLUMN priority INTEGER DEFAULT 3")
    serverdb.update_task(conn, "juno", task, "in_progress")
    want = {task: ["assigned", "in_progress"]}
    wait_until(lambda: tasklines.complete(log_dir, want), what="the task's lines")
    assert proc.stop() == 0
    found = tasklines.lines(log_dir)
    assert tasklines.paths(found) == want
    assert found[-1]["row"]["priority"] == 3  # a column added later is in the row
    assert "Traceback" not in proc.stderr()


def test_a_first_start_takes_the_tables_as_known_and_import_takes_a_snapshot(
    server_db: Path, log_dir: Path, logger, tmp_path: Path
) -> None:
    conn = serverdb.connect(server_db)
    serverdb.register(conn, "juno")
    old = serverdb.create_task(conn, "lead", "Old", assign_to="juno")
    proc = logger().start()
    proc.wait_ready()
    new = serverdb.create_task(conn, "lead", "New", assign_to="juno")
    wait_until(lambda: tasklines.lines(log_dir), what="the new task's line")
    assert proc.stop() == 0
    assert [line["task"] for line in tasklines.lines(log_dir)] == [new]
    assert tasklines.lines(log_dir, "agents") == []
    other = tmp_path / "imported"
    imported = LoggerProcess(server_db, other, "--import-historical").start()
    try:
        imported.wait_ready()
        wait_until(lambda: len(tasklines.lines(other)) == 2, what="the snapshot")
        wait_until(lambda: tasklines.lines(other, "agents"), what="the agents")
    finally:
        assert imported.stop() == 0
    snap = tasklines.lines(other)
    assert [(s["task"], s["from"], s["snapshot"]) for s in snap] == [
        (old, None, True), (new, None, True),
    ]  # fmt: skip
    assert list(snap[0]) == ["task", "from", "to", "at", "snapshot", "row"]
    assert [a["event"] for a in tasklines.lines(other, "agents")] == ["registered"]


def test_agents_register_status_deregister_not_heartbeats(
    server_db: Path, log_dir: Path, logger
) -> None:
    conn = serverdb.connect(server_db)
    proc = logger().start()
    proc.wait_ready()

    def events() -> list[dict[str, object]]:
        return tasklines.lines(log_dir, "agents")

    serverdb.register(conn, "juno", role="builder")
    wait_until(lambda: len(events()) == 1, what="the registration")
    serverdb.ping(conn, "juno")  # the first heartbeat: health known (healthy)
    wait_until(lambda: len(events()) == 2, what="the first heartbeat's health")
    serverdb.ping(conn, "juno")  # heartbeats and inbox checks alone: no line
    serverdb.check_inbox(conn, "juno")
    serverdb.ping(conn, "juno")
    serverdb.set_status(conn, "juno", "working on TASK-004")
    wait_until(lambda: len(events()) >= 3, what="the status")
    serverdb.deregister(conn, "juno")
    wait_until(lambda: len(events()) >= 4, what="the deregistration")
    assert proc.stop() == 0
    found = events()
    assert [(e["event"], e["health"], e["status"], e["from"]) for e in found] == [
        ("registered", "unknown", "waiting for work", None),
        ("health", "healthy", "waiting for work", "unknown"),
        ("status", "healthy", "working on TASK-004", "waiting for work"),
        ("deregistered", None, "working on TASK-004", None),
    ]
    assert list(found[0]) == ["agent", "event", "at", "health", "status", "from", "row"]
    row = found[2]["row"]
    assert isinstance(row, dict)
    assert found[2]["at"] == row["last_seen"] and found[0]["at"] == row["registered_at"]


def test_search_and_stats_ignore_task_and_agent_files(
    server_db: Path, log_dir: Path, logger, home_env: dict[str, str], tmp_path: Path
) -> None:
    conn = serverdb.connect(server_db)
    proc = logger().start()
    proc.wait_ready()
    serverdb.register(conn, "juno", role="builder")
    task = serverdb.create_task(conn, "lead", "status report", assign_to="juno")
    serverdb.send(conn, "juno", "atlas", "status update", task_id=task)
    wait_until(lambda: tasklines.lines(log_dir) and tasklines.lines(log_dir, "agents"),
               what="task and agent lines")  # fmt: skip
    wait_until(lambda: logged_ids(log_dir) == serverdb.all_ids(server_db), what="messages")
    assert proc.stop() == 0
    bare = tmp_path / "bare"
    bare.mkdir(mode=0o700)
    for path in log_dir.glob("messages-*.json"):
        if not path.is_symlink():
            (bare / path.name).write_bytes(path.read_bytes())
    for args in (["search", "status"], ["stats", "--json"], ["agents"]):
        with_tasks = run_command(*args, "--log-dir", str(log_dir), env=home_env)
        without = run_command(*args, "--log-dir", str(bare), env=home_env)
        assert with_tasks.returncode == without.returncode == 0, with_tasks.stderr
        if args[0] == "stats":  # the message numbers alike; the task log adds its own
            numbers, bare_numbers = json.loads(with_tasks.stdout), json.loads(without.stdout)
            assert numbers.pop("task_analytics")["tasks"] == 1
            assert bare_numbers.pop("task_analytics") is None
            assert numbers == bare_numbers
            continue
        assert with_tasks.stdout == without.stdout.replace(str(bare), str(log_dir))
        assert with_tasks.stderr == without.stderr.replace(str(bare), str(log_dir))


def test_rooms_record_their_own_tasks(tmp_path: Path, logger) -> None:
    rooms_dir, logs = tmp_path / "rooms", tmp_path / "roomlogs"
    for name in ("alpha", "beta"):
        db = serverdb.room_db(rooms_dir, name)
        db.parent.mkdir(parents=True)
        serverdb.create(db)
    target = ["--rooms-dir", str(rooms_dir), "--log-dir", str(logs)]
    proc = logger(target=target).start()
    proc.wait_ready()
    # Each room's first start records its tables as they are (seen, no lines): write only
    # once both rooms have made it (with --no-watch the sweep finds them a poll later).
    wait_until(
        lambda: all((logs / n / STATE_NAME).exists() for n in ("alpha", "beta")),
        what="both rooms' first start",
    )
    made = {}
    for name in ("alpha", "beta"):
        conn = serverdb.connect(serverdb.room_db(rooms_dir, name))
        serverdb.register(conn, "lead", role="lead")
        made[name] = serverdb.create_task(conn, "lead", f"{name} work", assign_to="juno")
        serverdb.update_task(conn, "juno", made[name], "in_progress")
    for name, task in made.items():
        want = {task: ["assigned", "in_progress"]}
        wait_until(lambda: tasklines.complete(logs / name, want), what=f"{name}'s task")  # noqa: B023
        assert tasklines.paths(tasklines.lines(logs / name)) == want
    assert proc.stop() == 0
    assert not list(logs.glob("tasks-*"))


def test_old_task_and_agent_files_are_compressed_and_deleted_like_messages(
    log_dir: Path,
) -> None:
    log_dir.mkdir(mode=0o700)
    for kind in layout.KINDS:
        for day in ("2026-01-01", "2026-03-01"):
            layout.day_path(log_dir, day, 0, kind).write_text('{"x":1}\n')
    today = dt.date(2026, 3, 10)
    housekeeping.run(log_dir, today, housekeeping.Policy(retention_days=30, compress_after=2))
    left = sorted(p.name for p in log_dir.iterdir() if not p.name.startswith("."))
    assert left == [
        "agents-2026-03-01.json.gz", "messages-2026-03-01.json.gz", "tasks-2026-03-01.json.gz",
    ]  # fmt: skip
    # and a reader of messages never takes them for messages
    assert [f.kind for f in layout.log_files(log_dir)] == ["messages"]
