"""The pipeline end to end: the real ``dead-drop-logger run`` against server-like databases."""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serverdb
from conftest import LoggerProcess, log_lines, logged_ids, start_writer, wait_until

Logger = Callable[..., LoggerProcess]
pytestmark = pytest.mark.both_ways


def wait_logged(log_dir: Path, expected: list[int]) -> None:
    wait_until(lambda: logged_ids(log_dir) == expected, what=f"ids {expected[:3]}... logged")


def test_first_start_logs_only_new_messages(server_db: Path, log_dir: Path, logger: Logger):
    old = serverdb.send_many(server_db, 5, prefix="old")
    proc = logger().start()
    proc.wait_ready()
    new = serverdb.send_many(server_db, 3, prefix="new")
    wait_logged(log_dir, new)
    assert not set(old) & set(logged_ids(log_dir))
    assert proc.stop() == 0


def test_live_follow_with_concurrent_writer(server_db: Path, log_dir: Path, logger: Logger):
    proc = logger().start()
    proc.wait_ready()
    writer = start_writer(server_db, 300, interval=0.002)
    assert writer.wait(timeout=120) == 0
    wait_logged(log_dir, serverdb.all_ids(server_db))
    assert proc.stop() == 0


def test_restart_logs_messages_written_while_stopped(
    server_db: Path, log_dir: Path, logger: Logger
):
    proc = logger().start()
    proc.wait_ready()
    first = serverdb.send_many(server_db, 4, prefix="before")
    wait_logged(log_dir, first)
    assert proc.stop() == 0
    while_stopped = serverdb.send_many(server_db, 6, prefix="stopped")
    proc2 = logger().start()
    wait_logged(log_dir, first + while_stopped)
    assert proc2.stop() == 0


def test_database_created_after_start_is_logged_from_first_row(
    tmp_path: Path, log_dir: Path, logger: Logger
):
    db = tmp_path / "later" / "messages.db"
    db.parent.mkdir()  # (a directory that does not exist is refused at once: test_causes)
    proc = logger(db=db).start()
    wait_until(lambda: "does not exist" in proc.stderr(), what="the waiting notice")
    serverdb.create(db)
    ids = serverdb.send_many(db, 5)
    wait_logged(log_dir, ids)
    assert proc.stop() == 0
    assert proc.stderr().count("does not exist") == 1, proc.stderr()


def test_import_historical_is_a_one_time_import(server_db: Path, log_dir: Path, logger: Logger):
    history = serverdb.send_many(server_db, 20, prefix="history")
    proc = logger("--import-historical").start()
    wait_logged(log_dir, history)
    assert proc.stop() == 0
    more = serverdb.send_many(server_db, 2, prefix="more")
    again = logger("--import-historical").start()
    wait_logged(log_dir, history + more)
    assert again.stop() == 0
    assert logged_ids(log_dir) == history + more


def test_import_historical_fills_history_skipped_by_an_earlier_first_start(
    server_db: Path, log_dir: Path, logger: Logger
):
    history = serverdb.send_many(server_db, 5, prefix="history")
    proc = logger().start()
    proc.wait_ready()
    new = serverdb.send_many(server_db, 2, prefix="new")
    wait_logged(log_dir, new)
    assert proc.stop() == 0
    backfill = logger("--import-historical").start()
    wait_logged(log_dir, history + new)
    assert backfill.stop() == 0


def test_each_log_dir_has_its_own_position(tmp_path: Path, server_db: Path, logger: Logger):
    history = serverdb.send_many(server_db, 3)
    first = logger().start()
    first.wait_ready()
    assert first.stop() == 0
    other_dir = tmp_path / "other-logs"
    other = LoggerProcess(server_db, other_dir, "--import-historical").start()
    try:
        wait_logged(other_dir, history)
    finally:
        assert other.stop() == 0
    assert logged_ids(tmp_path / "logs") == []


def test_sigterm_and_sigint_exit_cleanly(server_db: Path, log_dir: Path, logger: Logger):
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = logger().start()
        proc.wait_ready()
        ids = serverdb.send_many(server_db, 1, prefix=sig.name)
        wait_until(lambda ids=ids: set(ids) <= set(logged_ids(log_dir)), what="the send logged")
        assert proc.stop(sig) == 0
        assert "stopped" in proc.stderr()


def test_line_format_is_compact_ordered_json(server_db: Path, log_dir: Path, logger: Logger):
    # Retention off: 2026-02-20 is past 30 days, and a midnight during the test would
    # have retention delete the file the test reads.
    proc = logger("--retention-days", "0").start()
    proc.wait_ready()
    conn = serverdb.connect(server_db)
    serverdb.send(
        conn,
        "juno",
        "atlas",
        'two\nlines "quoted"',
        timestamp="2026-02-20T00:38:06.815086",
        task_id="t-1",
        reply_to=7,
    )
    conn.close()
    day_file = log_dir / "messages-2026-02-20.json"
    wait_until(lambda: day_file.exists() and day_file.read_bytes().count(b"\n") == 2)
    assert proc.stop() == 0
    first, cc = day_file.read_bytes().split(b"\n")[:2]
    assert first == (
        b'{"id":1,"from_agent":"juno","to_agent":"atlas","content":"two\\nlines \\"quoted\\"",'
        b'"timestamp":"2026-02-20T00:38:06.815086","read_flag":0,"is_cc":0,'
        b'"cc_original_to":null,"task_id":"t-1","reply_to":7}'
    )
    assert json.loads(cc) == {
        "id": 2,
        "from_agent": "juno",
        "to_agent": "lead",
        "content": 'two\nlines "quoted"',
        "timestamp": "2026-02-20T00:38:06.815086",
        "read_flag": 0,
        "is_cc": 1,
        "cc_original_to": "atlas",
        "task_id": "t-1",
        "reply_to": 7,
    }


def test_backfill_routes_by_each_messages_own_day(server_db: Path, log_dir: Path, logger: Logger):
    conn = serverdb.connect(server_db)
    days = ["2026-01-30", "2026-01-31", "2026-02-01"]
    for day in days:
        serverdb.send(conn, "juno", "atlas", f"on {day}", timestamp=f"{day}T23:59:59.999999")
    serverdb.send(conn, "juno", "atlas", "no usable time", timestamp="yesterday-ish")
    conn.close()
    # these days are long past the default 30-day retention, which would skip them
    proc = logger("--import-historical", "--retention-days", "0").start()
    wait_until(lambda: len(log_lines(log_dir)) == 8)
    assert proc.stop() == 0
    for day in days:
        text = (log_dir / f"messages-{day}.json").read_text()
        assert [json.loads(x)["content"] for x in text.splitlines()] == [f"on {day}"] * 2
    fallback = [x for x in log_lines(log_dir) if x["timestamp"] == "yesterday-ish"]
    assert len(fallback) == 2


def test_column_added_while_running_appears_without_restart(
    server_db: Path, log_dir: Path, logger: Logger
):
    proc = logger().start()
    proc.wait_ready()
    first = serverdb.send_many(server_db, 1)
    wait_logged(log_dir, first)
    conn = serverdb.connect(server_db)
    conn.execute("ALTER TABLE messages ADD COLUMN priority INTEGER DEFAULT 3")
    later = serverdb.send(conn, "juno", "atlas", "after the migration")
    conn.close()
    wait_logged(log_dir, first + later)
    assert proc.stop() == 0
    lines = log_lines(log_dir)
    assert "priority" not in lines[0]
    assert list(lines[-1])[-1] == "priority" and lines[-1]["priority"] == 3


def test_never_writes_or_creates_the_database(tmp_path: Path, log_dir: Path, logger: Logger):
    db = tmp_path / "absent.db"
    proc = logger(db=db).start()
    wait_until(lambda: "does not exist" in proc.stderr())
    assert proc.stop() == 0
    assert not db.exists()


def test_repeated_sigkill_under_a_live_writer_loses_and_doubles_nothing(
    server_db: Path, log_dir: Path, logger: Logger
):
    rng = random.Random(1234)
    writer = start_writer(server_db, 1500, interval=0.001)
    first = logger("--import-historical").start()
    first.wait_ready()
    first.kill()
    for _ in range(15):
        proc = logger().start()
        time.sleep(rng.uniform(0.05, 0.5))  # a random instant: mid-batch, mid-fsync, idle...
        proc.kill()
    assert writer.wait(timeout=180) == 0
    final = logger().start()
    final.wait_ready()
    expected = serverdb.all_ids(server_db)
    wait_logged(log_dir, expected)
    assert final.stop() == 0
    assert logged_ids(log_dir) == expected  # every id exactly once
