"""Database side: missing, deleted, replaced, locked, unusable, and changing schema."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import serverdb
from conftest import log_lines, logged_ids, wait_until
from faultkit import (
    assert_clean,
    assert_exactly_once,
    count,
    lines_so_far,
    needs_strace,
    reaped,
    retries,
    said,
    strace_wrapper,
    traced_pid,
    wait_all_logged,
    wait_stderr,
)
from procs import process_alive

pytestmark = pytest.mark.both_ways  # with change notifications and --no-watch


def db_files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def remove_db(db: Path) -> None:
    """Delete the database the way a reset server does: the file and its WAL companions."""
    for path in db_files(db):
        path.unlink()


def move_db(db: Path, to: Path) -> None:
    to.mkdir(exist_ok=True)
    for path in db_files(db):
        path.rename(to / path.name)


def put_db(source: Path, db: Path) -> None:
    """Install a complete database file at ``db`` in one rename (no half-built file)."""
    tmp = db.with_name(db.name + ".new")
    shutil.copyfile(source, tmp)
    os.replace(tmp, db)


def fresh_db(path: Path, sends: int, prefix: str) -> Path:
    """A complete, checkpointed server database elsewhere, ready to be put in place."""
    serverdb.create(path)
    serverdb.send_many(path, sends, prefix=prefix)
    return path


def retry_delays(stderr: str) -> list[float]:
    return [float(x) for x in re.findall(r"DEBUG: retry \d+ in ([\d.]+)s", stderr)]


def test_missing_at_start_then_appears(tmp_path: Path, log_dir: Path, logger) -> None:
    db = tmp_path / "later" / "messages.db"
    db.parent.mkdir()  # (a directory that does not exist is refused at once: test_causes)
    proc = logger("--log-level", "debug", db=db).start()
    proc.wait_ready()
    wait_until(lambda: retries(proc.stderr()) >= 3, what="a few retries")
    assert not db.exists()  # the logger never creates it

    put_db(fresh_db(tmp_path / "built.db", 10, "first"), db)
    wait_all_logged(log_dir, db)
    serverdb.send_many(db, 5, prefix="more")
    wait_all_logged(log_dir, db)
    assert proc.stop() == 0
    stderr = proc.stderr()
    assert said(stderr, "does not exist") == 1, stderr
    assert_exactly_once(log_dir, db)


def test_deleted_while_running_then_restored(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    proc = logger("--log-level", "debug").start()
    proc.wait_ready()
    serverdb.send_many(server_db, 10)
    wait_all_logged(log_dir, server_db)

    away = tmp_path / "away"
    move_db(server_db, away)
    wait_stderr(proc, "does not exist")
    wait_until(lambda: retries(proc.stderr()) >= 3, what="a few retries")
    assert not server_db.exists()
    move_db(away / server_db.name, server_db.parent)
    serverdb.send_many(server_db, 10, prefix="after")
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    stderr = proc.stderr()
    assert said(stderr, "does not exist") == 1, stderr
    assert count(stderr, "replaced") == 0, stderr
    assert_exactly_once(log_dir, server_db)


@pytest.mark.parametrize("new_sends", [2, 20], ids=["fewer-rows", "more-rows"])
def test_replaced_database_is_logged_from_its_first_row(
    server_db: Path, tmp_path: Path, log_dir: Path, logger, new_sends: int
) -> None:
    """Server reset: ids start again at 1, below or beyond the logged position."""
    proc = logger().start()
    proc.wait_ready()
    serverdb.send_many(server_db, 10, prefix="old")
    old_ids = serverdb.all_ids(server_db)
    wait_all_logged(log_dir, server_db)

    new = fresh_db(tmp_path / "reset.db", new_sends, "new")
    remove_db(server_db)
    put_db(new, server_db)
    new_ids = serverdb.all_ids(server_db)

    def by_prefix(prefix: str) -> list[int]:
        lines = lines_so_far(log_dir) or []
        return sorted(o["id"] for o in lines if o["content"].startswith(prefix))

    wait_until(lambda: by_prefix("new") == new_ids, what="the new database's messages")
    serverdb.send_many(server_db, 3, prefix="new later")
    wait_until(lambda: by_prefix("new") == serverdb.all_ids(server_db), what="later new messages")
    assert proc.stop() == 0
    assert by_prefix("old") == old_ids
    assert len(log_lines(log_dir)) == len(old_ids) + len(serverdb.all_ids(server_db))
    stderr = proc.stderr()
    assert count(stderr, "was replaced") == 1, stderr
    assert_clean(stderr)


def test_messages_not_yet_read_when_the_database_is_replaced_are_logged_first(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    """Replaced at its path between two ticks: the old file, still readable through the
    open connection, is read to its end before the new one is logged from its first row."""
    proc = logger("--poll-interval", "5", watch=False).start()
    proc.wait_ready()
    serverdb.send_many(server_db, 5, prefix="old")
    wait_all_logged(log_dir, server_db)  # just after a tick: the next one is 5 s away
    serverdb.send_many(server_db, 10, prefix="old last")
    old_ids = serverdb.all_ids(server_db)
    new = fresh_db(tmp_path / "reset.db", 4, "new")
    remove_db(server_db)
    put_db(new, server_db)
    new_ids = serverdb.all_ids(server_db)
    wait_until(
        lambda: logged_ids(log_dir) == sorted(old_ids + new_ids),
        what="the old database's last messages, then the new one's",
    )
    assert proc.stop() == 0
    stderr = proc.stderr()
    assert count(stderr, "was replaced") == 1, stderr
    assert_clean(stderr)


def test_same_database_restored_under_a_new_inode_is_not_a_reset(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    proc = logger().start()
    proc.wait_ready()
    serverdb.send_many(server_db, 10)
    wait_all_logged(log_dir, server_db)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(server_db) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    remove_db(server_db)
    put_db(backup, server_db)
    serverdb.send_many(server_db, 5, prefix="after")
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    assert count(proc.stderr(), "replaced") == 0
    assert_exactly_once(log_dir, server_db)


def test_exclusive_lock_held_for_seconds_is_waited_out(
    server_db: Path, log_dir: Path, logger
) -> None:
    """Another process holds ``locking_mode=EXCLUSIVE`` (WAL readers are shut out too).

    SQLite only grants it while no other connection has the database open, so it is
    taken while the logger is stopped and held across the logger's restart.
    """
    first = logger().start()
    first.wait_ready()
    serverdb.send_many(server_db, 5, prefix="before")
    wait_all_logged(log_dir, server_db)
    assert first.stop() == 0

    holder = sqlite3.connect(server_db, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    for i in range(5):
        holder.execute(
            "INSERT INTO messages (from_agent, to_agent, content, timestamp)"
            " VALUES ('juno', 'vega', ?, datetime('now'))",
            (f"under lock {i}",),
        )
    holder.execute("COMMIT")  # exclusive locking mode keeps the lock after the commit
    proc = logger("--log-level", "debug").start()
    wait_stderr(proc, "busy")
    wait_until(lambda: retries(proc.stderr()) >= 4, what="retries while locked")
    assert proc.proc is not None and proc.proc.poll() is None
    holder.close()

    serverdb.send_many(server_db, 5, prefix="after")
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    stderr = proc.stderr()
    assert count(stderr, "busy") == 1, stderr
    assert_clean(stderr)
    assert_exactly_once(log_dir, server_db)


def garbage(path: Path) -> Path:
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    return path


def corrupted(db: Path, path: Path) -> Path:
    """A copy of ``db`` whose pages after the first (the schema) are overwritten."""
    with sqlite3.connect(db) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    raw = bytearray(path.read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    raw[page:] = b"\x55" * (len(raw) - page)
    path.write_bytes(bytes(raw))
    return path


def without_messages(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE agents (name TEXT PRIMARY KEY)")
    return path


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("not-a-database", "file is not a database"),
        ("corrupt", "malformed"),
        ("no-messages-table", "no messages table"),
    ],
)
def test_unusable_database_is_reported_once_and_retried_slowly(
    server_db: Path, tmp_path: Path, log_dir: Path, logger, kind: str, says: str
) -> None:
    proc = logger("--log-level", "debug").start()
    proc.wait_ready()
    serverdb.send_many(server_db, 5, prefix="before")
    wait_all_logged(log_dir, server_db)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(server_db) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)

    bad = {
        "not-a-database": lambda: garbage(tmp_path / "bad.db"),
        "corrupt": lambda: corrupted(server_db, tmp_path / "bad.db"),
        "no-messages-table": lambda: without_messages(tmp_path / "bad.db"),
    }[kind]()
    remove_db(server_db)
    put_db(bad, server_db)
    wait_stderr(proc, says)
    wait_until(lambda: retries(proc.stderr()) >= 5, what="several retries")
    delays = retry_delays(proc.stderr())
    assert delays[-1] > delays[0]  # backing off, not a tight loop
    assert proc.proc is not None and proc.proc.poll() is None

    remove_db(server_db)
    put_db(backup, server_db)
    serverdb.send_many(server_db, 5, prefix="after")
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    stderr = proc.stderr()
    assert count(stderr, says) == 1, stderr
    assert count(stderr, "replaced") == 0, stderr
    assert_clean(stderr)
    assert_exactly_once(log_dir, server_db)


def test_not_a_database_at_start(tmp_path: Path, log_dir: Path, logger) -> None:
    db = garbage(tmp_path / "messages.db")
    proc = logger("--log-level", "debug", db=db).start()
    wait_stderr(proc, "file is not a database")
    wait_until(lambda: retries(proc.stderr()) >= 3, what="several retries")
    assert proc.proc is not None and proc.proc.poll() is None
    put_db(fresh_db(tmp_path / "good.db", 5, "good"), db)
    proc.wait_ready()
    serverdb.send_many(db, 5, prefix="after")
    wait_until(lambda: len(lines_so_far(log_dir) or []) >= 10, what="the new messages")
    assert proc.stop() == 0
    stderr = proc.stderr()
    assert count(stderr, "file is not a database") == 1, stderr
    # A first start fixes its position once the database can be read: what it then
    # holds is history (not logged without --import-historical), the rest once each.
    assert logged_ids(log_dir) == serverdb.all_ids(db)[10:]


def test_schema_drift_added_dropped_and_renamed_columns(
    server_db: Path, log_dir: Path, logger
) -> None:
    proc = logger().start()
    proc.wait_ready()
    conn = serverdb.connect(server_db)
    serverdb.send(conn, "juno", "vega", "plain")
    wait_all_logged(log_dir, server_db)

    conn.execute("ALTER TABLE messages ADD COLUMN mood TEXT")
    conn.execute("INSERT INTO messages (content, mood, timestamp) VALUES ('added', 'calm', 'x')")
    wait_all_logged(log_dir, server_db)
    conn.execute("ALTER TABLE messages DROP COLUMN task_id")
    conn.execute("INSERT INTO messages (content, timestamp) VALUES ('dropped', 'x')")
    wait_all_logged(log_dir, server_db)
    conn.execute("ALTER TABLE messages RENAME COLUMN content TO body")
    conn.execute("INSERT INTO messages (body, timestamp) VALUES ('renamed', 'x')")
    wait_all_logged(log_dir, server_db)
    conn.execute("ALTER TABLE messages RENAME COLUMN timestamp TO sent_at")
    conn.execute("INSERT INTO messages (body, sent_at) VALUES ('no timestamp column', 'x')")
    wait_all_logged(log_dir, server_db)
    conn.close()
    assert proc.stop() == 0

    lines = {o["id"]: o for o in log_lines(log_dir)}
    assert lines[1]["content"] == "plain" and "mood" not in lines[1]
    added = next(o for o in lines.values() if o.get("content") == "added")
    assert added["mood"] == "calm" and "task_id" in added
    dropped = next(o for o in lines.values() if o.get("content") == "dropped")
    assert "task_id" not in dropped and dropped["mood"] is None
    renamed = next(o for o in lines.values() if o.get("body") == "renamed")
    assert "content" not in renamed
    assert any(o.get("body") == "no timestamp column" for o in lines.values())
    assert_clean(proc.stderr())
    assert_exactly_once(log_dir, server_db)


@needs_strace
def test_unreadable_database_is_reported_once_and_retried(
    server_db: Path, log_dir: Path, logger, tmp_path: Path
) -> None:
    """Permission denied on the database (strace fails its opens, even for root)."""
    first = logger().start()
    first.wait_ready()
    assert first.stop() == 0
    serverdb.send_many(server_db, 5, prefix="while stopped")

    rule = "inject=openat:error=EACCES"
    trace = tmp_path / "strace.log"
    with reaped() as pids:
        proc = logger("--log-level", "debug", wrapper=strace_wrapper(trace, rule, path=server_db))
        proc.start()
        pids.add(pid := traced_pid(proc))
        denied = f"cannot read database {server_db}: permission denied"  # not SQLite's words
        wait_stderr(proc, denied)
        wait_until(lambda: retries(proc.stderr()) >= 3, what="several retries")
        assert logged_ids(log_dir) == []
        proc.stop()  # strace detaches: the database is readable again
        wait_all_logged(log_dir, server_db)
        assert process_alive(pid)
        stderr = proc.stderr()
        assert count(stderr, denied) == 1, stderr
        assert "unable to open" not in stderr, stderr
        assert_clean(stderr)
    assert_exactly_once(log_dir, server_db)
