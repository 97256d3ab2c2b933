"""A log directory belongs to one database: another one is refused, a moved one followed.

The two scenarios of issue 13 as a user meets them: an export of database B into the
log directory a logger of A fills (the default ``~/.dead-drop/logs`` is every
database's), and two loggers on A and B sharing one log directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import DEADLINE, LoggerProcess, logged_ids, run_command, wait_until
from test_position import make_pipeline

from dead_drop_logger.logdir.state import StateStore
from dead_drop_logger.record.ownership import ForeignDatabase

SCRIPT = Path(__file__).resolve().parent.parent / "export_historical.py"


def other_db(tmp_path: Path, sends: int) -> Path:
    """Database B, elsewhere, with a history of its own."""
    path = tmp_path / "b" / "messages.db"
    path.parent.mkdir()
    serverdb.create(path)
    serverdb.send_many(path, sends, prefix="b")
    return path


def refusal(log_dir: Path, owner: Path, intruder: Path) -> str:
    return (
        f"log directory {log_dir} holds the messages of database {owner}, not {intruder};"
        f" give {intruder} another --log-dir"
    )


def snapshot(log_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry of the log directory: its mode and bytes (a link: its target)."""
    found: dict[str, tuple[int, bytes]] = {}
    for path in sorted(log_dir.iterdir()):
        st = path.lstat()
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        found[path.name] = (st.st_mode, data)
    return found


def follow_all(proc: LoggerProcess, db: Path) -> None:
    wait_until(lambda: logged_ids(proc.log_dir) == serverdb.all_ids(db), what="every row logged")


def following(logger: Any, db: Path, sends: int) -> LoggerProcess:
    """A logger following ``db`` that has logged ``sends`` new sends."""
    proc = logger().start()
    proc.wait_ready()
    serverdb.send_many(db, sends, prefix="a")
    follow_all(proc, db)
    return proc


def test_an_export_of_another_database_is_refused_and_the_logger_undisturbed(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    serverdb.send_many(server_db, 25, prefix="a")  # A: 50 messages with the CC rows
    proc = logger("--import-historical").start()
    proc.wait_ready()
    follow_all(proc, server_db)
    b_db = other_db(tmp_path, 20)  # B: 40 messages
    before = snapshot(log_dir)

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--db", str(b_db), "--log-dir", str(log_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"export_historical.py: error: {refusal(log_dir, server_db, b_db)}\n"
    assert snapshot(log_dir) == before  # nothing written

    serverdb.send_many(server_db, 3, prefix="a later")  # A's next messages
    follow_all(proc, server_db)
    assert proc.stop() == 0
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)  # each message once
    assert "WARNING" not in proc.stderr(), proc.stderr()


@pytest.mark.parametrize("extra", [(), ("--import-historical",)], ids=["run", "import"])
def test_a_second_logger_on_another_database_is_refused(
    server_db: Path, tmp_path: Path, log_dir: Path, logger, extra: tuple[str, ...]
) -> None:
    a = following(logger, server_db, 4)
    b_db = other_db(tmp_path, 5)
    before = snapshot(log_dir)

    b = logger(*extra, db=b_db).start()
    assert b.proc is not None and b.proc.wait(timeout=DEADLINE) == 1
    assert b.stderr() == f"dead-drop-logger: error: {refusal(log_dir, server_db, b_db)}\n"
    assert snapshot(log_dir) == before

    serverdb.send_many(server_db, 4, prefix="a later")
    follow_all(a, server_db)
    assert a.stop() == 0
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)
    assert "WARNING" not in a.stderr(), a.stderr()


def test_start_says_the_refusal_in_the_terminal(
    server_db: Path, tmp_path: Path, log_dir: Path, logger, home_env: dict[str, str]
) -> None:
    a = logger().start()
    a.wait_ready()
    b_db = other_db(tmp_path, 2)
    before = snapshot(log_dir)
    args = ("--db", str(b_db), "--log-dir", str(log_dir), "--poll-interval", "0.05")
    done = run_command("start", *args, env=home_env)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"dead-drop-logger: error: {refusal(log_dir, server_db, b_db)}\n"
    assert run_command("status", env=home_env).returncode == 3  # no daemon left running
    assert snapshot(log_dir) == before
    assert a.stop() == 0


def test_a_moved_database_is_followed_at_its_new_path(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    serverdb.send_many(server_db, 3, prefix="old")
    first = logger("--import-historical").start()
    first.wait_ready()
    follow_all(first, server_db)
    assert first.stop() == 0
    moved = tmp_path / "elsewhere" / "messages.db"
    moved.parent.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{server_db}{suffix}").exists():
            os.rename(f"{server_db}{suffix}", f"{moved}{suffix}")
    serverdb.send_many(moved, 2, prefix="after the move")

    second = logger(db=moved).start()
    second.wait_ready()
    follow_all(second, moved)
    serverdb.send_many(moved, 2, prefix="later")
    follow_all(second, moved)
    assert second.stop() == 0
    assert logged_ids(log_dir) == serverdb.all_ids(moved)  # no duplicate
    notes = re.findall(r"INFO: .*moved to.*", second.stderr())
    assert notes == [
        f"INFO: database {server_db} moved to {moved} (the same messages); following it there"
    ], second.stderr()
    state = StateStore(log_dir).load()
    assert state is not None and state.database == str(moved)


def test_a_copy_beside_its_original_is_another_database(
    server_db: Path, tmp_path: Path, log_dir: Path
) -> None:
    """Same rows, but the recorded path still holds them: a copy would diverge."""
    serverdb.send_many(server_db, 3)
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    copy = tmp_path / "copy.db"
    source = serverdb.connect(server_db)
    target = serverdb.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    intruder = make_pipeline(copy, log_dir)
    with pytest.raises(ForeignDatabase, match=re.escape(refusal(log_dir, server_db, copy))):
        intruder.prepare(database_existed=True)
    with pytest.raises(ForeignDatabase):
        intruder.backfill()


def test_a_running_logger_whose_state_names_another_database_stops_rather_than_relog(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    """Only something that skips the check (an older version, a hand edit) can leave
    another database's state in the directory; the logger then says so and stops."""
    a = following(logger, server_db, 2)
    b_db = other_db(tmp_path, 3)
    store = StateStore(log_dir)
    with store.locked():
        state = store.load()
        assert state is not None
        state.database = str(b_db)
        state.fingerprint = "not a row of A"
        store.save(state)
    before = logged_ids(log_dir)
    serverdb.send_many(server_db, 1, prefix="a later")
    assert a.proc is not None and a.proc.wait(timeout=DEADLINE) == 1
    lines = a.stderr().splitlines()
    assert lines[-1] == f"dead-drop-logger: error: {refusal(log_dir, b_db, server_db)}"
    assert logged_ids(log_dir) == before  # nothing relogged


@pytest.mark.parametrize(
    "damage",
    ["corrupt", "lost", "lost-owner-never-recorded"],
)
def test_a_lost_or_corrupt_state_does_not_hand_the_directory_to_another_database(
    server_db: Path, tmp_path: Path, log_dir: Path, logger, damage: str
) -> None:
    """The state rebuilt from the log files keeps its owner (the damaged state's record,
    or the lock file's); with no record at all (a directory of an older version), the
    files' last message must be the intruder's own row."""
    a = following(logger, server_db, 5)
    assert a.stop() == 0
    b_db = other_db(tmp_path, 5)
    state = log_dir / ".dead-drop-logger.state"
    if damage == "corrupt":
        state.write_bytes(b"garbage")
    else:
        state.unlink()
    lock = log_dir / ".dead-drop-logger.lock"
    if damage == "lost-owner-never-recorded":
        lock.write_text(lock.read_text().splitlines()[0] + "\n")  # the first-start mark only
    b = logger(db=b_db).start()
    assert b.proc is not None and b.proc.wait(timeout=DEADLINE) == 1
    if damage == "lost-owner-never-recorded":
        assert b.stderr() == (
            f"dead-drop-logger: error: log directory {log_dir} has lost its state and its"
            f" files hold message {serverdb.all_ids(server_db)[-1]} of another database"
            f" than {b_db}; give {b_db} another --log-dir\n"
        )
    else:
        assert b.stderr().endswith(
            f"dead-drop-logger: error: {refusal(log_dir, server_db, b_db)}\n"
        )
    assert "rotation:" not in b.stderr()  # the owner is checked before the file policies run
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)[-10:]  # nothing of B's
    again = logger().start()  # A itself carries on, nothing doubled
    again.wait_ready()
    serverdb.send_many(server_db, 2, prefix="a later")
    wait_until(
        lambda: logged_ids(log_dir) == serverdb.all_ids(server_db)[-14:], what="A's next ones"
    )
    assert again.stop() == 0


def test_after_a_move_a_new_database_at_the_old_path_is_refused_even_with_the_state_lost(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    """The lock file's owner record follows an accepted move: a different database made
    later at the old path, and the state then lost, must not be taken for the owner
    (its rows were logged here from row 1, beside the moved database's)."""
    a = following(logger, server_db, 20)
    assert a.stop() == 0
    moved = tmp_path / "moved" / "messages.db"
    moved.parent.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{server_db}{suffix}").exists():
            os.rename(f"{server_db}{suffix}", f"{moved}{suffix}")
    b = logger(db=moved).start()
    b.wait_ready()
    serverdb.send_many(moved, 3, prefix="after the move")
    follow_all(b, moved)
    assert b.stop() == 0
    serverdb.create(server_db)  # a new, different database at the old path
    serverdb.send_many(server_db, 5, prefix="someone else")
    (log_dir / ".dead-drop-logger.state").unlink()
    intruder = logger().start()
    assert intruder.proc is not None and intruder.proc.wait(timeout=DEADLINE) == 1
    assert intruder.stderr().endswith(
        f"dead-drop-logger: error: {refusal(log_dir, moved, server_db)}\n"
    ), intruder.stderr()
    assert logged_ids(log_dir) == serverdb.all_ids(moved)


def _takeover_note(log_dir: Path, old: Path, new: Path) -> str:
    return (
        f"INFO: log directory {log_dir} holds no message yet: it was database {old}'s, now {new}'s"
    )


@pytest.mark.parametrize("how", ["no-database-yet", "typo", "config-db-set-later"])
def test_an_empty_log_directory_is_taken_by_another_database(
    tmp_path: Path, log_dir: Path, logger, no_user_config: Path, how: str
) -> None:
    """Issue 17: a log directory that holds no message yet belongs to nobody. `run`
    before the server made its database, a mistyped --db, or `db =` set in config.toml
    after the service started first: the directory, still empty, goes to the database
    given next, with one info line, and that database is logged from there on."""
    first_db = tmp_path / ("messages.db" if how != "typo" else "mesages.db")  # never made
    real = other_db(tmp_path, 3)  # B: history, left alone (a first start: new messages only)
    first = logger(db=first_db).start()
    first.wait_ready()
    assert first.stop() == 0
    assert StateStore(log_dir).load() is not None  # the first run recorded its database

    if how == "config-db-set-later":
        no_user_config.parent.mkdir(parents=True)
        no_user_config.write_text(f'db = "{real}"\n')
        second = logger(target=["--log-dir", str(log_dir)]).start()
    else:
        second = logger(db=real).start()
    second.wait_ready()
    new = serverdb.send_many(real, 2, prefix="b new")
    wait_until(lambda: logged_ids(log_dir) == new, what="B's new messages logged")
    assert second.stop() == 0
    err = second.stderr()
    assert err.count("holds no message yet") == 1, err
    assert _takeover_note(log_dir, first_db, real) in err, err
    assert "WARNING" not in err and "error" not in err, err
    state = StateStore(log_dir).load()
    assert state is not None and state.database == str(real)

    # Now it holds B's messages: the first database is refused exactly as before.
    again = logger(db=first_db).start()
    assert again.proc is not None and again.proc.wait(timeout=DEADLINE) == 1
    assert again.stderr() == f"dead-drop-logger: error: {refusal(log_dir, real, first_db)}\n"
    assert logged_ids(log_dir) == new


def test_an_empty_log_directory_is_not_taken_from_a_logger_working_in_it(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    """While A's logger runs, its directory is its own even before a message came: B
    taking it would have A take it back at its next batch, past A's rows meanwhile."""
    a = logger().start()
    a.wait_ready()
    b_db = other_db(tmp_path, 2)
    b = logger(db=b_db).start()
    assert b.proc is not None and b.proc.wait(timeout=DEADLINE) == 1
    assert b.stderr() == f"dead-drop-logger: error: {refusal(log_dir, server_db, b_db)}\n"
    ids = serverdb.send_many(server_db, 3, prefix="a")
    wait_until(lambda: logged_ids(log_dir) == ids, what="A's messages logged")
    assert a.stop() == 0
    assert "WARNING" not in a.stderr(), a.stderr()


def test_a_lost_state_with_another_databases_marks_and_no_message_is_taken(
    tmp_path: Path, log_dir: Path, logger
) -> None:
    """No state, no line, the lock file naming another database as its owner and first
    start: the first start is this database's own, not the other's position."""
    first_db = tmp_path / "never.db"
    first = logger(db=first_db).start()
    first.wait_ready()
    assert first.stop() == 0
    (log_dir / ".dead-drop-logger.state").unlink()
    real = other_db(tmp_path, 3)
    second = logger(db=real).start()
    second.wait_ready()
    new = serverdb.send_many(real, 1, prefix="b new")
    wait_until(lambda: logged_ids(log_dir) == new, what="only B's new message logged")
    assert second.stop() == 0
    assert _takeover_note(log_dir, first_db, real) in second.stderr(), second.stderr()
    assert f"database {real}" in (log_dir / ".dead-drop-logger.lock").read_text()
