"""The durable feed of committed lines (read/feed.py): every line delivered once, in
order, by a consumer that stops, crashes and resumes from its saved position, while a
real logger writes day files, parts, compressed days, rooms and a restored directory.

The consumer here is the test itself: it takes a random number of lines, then either
"delivers" them (records them and saves the position, as a real consumer does after
its receiver acknowledged) or "crashes" (drops them unsaved: they must come again)."""

from __future__ import annotations

import contextlib
import gzip
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import serverdb
from conftest import LoggerProcess, committed_lines, day_files, logger_command, wait_until

from dead_drop_logger.read.feed import (
    Feed,
    FeedLine,
    Position,
    at_end,
    load_position,
    save_position,
)
from dead_drop_logger.read.logread import line_id


class Consumer:
    """A consumer that saves its position only after it delivered."""

    def __init__(self, log_dir: Path, state: Path, seed: int) -> None:
        self.log_dir = log_dir
        self.state = state
        self.rng = random.Random(seed)
        self.delivered: list[FeedLine] = []
        self.crashes = 0

    def step(self) -> int:
        """One run of the consumer from its saved position: take some lines, then
        deliver them or crash. Returns how many it took."""
        feed = Feed(self.log_dir, load_position(self.state, self.log_dir))
        want = self.rng.randint(1, 60)
        taken: list[FeedLine] = []
        with contextlib.closing(feed.poll()) as lines:
            for line in lines:
                taken.append(line)
                if len(taken) >= want:
                    break
        if taken and self.rng.random() < 0.25:
            self.crashes += 1  # the process died before its receiver acknowledged
            return len(taken)
        self.delivered += taken
        save_position(self.state, feed.position)
        return len(taken)

    def keys(self) -> list[str]:
        return [line.key for line in self.delivered]


def stored_lines(log_dir: Path, room: str | None = None) -> dict[str, bytes]:
    """Every stored line of a log directory by ``ROOM:ID`` (plain and compressed)."""
    found: dict[str, bytes] = {}
    for path in day_files(log_dir, "messages-*.json*"):
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        for line in raw.splitlines(keepends=True):
            key = f"{room or ''}:{line_id(line)}"
            assert key not in found, f"{key} stored twice"
            found[key] = line
    return found


def rooms_logger(rooms_dir: Path, log_dir: Path, *args: str) -> LoggerProcess:
    return LoggerProcess(
        rooms_dir,
        log_dir,
        *args,
        target=["--rooms-dir", str(rooms_dir), "--log-dir", str(log_dir)],
    )


def old_sends(db: Path, count: int, day: str, prefix: str) -> list[int]:
    conn = serverdb.connect(db)
    ids: list[int] = []
    for i in range(count):
        stamp = f"{day}T10:{i // 60 % 60:02d}:{i % 60:02d}"
        ids += serverdb.send(conn, "juno", "vega", f"{prefix} {i}\nsecond line", timestamp=stamp)
    conn.close()
    return ids


def test_every_line_once_through_crashes_parts_compression_and_a_new_room(
    tmp_path: Path,
) -> None:
    rooms_dir, log_dir = tmp_path / "rooms", tmp_path / "logs"
    dbs = {name: serverdb.room_db(rooms_dir, name) for name in ("a", "b")}
    for db in dbs.values():
        db.parent.mkdir(parents=True)
        serverdb.create(db)
    consumer = Consumer(log_dir, tmp_path / "position.json", seed=11)
    proc = rooms_logger(rooms_dir, log_dir, "--max-bytes", "2KB", "--retention-days", "0").start()
    try:
        for name in dbs:
            wait_until(
                lambda n=name: f"room {n}: following " in proc.stderr(),
                what=f"room {name} to start following",
            )
        old_sends(dbs["a"], 60, "2026-03-01", "a first")
        old_sends(dbs["b"], 40, "2026-03-01", "b first")
        wait_until(lambda: len(stored_lines(log_dir / "a", "a")) >= 60, what="room a")
        for _ in range(100):  # part of the way
            if not consumer.step() or len(consumer.delivered) > 50:
                break
        old_sends(dbs["a"], 80, "2026-03-02", "a second")
        dbs["c"] = serverdb.room_db(rooms_dir, "c")  # a room made while all this runs
        dbs["c"].parent.mkdir()
        serverdb.create(dbs["c"])
        old_sends(dbs["c"], 30, "2026-03-02", "c first")
        for _ in range(5):
            consumer.step()
        # The first day compressed while the consumer is in the middle of it.
        prune = subprocess.run(
            [
                *logger_command(),
                "prune",
                "--log-dir",
                str(log_dir),
                "--compress-after",
                "0",
                "--retention-days",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert prune.returncode == 0, prune.stderr
        assert list((log_dir / "a").glob("messages-2026-03-01*.json.gz"))
        old_sends(dbs["b"], 50, "2026-03-03", "b third")
        want: dict[str, bytes] = {}

        def everything() -> bool:
            want.clear()
            for name in dbs:
                want.update(stored_lines(log_dir / name, name))
            ids = {f"{name}:{i}" for name, db in dbs.items() for i in serverdb.all_ids(db)}
            # committed too: the consumer loop below is bounded
            return set(want) == ids and {line.key for line in committed_lines(log_dir)} == ids

        wait_until(everything, what="every room logged")
        for _ in range(1000):
            if not consumer.step() and len(consumer.delivered) >= len(want):
                break
    finally:
        assert proc.stop() == 0, proc.stderr()
    assert consumer.crashes > 0  # the crash path was taken
    keys = consumer.keys()
    assert len(keys) == len(set(keys)), "a line delivered twice"
    assert set(keys) == set(want)
    assert all(line.raw == want[line.key] for line in consumer.delivered)
    # In order within each room's day file.
    for name in dbs:
        ids = [line.id for line in consumer.delivered if line.room == name]
        by_day: dict[object, list[int]] = {}
        for line in consumer.delivered:
            if line.room == name and line.id is not None:
                by_day.setdefault((line.file.day, line.file.part), []).append(line.id)
        assert all(v == sorted(v) for v in by_day.values()), name
        assert ids


def test_a_consumer_starting_at_the_end_gets_only_new_lines(
    server_db: Path, log_dir: Path, logger: object
) -> None:
    proc = LoggerProcess(server_db, log_dir, "--import-historical").start()
    try:
        before = serverdb.send_many(server_db, 20, prefix="before")
        every: list[FeedLine] = []
        whole = Feed(log_dir)  # (stored is not yet committed: wait for the commit)
        wait_until(lambda: every.extend(whole.poll()) or len(every) == len(before), what="commit")
        state = log_dir.parent / "position.json"
        save_position(state, at_end(log_dir))
        after = serverdb.send_many(server_db, 7, prefix="after")
        feed = Feed(log_dir, load_position(state, log_dir))
        got: list[FeedLine] = []
        wait_until(lambda: got.extend(feed.poll()) or len(got) >= len(after), what="new lines")
    finally:
        assert proc.stop() == 0, proc.stderr()
    assert [line.id for line in got] == after
    assert list(feed.poll()) == []


def test_a_restored_backup_neither_repeats_nor_skips_a_line(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    consumer = Consumer(log_dir, tmp_path / "position.json", seed=3)
    proc = LoggerProcess(server_db, log_dir).start()
    proc.wait_ready()
    first = serverdb.send_many(server_db, 50, prefix="first")
    wait_until(lambda: len(stored_lines(log_dir)) == len(first), what="the first lines")
    assert proc.stop() == 0, proc.stderr()
    backup = tmp_path / "backup"
    shutil.copytree(log_dir, backup, symlinks=True)  # as cp -a
    proc.start()
    proc.wait_ready()
    second = serverdb.send_many(server_db, 50, prefix="second")
    wait_until(lambda: len(committed_lines(log_dir)) == len(first + second), what="more lines")
    for _ in range(500):
        if not consumer.step() and len(consumer.delivered) >= len(first + second):
            break
    assert proc.stop() == 0, proc.stderr()

    shutil.rmtree(log_dir)  # the disk lost; the backup restored
    shutil.copytree(backup, log_dir, symlinks=True)
    proc.start()
    proc.wait_ready()
    third = serverdb.send_many(server_db, 30, prefix="third")
    every = first + second + third
    wait_until(lambda: len(committed_lines(log_dir)) == len(every), what="the refill, new lines")
    for _ in range(500):
        if not consumer.step() and len(consumer.delivered) >= len(every):
            break
    assert proc.stop() == 0, proc.stderr()
    keys = consumer.keys()
    assert len(keys) == len(set(keys)), "a line delivered twice"
    assert sorted(line.id or 0 for line in consumer.delivered) == sorted(every)


def test_the_position_is_plain_data_that_round_trips(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "messages-2026-03-01.json").write_bytes(
        b'{"id":1,"content":"a"}\n{"id":2,"content":"b"}\n{"id":3,"content":"c"}\n'
    )
    feed = Feed(log_dir)
    with contextlib.closing(feed.poll()) as lines:
        first = next(lines)
    assert first.key == ":1" and first.raw == b'{"id":1,"content":"a"}\n'
    state = tmp_path / "position.json"
    save_position(state, feed.position)
    assert state.stat().st_mode & 0o777 == 0o600
    again = load_position(state, log_dir)
    assert again is not None
    assert again.to_json() == feed.position.to_json()
    assert [line.id for line in Feed(log_dir, again).poll()] == [2, 3]
    assert load_position(tmp_path / "none.json", log_dir) is None
    with pytest.raises(ValueError):
        Position.from_json(log_dir, b'{"format": 1, "files": [{"room": "../x"}]}')
    with pytest.raises(ValueError):
        Position.from_json(log_dir, b"[]")
