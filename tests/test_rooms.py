"""Rooms: one logger follows every room of a hub, each into LOG_DIR/NAME/, exactly once,
whatever happens to the others; a room archived the hub's way is drained, WAL included."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import serverdb
from conftest import (
    FOREVER,
    LoggerProcess,
    day_files,
    log_lines,
    logged_ids,
    run_command,
    start_writer,
    stop_writer,
    wait_until,
)
from procs import Reaper

from dead_drop_logger.config import Settings
from dead_drop_logger.record.rooms import Rooms


@pytest.fixture
def rooms_dir(tmp_path: Path) -> Path:
    path = tmp_path / "rooms"
    path.mkdir()
    return path


@pytest.fixture
def rooms_logger(
    rooms_dir: Path, log_dir: Path, logger: Callable[..., LoggerProcess]
) -> Callable[..., LoggerProcess]:
    """conftest's logger factory, on ``--rooms-dir`` instead of one database."""

    def make(*args: str, watch: bool = True) -> LoggerProcess:
        target = ["--rooms-dir", str(rooms_dir), "--log-dir", str(log_dir)]
        return logger(*args, target=target, watch=watch)

    return make


def make_room(rooms_dir: Path, name: str, history: int = 0) -> tuple[Path, list[int]]:
    db = serverdb.room_db(rooms_dir, name)
    db.parent.mkdir()
    serverdb.create(db)
    return db, serverdb.send_many(db, history, prefix=f"{name} old") if history else []


def make_corrupt_room(rooms_dir: Path, name: str) -> Path:
    db = serverdb.room_db(rooms_dir, name)
    db.parent.mkdir()
    db.write_bytes(b"this is not a database" * 100)
    return db


def wait_rooms_ready(proc: LoggerProcess, *names: str) -> None:
    """Until each room's follower has fixed its start position on disk."""
    for name in names:
        wait_until(
            lambda n=name: f"room {n}: following " in proc.stderr() or proc._died(),
            what=f"room {name} to start following",
        )
    assert not proc._died(), proc.stderr()


def finished(writer: subprocess.Popen[bytes]) -> None:
    assert writer.wait(timeout=120) == 0


@pytest.mark.parametrize("watch", [True, False], ids=["watch", "no-watch"])
def test_rooms_from_the_start_one_created_and_one_archived_while_others_write(
    rooms_dir: Path,
    log_dir: Path,
    tmp_path: Path,
    rooms_logger: Callable[..., LoggerProcess],
    watch: bool,
) -> None:
    dbs: dict[str, Path] = {}
    old: dict[str, list[int]] = {}
    for name in ("a", "b", "c"):
        dbs[name], old[name] = make_room(rooms_dir, name, history=3)
    proc = rooms_logger(watch=watch).start()
    wait_rooms_ready(proc, "a", "b", "c")

    # a, c and d write until told to stop (after b's archive), however slow the machine
    writers = {
        "a": start_writer(dbs["a"], FOREVER, interval=0.01, prefix="a live"),
        "b": start_writer(dbs["b"], 40, interval=0.005, prefix="b live"),
        "c": start_writer(dbs["c"], FOREVER, interval=0.01, prefix="c live"),
    }
    dbs["d"], old["d"] = make_room(rooms_dir, "d", history=2)  # created while running
    writers["d"] = start_writer(dbs["d"], FOREVER, interval=0.01, prefix="d live")

    try:
        finished(writers["b"])  # b's server stops ...
        everything_b = serverdb.all_ids(dbs["b"])
        archive = serverdb.archive_room(  # ... and the hub archives it while a, c, d write
            rooms_dir, "b", tmp_path / "archive", dt.datetime(2026, 11, 29, 12, 0, 0)
        )
        assert (archive / "messages.db.gz").exists() and (archive / "index.json").exists()
        assert all(w.poll() is None for n, w in writers.items() if n != "b"), "a writer died"
        wait_until(lambda: "room b: gone (" in proc.stderr(), what="room b to be released")
        # the others write on past b's release (some rows each, and in all at least as
        # many as they sent when their count, not the test, ended them)
        for name, rows in (("a", 150), ("c", 150), ("d", 100)):
            wanted = max(len(serverdb.all_ids(dbs[name])) + 20, len(old[name]) + rows)
            wait_until(
                lambda n=name, w=wanted: len(serverdb.all_ids(dbs[n])) >= w,
                what=f"room {name}'s writer to reach {wanted} rows",
            )
            stop_writer(writers[name])
    finally:
        for writer in writers.values():  # (a failure above leaves none writing)
            if writer.poll() is None:
                writer.kill()

    expected = {
        "a": [i for i in serverdb.all_ids(dbs["a"]) if i > old["a"][-1]],
        "b": [i for i in everything_b if i > old["b"][-1]],
        "c": [i for i in serverdb.all_ids(dbs["c"]) if i > old["c"][-1]],
        "d": serverdb.all_ids(dbs["d"]),  # a new room: all of it, its history too
    }
    for name, ids in expected.items():
        wait_until(
            lambda n=name, i=ids: logged_ids(log_dir / n) == i,
            what=f"room {name}'s log to hold each message once",
        )
    assert proc.stop() == 0
    for name, ids in expected.items():
        assert logged_ids(log_dir / name) == ids, name  # nothing more once stopped
    assert day_files(log_dir) == []  # nothing logged outside the rooms' directories
    gone = [line for line in proc.stderr().splitlines() if "room b: gone" in line]
    assert len(gone) == 1 and "INFO:" in gone[0], proc.stderr()


def test_a_room_archived_with_its_messages_only_in_the_wal_is_still_logged_whole(
    rooms_dir: Path, log_dir: Path, tmp_path: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    """The hub gzips messages.db without its -wal: what the WAL held is only in our log."""
    db, _ = make_room(rooms_dir, "w")
    proc = rooms_logger().start()
    wait_rooms_ready(proc, "w")
    ids = serverdb.send_many(db, 30, prefix="w")
    # The server stops; our reader keeps the WAL from being checkpointed away.
    archive = serverdb.archive_room(rooms_dir, "w", tmp_path / "archive", dt.datetime.now())
    wait_until(lambda: "room w: gone (" in proc.stderr(), what="room w to be released")
    assert logged_ids(log_dir / "w") == ids
    proc.stop()
    restored = tmp_path / "restored.db"
    restored.write_bytes(gzip.decompress((archive / "messages.db.gz").read_bytes()))
    in_archive = serverdb.all_ids(restored)
    assert in_archive != ids  # the archive lacks the WAL's messages: the log has them


def test_a_room_that_comes_back_is_a_new_database(
    rooms_dir: Path, log_dir: Path, tmp_path: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    db, _ = make_room(rooms_dir, "r")
    proc = rooms_logger().start()
    wait_rooms_ready(proc, "r")
    first = serverdb.send_many(db, 4, prefix="first life")
    wait_until(lambda: logged_ids(log_dir / "r") == first, what="the first life logged")
    serverdb.archive_room(rooms_dir, "r", tmp_path / "archive", dt.datetime.now())
    wait_until(lambda: "room r: gone (" in proc.stderr(), what="room r to be released")
    db, second = make_room(rooms_dir, "r", history=3)
    wait_until(
        lambda: sorted(first + second) == logged_ids(log_dir / "r"),
        what="the second life logged from its first row",
    )
    assert proc.stop() == 0


def test_a_room_archived_and_made_again_before_its_next_tick_loses_nothing(
    rooms_dir: Path, log_dir: Path, tmp_path: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    """The hub archives a room (without its WAL) and makes it again at once: the old
    database's last messages are logged from the connection still open on it before the
    new database is followed (a long poll interval: no tick comes in between)."""
    db, _ = make_room(rooms_dir, "ops", history=3)
    proc = rooms_logger("--poll-interval", "5", watch=False).start()
    wait_rooms_ready(proc, "ops")
    last_words = serverdb.send_many(db, 10, prefix="last")
    serverdb.archive_room(rooms_dir, "ops", tmp_path / "archive", dt.datetime.now())
    db, again = make_room(rooms_dir, "ops", history=2)
    wait_until(
        lambda: logged_ids(log_dir / "ops") == sorted(last_words + again),
        what="the old database's last messages, then the new one's",
    )
    assert proc.stop() == 0
    assert logged_ids(log_dir / "ops") == sorted(last_words + again)


def test_one_corrupt_room_does_not_stop_the_others(
    rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    good, _ = make_room(rooms_dir, "good")
    make_corrupt_room(rooms_dir, "bad")
    proc = rooms_logger().start()
    wait_rooms_ready(proc, "good")
    ids = serverdb.send_many(good, 10, prefix="good")
    wait_until(lambda: logged_ids(log_dir / "good") == ids, what="the good room logged")
    wait_until(lambda: "room bad: " in proc.stderr(), what="the bad room's complaint")
    assert proc.stop() == 0


def test_explicit_rooms_by_name(tmp_path: Path, log_dir: Path) -> None:
    one, two = tmp_path / "one.db", tmp_path / "elsewhere" / "two.db"
    two.parent.mkdir()
    for db in (one, two):
        serverdb.create(db)
    target = ["--db", f"one={one}", "--db", f"two={two}", "--log-dir", str(log_dir)]
    proc = LoggerProcess(one, log_dir, target=target).start()
    try:
        wait_rooms_ready(proc, "one", "two")
        ids_one = serverdb.send_many(one, 3, prefix="one")
        ids_two = serverdb.send_many(two, 5, prefix="two")
        wait_until(lambda: logged_ids(log_dir / "one") == ids_one, what="room one")
        wait_until(lambda: logged_ids(log_dir / "two") == ids_two, what="room two")
    finally:
        assert proc.stop() == 0


def test_status_shows_each_room_and_why_one_cannot_be_read(
    rooms_dir: Path, log_dir: Path, home_env: dict[str, str]
) -> None:
    good, _ = make_room(rooms_dir, "good")
    bad = make_corrupt_room(rooms_dir, "bad")
    reaper = Reaper()
    try:
        done = run_command(
            "start",
            "--rooms-dir",
            str(rooms_dir),
            "--log-dir",
            str(log_dir),
            "--poll-interval",
            "0.05",
            env=home_env,
        )
        assert done.returncode == 0, done.stderr
        reaper.add(int(done.stdout.split("pid ")[1].split(")")[0]))
        wait_until(lambda: (log_dir / "good" / ".dead-drop-logger.state").exists(), what="good")
        ids = serverdb.send_many(good, 3, prefix="good")
        wait_until(lambda: logged_ids(log_dir / "good") == ids, what="good logged")

        def rooms() -> list[dict[str, object]]:
            done = run_command("status", "--json", env=home_env)
            assert done.returncode == 150, done.stdout  # running, with a problem: room bad
            found: list[dict[str, object]] = json.loads(done.stdout)["rooms"]
            return found

        wait_until(lambda: rooms()[1]["lag"] == 0, what="status to see room good caught up")
        bad_room, good_room = rooms()
        assert good_room == {
            "name": "good",
            "database": str(good),
            "log_dir": str(log_dir / "good"),
            "last_id_logged": ids[-1],
            "lag": 0,
            "today_file": good_room["today_file"],
            "today_file_bytes": good_room["today_file_bytes"],
            "problems": [],
        }
        assert str(good_room["today_file"]).startswith(str(log_dir / "good" / "messages-"))
        assert bad_room["name"] == "bad" and bad_room["lag"] is None
        assert bad_room["problems"] == [f"database {bad} is not usable: file is not a database"]
        text = run_command("status", env=home_env).stdout.splitlines()
        assert f"  rooms dir:      {rooms_dir}" in text
        assert "  rooms:          2" in text
        assert "  room bad:" in text and "  room good:" in text
        assert f"    cannot be read: database {bad} is not usable: file is not a database" in text
        assert f"    last id logged: {ids[-1]}" in text
    finally:
        run_command("stop", env=home_env)
        reaper.kill_all()


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
conn.execute("PRAGMA locking_mode=EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO agents (name) VALUES ('locker')")
conn.execute("COMMIT")  # the exclusive lock is kept until the connection closes
print("locked", flush=True)
time.sleep(600)
"""


def test_a_locked_room_waits_alone(
    rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    free, _ = make_room(rooms_dir, "free")
    stuck, _ = make_room(rooms_dir, "stuck")
    # A server holding its database in exclusive locking mode: no reader gets in.
    locker = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(stuck)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
        proc = rooms_logger().start()
        wait_rooms_ready(proc, "free")
        ids: list[int] = []
        for i in range(5):  # the free room goes on, send after send
            ids += serverdb.send_many(free, 1, prefix=f"free {i}")
            wait_until(lambda i=list(ids): logged_ids(log_dir / "free") == i, what="room free")
        wait_until(
            lambda: "room stuck: " in proc.stderr() and "locked" in proc.stderr(),
            what="room stuck to say it is locked",
        )
        assert "room stuck: following " not in proc.stderr()
    finally:
        locker.kill()
        locker.wait()
    wait_rooms_ready(proc, "stuck")
    later = serverdb.send_many(stuck, 2, prefix="after the lock")
    wait_until(lambda: logged_ids(log_dir / "stuck") == later, what="room stuck again")
    assert proc.stop() == 0


@pytest.mark.parametrize("damaged", [False, True], ids=["all-fine", "one-room-damaged"])
def test_a_room_made_while_the_logger_was_stopped_is_logged_whole(
    rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess], damaged: bool
) -> None:
    """The first start's mark (and its list of rooms) is on disk before any room starts:
    a damaged room there (one that cannot be followed yet) holds nothing back."""
    make_room(rooms_dir, "first", history=2)
    if damaged:
        make_corrupt_room(rooms_dir, "bad")
    proc = rooms_logger().start()
    wait_rooms_ready(proc, "first")
    if damaged:
        wait_until(lambda: "room bad: " in proc.stderr(), what="room bad's trouble")
    assert proc.stop() == 0
    mark = json.loads((log_dir / ".dead-drop-logger.rooms").read_bytes())
    assert mark == {"rooms": ["bad", "first"] if damaged else ["first"]}
    _, history = make_room(rooms_dir, "later", history=3)
    again = rooms_logger().start()
    wait_rooms_ready(again, "first", "later")
    wait_until(lambda: logged_ids(log_dir / "later") == history, what="all of room later")
    assert logged_ids(log_dir / "first") == []  # its history stays the first start's
    assert again.stop() == 0


def test_kill_9_mid_writes_then_restart_every_room_exactly_once(
    rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    dbs = {name: make_room(rooms_dir, name)[0] for name in ("x", "y", "z")}
    proc = rooms_logger().start()
    wait_rooms_ready(proc, *dbs)
    writers = [start_writer(db, 200, interval=0.002, prefix=name) for name, db in dbs.items()]
    wait_until(lambda: all(logged_ids(log_dir / n) for n in dbs), what="every room logging")
    proc.kill()  # SIGKILL while every room is mid-stream
    for writer in writers:
        finished(writer)
    again = rooms_logger().start()
    for name, db in dbs.items():
        ids = serverdb.all_ids(db)
        wait_until(lambda n=name, i=ids: logged_ids(log_dir / n) == i, what=f"room {name}")
    assert again.stop() == 0


def test_in_process_rooms_stop_at_once_even_with_a_long_poll(
    rooms_dir: Path, log_dir: Path
) -> None:
    """Setting ``stop`` from another thread ends every wait, not the next poll hours away."""
    make_room(rooms_dir, "one")
    rooms = Rooms(Settings(log_dir=log_dir, rooms_dir=rooms_dir, poll_interval=3600))
    thread = threading.Thread(target=rooms.run, daemon=True)
    thread.start()
    wait_until(lambda: (log_dir / "one" / ".dead-drop-logger.state").exists(), what="room one")
    wait_until(lambda: (log_dir / ".dead-drop-logger.rooms").exists(), what="the first start")
    rooms.stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()


def test_search_reads_every_room_and_names_each_messages_room(
    rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    dbs = {name: make_room(rooms_dir, name)[0] for name in ("ops", "dev")}
    proc = rooms_logger().start()
    wait_rooms_ready(proc, *dbs)
    conn = {name: serverdb.connect(db) for name, db in dbs.items()}
    stamp = "2026-11-28T09:00:00"
    serverdb.send(conn["ops"], "juno", "atlas", "deploy ops", leads=(), timestamp=stamp)
    serverdb.send(conn["dev"], "vega", "orion", "deploy dev", leads=(), timestamp=stamp)
    for c in conn.values():
        c.close()
    wait_until(lambda: all(logged_ids(log_dir / n) == [1] for n in dbs), what="both rooms")
    assert proc.stop() == 0
    every = run_command("search", "--log-dir", str(log_dir), "--contains", "deploy", env=env())
    assert every.returncode == 0, every.stderr
    assert every.stdout == (
        "2026-11-28 09:00:00  [dev]  vega → orion  #1\n    deploy dev\n\n"
        "2026-11-28 09:00:00  [ops]  juno → atlas  #1\n    deploy ops\n\n"
    )
    one = run_command("search", "--log-dir", str(log_dir), "--room", "ops", "--json", env=env())
    assert [json.loads(line)["content"] for line in one.stdout.splitlines()] == ["deploy ops"]
    missing = run_command("search", "--log-dir", str(log_dir), "--room", "nope", env=env())
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == (
        f"dead-drop-logger: error: no room 'nope' in {log_dir} (no directory {log_dir / 'nope'})\n"
    )


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}


def test_a_room_whose_log_dir_is_another_databases_waits_alone(
    tmp_path: Path, log_dir: Path, logger: Callable[..., LoggerProcess]
) -> None:
    first, other, fine = (tmp_path / f"{n}.db" for n in ("first", "other", "fine"))
    for db in (first, other, fine):
        serverdb.create(db)
    proc = logger(target=["--db", f"a={first}", "--log-dir", str(log_dir)]).start()
    wait_rooms_ready(proc, "a")
    ids = serverdb.send_many(first, 2, prefix="first")
    wait_until(lambda: logged_ids(log_dir / "a") == ids, what="room a, first database")
    assert proc.stop() == 0
    serverdb.send_many(other, 3, prefix="other")
    target = ["--db", f"a={other}", "--db", f"b={fine}", "--log-dir", str(log_dir)]
    again = logger(target=target).start()
    wait_rooms_ready(again, "b")
    more = serverdb.send_many(fine, 2, prefix="fine")
    wait_until(lambda: logged_ids(log_dir / "b") == more, what="room b")
    wait_until(lambda: "room a: log directory" in again.stderr(), what="room a's refusal")
    refusal = [line for line in again.stderr().splitlines() if "room a: log directory" in line]
    assert len(refusal) == 1 and "room a: room a" not in refusal[0], refusal
    assert "holds the messages of database" in refusal[0]
    assert logged_ids(log_dir / "a") == ids  # nothing of the other database went there
    assert again.stop() == 0


# Reading several rooms at once: ids repeat across rooms (each room is its own
# database) and names too, so nothing keyed by id or by name may mix across rooms.
# Room "ops" and room "dev" below share ids 1-4 and the agents juno and vega; every
# expected value is worked out by hand from these sends (file order reads dev first).
DAY = "2026-11-28T"
OPS = [  # (from, to, content, time, task, reply_to); ids 1-6
    ("juno", "atlas", "ops deploy?", "09:00:00", "T-1", None),
    ("atlas", "juno", "ops deployed", "09:02:00", "T-1", 1),
    ("juno", "all", "ops all hands", "09:10:00", None, None),
    ("atlas", "juno", "ops follow-up", "09:20:00", None, 2),
    ("vega", "atlas", "ops vega chimes in", "10:10:00", None, 1),  # not an answer to dev #1
    ("atlas", "juno", "ops re all hands", "10:30:00", None, 3),  # not in dev #3's thread
]
DEV = [  # ids 1 (+ 2, its CC copy for lead), 3, 4
    ("juno", "vega", "dev question", "10:00:00", "T-1", None),
    ("vega", "all", "dev broadcast", "10:05:00", None, None),
    ("orion", "vega", "dev re broadcast", "10:20:00", "T-2", 3),
]


@pytest.fixture
def two_rooms(rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]) -> Path:
    """Rooms ops and dev logged by the real logger; returns the log directory."""
    for name, sends in (("ops", OPS), ("dev", DEV)):
        db, _ = make_room(rooms_dir, name)
        conn = serverdb.connect(db)
        for i, (by, to, text, at, task, reply) in enumerate(sends):
            leads = ("lead",) if name == "dev" and i == 0 else ()
            serverdb.send(
                conn, by, to, text, leads=leads, timestamp=DAY + at, task_id=task, reply_to=reply
            )
        conn.close()
    want = {n: serverdb.all_ids(serverdb.room_db(rooms_dir, n)) for n in ("ops", "dev")}
    assert want == {"ops": [1, 2, 3, 4, 5, 6], "dev": [1, 2, 3, 4]}
    proc = rooms_logger("--import-historical", "--retention-days", "0").start()
    wait_until(
        lambda: all(logged_ids(log_dir / n) == ids for n, ids in want.items()),
        what="both rooms logged",
    )
    assert proc.stop() == 0, proc.stderr()
    return log_dir


def reading(*args: str) -> tuple[int, str, str]:
    """A reading command in process: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from dead_drop_logger.control.cli import cli

    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_thread_keys_messages_by_room_and_id(two_rooms: Path) -> None:
    where = ("--log-dir", str(two_rooms))
    assert reading("thread", "5", *where) == (
        0,
        "2026-11-28 09:00:00  [ops]  juno → atlas  #1  task T-1\n    ops deploy?\n\n"
        "    2026-11-28 09:02:00  [ops]  atlas → juno  #2  task T-1  re #1\n"
        "        ops deployed\n\n"
        "        2026-11-28 09:20:00  [ops]  atlas → juno  #4  re #2\n"
        "            ops follow-up\n\n"
        "    2026-11-28 10:10:00  [ops]  vega → atlas  #5  re #1\n"
        "        ops vega chimes in\n\n",
        "",
    )
    assert reading("thread", "1", "--room", "dev", *where) == (
        0,
        "2026-11-28 10:00:00  [dev]  juno → vega  #1  task T-1\n    dev question\n\n"
        "2026-11-28 10:00:00  [dev]  juno → lead  #2  task T-1  cc of → vega\n"
        "    dev question\n\n",
        "",
    )
    code, out, _ = reading("thread", "4", "--room", "dev", "--json", *where)
    assert code == 0
    assert [(m["id"], m["content"]) for m in map(json.loads, out.splitlines())] == [
        (3, "dev broadcast"),
        (4, "dev re broadcast"),
    ]
    assert reading("thread", "3", *where) == (
        2,
        "",
        "dead-drop-logger: error: message 3 is in several rooms (dev, ops): "
        "choose one with --room NAME\n",
    )
    assert reading("thread", "7", *where)[0] == 1
    assert reading("thread", "1", "--room", "nope", *where) == (
        2,
        "",
        f"dead-drop-logger: error: no room 'nope' in {two_rooms} "
        f"(no directory {two_rooms / 'nope'})\n",
    )


def test_agents_are_a_name_in_a_room(two_rooms: Path) -> None:
    where = ("--log-dir", str(two_rooms))
    assert reading("agents", *where) == (
        0,
        "agent  room  sent  direct recv  bcast recv  CC recv  first seen           last seen\n"
        "atlas  ops      3            2           1        0  2026-11-28 09:00:00"
        "  2026-11-28 10:30:00\n"
        "juno   ops      2            3           0        0  2026-11-28 09:00:00"
        "  2026-11-28 10:30:00\n"
        "orion  dev      1            0           1        0  2026-11-28 10:20:00"
        "  2026-11-28 10:20:00\n"
        "vega   dev      1            2           0        0  2026-11-28 10:00:00"
        "  2026-11-28 10:20:00\n"
        "vega   ops      1            0           1        0  2026-11-28 10:10:00"
        "  2026-11-28 10:10:00\n"
        "juno   dev      1            0           1        0  2026-11-28 10:00:00"
        "  2026-11-28 10:00:00\n"
        "lead   dev      0            0           1        1  2026-11-28 10:00:00"
        "  2026-11-28 10:00:00\n",
        "",
    )
    code, out, _ = reading("agents", "--room", "dev", "--json", *where)
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()][1] == {
        "agent": "vega",
        "room": "dev",
        "sent": 1,
        "received": {"direct": 2, "broadcast": 0, "cc": 0},
        "first_seen": "2026-11-28T10:00:00",
        "last_seen": "2026-11-28T10:20:00",
    }
    assert [(r["agent"], r["room"]) for r in map(json.loads, out.splitlines())] == [
        ("orion", "dev"),
        ("vega", "dev"),
        ("juno", "dev"),
        ("lead", "dev"),
    ]
    assert reading("agents", "--room", "nope", *where)[0] == 2


def test_stats_keep_each_rooms_threads_answers_and_tasks_apart(two_rooms: Path) -> None:
    where = ("--log-dir", str(two_rooms))
    code, out, err = reading("stats", "--json", *where)
    assert (code, err) == (0, "")
    got = json.loads(out)
    assert got["totals"] == {
        "messages": 9,
        "agents": 7,
        "days": 1,
        "broadcasts": 2,
        "direct": 7,
        "cc_copies": 1,
        "undated": 0,
        "first": "2026-11-28T09:00:00",
        "last": "2026-11-28T10:30:00",
    }
    assert [(a["agent"], a["room"], a["sent"], a["received"]) for a in got["agents"]] == [
        ("atlas", "ops", 3, 2),
        ("juno", "ops", 2, 3),
        ("vega", "dev", 1, 2),
        ("juno", "dev", 1, 0),
        ("orion", "dev", 1, 0),
        ("vega", "ops", 1, 0),
        ("lead", "dev", 0, 0),
    ]
    assert got["pairs"] == [
        {"from": "atlas", "to": "juno", "room": "ops", "messages": 3},
        {"from": "juno", "to": "atlas", "room": "ops", "messages": 1},
        {"from": "juno", "to": "vega", "room": "dev", "messages": 1},
        {"from": "orion", "to": "vega", "room": "dev", "messages": 1},
        {"from": "vega", "to": "atlas", "room": "ops", "messages": 1},
    ]
    # ops #5 (vega, reply_to 1) is not an answer to dev #1 (juno -> vega): no vega row
    assert [(r["responder"], r["room"], r["count"], r["median_seconds"])
            for r in got["response_times"]] == [("atlas", "ops", 1, 120.0)]  # fmt: skip
    assert [(t["task_id"], t["room"], t["messages"], t["agents"]) for t in got["tasks"]] == [
        ("T-1", "ops", 2, ["atlas", "juno"]),
        ("T-1", "dev", 1, ["juno", "vega"]),
        ("T-2", "dev", 1, ["orion", "vega"]),
    ]
    threads = got["threads"]
    assert (threads["count"], threads["median_length"]) == (3, 2)
    assert [(r["root"], r["room"], r["length"]) for r in threads["busiest"]] == [
        (1, "ops", 4),
        (3, "dev", 2),
        (3, "ops", 2),
    ]
    code, out, _ = reading("stats", *where)
    text = out.splitlines()
    at = text.index("Agents")
    assert text[at + 1 : at + 3] == [
        "  agent  room  sent  direct recv  bcast sent  CC recv  busiest hour  "
        "first seen           last seen",
        "  atlas  ops      3            2           0        0  09:00         2026-11-28 09:00:00"
        "  2026-11-28 10:30:00",
    ]
    assert text[-3:] == [
        "  threads:       3",
        "  longest:       #1 [ops] (4 messages)",
        "  median length: 2",
    ]
    code, out, _ = reading("stats", "--room", "dev", "--json", *where)
    assert code == 0
    assert json.loads(out)["totals"]["messages"] == 3
    assert reading("stats", "--room", "nope", *where)[0] == 2


def test_report_previews_each_threads_root_from_its_own_room(
    two_rooms: Path, tmp_path: Path
) -> None:
    pytest.importorskip("plotly")
    page = tmp_path / "team.html"
    code, _, err = reading("report", "--log-dir", str(two_rooms), "-o", str(page))
    assert code == 0, err
    html = page.read_text()
    for root, room, preview in ((1, "ops", "ops deploy?"), (3, "dev", "dev broadcast"),
                                (3, "ops", "ops all hands")):  # fmt: skip
        cells = f'<td data-label="thread">#{root}</td><td data-label="room">{room}</td>'
        assert cells in html
        row = html[html.index(cells) :].split("</tr>")[0]
        assert row.endswith(f'<td class="p" data-label="first message">{preview}</td>'), row


def test_nothing_found_says_which_rooms_were_read(two_rooms: Path) -> None:
    where = ("--log-dir", str(two_rooms))
    late = ("--since", "2030-01-01")
    assert reading("stats", *late, *where) == (
        1,
        "",
        f"dead-drop-logger: no messages in {two_rooms} and its rooms (dev, ops) in that range\n",
    )
    assert reading("agents", "--room", "ops", *late, *where) == (
        1,
        "",
        f"dead-drop-logger: no messages in room ops ({two_rooms / 'ops'}) in that range;"
        " other rooms: dev (--room NAME)\n",
    )
    assert reading("thread", "6", "--room", "dev", *where) == (
        1,
        "",
        f"dead-drop-logger: message 6 is not in the logs of room dev ({two_rooms / 'dev'});"
        " other rooms: ops (--room NAME)\n",
    )
    assert reading("thread", "99", *where)[2] == (
        f"dead-drop-logger: message 99 is not in the logs of {two_rooms} and its rooms (dev, ops)\n"
    )


def test_rooms_read_together_are_merged_in_time_order(two_rooms: Path) -> None:
    """Within a day, several rooms' messages come in timestamp order (not one room after
    the other), and --reverse --limit 1 is the newest message of them all."""
    where = ("--log-dir", str(two_rooms), "--json")
    code, out, _ = reading("search", "--no-cc", *where)
    assert code == 0
    got = [(m["timestamp"][11:16], m["content"]) for m in map(json.loads, out.splitlines())]
    assert got == [
        ("09:00", "ops deploy?"),
        ("09:02", "ops deployed"),
        ("09:10", "ops all hands"),
        ("09:20", "ops follow-up"),
        ("10:00", "dev question"),
        ("10:05", "dev broadcast"),
        ("10:10", "ops vega chimes in"),
        ("10:20", "dev re broadcast"),
        ("10:30", "ops re all hands"),
    ]
    code, out, _ = reading("search", "--no-cc", "--reverse", *where)
    assert [json.loads(line)["content"] for line in out.splitlines()] == [
        content for _, content in reversed(got)
    ]
    for limit, newest in ((1, ["ops re all hands"]), (2, ["ops re all hands", "dev re broadcast"])):
        code, out, _ = reading("search", "--reverse", "--limit", str(limit), *where)
        assert [json.loads(line)["content"] for line in out.splitlines()] == newest


@pytest.mark.parametrize(
    ("db", "reason"),
    [
        ("{tmp}", "{tmp} is a directory, not a database file"),
        ("ops={tmp}", "{tmp} is a directory, not a database file"),
        (".a={tmp}/x.db", "room name '.a' cannot hold '/' or start with '.'"),
        ("={tmp}/x.db", "room name '' must be non-empty, without surrounding spaces"),
        ("ops=", "room 'ops' names no database: --db NAME=PATH"),
    ],
)
def test_a_db_that_cannot_be_followed_is_refused_at_start(
    tmp_path: Path, log_dir: Path, db: str, reason: str
) -> None:
    """Not a retry loop on a directory, nor a room name silently taken for a path."""
    value, expected = db.format(tmp=tmp_path), reason.format(tmp=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    done = run_command("run", "--db", value, "--log-dir", str(log_dir), env=env, timeout=30)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not log_dir.exists()


def test_a_room_named_twice_by_rooms_dir_and_db_is_refused(
    tmp_path: Path, rooms_dir: Path, log_dir: Path
) -> None:
    make_room(rooms_dir, "ops")
    other = tmp_path / "other.db"
    serverdb.create(other)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    args = ["--rooms-dir", str(rooms_dir), "--db", f"ops={other}", "--log-dir", str(log_dir)]
    done = run_command("run", *args, env=env, timeout=30)
    assert done.returncode == 2
    assert (
        f"room 'ops' is both a directory of --rooms-dir {rooms_dir} and named by"
        " --db ops=PATH (or [rooms]); rename one"
    ) in done.stderr
    assert not log_dir.exists()


def test_a_room_named_like_a_day_file_is_a_room_to_every_reader_and_to_prune(
    rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    """A hub room directory named ``messages-2020-01-01.json``: its log directory has a
    day file's name, but it is a directory, so it is a room (read, pruned inside), never
    a day file (read as one: "Is a directory"; deleted as one)."""
    odd = "messages-2020-01-01.json"
    old = (dt.date.today() - dt.timedelta(days=40)).isoformat()
    for name in (odd, "ops"):
        db, _ = make_room(rooms_dir, name)
        conn = serverdb.connect(db)
        for stamp in (f"{old}T09:00:00", dt.datetime.now().isoformat()):
            serverdb.send(conn, "juno", "atlas", f"hello from {name}", leads=(), timestamp=stamp)
        conn.close()
    proc = rooms_logger("--import-historical", "--retention-days", "0").start()
    wait_until(
        lambda: all(logged_ids(log_dir / n) == [1, 2] for n in (odd, "ops")),
        what="both rooms logged",
    )
    assert proc.stop() == 0, proc.stderr()
    found = run_command("search", "--log-dir", str(log_dir), "--json", env=env())
    assert (found.returncode, found.stderr) == (0, "")
    contents = sorted(json.loads(line)["content"] for line in found.stdout.splitlines())
    assert contents == [f"hello from {odd}"] * 2 + ["hello from ops"] * 2
    stats = run_command("stats", "--log-dir", str(log_dir), env=env())
    assert (stats.returncode, stats.stderr) == (0, "")
    doomed = [log_dir / n / f"messages-{old}.json" for n in (odd, "ops")]
    dry = run_command(
        "prune", "--log-dir", str(log_dir), "--dry-run", "--retention-days", "30", env=env()
    )
    assert (dry.returncode, dry.stdout) == (
        0,
        "".join(f"would delete {p}\n" for p in sorted(doomed)),
    )
    real = run_command("prune", "--log-dir", str(log_dir), "--retention-days", "30", env=env())
    assert (real.returncode, real.stdout) == (0, "".join(f"deleted {p}\n" for p in sorted(doomed)))
    assert (log_dir / odd).is_dir() and not any(p.exists() for p in doomed)
    assert logged_ids(log_dir / odd) == logged_ids(log_dir / "ops") == [2]


def contents(room_log: Path) -> list[tuple[str, int]]:
    """(the content's first word, id) of every line of a room's log, sorted."""
    return sorted((m["content"].split()[0], m["id"]) for m in log_lines(room_log))


def sent_to(db: Path, sends: int, word: str) -> list[tuple[str, int]]:
    return [(word, i) for i in serverdb.send_many(db, sends, prefix=word)]


def test_a_renamed_room_is_not_logged_again_under_its_new_name(
    rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    proc = rooms_logger().start()
    wait_until(lambda: "INFO: following the rooms" in proc.stderr(), what="the supervisor")
    db, _ = make_room(rooms_dir, "ops")
    wait_rooms_ready(proc, "ops")
    before = sent_to(db, 3, "before")
    wait_until(lambda: contents(log_dir / "ops") == before, what="room ops logged")
    (rooms_dir / "ops").rename(rooms_dir / "ops2")
    wait_until(lambda: "room ops: gone" in proc.stderr(), what="room ops released")
    refusal = (
        f"room ops2: database {rooms_dir / 'ops2' / 'messages.db'} is the one logged in"
        f" {log_dir / 'ops'}, moved here (room ops renamed to ops2?); not logged again: stop"
        f" the logger and rename {log_dir / 'ops'} to {log_dir / 'ops2'} to go on with its log"
    )
    wait_until(lambda: refusal in proc.stderr(), what="room ops2 refused, saying what to do")
    after = sent_to(rooms_dir / "ops2" / "messages.db", 2, "after")
    assert proc.stderr().count(refusal) == 1
    assert not (log_dir / "ops2").exists()
    assert contents(log_dir / "ops") == before
    assert proc.stop() == 0
    (log_dir / "ops").rename(log_dir / "ops2")  # what the line says
    again = rooms_logger().start()
    wait_until(lambda: contents(log_dir / "ops2") == sorted(before + after), what="its log, on")
    more = sent_to(rooms_dir / "ops2" / "messages.db", 1, "more")
    wait_until(lambda: contents(log_dir / "ops2") == sorted(before + after + more), what="more")
    assert again.stop() == 0
    assert "moved to" in again.stderr() and "WARNING" not in again.stderr(), again.stderr()


def test_swapped_rooms_are_refused_and_each_log_goes_on_once_renamed_to_match(
    rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    """The review's swap, one step at a time as a shell does it (``mv a tmp; mv b a;
    mv tmp b``): each room was taken for a database replaced at its path and logged the
    other's history; room tmp, there for a moment, was logged whole into logs/tmp."""
    proc = rooms_logger().start()
    wait_until(lambda: "INFO: following the rooms" in proc.stderr(), what="the supervisor")
    dbs = {name: make_room(rooms_dir, name)[0] for name in ("a", "b")}
    wait_rooms_ready(proc, "a", "b")
    first = {name: sent_to(db, 3, f"{name}-first") for name, db in dbs.items()}
    wait_until(
        lambda: all(contents(log_dir / n) == first[n] for n in "ab"), what="both rooms logged"
    )
    (rooms_dir / "a").rename(rooms_dir / "tmp")
    wait_until(lambda: "room tmp: database" in proc.stderr(), what="room tmp refused")
    (rooms_dir / "b").rename(rooms_dir / "a")
    wait_until(lambda: "room a: database" in proc.stderr(), what="room a refused")
    (rooms_dir / "tmp").rename(rooms_dir / "b")
    wait_until(lambda: "room b: database" in proc.stderr(), what="room b refused")
    swapped = (
        f"room a: database {dbs['a']} is the one logged in {log_dir / 'b'}, moved here"
        " (rooms a and b swapped?); not logged again: stop the logger and give each log"
        " directory the name of the room its database now has (swap"
        f" {log_dir / 'a'} and {log_dir / 'b'})"
    )
    assert swapped in proc.stderr()
    assert not (log_dir / "tmp").exists()
    assert {n: contents(log_dir / n) for n in "ab"} == first
    assert proc.stop() == 0
    (log_dir / "a").rename(log_dir / "x")  # what the lines say
    (log_dir / "b").rename(log_dir / "a")
    (log_dir / "x").rename(log_dir / "b")
    again = rooms_logger().start()
    wait_rooms_ready(again, "a", "b")
    later = {name: sent_to(rooms_dir / name / "messages.db", 2, f"{name}-later") for name in "ab"}
    want = {"a": first["b"] + later["a"], "b": first["a"] + later["b"]}
    wait_until(
        lambda: all(contents(log_dir / n) == sorted(want[n]) for n in "ab"),
        what="each log going on with its database, once",
    )
    assert again.stop() == 0


def test_a_room_whose_log_dir_is_a_symlink_is_not_written_through(
    tmp_path: Path, rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    """``LOG_DIR/ops -> elsewhere``: the room is not followed (one line; the other rooms
    go on), nothing is written into ``elsewhere`` nor is it chmodded."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    log_dir.mkdir(mode=0o700)
    (log_dir / "ops").symlink_to(elsewhere)
    ops, _ = make_room(rooms_dir, "ops")
    dev, _ = make_room(rooms_dir, "dev")
    proc = rooms_logger().start()
    wait_rooms_ready(proc, "dev")
    serverdb.send_many(ops, 2, prefix="ops")
    sent = serverdb.send_many(dev, 2, prefix="dev")
    wait_until(lambda: logged_ids(log_dir / "dev") == sent, what="the other room logged")
    wait_until(lambda: "room ops: " in proc.stderr(), what="the refusal")
    assert proc.stop() == 0
    refusals = [line for line in proc.stderr().splitlines() if "room ops: " in line]
    assert len(refusals) == 1 and "is a symbolic link" in refusals[0], proc.stderr()
    assert list(elsewhere.iterdir()) == []
    assert elsewhere.stat().st_mode & 0o777 == 0o755


def test_every_reader_treats_a_rooms_symlinked_log_dir_alike(
    tmp_path: Path, rooms_dir: Path, log_dir: Path, rooms_logger: Callable[..., LoggerProcess]
) -> None:
    """A room's log directory that is a link (written by an older version, or made by
    hand) is read by no reader: all rooms skip it with a warning, ``--room`` refuses
    it (before, all rooms skipped it silently while ``--room ops`` read it)."""
    dev, _ = make_room(rooms_dir, "dev")
    proc = rooms_logger().start()
    wait_rooms_ready(proc, "dev")
    sent = serverdb.send_many(dev, 2, prefix="dev")
    wait_until(lambda: logged_ids(log_dir / "dev") == sent, what="the room logged")
    assert proc.stop() == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(log_dir / "dev", elsewhere)
    (log_dir / "ops").symlink_to(elsewhere)
    every = run_command("search", "--log-dir", str(log_dir), "--json", env=env())
    assert every.returncode == 0, every.stderr
    assert len(every.stdout.splitlines()) == len(sent)  # dev's, not ops's too
    assert every.stderr == (
        f"dead-drop-logger: warning: {log_dir / 'ops'} is a symbolic link, which the logger"
        " never writes through; not read (make it a directory)\n"
    )
    one = run_command("search", "--log-dir", str(log_dir), "--room", "ops", env=env())
    assert (one.returncode, one.stdout) == (2, "")
    assert one.stderr == (
        f"dead-drop-logger: error: room 'ops''s log directory {log_dir / 'ops'} is a symbolic"
        " link, which the logger never writes through; not reading it (make it a directory)\n"
    )


def test_a_room_log_directory_made_a_symlink_while_followed_is_not_written_through(
    tmp_path: Path, log_dir: Path
) -> None:
    """``LOG_DIR/ops`` moved aside and replaced by a symlink while its follower runs: the
    refusal was checked once, when the room started; later batches wrote the room's
    state, lock and day files through the link (the reviewer's case)."""
    one = tmp_path / "one.db"
    serverdb.create(one)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = ["--db", f"ops={one}", "--log-dir", str(log_dir)]
    proc = LoggerProcess(one, log_dir, "--retention-days", "0", target=target).start()
    try:
        wait_rooms_ready(proc, "ops")
        before = serverdb.send_many(one, 3, prefix="before")
        wait_until(lambda: logged_ids(log_dir / "ops") == before, what="the room logged")
        (log_dir / "ops").rename(tmp_path / "ops-moved-aside")
        (log_dir / "ops").symlink_to(elsewhere)
        serverdb.send_many(one, 3, prefix="after")
        wait_until(lambda: "is a symbolic link" in proc.stderr(), what="the refusal")
    finally:
        assert proc.stop() == 0, proc.stderr()
    assert sorted(os.listdir(elsewhere)) == [], proc.stderr()
