"""The table follower's reads of ``tasks``, in process on a real database: after the
first read it looks only at rows whose ``updated_at`` moved, yet misses no change."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import serverdb
import tasklines
from conftest import FakeClock

from dead_drop_logger.record.source import Source
from dead_drop_logger.record.tables import TableFollower


def test_a_row_stamped_far_back_and_a_deleted_one(server_db: Path, log_dir: Path) -> None:
    conn = serverdb.connect(server_db)
    serverdb.register(conn, "lead", role="lead")
    ids = [serverdb.create_task(conn, "lead", f"t{n}", assign_to="juno") for n in range(3)]
    log_dir.mkdir(mode=0o700)
    tables = TableFollower(Source(server_db), log_dir, FakeClock("2026-12-06T10:00:00"))
    tables.begin(existed=True, importing=False)  # the three: known, no lines
    assert tables.tick() == 0
    long_ago = (dt.datetime.now() - dt.timedelta(days=30)).isoformat()
    conn.execute(  # a server whose clock was set back a month
        "UPDATE tasks SET result = 'redone', updated_at = ? WHERE id = ?", (long_ago, ids[0])
    )
    assert tables.tick() == 1
    conn.execute("DELETE FROM tasks WHERE id = ?", (ids[1],))
    assert tables.tick() == 0  # forgotten, no line (no server tool deletes a task)
    serverdb.update_task(conn, "juno", ids[2], "in_progress")
    assert tables.tick() == 1
    found = tasklines.lines(log_dir)
    assert [(t["task"], t["from"], t["to"]) for t in found] == [
        (ids[0], "assigned", "assigned"),
        (ids[2], "assigned", "in_progress"),
    ]
    assert found[0]["row"]["result"] == "redone" and "gap" not in found[0]
    saved = tables.store.load()
    assert saved is not None and saved.tasks is not None and ids[1] not in saved.tasks


def test_size_parts_for_task_lines(server_db: Path, log_dir: Path) -> None:
    """``--max-bytes``: task lines go to the day's next part once a line would not fit."""
    conn = serverdb.connect(server_db)
    log_dir.mkdir(mode=0o700)
    tables = TableFollower(
        Source(server_db), log_dir, FakeClock("2026-12-06T10:00:00"), max_bytes=1500
    )
    tables.begin(existed=False, importing=False)
    for n in range(6):
        serverdb.create_task(conn, "lead", f"task {n}", assign_to="juno")
        tables.tick()
    files = sorted(p.name for p in log_dir.glob("tasks-*.json"))
    day = dt.date.today().isoformat()
    assert {f"tasks-{day}.json", f"tasks-{day}.1.json"} <= set(files)
    assert all((log_dir / name).stat().st_size <= 1500 for name in files)
    assert len(tasklines.lines(log_dir)) == 6


def test_a_task_made_between_the_stamps_and_the_rows_keeps_its_told_moves(
    server_db: Path, log_dir: Path
) -> None:
    """The last message id recorded with a read is no later than the read of the stamps
    it rests on: a task created and moved between the two reads (seen only at the next
    read) still has the transition messages of its unseen states looked at."""
    conn = serverdb.connect(server_db)
    serverdb.register(conn, "lead", role="lead")
    serverdb.register(conn, "juno", role="builder")
    first = serverdb.create_task(conn, "lead", "first", assign_to="juno")
    log_dir.mkdir(mode=0o700)
    tables = TableFollower(Source(server_db), log_dir, FakeClock("2026-12-06T10:00:00"))
    tables.begin(existed=True, importing=False)
    assert tables.tick() == 0
    real = tables.source.query
    meanwhile = {"done": False}

    def query(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if sql.startswith("SELECT m.mark") and not meanwhile["done"]:
            meanwhile["done"] = True  # the server, between the stamps and the rows
            other = serverdb.connect(server_db)
            made = serverdb.create_task(other, "lead", "second", assign_to="juno")
            serverdb.update_task(other, "juno", made, "in_progress")
            other.close()
        return real(sql, params)

    tables.source.query = query  # type: ignore[method-assign]
    serverdb.update_task(conn, "juno", first, "in_progress")
    assert tables.tick() == 1  # the first task's move; the second not read yet
    assert meanwhile["done"]
    assert tables.tick() == 1
    second = tasklines.lines(log_dir)[-1]
    assert (second["from"], second["to"], second.get("gap"), second.get("via")) == (
        None,
        "in_progress",
        True,
        ["assigned"],
    )


def test_a_row_restamped_to_the_same_microsecond_below_the_newest(
    server_db: Path, log_dir: Path
) -> None:
    """A move whose stamp neither is the newest nor changes the stamps' microseconds (a
    server stamping whole seconds, as the scripted fortnight of test_task_stats does: two
    tasks moved at 10:00:00) is still seen: the aggregate sums the seconds too."""
    conn = serverdb.connect(server_db)
    serverdb.register(conn, "lead", role="lead")
    first = serverdb.create_task(conn, "lead", "first", assign_to="juno", now="2026-03-05T09:00:00")
    second = serverdb.create_task(
        conn, "lead", "second", assign_to="juno", now="2026-03-05T09:00:00"
    )
    log_dir.mkdir(mode=0o700)
    tables = TableFollower(Source(server_db), log_dir, FakeClock("2026-12-06T10:00:00"))
    tables.begin(existed=True, importing=False)
    serverdb.update_task(conn, "juno", first, "in_progress", now="2026-03-05T10:00:00")
    assert tables.tick() == 1
    serverdb.update_task(conn, "juno", second, "in_progress", now="2026-03-05T10:00:00")
    assert tables.tick() == 1  # the count, the newest stamp and the microseconds unmoved
    found = tasklines.lines(log_dir)
    assert [(t["task"], t["to"]) for t in found] == [
        (first, "in_progress"),
        (second, "in_progress"),
    ]
