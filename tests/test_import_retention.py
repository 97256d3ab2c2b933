"""The imports (import-archive, run --import-historical) say what retention would delete
before they write, and leave it out; run --import-historical shows a progress bar on a
terminal, and nothing on a pipe."""

from __future__ import annotations

import datetime as dt
import os
import pty
import signal
import subprocess
import threading
from pathlib import Path

import serverdb
from conftest import DEADLINE, logged_ids, logger_command, run_command, wait_until


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}


def test_import_archive_leaves_out_and_says_what_retention_would_delete(tmp_path: Path) -> None:
    rooms = tmp_path / "rooms"
    db = serverdb.room_db(rooms, "ops")
    db.parent.mkdir(parents=True)
    serverdb.create(db)
    conn = serverdb.connect(db)
    stamp = (dt.datetime.now() - dt.timedelta(days=90)).isoformat()
    old = [i for n in range(2) for i in serverdb.send(conn, "a", "b", f"old {n}", timestamp=stamp)]
    conn.close()
    recent = serverdb.send_many(db, 3, prefix="recent")
    archive = serverdb.archive_room(rooms, "ops", tmp_path / "archive", dt.datetime(2026, 11, 29))
    packed = archive / "messages.db.gz"
    logs = tmp_path / "logs"
    args = ("import-archive", str(packed), "--room", "ops", "--log-dir", str(logs))

    first = run_command(*args, env=env())
    assert first.returncode == 0, first.stderr
    oldest = (dt.date.today() - dt.timedelta(days=90)).isoformat()
    assert first.stderr.startswith(
        f"dead-drop-logger: {len(old)} messages on 1 days from {oldest} are older than the"
        " 30-day retention"
    )
    assert f"imported {len(recent)} messages" in first.stdout
    assert f"{len(old)} messages older than the 30-day retention were not written" in first.stdout
    assert logged_ids(logs / "ops") == recent

    everything = run_command(*args, "--retention-days", "0", env=env())
    assert (everything.returncode, everything.stderr) == (0, "")
    assert f"imported {len(old)} messages" in everything.stdout
    assert logged_ids(logs / "ops") == old + recent


def test_run_import_historical_shows_progress_on_a_terminal_only(
    server_db: Path, tmp_path: Path
) -> None:
    ids = serverdb.send_many(server_db, 40)
    logs = tmp_path / "logs"
    command = [
        *logger_command(),
        "run",
        "--import-historical",
        "--db",
        str(server_db),
        "--log-dir",
        str(logs),
    ]
    primary, secondary = pty.openpty()
    output = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                return
            if not chunk:
                return
            output.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    try:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary
        )
        os.close(secondary)
        reader.start()
        wait_until(lambda: logged_ids(logs) == ids, what="the import")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0
        reader.join(timeout=DEADLINE)
    finally:
        os.close(primary)
    total = len(ids)
    assert f"importing history  0/{total} rows  0%".encode() in output
    assert f"importing history  {total}/{total} rows  100%".encode() in output

    piped_logs = tmp_path / "piped"
    with open(tmp_path / "stderr.txt", "wb") as err:
        piped = subprocess.Popen(
            [*command[:-1], str(piped_logs)], stdin=subprocess.DEVNULL, stderr=err
        )
        wait_until(lambda: logged_ids(piped_logs) == ids, what="the piped import")
        piped.send_signal(signal.SIGTERM)
        assert piped.wait(timeout=DEADLINE) == 0
    said = (tmp_path / "stderr.txt").read_text()
    assert "historical import: " in said and " rows" not in said


def test_import_archive_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    """(On a pipe it prints nothing on stderr: test_import_archive's first test.)"""
    rooms = tmp_path / "rooms"
    db = serverdb.room_db(rooms, "ops")
    db.parent.mkdir(parents=True)
    serverdb.create(db)
    ids = serverdb.send_many(db, 30)
    archive = serverdb.archive_room(rooms, "ops", tmp_path / "archive", dt.datetime(2026, 11, 29))
    logs = tmp_path / "logs"
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [
                *logger_command(),
                "import-archive",
                str(archive / "messages.db.gz"),
                "--room",
                "ops",
                "--log-dir",
                str(logs),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
            env=env(),
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
    total = len(ids)
    assert f"importing  0/{total} rows  0%".encode() in output
    assert f"importing  {total}/{total} rows  100%".encode() in output
    assert logged_ids(logs / "ops") == ids


def days_of_history(db: Path, days: int) -> tuple[list[dt.date], list[int]]:
    """One message on each of the ``days`` days before today."""
    conn = serverdb.connect(db)
    dates = [dt.date.today() - dt.timedelta(days=n) for n in range(days, 0, -1)]
    ids = [
        i
        for day in dates
        for i in serverdb.send(conn, "a", "b", f"on {day}", timestamp=f"{day}T12:00:00")
    ]
    conn.close()
    return dates, ids


def test_export_says_what_keep_files_would_delete_before_writing(
    tmp_path: Path, server_db: Path, home_env: dict[str, str]
) -> None:
    dates, ids = days_of_history(server_db, 4)
    logs = tmp_path / "logs"
    settings = tmp_path / "config.toml"
    settings.write_text(f'db = "{server_db}"\nlog_dir = "{logs}"\nkeep_files = 2\n')
    done = run_command("export", env={**home_env, "DEAD_DROP_CONFIG": str(settings)})
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "dead-drop-logger: keep_files = 2 keeps only the newest 2 log files, and with this"
        f" import the log holds at least 4 (from {dates[0]}): the logger's next start or"
        f" midnight deletes the 2 oldest days, through {dates[1]}, 2 of them written now;"
        " unset keep_files (or set it to 4 or more) to keep them\n"
    )
    assert logged_ids(logs) == ids


def test_run_import_historical_keeps_as_many_days_as_keep_files(
    server_db: Path, tmp_path: Path
) -> None:
    """Today's empty file is not one of the --keep-files N: N days imported all stay."""
    _, ids = days_of_history(server_db, 3)
    logs = tmp_path / "logs"
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [
                *logger_command(),
                "run",
                "--import-historical",
                "--keep-files",
                "3",
                "--db",
                str(server_db),
                "--log-dir",
                str(logs),
            ],
            stdin=subprocess.DEVNULL,
            stderr=err,
            env=env(),
        )
        wait_until(
            lambda: "historical import: " in (tmp_path / "stderr.txt").read_text(),
            what="the import",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0
    assert logged_ids(logs) == ids
    assert "keep_files" not in (tmp_path / "stderr.txt").read_text()  # nothing to say
