"""import-archive: an archived hub room into its room's log directory, exactly once."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import serverdb
from conftest import LoggerProcess, logged_ids, run_command, wait_until

WHEN = dt.datetime(2026, 11, 29, 9, 30, 0)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}


def archive_of(rooms: Path, name: str, sends: int, tmp_path: Path) -> tuple[Path, list[int]]:
    db = serverdb.room_db(rooms, name)
    db.parent.mkdir(parents=True)
    serverdb.create(db)
    ids = serverdb.send_many(db, sends, prefix=name)
    return serverdb.archive_room(rooms, name, tmp_path / "archive", WHEN), ids


def test_an_archive_is_imported_once_and_a_second_run_writes_nothing(tmp_path: Path) -> None:
    archive, ids = archive_of(tmp_path / "rooms", "ops", 7, tmp_path)
    packed = archive / "messages.db.gz"
    assert archive.name == "ops_20261129-093000"
    logs = tmp_path / "logs"
    args = ("import-archive", str(packed), "--room", "ops", "--log-dir", str(logs))
    first = run_command(*args, env=env())
    assert (first.returncode, first.stderr) == (0, "")
    assert (
        first.stdout
        == f"imported 14 messages from {packed} into {logs / 'ops'} (0 already there)\n"
    )
    assert logged_ids(logs / "ops") == ids
    second = run_command(*args, env=env())
    assert second.returncode == 0
    assert (
        second.stdout
        == f"imported 0 messages from {packed} into {logs / 'ops'} (14 already there)\n"
    )
    assert logged_ids(logs / "ops") == ids


def test_a_followed_room_gets_only_what_it_had_not_logged(tmp_path: Path) -> None:
    rooms, logs = tmp_path / "rooms", tmp_path / "logs"
    db = serverdb.room_db(rooms, "dev")
    db.parent.mkdir(parents=True)
    serverdb.create(db)
    target = ["--rooms-dir", str(rooms), "--log-dir", str(logs)]
    proc = LoggerProcess(db, logs, target=target, env=env()).start()
    wait_until(lambda: "room dev: following " in proc.stderr(), what="room dev followed")
    seen = serverdb.send_many(db, 5, prefix="seen")
    wait_until(lambda: logged_ids(logs / "dev") == seen, what="the followed messages")
    assert proc.stop() == 0
    unseen = serverdb.send_many(db, 4, prefix="unseen")  # the logger is down meanwhile
    archive = serverdb.archive_room(rooms, "dev", tmp_path / "archive", WHEN)
    packed = archive / "messages.db.gz"
    args = ("import-archive", str(packed), "--room", "dev", "--log-dir", str(logs))
    done = run_command(*args, env=env())
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == f"imported 8 messages from {packed} into {logs / 'dev'} (10 already there)\n"
    )
    assert logged_ids(logs / "dev") == seen + unseen
    again = run_command(*args, env=env())
    assert again.stdout.startswith("imported 0 messages")
    assert logged_ids(logs / "dev") == seen + unseen
    # The room's log still names the room's own database, not the unpacked copy.
    state = json.loads((logs / "dev" / ".dead-drop-logger.state").read_bytes())
    assert state["database"] == str(db)


def test_an_archive_of_another_database_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    first, _ = archive_of(tmp_path / "rooms", "x", 3, tmp_path)
    assert (
        run_command(
            "import-archive",
            str(first / "messages.db.gz"),
            "--room",
            "x",
            "--log-dir",
            str(logs),
            env=env(),
        ).returncode
        == 0
    )
    before = logged_ids(logs / "x")
    other, _ = archive_of(tmp_path / "rooms2", "x", 5, tmp_path / "b")
    packed = other / "messages.db.gz"
    refused = run_command(
        "import-archive", str(packed), "--room", "x", "--log-dir", str(logs), env=env()
    )
    assert refused.returncode == 1
    assert refused.stderr == (
        f"dead-drop-logger: error: {packed} is not the database logged in {logs / 'x'}"
        " (its message 6 differs): import it as another room\n"
    )
    assert logged_ids(logs / "x") == before


def test_bad_archives_are_one_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    missing = tmp_path / "nope.db.gz"
    done = run_command(
        "import-archive", str(missing), "--room", "r", "--log-dir", str(logs), env=env()
    )
    assert (done.returncode, done.stderr) == (
        1,
        f"dead-drop-logger: error: {missing} does not exist\n",
    )
    garbage = tmp_path / "garbage.db.gz"
    garbage.write_bytes(b"not gzip at all")
    done = run_command(
        "import-archive", str(garbage), "--room", "r", "--log-dir", str(logs), env=env()
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"dead-drop-logger: error: cannot unpack {garbage}: ")
    assert done.stderr.count("\n") == 1
    bad_name = run_command("import-archive", str(garbage), "--room", "../up", env=env())
    assert bad_name.returncode == 2
