"""``ship``: every logged line delivered exactly once to a real NATS JetStream and a real
PostgreSQL (started here on loopback, stopped at the end), checked with their own
clients: each ``ROOM:ID`` once, its bytes the logged line's, through ``kill -9`` of the
shipper at random moments, both sinks down for a while, several days (a midnight in
the logs), compression and retention while it ships."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serverdb
from conftest import DEADLINE, LoggerProcess, logger_command, run_command, wait_until
from sinks import Nats, Postgres, nats_server, postgres_server

from dead_drop_logger.read.feed import Feed
from dead_drop_logger.ship import position, target
from dead_drop_logger.ship.position import ShipPosition

LONG = 180.0  # a loaded 2-core machine: generous


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nats]:
    with nats_server(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as server:
        yield server


def logged(log_dir: Path) -> dict[str, bytes]:
    """Every logged line of the directory and its rooms: ``ROOM:ID`` -> its bytes
    (without the newline); a key met twice fails (the logs hold each line once)."""
    found: dict[str, bytes] = {}
    if not log_dir.is_dir():
        return found
    rooms = [(None, log_dir)] + [
        (p.name, p) for p in sorted(log_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")
    ]
    for room, directory in rooms:
        for path in sorted(directory.glob("messages-*.json*")):
            if path.is_symlink() or path.name.endswith(".tmp"):
                continue
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            if path.suffix == ".gz":
                raw = gzip.decompress(raw)
            for line in raw.split(b"\n")[:-1]:
                key = f"{room or ''}:{json.loads(line)['id']}"
                assert key not in found or found[key] == line, key
                found[key] = line
    return found


def ship(log_dir: Path, *targets: str, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    args = [a for t in targets for a in ("--to", t)]
    err = open(log_dir.parent / "ship-stderr.txt", "ab")  # noqa: SIM115 - the child's
    return subprocess.Popen(
        [*logger_command(), "ship", "--log-dir", str(log_dir), *args, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
        env={k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")},
    )


def in_nats(nats: Nats, stream: str) -> dict[str, bytes]:
    """The stream's messages by Nats-Msg-Id; a key stored twice fails."""
    found: dict[str, bytes] = {}
    for _subject, key, data in nats.messages(stream):
        assert key not in found, f"{key} twice in the stream"
        found[key] = data
    return found


def in_pg(pg: Postgres, table: str) -> dict[str, bytes]:
    rows = pg.query(f"SELECT room, generation, id, line FROM {table}")
    found: dict[str, bytes] = {}
    for room, generation, msg_id, line in rows:
        key = f"{room}:{msg_id}" + (f"@{generation}" if generation else "")
        assert key not in found
        found[key] = line.encode()
    return found


def days_ago(days: int, hour: int = 12, minute: int = 0, second: float = 0) -> str:
    day = dt.date.today() - dt.timedelta(days=days)
    base = dt.datetime.combine(day, dt.time(hour, minute))
    return (base + dt.timedelta(seconds=second)).isoformat()


def test_exactly_once_through_kills_an_outage_midnight_compression_and_retention(
    tmp_path: Path, nats: Nats, pg: Postgres
) -> None:
    rooms = {name: tmp_path / name / "messages.db" for name in ("ops", "dev.team")}
    log_dir = tmp_path / "logs"
    for name, db in rooms.items():
        db.parent.mkdir()
        serverdb.create(db)
        conn = serverdb.connect(db)
        for days in (4, 3, 2, 1):  # four old days, each with lines on both sides of midnight
            for i in range(15):
                serverdb.send(
                    conn,
                    "juno",
                    "atlas",
                    f"{name} {days} {i}",
                    timestamp=days_ago(days, 23, 59, 50 + i / 2),
                )
            for i in range(10):
                serverdb.send(
                    conn,
                    "vega",
                    "orion",
                    f"{name} {days} after {i}",
                    timestamp=days_ago(days - 1, 0, 0, i / 2),
                )
        conn.close()
    target = [x for name, db in rooms.items() for x in ("--db", f"{name}={db}")]
    logger = LoggerProcess(
        next(iter(rooms.values())),
        log_dir,
        "--import-historical",
        "--retention-days",
        "0",
        target=[*target, "--log-dir", str(log_dir)],
    )
    logger.start()
    writers: list[subprocess.Popen[bytes]] = []
    stream, table = "KILLS", "kills"
    targets = (f"{nats.url}?stream={stream}&subject=kills", f"{pg.url}?table={table}")
    shipper = None
    try:
        wait_until(lambda: len(logged(log_dir)) >= 2 * 4 * 50, LONG, "the history logged")
        for db in rooms.values():  # live traffic while it ships
            writers.append(
                subprocess.Popen(
                    [
                        os.sys.executable,
                        str(Path(serverdb.__file__)),
                        str(db),
                        "--sends",
                        "150",
                        "--interval",
                        "0.02",
                    ],
                    stdin=subprocess.DEVNULL,
                )
            )
        rng = random.Random(23)
        for kill in range(5):  # kill -9 at random moments
            shipper = ship(log_dir, *targets, extra=("--batch-lines", "7"))
            time.sleep(rng.uniform(0.3, 1.5))
            shipper.send_signal(signal.SIGKILL)
            shipper.wait(DEADLINE)
            if kill == 2:  # compression while it ships: the old days into .gz
                done = run_command(
                    "prune",
                    "--log-dir",
                    str(log_dir),
                    "--compress-after",
                    "2",
                    "--retention-days",
                    "0",
                    env=dict(os.environ),
                )
                assert done.returncode == 0, done.stderr
        # the oldest day is shipped: retention may delete it
        oldest = {k for k, v in logged(log_dir).items() if days_ago(4)[:10] in v.decode()}
        shipper = ship(log_dir, *targets)
        wait_until(
            lambda: oldest <= set(in_pg(pg, table)) and oldest <= set(in_nats(nats, stream)),
            LONG,
            "the oldest day shipped",
        )
        # a midnight while it ships: tomorrow's file appears in each room
        for db in rooms.values():
            conn = serverdb.connect(db)
            for i in range(5):
                serverdb.send(conn, "orion", "juno", f"tomorrow {i}", timestamp=days_ago(-1, 0, 1))
            conn.close()
        tomorrow = days_ago(-1)[:10]
        wait_until(
            lambda: len(list(log_dir.glob(f"*/messages-{tomorrow}.json"))) == 2,
            LONG,
            "tomorrow's files",
        )
        # both sinks down for a while (lines keep being logged meanwhile), then back
        nats.stop()
        pg.stop()
        time.sleep(3)
        everything = logged(log_dir)
        done = run_command(
            "prune", "--log-dir", str(log_dir), "--retention-days", "3", env=dict(os.environ)
        )
        assert done.returncode == 0, done.stderr
        assert not any(days_ago(4)[:10] in k for k in map(str, log_dir.rglob("*.json*")))
        nats.start()
        pg.start_again()
        for writer in writers:
            assert writer.wait(LONG) == 0
        shipper.send_signal(signal.SIGKILL)  # one more, after the outage
        shipper.wait(DEADLINE)
        shipper = ship(log_dir, *targets)
        total = 2 * (4 * 50 + 150 * 2 + 5 * 2)

        def all_logged() -> bool:  # the writers are done; the logger may still lag
            everything.update(logged(log_dir))
            return len(everything) >= total

        wait_until(all_logged, LONG, "every line logged")
        assert len(everything) == total
        wait_until(lambda: len(in_pg(pg, table)) >= len(everything), LONG, "PostgreSQL")
        wait_until(lambda: len(in_nats(nats, stream)) >= len(everything), LONG, "JetStream")
        assert in_pg(pg, table) == everything
        assert {k: v for k, v in in_nats(nats, stream).items()} == everything
        subjects = {subject for subject, _key, _data in nats.messages(stream)}
        assert subjects == {"kills.ops.messages", "kills.dev~2Eteam.messages"}
    finally:
        if shipper is not None and shipper.poll() is None:
            shipper.kill()
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
        logger.stop()


def test_a_replaced_database_ships_its_messages_under_a_new_generation(
    tmp_path: Path, nats: Nats, pg: Postgres
) -> None:
    """A room's database replaced: the new one's ids start again from 1 in the same log
    (the state counts a reset). Keyed ROOM:ID alone, they would collide with the first
    database's lines at the sink and be dropped there as duplicates; they are stored,
    under ROOM:ID@1, beside the first database's lines."""
    db = tmp_path / "room" / "messages.db"
    db.parent.mkdir()
    serverdb.create(db)
    log_dir = tmp_path / "logs"
    target = ["--db", f"hub={db}", "--log-dir", str(log_dir)]
    logger = LoggerProcess(
        db, log_dir, "--import-historical", "--retention-days", "0", target=target
    )
    serverdb.send_many(db, 10, prefix="first")
    logger.start()
    stream, table = "RESET", "reset"
    targets = (f"{nats.url}?stream={stream}&subject=reset", f"{pg.url}?table={table}")
    shipper = ship(log_dir, *targets)
    try:
        wait_until(
            lambda: len(in_pg(pg, table)) == 20 and len(in_nats(nats, stream)) == 20,
            LONG,
            "the first database shipped",
        )
        assert logger.stop() == 0
        db.unlink()
        for extra in ("-wal", "-shm"):
            Path(f"{db}{extra}").unlink(missing_ok=True)
        serverdb.create(db)
        serverdb.send_many(db, 3, prefix="second")
        logger.start()
        wait_until(lambda: "replaced" in logger.stderr(), LONG, "the reset")
        wait_until(lambda: len(logged_lines(log_dir / "hub")) == 26, LONG, "the reset logged")
        want = {f"hub:{i}": line for i, line in enumerate(logged_lines(log_dir / "hub")[:20], 1)}
        want |= {f"hub:{i}@1": line for i, line in enumerate(logged_lines(log_dir / "hub")[20:], 1)}
        wait_until(
            lambda: len(in_pg(pg, table)) == 26 and len(in_nats(nats, stream)) == 26,
            LONG,
            "the second database shipped",
        )
        assert in_pg(pg, table) == want
        assert in_nats(nats, stream) == want
        assert b"second" in want["hub:1@1"] and b"first" in want["hub:1"]
    finally:
        shipper.kill()
        shipper.wait()
        logger.stop()


def logged_lines(directory: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(directory.glob("messages-*.json")):
        if not path.is_symlink():
            lines += path.read_bytes().split(b"\n")[:-1]
    return lines


def test_restarted_after_the_duplicate_window_the_stream_is_reconciled(
    tmp_path: Path, nats: Nats
) -> None:
    """The stream drops a repeated Nats-Msg-Id only inside its duplicate window. A
    shipper that published a batch and died before saving its position, restarted
    after the window, must not publish the batch again: it reads the stream's last
    message for each room first."""
    import asyncio

    import nats as nats_client
    from nats.js.api import StreamConfig

    stream = "WINDOW"

    async def make() -> None:  # a one-second window, so the test need not wait minutes
        nc = await nats_client.connect(nats.url)
        await nc.jetstream().add_stream(
            StreamConfig(name=stream, subjects=["window.>"], duplicate_window=1.0)
        )
        await nc.close()

    asyncio.run(make())
    db = tmp_path / "messages.db"
    serverdb.create(db)
    serverdb.send_many(db, 15)
    log_dir = tmp_path / "logs"
    logger = LoggerProcess(db, log_dir, "--import-historical", "--retention-days", "0")
    logger.start()
    wait_until(lambda: len(logged_lines(log_dir)) == 30, LONG, "logged")
    logger.stop()
    url = f"{nats.url}?stream={stream}&subject=window"
    shipper = ship(log_dir, url)
    try:
        wait_until(lambda: len(in_nats(nats, stream)) == 30, LONG, "everything shipped")
    finally:
        shipper.kill()
        shipper.wait()
    # As if it had died after publishing its second batch of 15, before saving: its
    # saved position is after the first 15 lines.
    saved = ShipPosition.start(log_dir)
    lines = Feed(log_dir, saved.feed).poll()
    for _ in range(15):
        assert saved.generations.item(next(lines)) is not None
    lines.close()  # type: ignore[attr-defined]
    path = log_dir / ".ship" / f"{target.parse(url).name}.position"
    position.save(path, saved)
    time.sleep(2.5)  # the duplicate window is past
    shipper = ship(log_dir, url, extra=("--batch-lines", "15"))
    try:
        wait_until(
            lambda: position.load(path, log_dir).feed.to_json() != saved.feed.to_json(),
            LONG,
            "the repeated batch handled",
        )
    finally:
        shipper.kill()
        shipper.wait()
    keys = [key for _s, key, _d in nats.messages(stream)]
    assert len(keys) == len(set(keys)) == 30


def test_lines_jsonb_cannot_hold_are_stored_whole(tmp_path: Path, pg: Postgres) -> None:
    """``\\u0000`` in a message: jsonb refuses it (the whole batch would fail, retried
    forever); such a line is stored with ``raw`` NULL and its exact bytes in ``line``.
    Backslashes, tabs (escaped in the line) and non-ASCII text come through as logged."""
    db = tmp_path / "messages.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    for content in ("nul \x00 here", "tab\tand \\ back\\slash", "héllo 🌍", "plain"):
        serverdb.send(conn, "juno", "atlas", content, leads=())
    conn.close()
    log_dir = tmp_path / "logs"
    logger = LoggerProcess(db, log_dir, "--import-historical", "--retention-days", "0")
    logger.start()
    wait_until(lambda: len(logged_lines(log_dir)) == 4, LONG, "logged")
    logger.stop()
    shipper = ship(log_dir, f"{pg.url}?table=odd")
    try:
        wait_until(lambda: len(in_pg(pg, "odd")) == 4, LONG, "shipped")
    finally:
        shipper.kill()
        shipper.wait()
    assert in_pg(pg, "odd") == {f":{i}": line for i, line in enumerate(logged_lines(log_dir), 1)}
    rows = dict(pg.query("SELECT id, raw->>'content' FROM odd"))
    assert rows == {1: None, 2: "tab\tand \\ back\\slash", 3: "héllo 🌍", 4: "plain"}
    assert pg.query("SELECT content FROM odd WHERE id = 3") == [("héllo 🌍",)]


def test_hubs_share_a_stream_and_a_table_without_colliding(
    tmp_path: Path, nats: Nats, pg: Postgres
) -> None:
    """Two hubs, each with a room "ops" holding ids 1..4, into one stream and one table:
    with ``?hub=NAME`` each keeps its own keys (``HUB/ROOM:ID``); none is dropped as the
    other's duplicate."""
    stream, table = "HUBS", "hubs"
    expected: dict[str, bytes] = {}
    shippers = []
    try:
        for hub in ("east", "west"):
            db = tmp_path / hub / "ops.db"
            db.parent.mkdir()
            serverdb.create(db)
            serverdb.send_many(db, 2, prefix=hub)
            log_dir = tmp_path / hub / "logs"
            logger = LoggerProcess(
                db,
                log_dir,
                "--import-historical",
                "--retention-days",
                "0",
                target=["--db", f"ops={db}", "--log-dir", str(log_dir)],
            )
            logger.start()
            wait_until(lambda: len(logged(log_dir)) == 4, LONG, "logged")  # noqa: B023
            logger.stop()
            expected |= {f"{hub}/{key}": line for key, line in logged(log_dir).items()}
            shippers.append(
                ship(
                    log_dir,
                    f"{nats.url}?stream={stream}&subject=hubs&hub={hub}",
                    f"{pg.url}?table={table}&hub={hub}",
                )
            )
        wait_until(
            lambda: nats.count(stream) == 8 and len(pg.query(f"SELECT 1 FROM {table}")) == 8,
            LONG,
            "both hubs shipped",
        )
    finally:
        for shipper in shippers:
            shipper.kill()
            shipper.wait()
    assert in_nats(nats, stream) == expected
    rows = pg.query(f"SELECT hub, room, id, line FROM {table}")
    assert {f"{h}/{r}:{i}": line.encode() for h, r, i, line in rows} == expected
    subjects = {subject for subject, _key, _data in nats.messages(stream)}
    assert subjects == {"hubs.east.ops.messages", "hubs.west.ops.messages"}


def test_a_caught_up_shipper_is_woken_by_the_logs_not_a_timer(tmp_path: Path) -> None:
    """Caught up, the shipper sleeps on change notifications over the log directory
    and every room's (a timer scanning every file every 20 ms cost 16% of a core on 300
    day files): with its timer set to an hour, a new message, a new room and a line in
    it are still shipped."""
    import threading

    from dead_drop_logger.ship.shipper import Batching, Shipper

    got: list[str] = []

    class Memory:
        def open(self) -> None: ...
        def reconcile(self, items: list[position.Item]) -> list[position.Item]:
            return items

        def send(self, items: list[position.Item]) -> None:
            got.extend(item.key for item in items)

        def close(self) -> None: ...

    first = tmp_path / "one.db"
    serverdb.create(first)
    log_dir = tmp_path / "logs"
    logger = LoggerProcess(
        first, log_dir, target=["--db", f"one={first}", "--log-dir", str(log_dir)]
    )
    logger.start()
    logger.wait_ready()
    stop = threading.Event()
    shipper = Shipper(
        target.parse("http://127.0.0.1:9/x"),
        log_dir,
        Batching(poll=3600, idle=3600),
        stop=stop,
        opener=lambda _t, _d: Memory(),
    )  # type: ignore[arg-type,return-value]
    thread = threading.Thread(target=shipper.run)
    thread.start()
    try:
        wait_until(lambda: shipper.status["state"] == "caught up", LONG, "caught up")
        serverdb.send_many(first, 1)
        wait_until(lambda: got == ["one:1", "one:2"], LONG, "the new lines shipped")
        logger.stop()
        second = tmp_path / "two.db"
        serverdb.create(second)
        serverdb.send_many(second, 1)
        logger = LoggerProcess(
            first,
            log_dir,
            "--import-historical",
            target=["--db", f"one={first}", "--db", f"two={second}", "--log-dir", str(log_dir)],
        )
        logger.start()
        wait_until(lambda: got[2:] == ["two:1", "two:2"], LONG, "the new room's lines shipped")
    finally:
        stop.set()
        thread.join(60)
        logger.stop()


def test_a_room_made_while_the_watch_wakes_is_watched_before_its_lock(tmp_path: Path) -> None:
    """A room's directory is made before its lock: a watch woken by the directory's
    creation watches it then, lock or not, so the room's first lines wake it too (CI
    once saw the shipper wake at the creation, find no lock, and sleep its hour)."""
    import threading

    from dead_drop_logger.logdir.layout import LOCK_FILE
    from dead_drop_logger.ship.wake import LogWatch

    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / ".ship").mkdir()
    watch = LogWatch(log_dir)
    assert watch.available
    stop = threading.Event()
    backstop = threading.Timer(LONG, stop.set)  # only if the wake never comes
    backstop.start()
    try:
        (log_dir / "one").mkdir()
        watch.wait(3600, stop)
        assert not stop.is_set(), "the room's directory made did not wake the watch"
        assert log_dir / "one" in watch.watched
        assert log_dir / ".ship" not in watch.watched  # the shipper's own files: never
        (log_dir / "one" / LOCK_FILE).touch()
        (log_dir / "one" / "messages-2026-12-07.json").write_text("{}\n")
        watch.wait(3600, stop)
        assert not stop.is_set(), "the room's first line did not wake the watch"
    finally:
        backstop.cancel()
        watch.close()


def test_a_publish_the_stream_refuses_fails_the_batch(nats: Nats) -> None:
    """The wire publisher counts a batch delivered only when the stream acknowledged
    every line: a subject no stream takes (no responders), a stream that refuses new
    messages when full, and a line over the server's max_payload each fail the batch
    (the shipper then retries it from its saved position); what the stream holds is
    acknowledged, stored once, a repeat acknowledged as the duplicate it is."""
    import asyncio

    import nats as nats_client
    from nats.js.api import DiscardPolicy, StreamConfig

    from dead_drop_logger.ship.nats_wire import Publisher
    from dead_drop_logger.ship.sink import SinkError

    async def make() -> None:
        nc = await nats_client.connect(nats.url)
        await nc.jetstream().add_stream(
            StreamConfig(name="FULL", subjects=["full.>"], max_msgs=3, discard=DiscardPolicy.NEW)
        )
        await nc.close()

    asyncio.run(make())
    wire = Publisher("127.0.0.1", nats.port, timeout=20)
    try:
        lines = [(b"full.a", f"a:{n}".encode(), b'{"id":%d}' % n) for n in range(1, 4)]
        wire.publish(lines)
        wire.publish(lines)  # a repeat: acknowledged as duplicates, not stored again
        assert [key for _s, key, _d in nats.messages("FULL")] == ["a:1", "a:2", "a:3"]
        with pytest.raises(SinkError, match="not stored"):
            wire.publish([(b"full.a", b"a:4", b'{"id":4}')])  # full: refused
        with pytest.raises(SinkError, match="503"):
            wire.publish([(b"nowhere.a", b"a:5", b'{"id":5}')])  # no stream takes it
        with pytest.raises(SinkError, match="max_payload"):
            wire.publish([(b"full.a", b"a:6", b"x" * (wire.max_payload + 1))])
    finally:
        wire.close()
    assert len(nats.messages("FULL")) == 3


def test_rows_copied_straight_in_are_the_rows_the_server_takes_out(pg: Postgres) -> None:
    """A batch is first copied straight into the table, its columns taken out of each
    line by the shipper; the same lines sent the careful way (a temporary table, the
    server's ``raw ->> 'column'``, ON CONFLICT) give the same rows, column for column,
    whatever the values (text with tabs, newlines, backslashes and non-ASCII; numbers;
    booleans; null; a column missing; ``\\u0000``). A batch sent again is refused by
    the key, rolled back whole and goes the careful way: every row once, and the next
    batch of new rows is copied straight in again. A line only the server can render
    (a fraction, an object) sends its batch the careful way."""
    from dead_drop_logger.ship.pg_sink import COLUMNS, PostgresSink

    values: list[dict[str, object]] = [
        {"content": "tab\tnew\nline \\ back\\slash \r end", "read_flag": 0, "is_cc": 1},
        {"content": "héllo 🌍", "read_flag": True, "is_cc": False, "task_id": 12345678901234},
        {"content": "nul \x00 here", "reply_to": 3},
        {"content": "no columns but this"},
        {"content": "negative", "task_id": -7, "cc_original_to": "bob", "reply_to": None},
    ]
    lines = []
    for n, extra in enumerate(values, 1):
        message = {"id": n, "from_agent": "juno", "to_agent": "atlas"} | extra
        if n == 4:
            message = {"id": n, "content": extra["content"]}
        lines.append(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    items = [position.Item("dev", n, 0, raw) for n, raw in enumerate(lines, 1)]
    fast, careful = (
        PostgresSink(target.parse(f"{pg.url}?table=fast")),
        PostgresSink(target.parse(f"{pg.url}?table=careful")),
    )
    for sink in (fast, careful):
        sink.open()
    try:
        prepared = fast.prepare(items)
        assert isinstance(prepared, bytes)
        fast.send_prepared(items, prepared)
        assert not fast.careful
        careful.send(items)
        query = f"SELECT room, id, {', '.join(COLUMNS)}, raw, line FROM {{}} ORDER BY id"
        rows = pg.query(query.format("fast"))
        assert rows == pg.query(query.format("careful"))
        assert len(rows) == 5 and rows[2][-2] is None  # \u0000: raw NULL
        assert rows[1][2 + COLUMNS.index("read_flag")] == "true"
        # sent again (a repeat after a crash), with one new line: each row once
        more = [*items, position.Item("dev", 6, 0, lines[0].replace(b'"id":1', b'"id":6'))]
        fast.send_prepared(more, fast.prepare(more))
        assert fast.careful  # the COPY was refused whole; the careful way skipped 5
        assert sorted(i for (i,) in pg.query("SELECT id FROM fast")) == [1, 2, 3, 4, 5, 6]
        new = [position.Item("dev", 7, 0, lines[0].replace(b'"id":1', b'"id":7'))]
        fast.send_prepared(new, fast.prepare(new))  # all new: careful no more
        assert not fast.careful
        fast.send_prepared(new, fast.prepare(new))
        assert fast.careful
        fraction = [position.Item("dev", 8, 0, b'{"id":8,"reply_to":1.5}\n')]
        assert fast.prepare(fraction) is None
        fast.send_prepared(fraction, None)
        assert pg.query("SELECT reply_to FROM fast WHERE id = 8") == [("1.5",)]
    finally:
        fast.close()
        careful.close()
    assert fast.conflicts == 0


def test_a_tls_server_is_published_to_over_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tls://``: a nats-server that requires TLS (its certificate from a test
    authority the client trusts) takes the batch on the wire over TLS, each line once."""
    import asyncio

    import nats as nats_client
    import trustme
    from sinks import _wait_port, free_port, nats_binary

    from dead_drop_logger.ship.nats_sink import NatsSink

    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    authority.cert_pem.write_to_path(str(ca))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the default context trusts it
    port = free_port()
    tls = ["--tls", "--tlscert", str(cert), "--tlskey", str(key)]
    server = subprocess.Popen(
        [
            nats_binary(),
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-sd",
            str(tmp_path / "js"),
            *tls,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, server, "nats-server --tls")
        url = f"tls://127.0.0.1:{port}"
        lines = [b'{"id":%d,"content":"over tls"}\n' % n for n in range(1, 6)]
        items = [position.Item("ops", n, 0, raw) for n, raw in enumerate(lines, 1)]
        sink = NatsSink(target.parse(f"{url}?stream=TLS&subject=tls"))
        sink.open()
        try:
            sink.send(items)
            sink.send(items)  # a repeat: dropped by the stream
        finally:
            sink.close()

        async def stored() -> list[tuple[str, bytes]]:
            nc = await nats_client.connect(url)
            js = nc.jetstream()
            info = await js.stream_info("TLS")
            out = []
            for seq in range(1, info.state.last_seq + 1):
                msg = await js.get_msg("TLS", seq)
                out.append(((msg.headers or {}).get("Nats-Msg-Id", ""), msg.data))
            await nc.close()
            return out

        assert asyncio.run(stored()) == [(f"ops:{n}", raw[:-1]) for n, raw in enumerate(lines, 1)]
    finally:
        server.terminate()
        server.wait(20)
