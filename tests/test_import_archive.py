"""import-archive: an archived hub room into its room's log directory, exactly once."""

from __future__ import annotations

import datetime as dt
import fcntl
import gzip
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import serverdb
from conftest import (
    LoggerProcess,
    log_lines,
    logged_ids,
    logger_command,
    run_command,
    wait_until,
)

from dead_drop_logger.record.archive import ArchiveError, import_archive

WHEN = dt.datetime(2026, 11, 29, 9, 30, 0)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}


def make_room_db(rooms: Path, name: str, sends: int) -> tuple[Path, list[int]]:
    db = serverdb.room_db(rooms, name)
    db.parent.mkdir(parents=True)
    serverdb.create(db)
    return db, serverdb.send_many(db, sends, prefix=name)


def archive_of(rooms: Path, name: str, sends: int, tmp_path: Path) -> tuple[Path, list[int]]:
    _, ids = make_room_db(rooms, name, sends)
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
    assert (done.returncode, done.stderr) == (  # a usage error, as search on a missing dir
        2,
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


@pytest.mark.parametrize("when", ["at the first start", "found later"])
def test_a_room_archived_while_followed_lacks_its_wal_and_is_still_its_room(
    tmp_path: Path, when: str
) -> None:
    """The hub gzips messages.db without its -wal; the following logger's connection
    kept SQLite from checkpointing, so the archive ends below the logged position."""
    rooms, logs = tmp_path / "rooms", tmp_path / "logs"
    rooms.mkdir()
    target = ["--rooms-dir", str(rooms), "--log-dir", str(logs)]
    if when == "found later":  # a first start before the room exists
        first = LoggerProcess(rooms, logs, target=target, env=env()).start()
        wait_until(lambda: "INFO: " in first.stderr(), what="the first start")
        assert first.stop() == 0
    db = serverdb.room_db(rooms, "h")
    db.parent.mkdir()
    serverdb.create(db)
    early = serverdb.send_many(db, 5, prefix="early")  # checkpointed: no reader holds it
    proc = LoggerProcess(db, logs, target=target, env=env()).start()
    wait_until(lambda: "room h: following " in proc.stderr(), what="room h followed")
    late = serverdb.send_many(db, 2, prefix="late")  # only in the WAL, held open by it
    logged = early + late if when == "found later" else late
    wait_until(lambda: logged_ids(logs / "h") == logged, what="the followed messages")
    archive = serverdb.archive_room(rooms, "h", tmp_path / "archive", WHEN)
    wait_until(lambda: "released" in proc.stderr(), what="room h released")
    assert proc.stop() == 0
    packed = archive / "messages.db.gz"
    args = ("import-archive", str(packed), "--room", "h", "--log-dir", str(logs))
    done = run_command(*args, env=env())
    assert (done.returncode, done.stderr) == (0, "")
    new, there = (0, 10) if when == "found later" else (10, 0)
    assert done.stdout == (
        f"imported {new} messages from {packed} into {logs / 'h'} ({there} already there)\n"
    )
    assert logged_ids(logs / "h") == early + late
    again = run_command(*args, env=env())
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout == (
        f"imported 0 messages from {packed} into {logs / 'h'} (10 already there)\n"
    )
    assert logged_ids(logs / "h") == early + late


def test_a_gzipped_non_database_names_the_archive_and_leaves_no_room_behind(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    packed = tmp_path / "notes.db.gz"
    with gzip.open(packed, "wb") as out:
        out.write(b"these are notes, not a database\n" * 100)
    done = run_command(
        "import-archive", str(packed), "--room", "x3", "--log-dir", str(logs), env=env()
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"dead-drop-logger: error: {packed} is not a Dead Drop messages database"
        " (is not usable: file is not a database)\n"
    )
    assert not logs.exists()


def test_a_loose_log_dir_is_tightened_as_run_does(tmp_path: Path) -> None:
    archive, _ = archive_of(tmp_path / "rooms", "ops", 2, tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    logs.chmod(0o755)
    done = run_command(
        "import-archive",
        str(archive / "messages.db.gz"),
        "--room",
        "ops",
        "--log-dir",
        str(logs),
        env=env(),
    )
    assert done.returncode == 0, done.stderr
    assert (logs.stat().st_mode & 0o777, (logs / "ops").stat().st_mode & 0o777) == (0o700, 0o700)


def state_of(room_log: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((room_log / ".dead-drop-logger.state").read_bytes())
    return loaded


def room_imported(tmp_path: Path, sends: int, **environ: str) -> tuple[Path, Path, list[int]]:
    """Room ops archived and imported into a fresh log: (rooms dir, log dir, its ids)."""
    rooms, logs = tmp_path / "rooms", tmp_path / "logs"
    archive, ids = archive_of(rooms, "ops", sends, tmp_path)
    args = ("import-archive", str(archive / "messages.db.gz"), "--room", "ops")
    done = run_command(*args, "--log-dir", str(logs), env={**env(), **environ})
    assert done.returncode == 0, done.stderr
    return rooms, logs, ids


def room_comes_back_and_is_logged_from_row_1(rooms: Path, logs: Path, ids: list[int]) -> None:
    """Room ops made again under its name (a new database) and followed: its log takes
    it, from its first row, and records its path."""
    db, again = make_room_db(rooms, "ops", 2)
    target = ["--rooms-dir", str(rooms), "--log-dir", str(logs)]
    proc = LoggerProcess(db, logs, target=target, env=env()).start()
    wait_until(lambda: logged_ids(logs / "ops") == sorted(ids + again), what="the room again")
    assert proc.stop() == 0
    assert state_of(logs / "ops")["database"] == str(db)


def test_a_room_log_an_archive_started_belongs_to_the_room_and_refuses_another_database(
    tmp_path: Path,
) -> None:
    rooms, logs, ids = room_imported(tmp_path, 5)
    assert state_of(logs / "ops")["database"] == "room:ops"
    other = tmp_path / "other.db"
    serverdb.create(other)
    serverdb.send_many(other, 3, prefix="other")
    refused = run_command(
        "run", "--db", str(other), "--log-dir", str(logs / "ops"), "--no-watch", env=env()
    )
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"dead-drop-logger: error: log directory {logs / 'ops'} holds the messages of"
        f" database room:ops, not {other}; give {other} another --log-dir\n"
    )
    assert logged_ids(logs / "ops") == ids
    room_comes_back_and_is_logged_from_row_1(rooms, logs, ids)


def test_an_import_stopped_after_any_page_leaves_the_room_its_owner_and_no_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a kill -9 or a SIGTERM after any committed page leaves: the state names the
    room, never the unpacked copy; the copy is gone; a second run finishes the job."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    archive, ids = archive_of(tmp_path / "rooms", "ops", 600, tmp_path)  # > one page
    logs = tmp_path / "logs"
    seen: list[object] = []

    def stop_after_a_page() -> bool:
        if (logs / "ops" / ".dead-drop-logger.state").exists():
            seen.append(state_of(logs / "ops")["database"])
        return bool(logged_ids(logs / "ops")) if (logs / "ops").exists() else False

    packed = archive / "messages.db.gz"
    first = import_archive(packed, logs, "ops", should_stop=stop_after_a_page)
    assert first.interrupted and 0 < first.written < len(ids)
    assert seen and set(seen) == {"room:ops"}
    assert list(temp.iterdir()) == []
    second = import_archive(packed, logs, "ops")
    assert not second.interrupted and first.written + second.written == len(ids)
    assert logged_ids(logs / "ops") == ids
    assert state_of(logs / "ops")["database"] == "room:ops"


def test_the_copy_a_killed_import_left_is_removed_by_the_next_one(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    (temp / "dead-drop-archive-killed").mkdir(parents=True)
    (temp / "dead-drop-archive-killed" / "messages.db").write_bytes(b"\0" * 4096)
    (temp / "dead-drop-archive-running").mkdir()  # another import's, in use
    running = os.open(temp / "dead-drop-archive-running", os.O_RDONLY)
    try:
        fcntl.flock(running, fcntl.LOCK_EX)
        room_imported(tmp_path, 2, TMPDIR=str(temp))
        assert [p.name for p in temp.iterdir()] == ["dead-drop-archive-running"]
    finally:
        os.close(running)


def test_sigterm_during_an_import_removes_its_copy_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    temp, logs = tmp_path / "tmp", tmp_path / "logs"
    temp.mkdir()
    archive, _ = archive_of(tmp_path / "rooms", "ops", 2, tmp_path)
    (logs / "ops").mkdir(parents=True, mode=0o700)
    lock = os.open(logs / "ops" / ".dead-drop-logger.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a batch in progress: the import waits for it
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
            env={**env(), "TMPDIR": str(temp)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: any(temp.iterdir()), what="the archive unpacked")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(lock)
    assert (proc.returncode, out) == (1, "")
    assert err.startswith("dead-drop-logger: error: ") and err.count("\n") == 1, err
    assert err.endswith("; run it again to resume (nothing is written twice)\n"), err
    assert list(temp.iterdir()) == []


def test_a_state_an_older_import_left_naming_its_deleted_copy_lets_the_room_back_in(
    tmp_path: Path,
) -> None:
    rooms, logs, ids = room_imported(tmp_path, 3)
    state_file = logs / "ops" / ".dead-drop-logger.state"
    old = state_file.read_text().replace('"room:ops"', '"/tmp/dead-drop-archive-x1y2/messages.db"')
    state_file.write_text(old)  # what an import killed by an older version left
    room_comes_back_and_is_logged_from_row_1(rooms, logs, ids)


def room_db_with(rooms: Path, name: str, sends: int, prefix: str) -> tuple[Path, list[int]]:
    db = serverdb.room_db(rooms, name)
    db.parent.mkdir(parents=True)
    serverdb.create(db)
    return db, serverdb.send_many(db, sends, prefix=prefix)


def test_an_import_whose_room_is_made_again_meanwhile_stops_and_writes_nothing_twice(
    tmp_path: Path,
) -> None:
    """The race the review found: room ops archived, made again under its name and
    followed while its archive is imported. The follower starts the log over for the new
    database (the replaced-database rule); the import, which had turned that rule off,
    went on writing the archive's rows from the reset position, under ids the new
    database's lines already held. Made deterministic by running the follower between
    two of the import's pages (where the review slowed the import's state saves)."""
    rooms, logs = tmp_path / "rooms", tmp_path / "logs"
    _, old_ids = room_db_with(rooms, "ops", 600, "old")  # 1200 rows: two pages
    packed = serverdb.archive_room(rooms, "ops", tmp_path / "archive", WHEN) / "messages.db.gz"
    new_ids: list[int] = []

    def logged(prefix: str) -> list[int]:
        found = [m for m in log_lines(logs / "ops") if m["content"].startswith(prefix)]
        return sorted(m["id"] for m in found)

    def the_room_comes_back_between_two_pages() -> bool:
        if new_ids or not (logs / "ops").exists() or not logged("old"):
            return False
        db, made = room_db_with(rooms, "ops", 5, "new")
        new_ids.extend(made)
        target = ["--rooms-dir", str(rooms), "--log-dir", str(logs)]
        proc = LoggerProcess(db, logs, target=target, env=env()).start()
        wait_until(lambda: logged("new") == made, what="the new room's follower to log it")
        assert proc.stop() == 0, proc.stderr()
        assert "logging the new database from its first row" in proc.stderr()
        return False

    with pytest.raises(ArchiveError) as refused:
        import_archive(packed, logs, "ops", should_stop=the_room_comes_back_between_two_pages)
    assert str(refused.value) == (
        f"room ops was made again while {packed} was imported: its log {logs / 'ops'} now"
        " holds the new database's messages, not this archive's; nothing more imported"
        " (import the archive as another room with --room NAME)"
    )
    lines = [(m["content"][:3], m["id"]) for m in log_lines(logs / "ops")]
    assert len(lines) == len(set(lines)), "a line written twice"
    assert logged("new") == new_ids
    assert logged("old") == old_ids[: len(logged("old"))]


def task_room(rooms: Path, name: str) -> tuple[Path, list[str]]:
    """A room whose server took three tasks through its tools (one left in review)."""
    db = serverdb.room_db(rooms, name)
    db.parent.mkdir(parents=True)
    serverdb.create(db)
    conn = serverdb.connect(db)
    serverdb.register(conn, "lead", role="lead")
    serverdb.register(conn, "juno", role="builder")
    made = [serverdb.create_task(conn, "lead", f"task {n}", assign_to="juno") for n in range(3)]
    serverdb.task_lifecycle(conn, made[0], "juno")
    serverdb.update_task(conn, "juno", made[1], "in_progress")
    serverdb.submit_for_review(conn, "juno", made[1], "done")
    serverdb.create_task(conn, "lead", "unassigned")  # pending: no message at all
    conn.close()
    return db, [*made, "TASK-004"]


def test_an_archive_s_tasks_are_imported_as_a_snapshot_once(tmp_path: Path) -> None:
    import tasklines

    rooms, logs = tmp_path / "rooms", tmp_path / "logs"
    _, tasks = task_room(rooms, "ops")
    packed = serverdb.archive_room(rooms, "ops", tmp_path / "archive", WHEN) / "messages.db.gz"
    args = ("import-archive", str(packed), "--room", "ops", "--log-dir", str(logs))
    first = run_command(*args, env=env())
    assert first.returncode == 0, first.stderr
    assert (
        first.stdout.splitlines()[1] == "recorded 4 task lines from its tasks table (docs/tasks.md)"
    )
    found = tasklines.lines(logs / "ops")
    assert sorted((t["task"], t["from"], t["to"], t.get("snapshot")) for t in found) == [
        (tasks[0], None, "verified", True),
        (tasks[1], None, "review", True),
        (tasks[2], None, "assigned", True),
        (tasks[3], None, "pending", True),
    ]
    assert all(t["snapshot"] is True and t["row"]["id"] == t["task"] for t in found)
    agents = tasklines.lines(logs / "ops", "agents")
    assert sorted((a["agent"], a["event"]) for a in agents) == [
        ("juno", "registered"),
        ("lead", "registered"),
    ]
    second = run_command(*args, env=env())
    assert second.returncode == 0, second.stderr
    assert len(second.stdout.splitlines()) == 1  # no task line this time
    assert tasklines.lines(logs / "ops") == found
    assert tasklines.lines(logs / "ops", "agents") == agents


def test_a_followed_room_s_archive_adds_only_the_moves_made_unseen(tmp_path: Path) -> None:
    """The room was followed, then moved on while its logger was down, then archived:
    the import records those moves (their states told by the server's messages), once;
    an older copy of the room (the hub gzips without the WAL) records nothing."""
    import shutil

    import tasklines

    rooms, logs = tmp_path / "rooms", tmp_path / "logs"
    db, tasks = task_room(rooms, "dev")
    target = ["--rooms-dir", str(rooms), "--log-dir", str(logs)]
    proc = LoggerProcess(db, logs, target=target, env=env()).start()
    wait_until(lambda: "room dev: following " in proc.stderr(), what="room dev followed")
    conn = serverdb.connect(db)
    serverdb.update_task(conn, "juno", tasks[2], "in_progress")
    wait_until(
        lambda: any(t["to"] == "in_progress" for t in tasklines.lines(logs / "dev")),
        what="the followed move",
    )
    assert proc.stop() == 0
    seen = tasklines.lines(logs / "dev")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    older = tmp_path / "older.db"
    shutil.copyfile(db, older)  # the room as it was then
    serverdb.approve_task(conn, "lead", tasks[1])  # unseen: the logger is down
    serverdb.verify_task(conn, "lead", tasks[1])
    conn.close()
    archive = serverdb.archive_room(rooms, "dev", tmp_path / "archive", WHEN)
    args = ("import-archive", str(archive / "messages.db.gz"), "--room", "dev")
    first = run_command(*args, "--log-dir", str(logs), env=env())
    assert first.returncode == 0, first.stderr
    found = tasklines.lines(logs / "dev")
    added = found[len(seen) :]
    assert found[: len(seen)] == seen
    assert [(t["task"], t["from"], t.get("via"), t["to"]) for t in added] == [
        (tasks[1], "review", ["completed"], "verified")
    ]
    assert "snapshot" not in added[0]
    assert run_command(*args, "--log-dir", str(logs), env=env()).returncode == 0
    assert tasklines.lines(logs / "dev") == found  # once
    # An older copy of the same room, imported into a copy of that log: nothing goes back.
    shutil.copytree(logs, tmp_path / "logs2")
    for sidecar in (archive / "messages.db.gz",):
        with open(older, "rb") as src, gzip.open(sidecar, "wb") as out:
            out.write(src.read())
    again = run_command(*args, "--log-dir", str(tmp_path / "logs2"), env=env())
    assert again.returncode == 0, again.stderr
    assert tasklines.lines(tmp_path / "logs2" / "dev") == found
