"""export_historical.py against databases with history, alone and beside a running logger."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import serverdb
from conftest import (
    DEADLINE,
    LoggerProcess,
    day_files,
    log_lines,
    logged_ids,
    start_writer,
    wait_until,
)

from dead_drop_logger import diagnostics

SCRIPT = Path(__file__).resolve().parent.parent / "export_historical.py"


def export(db: Path, log_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--db", str(db), "--log-dir", str(log_dir), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE * 5,
        check=False,
    )


def contents(log_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in day_files(log_dir)}


def test_exports_all_history_exactly_once(server_db: Path, log_dir: Path) -> None:
    ids = serverdb.send_many(server_db, 300)
    done = export(server_db, log_dir)
    assert done.returncode == 0, done.stderr
    assert logged_ids(log_dir) == ids
    assert f"exported {len(ids)} messages with ids 1..{ids[-1]}" in done.stdout
    assert "exporting" not in done.stderr  # no progress bar without a terminal
    before = contents(log_dir)

    again = export(server_db, log_dir)
    assert again.returncode == 0, again.stderr
    assert f"exported 0 messages with ids 1..{ids[-1]}" in again.stdout
    assert f"({len(ids)} already there)" in again.stdout
    assert contents(log_dir) == before


def test_counts_after_a_retention_skip_are_what_is_really_there(
    server_db: Path, log_dir: Path
) -> None:
    """The issue's three runs: 12 messages older than the retention, 20 recent. Runs two
    and three used to say "(32 already there)" though 20 were, and run two dropped the
    retention note."""
    conn = serverdb.connect(server_db)
    old = (dt.datetime.now() - dt.timedelta(days=60)).isoformat()
    for number in range(6):
        serverdb.send(conn, "juno", "atlas", f"old {number}", timestamp=old)
    conn.close()
    serverdb.send_many(server_db, 10, prefix="recent")
    assert len(serverdb.all_ids(server_db)) == 32
    note = (
        "12 messages older than the 30-day retention were not written (retention would"
        " delete them); --retention-days 0 keeps them\n"
    )

    first = export(server_db, log_dir)
    assert (
        first.stdout
        == f"exported 20 messages with ids 1..32 to {log_dir} (0 already there)\n" + note
    )
    second = export(server_db, log_dir)
    assert (
        second.stdout
        == f"exported 0 messages with ids 1..32 to {log_dir} (20 already there)\n" + note
    )
    assert logged_ids(log_dir) == list(range(13, 33))
    third = export(server_db, log_dir, "--retention-days", "0")
    assert third.stdout == f"exported 12 messages with ids 1..32 to {log_dir} (20 already there)\n"
    fourth = export(server_db, log_dir, "--retention-days", "0")
    assert fourth.stdout == f"exported 0 messages with ids 1..32 to {log_dir} (32 already there)\n"
    assert logged_ids(log_dir) == list(range(1, 33))


def test_since_and_until_select_whole_days(server_db: Path, log_dir: Path) -> None:
    conn = serverdb.connect(server_db)
    by_day: dict[str, list[int]] = {}
    for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
        for hour in (0, 12, 23):
            stamp = f"{day}T{hour:02d}:30:00.000001"
            by_day.setdefault(day, []).extend(
                serverdb.send(conn, "juno", "atlas", f"{day} {hour}", timestamp=stamp)
            )
    conn.close()

    # The default 30-day retention would delete March history: said, and not written.
    kept = export(server_db, log_dir, "--since", "2026-03-02", "--until", "2026-03-02")
    assert kept.returncode == 0, kept.stderr
    assert "6 messages older than the 30-day retention were not written" in kept.stdout
    assert logged_ids(log_dir) == []

    keep_all = ("--retention-days", "0")
    done = export(server_db, log_dir, "--since", "2026-03-02", "--until", "2026-03-02", *keep_all)
    assert done.returncode == 0, done.stderr
    assert logged_ids(log_dir) == by_day["2026-03-02"]
    assert [p.name for p in day_files(log_dir)] == ["messages-2026-03-02.json"]

    rest = export(server_db, log_dir, "--since", "2026-03-01", *keep_all)
    assert rest.returncode == 0, rest.stderr
    assert logged_ids(log_dir) == sorted(i for ids in by_day.values() for i in ids)
    assert all(line["timestamp"].startswith("2026-03-0") for line in log_lines(log_dir))

    empty = export(server_db, log_dir, "--since", "2027-01-01")
    assert empty.returncode == 0 and "nothing to export" in empty.stdout
    backwards = export(server_db, log_dir, "--since", "2026-03-03", "--until", "2026-03-01")
    assert backwards.returncode == 2 and "--since is after --until" in backwards.stderr


def test_missing_database_is_one_line(tmp_path: Path, log_dir: Path) -> None:
    done = export(tmp_path / "nowhere.db", log_dir)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("does not exist") and done.stderr.count("\n") == 1


def test_a_file_that_is_no_database_is_one_line_at_once(tmp_path: Path, log_dir: Path) -> None:
    """No retries (waiting cannot make it a database), no advice to run it again, and no
    log directory made for nothing."""
    not_db = tmp_path / "passwd"
    not_db.write_text("root:x:0:0:root:/root:/bin/bash\n" * 50)
    done = export(not_db, log_dir)
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"export_historical.py: error: database {not_db} is not usable: file is not a database\n",
    )
    assert not log_dir.exists()
    backwards = export(not_db, log_dir, "--since", "2026-02-20", "--until", "2026-02-19")
    assert (backwards.returncode, backwards.stderr) == (
        2,
        "export_historical.py: error: invalid value for --since: --since is after --until\n",
    )


def test_its_log_lines_are_tagged_export_historical() -> None:
    stream = io.StringIO()
    diagnostics.configure("info", stream=stream, tag="export_historical")
    try:
        logging.getLogger("dead_drop_logger.export").warning("database busy; retrying")
    finally:
        diagnostics.configure("info", stream=sys.stderr)
    assert stream.getvalue().endswith(" export_historical WARNING: database busy; retrying\n")


def test_beside_a_running_logger_nothing_is_lost_or_doubled(
    server_db: Path, log_dir: Path, logger: Callable[..., LoggerProcess]
) -> None:
    history = serverdb.send_many(server_db, 15000, prefix="history")  # several pages
    # A follower that imports the same history itself: two backfills race for it.
    follower = logger("--import-historical").start()
    follower.wait_ready()
    writer = start_writer(server_db, 300)
    try:
        done = export(server_db, log_dir)
        assert done.returncode == 0, done.stderr
    finally:
        writer.wait(timeout=DEADLINE)
    everything = serverdb.all_ids(server_db)
    assert everything[: len(history)] == history
    wait_until(lambda: logged_ids(log_dir) == everything, what="every message exactly once")
    assert follower.stop() == 0


def test_progress_bar_on_a_terminal(server_db: Path, log_dir: Path) -> None:
    serverdb.send_many(server_db, 50)
    primary, secondary = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--db", str(server_db), "--log-dir", str(log_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=DEADLINE) == 0
    finally:
        os.close(primary)
    assert b"exporting" in output and b"100%" in output
