"""A historical import never writes history that retention is about to delete: such
messages are counted (and reported), recorded as handled, and not written."""

from __future__ import annotations

import datetime as dt
import logging
import random
import sqlite3
import threading
from pathlib import Path

import pytest
import serverdb
from conftest import FakeClock, log_lines, wait_until

from dead_drop_logger.config import Settings
from dead_drop_logger.logdir import layout
from dead_drop_logger.record.follow import Follower
from dead_drop_logger.record.history import count_in, tally
from dead_drop_logger.record.pipeline import Pipeline
from dead_drop_logger.record.source import TABLE, TIMESTAMP_COLUMN, Source, day_expression
from dead_drop_logger.record.writer import DayWriter


def history(db: Path) -> dict[str, list[int]]:
    conn = serverdb.connect(db)
    ids = {
        "old": serverdb.send(conn, "juno", "atlas", "a", timestamp="2026-01-15T10:00:00"),
        "edge": serverdb.send(conn, "juno", "atlas", "b", timestamp="2026-02-08T00:00:00"),
        "recent": serverdb.send(conn, "juno", "atlas", "c", timestamp="2026-03-09T10:00:00"),
        "undated": serverdb.send(conn, "juno", "atlas", "d", timestamp="not a date"),
    }
    conn.close()
    return ids


def test_backfill_skips_and_counts_what_retention_would_delete(
    server_db: Path, tmp_path: Path
) -> None:
    ids = history(server_db)
    clock = FakeClock("2026-03-10T12:00:00")  # 30-day window: 2026-02-08 and later
    source = Source(server_db)
    log_dir = tmp_path / "logs"
    pipeline = Pipeline(source, log_dir, DayWriter(log_dir, clock))
    pipeline.prepare(database_existed=True)
    done = pipeline.backfill(retention_days=30)
    assert (done.lines, done.outside_retention) == (6, 2)
    written = sorted(obj["id"] for obj in log_lines(log_dir))
    assert written == sorted(ids["edge"] + ids["recent"] + ids["undated"])
    assert {f.day.isoformat() for f in layout.log_files(log_dir)} == {
        "2026-02-08",
        "2026-03-09",
        "2026-03-10",  # the undated message, filed under today
    }
    again = pipeline.backfill(retention_days=30)  # handled, not re-read forever
    assert (again.lines, again.outside_retention) == (0, 0)
    # Asked for everything later (--retention-days 0), the skipped ones land, once.
    assert pipeline.backfill(retention_days=0).lines == 2
    assert pipeline.backfill(retention_days=0).lines == 0
    assert sorted(obj["id"] for obj in log_lines(log_dir)) == sorted(
        i for group in ids.values() for i in group
    )

    everything = tmp_path / "all"
    keep_all = Pipeline(source, everything, DayWriter(everything, clock))
    keep_all.prepare(database_existed=True)
    assert keep_all.backfill().lines == 8  # retention 0 (the default here): all history
    source.close()


def test_the_import_reports_what_fell_outside_retention(
    server_db: Path, log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history(server_db)
    settings = Settings(db=server_db, log_dir=log_dir, poll_interval=0.02, import_historical=True)
    follower = Follower(settings, clock=FakeClock("2026-03-10T12:00:00"))
    caplog.set_level(logging.INFO, logger="dead_drop_logger")
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: "2 messages older than the 30-day retention not written" in caplog.text,
            what="the import summary",
        )
    finally:
        follower.stop.set()
        thread.join(timeout=60)
    assert "historical import: 6 messages logged" in caplog.text


@pytest.mark.parametrize("utc", [False, True])
def test_the_tally_of_what_retention_leaves_out_is_the_day_filter_s(
    tmp_path: Path, utc: bool
) -> None:
    """The plan's one-pass tally (a plain comparison of the stamp's first ten characters
    before the date check) counts exactly what filtering by the day a message is filed
    under counts, over odd stamps (not dates, numbers, zoned, impossible dates, NULL,
    a BLOB), at cut-offs before, inside and after them, over several id ranges."""
    from test_fast_path import build

    db = tmp_path / "odd.db"
    build(db)
    conn = serverdb.connect(db)
    for stamp in ("2026-11-13", "2026-11-13T23:59:59-08:00", "2026-11-1", "2026-11-14x", ""):
        serverdb.send(conn, "juno", "atlas", "odd", timestamp=stamp)
    top = conn.execute("SELECT max(rowid) FROM messages").fetchone()[0]
    conn.close()
    for ranges in ([(1, top)], [(1, 9), (12, 30), (40, top)], [(3, 3)]):
        for cut in ("2026-11-01", "2026-11-13", "2026-11-14", "2026-11-15", "2026-11-16"):
            got = tally(db, ranges, dt.date.fromisoformat(cut), utc=utc)
            want = two_passes(db, ranges, dt.date.fromisoformat(cut), utc)
            assert (got.messages, got.older, got.days, got.oldest) == want, (ranges, cut)
            if cut == "2026-11-16":
                assert got.older, "no cut-off left anything out: the test would prove little"


STAMPS: list[object] = [
    None,
    5,
    20260101,
    2.5,
    b"2026-01-01",
    "2026-01-01",
    "2026-01-01T23:30:00+05:00",
    "2026-01-01T00:30:00-05:00",
    "2026-02-30",
    "2026-13-01",
    "2025-12-31 23:59:59",
    "2026-1-01",
    " 2026-01-01",
    "2026-01-0",
    "",
    "now",
    "2026-01-01Z",
    "9999-12-31",
    "2026-01-01\u00e9",
    "2026-01-02T00:00:00",
    "2025-06-30T12:00:00.123456",
    "2026-01-01 25:00",
    "1970-01-01",
    "2460000",
    "2026-01-01T12:00:00Z",
    "0000-01-01T00:00:00",  # a date to SQLite, not to Python
]


def two_passes(
    db: Path, ranges: list[tuple[int, int]], first_kept: dt.date, utc: bool
) -> tuple[object, ...]:
    """What the plan counted before its tally: the rows, then the old ones per day."""
    day = day_expression(TIMESTAMP_COLUMN, utc)
    sql = (
        f"SELECT {day} AS day, count(*) FROM {TABLE}"
        f" WHERE rowid BETWEEN ? AND ? AND day < ? GROUP BY day"
    )
    per_day: dict[str, int] = {}
    conn = sqlite3.connect(db)
    for low, high in ranges:
        for found, count in conn.execute(sql, (low, high, first_kept.isoformat())):
            per_day[found] = per_day.get(found, 0) + count
    conn.close()
    oldest = min(per_day) if per_day else None
    return (
        count_in(db, ranges),
        sum(per_day.values()),
        len(per_day),
        dt.date.fromisoformat(oldest) if oldest else None,
    )


@pytest.mark.parametrize("utc", [False, True])
def test_tally_equals_the_two_passes(tmp_path: Path, utc: bool) -> None:
    """26 odd stamps (numbers, REAL, BLOB, zoned, impossible, 'now', far years, year 0) at random
    over 300 rows, cut-offs at both ends, ranges of one id, reversed, empty, beyond the
    table, several at once (by review)."""
    rng = random.Random(1)
    db = tmp_path / "t.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    for i in range(300):
        stamp = rng.choice(STAMPS)
        conn.execute("INSERT INTO messages (content, timestamp) VALUES (?, ?)", (f"m{i}", stamp))
    conn.execute("CREATE TABLE t2 (x)")
    conn.close()
    for cut in (dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(1, 1, 1), dt.date(9999, 12, 31)):
        for ranges in (
            [(1, 300)],
            [(5, 5)],
            [(7, 3)],
            [(1, 1), (2, 2), (10, 9), (299, 400)],
            [(0, 0)],
            [(-5, 2**63 - 1)],
            [],
            [(150, 151)],
        ):
            got = tally(db, ranges, cut, utc=utc)
            assert (got.messages, got.older, got.days, got.oldest) == two_passes(
                db, ranges, cut, utc
            ), (cut, ranges)
