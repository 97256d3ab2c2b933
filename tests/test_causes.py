"""Issue 17: each error names its cause, and a normal event is not a warning.

Real processes on real files; permission denied is made with file modes (as root,
without the capabilities that bypass them: see ``conftest.UNPRIVILEGED``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import serverdb
from conftest import UNPRIVILEGED, logged_ids, run_command, wait_until
from procs import Reaper

STATE = ".dead-drop-logger.state"


def test_an_unreadable_state_file_is_not_set_aside_as_corrupt(
    server_db: Path, log_dir: Path, logger
) -> None:
    first = logger().start()
    first.wait_ready()
    ids = serverdb.send_many(server_db, 2)
    wait_until(lambda: logged_ids(log_dir) == ids, what="the first messages logged")
    assert first.stop() == 0
    state = log_dir / STATE
    state.chmod(0)
    second = logger(wrapper=UNPRIVILEGED).start()
    try:
        wait_until(lambda: "permission denied" in second.stderr(), what="the reason said")
        assert f"WARNING: cannot read {state}: permission denied; retrying" in second.stderr()
        assert not (log_dir / (STATE + ".corrupt")).exists()
        assert "corrupt" not in second.stderr() and "rebuilding" not in second.stderr()
        state.chmod(0o600)  # the user fixes it: the logger carries on from its state
        more = serverdb.send_many(server_db, 2, prefix="after")
        wait_until(lambda: logged_ids(log_dir) == ids + more, what="the later messages")
    finally:
        state.chmod(0o600)
        assert second.stop() == 0
    assert "recovered" in second.stderr()


def test_a_path_whose_directory_does_not_exist_is_refused_at_once(
    tmp_path: Path, log_dir: Path, home_env: dict[str, str]
) -> None:
    """A mistyped --db or --rooms-dir directory waited for ever with one warning: nothing
    will ever make it. One line, exit 2, before anything is written. (A database file
    missing in a directory that exists is still waited for: the server makes it.)"""
    typo = tmp_path / "dead-dorp" / "messages.db"
    rooms = tmp_path / "srv" / "rooms"
    cases = {
        ("--db", str(typo)): f"database {typo} cannot appear: directory {typo.parent}"
        " does not exist (check --db)",
        ("--db", f"ops={typo}"): f"database {typo} cannot appear: directory {typo.parent}"
        " does not exist (check --db ops)",
        ("--rooms-dir", str(rooms)): f"the rooms directory {rooms} cannot appear: directory"
        f" {rooms.parent} does not exist (check --rooms-dir)",
    }
    for args, why in cases.items():
        for command in ("run", "start"):
            done = run_command(command, *args, "--log-dir", str(log_dir), env=home_env)
            assert (done.returncode, done.stdout) == (2, ""), done.stderr
            assert done.stderr == f"dead-drop-logger: error: {why}\n"
            assert not log_dir.exists()
    assert run_command("status", env=home_env).returncode == 3


def _status(env: dict[str, str], wrapper: list[str] | None = None) -> tuple[int, dict[str, Any]]:
    done = run_command("status", "--json", env=env, wrapper=wrapper or [])
    return done.returncode, json.loads(done.stdout)


def test_status_names_a_database_that_cannot_be_read_with_its_reason(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    """Issue 17: with a database that is not a database, status said running, exit 0,
    problems: []; the reason was only in logger.log. Missing and permission denied too."""
    db = tmp_path / "messages.db"
    db.write_bytes(b"this is not a database" * 100)
    log_dir = tmp_path / "logs"
    reaper = Reaper()
    args = ("--db", str(db), "--log-dir", str(log_dir), "--poll-interval", "0.05")
    done = run_command("start", *args, env=home_env, wrapper=UNPRIVILEGED)
    assert done.returncode == 0, done.stderr
    reaper.add(int(done.stdout.split("pid ")[1].split(")")[0]))
    try:
        code, info = _status(home_env)
        assert (code, info["status"]) == (150, "running")
        assert info["problems"] == [f"database {db} is not usable: file is not a database"]
        text = run_command("status", env=home_env)
        assert text.returncode == 150
        problem = f"  problem: database {db} is not usable: file is not a database"
        assert problem in text.stdout.splitlines(), text.stdout

        serverdb.create(db.with_name("real.db"))
        db.with_name("real.db").rename(db)  # the server's database now: readable
        db.chmod(0)
        code, info = _status(home_env, UNPRIVILEGED)
        assert code == 150
        assert info["problems"] == [f"cannot read database {db}: permission denied"], info
        wait_until(
            lambda: f"cannot read database {db}: permission denied" in _daemon_log(home_env),
            what="the daemon to say why too",
        )

        db.unlink()
        code, info = _status(home_env)
        assert (code, info["problems"]) == (150, [f"database {db} does not exist"])

        serverdb.create(db)
        wait_until(lambda: _status(home_env)[0] == 0, what="status to find no problem")
        assert _status(home_env)[1]["problems"] == []
    finally:
        run_command("stop", env=home_env)
        reaper.kill_all()


def _daemon_log(env: dict[str, str]) -> str:
    path = Path(env["HOME"]) / ".dead-drop" / "logger.log"
    return path.read_text() if path.exists() else ""


def test_a_wal_database_in_a_read_only_directory_says_so(tmp_path: Path, logger) -> None:
    """SQLite says "attempt to write a readonly database": a reader of a WAL database
    needs its -shm file, made beside it."""
    db = tmp_path / "server" / "messages.db"
    db.parent.mkdir()
    serverdb.create(db)
    serverdb.send_many(db, 1)
    assert not Path(f"{db}-shm").exists()  # (the server's last connection removed it)
    db.parent.chmod(0o555)
    proc = logger(db=db, wrapper=UNPRIVILEGED).start()
    try:
        why = (
            f"cannot read database {db}: it is in WAL mode and its directory {db.parent} is"
            " read-only (reading it needs messages.db-shm there: make the directory writable"
            " for this user)"
        )
        wait_until(lambda: why in proc.stderr(), what="the reason said")
        assert "readonly database" not in proc.stderr()
    finally:
        db.parent.chmod(0o755)
        assert proc.stop() == 0


def _levels(stderr: str) -> list[tuple[str, str]]:
    """Each line's level and message, in order."""
    found = []
    for line in stderr.splitlines():
        _stamp, _tag, rest = line.split(" ", 2)
        level, _, message = rest.partition(": ")
        found.append((level, message))
    return found


def test_the_server_creating_its_database_is_info_not_a_warning(
    tmp_path: Path, log_dir: Path, logger
) -> None:
    """The server makes the file, then its tables: the logger waiting meanwhile said
    WARNING "has no messages table; retrying", then "recovered". Now: the one warning that
    the database does not exist (a path may be mistyped), then info lines."""
    db = tmp_path / "server" / "messages.db"
    db.parent.mkdir()
    proc = logger(db=db).start()
    proc.wait_ready()
    wait_until(lambda: "does not exist; waiting for it" in proc.stderr(), what="waiting")
    serverdb.connect(db).close()  # the server's first step: the file, in WAL mode
    wait_until(lambda: "no messages table" in proc.stderr(), what="the logger to see it")
    serverdb.create(db)  # then its tables
    ids = serverdb.send_many(db, 2)
    wait_until(lambda: logged_ids(log_dir) == ids, what="its messages logged")
    assert proc.stop() == 0
    lines = _levels(proc.stderr())
    assert [m for level, m in lines if level != "INFO"] == [
        f"database {db} does not exist; waiting for it"
    ], proc.stderr()
    assert ("INFO", f"database {db} is being created (no messages table yet); waiting") in lines
    assert ("INFO", f"database {db} is ready; logging it") in lines
    assert not any("recovered" in m for _level, m in lines), proc.stderr()


def test_a_new_hub_room_is_info_not_a_warning(tmp_path: Path, log_dir: Path, logger) -> None:
    rooms = tmp_path / "rooms"
    rooms.mkdir()
    proc = logger(target=["--rooms-dir", str(rooms), "--log-dir", str(log_dir)]).start()
    wait_until(lambda: "following the rooms" in proc.stderr(), what="the rooms followed")
    db = serverdb.room_db(rooms, "ops")
    db.parent.mkdir()
    serverdb.connect(db).close()
    wait_until(lambda: "no messages table" in proc.stderr(), what="the room's follower")
    serverdb.create(db)
    ids = serverdb.send_many(db, 2)
    wait_until(lambda: logged_ids(log_dir / "ops") == ids, what="the room's messages logged")
    assert proc.stop() == 0
    lines = _levels(proc.stderr())
    assert [m for level, m in lines if level != "INFO"] == [], proc.stderr()
    assert not any("recovered" in m for _level, m in lines), proc.stderr()
    assert ("INFO", f"room ops: database {db} is ready; logging it") in lines
