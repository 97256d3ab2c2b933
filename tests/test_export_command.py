"""``dead-drop-logger export`` (and ``export_historical.py``, its wrapper) read the same
settings as ``run``: config.toml, DEAD_DROP_CONFIG, the environment, every room; and
history retention would delete is said before anything is written."""

from __future__ import annotations

import datetime as dt
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import serverdb
from conftest import DEADLINE, logged_ids, logger_command, run_command

SCRIPT = Path(__file__).resolve().parent.parent / "export_historical.py"


def script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE * 5,
        check=False,
    )


def run_export(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_command("export", *args, env=env)


def old_and_recent(db: Path) -> tuple[list[int], list[int]]:
    conn = serverdb.connect(db)
    stamp = (dt.datetime.now() - dt.timedelta(days=60)).isoformat()
    old = [
        i
        for n in range(3)
        for i in serverdb.send(conn, "juno", "atlas", f"old {n}", timestamp=stamp)
    ]
    conn.close()
    return old, serverdb.send_many(db, 4, prefix="recent")


@pytest.mark.parametrize("how", ["default place", "DEAD_DROP_CONFIG", "export_historical.py"])
def test_export_reads_the_settings_file(
    tmp_path: Path, server_db: Path, home_env: dict[str, str], how: str
) -> None:
    ids = serverdb.send_many(server_db, 30)
    logs = tmp_path / "elsewhere"
    text = f'db = "{server_db}"\nlog_dir = "{logs}"\n'
    env = dict(home_env)
    if how == "default place":
        settings = Path(home_env["HOME"]) / ".config" / "dead-drop-logger" / "config.toml"
        settings.parent.mkdir(parents=True)
    else:
        settings = tmp_path / "mine.toml"
        env["DEAD_DROP_CONFIG"] = str(settings)
    settings.write_text(text)
    export = script if how == "export_historical.py" else run_export
    done = export(env=env)
    assert done.returncode == 0, done.stderr
    assert f"exported {len(ids)} messages with ids 1..{ids[-1]} to {logs}" in done.stdout
    assert logged_ids(logs) == ids


def test_export_covers_every_room_run_follows(tmp_path: Path, home_env: dict[str, str]) -> None:
    rooms = tmp_path / "hub"
    ids = {}
    for name in ("dev", "ops"):
        (rooms / name).mkdir(parents=True)
        serverdb.create(rooms / name / "messages.db")
        ids[name] = serverdb.send_many(rooms / name / "messages.db", 5 + len(name), prefix=name)
    (rooms / "empty").mkdir()  # a room the hub has not made its database in yet
    logs = tmp_path / "logs"
    settings = tmp_path / "config.toml"
    settings.write_text(f'rooms_dir = "{rooms}"\nlog_dir = "{logs}"\n')
    done = run_command("export", env={**home_env, "DEAD_DROP_CONFIG": str(settings)})
    assert done.returncode == 0, done.stderr
    assert logged_ids(logs / "dev") == ids["dev"]
    assert logged_ids(logs / "ops") == ids["ops"]
    assert done.stdout.count("exported ") == 2
    assert f"room empty: no database at {rooms / 'empty' / 'messages.db'}" in done.stdout


def test_history_retention_would_delete_is_said_before_and_not_written(
    tmp_path: Path, server_db: Path, home_env: dict[str, str]
) -> None:
    old, recent = old_and_recent(server_db)
    logs = tmp_path / "logs"
    settings = tmp_path / "config.toml"
    settings.write_text(f'db = "{server_db}"\nlog_dir = "{logs}"\n')
    env = {**home_env, "DEAD_DROP_CONFIG": str(settings)}

    done = run_command("export", env=env)
    assert done.returncode == 0, done.stderr
    first_kept = dt.date.today() - dt.timedelta(days=30)
    oldest = (dt.date.today() - dt.timedelta(days=60)).isoformat()
    assert done.stderr == (
        f"dead-drop-logger: {len(old)} messages on 1 days from {oldest} are older than the 30-day"
        f" retention (before {first_kept}): not written, as retention would delete them;"
        " retention_days = 0 in the settings file (or --retention-days 0 for the logger"
        " too) keeps everything\n"
    )
    assert logged_ids(logs) == recent

    # Kept only on this command line: said, since the logger's retention deletes them.
    override = run_command("export", "--retention-days", "0", env=env)
    assert override.returncode == 0, override.stderr
    assert "a logger with these settings keeps 30 days (the default)" in override.stderr
    assert logged_ids(logs) == old + recent

    # The settings keep everything: nothing to say.
    (logs_all := tmp_path / "all").mkdir()
    settings.write_text(f'db = "{server_db}"\nlog_dir = "{logs_all}"\nretention_days = 0\n')
    quiet = run_command("export", env=env)
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert logged_ids(logs_all) == old + recent


def read_terminal(primary: int) -> bytes:
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        output += chunk
    return output


def test_progress_bar_on_a_terminal_only(server_db: Path, log_dir: Path) -> None:
    """Rows done of the total, the rate and the time taken, on a real pseudo-terminal;
    nothing on a pipe."""
    ids = serverdb.send_many(server_db, 50)
    total = len(ids)
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*logger_command(), "export", "--db", str(server_db), "--log-dir", str(log_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
        )
        os.close(secondary)
        output = read_terminal(primary)
        assert proc.wait(timeout=DEADLINE) == 0
    finally:
        os.close(primary)
    assert f"exporting  0/{total} rows  0%".encode() in output
    assert f"exporting  {total}/{total} rows  100%  ".encode() in output
    assert b" rows/s  done in 0:" in output
    assert logged_ids(log_dir) == ids

    piped = subprocess.run(
        [*logger_command(), "export", "--db", str(server_db), "--log-dir", str(log_dir / "b")],
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    assert (piped.returncode, piped.stderr) == (0, b"")
