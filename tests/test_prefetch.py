"""The backfill's speed-ups never change what is logged: a page read ahead is used only
for the very arguments it was read with, and pages committed under one hold of the lock
(one state save a page) are still undone and redone as a whole after a failure."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import logged_ids

from dead_drop_logger.clock import SystemClock
from dead_drop_logger.logdir.state import StateStore
from dead_drop_logger.record.pipeline import Pipeline
from dead_drop_logger.record.prefetch import Prefetcher
from dead_drop_logger.record.source import Page, Source
from dead_drop_logger.record.writer import Chunk, DayWriter, WriteError


def ids_of(page: Page) -> list[int]:
    return [int(line[6:].split(b",")[0]) for run in page.runs for line in run.data.splitlines()]


def test_a_page_read_ahead_is_used_only_for_its_own_arguments(server_db: Path) -> None:
    serverdb.send_many(server_db, 20)  # ids 1..40
    pages = Prefetcher(Source(server_db))
    try:
        assert ids_of(pages.read(0, None, 10)) == list(range(1, 11))
        # The next page (after 10) was read ahead; ask for something else instead.
        assert ids_of(pages.read(5, None, 10)) == list(range(6, 16))
        assert ids_of(pages.read(15, 30, 10)) == list(range(16, 26))
        assert ids_of(pages.read(25, 30, 10)) == list(range(26, 31))
        serverdb.send_many(server_db, 1)  # 41, 42
        assert ids_of(pages.read(30, None, 10)) == list(range(31, 41))
        assert ids_of(pages.read(40, None, 10)) == [41, 42]
    finally:
        pages.close()


def test_backfill_through_read_ahead_logs_each_message_once(server_db: Path, log_dir: Path) -> None:
    serverdb.send_many(server_db, 150)
    source = Source(server_db)
    pipeline = Pipeline(source, log_dir, DayWriter(log_dir, SystemClock()), page_size=7)
    pipeline.prepare(database_existed=True)
    serverdb.send_many(server_db, 3)  # new since the start: the follower's, not history
    done = pipeline.backfill()
    pipeline.catch_up()
    pipeline.close()
    assert done.lines == 300
    assert logged_ids(log_dir) == list(range(1, 307))


def test_a_failure_inside_a_chain_of_pages_is_undone_and_redone(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serverdb.send_many(server_db, 100)  # ids 1..200, history pages of 20
    pipeline = Pipeline(Source(server_db), log_dir, DayWriter(log_dir, SystemClock()), page_size=4)
    pipeline.prepare(database_existed=True)
    appended = 0
    append = DayWriter.append

    def fail_third(
        self: DayWriter, chunks: list[Chunk], sizes: dict[str, int], *, durable: bool = True
    ) -> None:
        nonlocal appended
        appended += 1
        append(self, chunks, sizes, durable=durable)  # the lines are in the file...
        if appended == 3:
            raise WriteError("...but the process dies before the state says so")

    monkeypatch.setattr(DayWriter, "append", fail_third)
    with pytest.raises(WriteError):
        pipeline.backfill()
    pipeline.close()
    state = StateStore(log_dir).load()
    assert state is not None
    # Pages 2 and 3 went to the file page 1's pending record covers: appended under
    # it, without a save of their own (see Pipeline.backfill), so that record stands.
    assert state.logged == [] and state.pending
    monkeypatch.undo()
    again = Pipeline(Source(server_db), log_dir, DayWriter(log_dir, SystemClock()), page_size=4)
    assert again.backfill().lines == 200  # cut back to that record: all three again
    again.close()
    assert logged_ids(log_dir) == list(range(1, 201))


@pytest.mark.parametrize("limit", [2, 3, 7])
def test_pages_whose_answer_read_ahead_does_not_check_out_are_read_again_here(
    tmp_path: Path, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement of the next page runs ahead on the second connection, its checks
    (UTF-8, the count of lines) here: a page that fails them (invalid UTF-8, a REAL, a
    BLOB, a row over the string limit) is read row by row on this connection, with its
    schema read first; every page equals a plain read's, and such a page did come from
    the connection reading ahead."""
    from test_fast_path import build

    db = tmp_path / "odd.db"
    build(db)
    source = Source(db)
    pages = Prefetcher(source)
    foreign: list[bool] = []  # the answer in hand came from the other connection
    from_ahead: list[tuple[int, int, int]] = []
    page_of, rows_of = Source.page, Source._read_rows

    def page(self: Source, answer: Any) -> Page:
        foreign.append(answer.by is not self)
        try:
            return page_of(self, answer)
        finally:
            foreign.pop()

    def read_rows(self: Source, params: tuple[int, int, int]) -> Page:
        if foreign and foreign[-1]:
            from_ahead.append(params)
        return rows_of(self, params)

    monkeypatch.setattr(Source, "page", page)
    monkeypatch.setattr(Source, "_read_rows", read_rows)
    plain = Source(db)
    try:
        after = 0
        while True:
            got, want = pages.read(after, None, limit), plain.read(after, None, limit)
            assert (got.runs, got.count, got.last_id) == (want.runs, want.count, want.last_id)
            assert (got.after_stamp, got.last_stamp) == (want.after_stamp, want.last_stamp)
            if not got.count:
                break
            after = got.last_id
    finally:
        pages.close()
        plain.close()
    assert from_ahead, "no page read ahead went the row-by-row way"


@pytest.mark.parametrize("limit", [2, 3, 4, 5, 8, 11])
def test_halves_read_ahead_join_into_the_page_one_read_gives(tmp_path: Path, limit: int) -> None:
    """The next page is read ahead in two halves at once, the second from where the
    first ends when the ids have no gaps: with rows deleted here and there (gaps,
    a half with no rows) and days changing inside pages and at the seam, every page
    equals a plain read's, runs and stamps included."""
    db = tmp_path / "gaps.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    for i in range(60):
        day = 13 + i // 17  # a new day every 17 sends (34 rows)
        serverdb.send(
            conn,
            "juno",
            "all" if i % 5 == 0 else "atlas",
            f"m{i} é 🚀",
            timestamp=f"2026-11-{day}T{i % 24:02d}:00:00",
        )
    ids = [row[0] for row in conn.execute("SELECT id FROM messages ORDER BY id")]
    gone = {17, 18, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 99, ids[-1]}
    conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in gone])
    conn.close()
    pages, plain = Prefetcher(Source(db)), Source(db)
    try:
        for upto in (None, 60, 61):
            after, seen = 0, []
            while True:
                got, want = pages.read(after, upto, limit), plain.read(after, upto, limit)
                assert (got.runs, got.count, got.last_id) == (want.runs, want.count, want.last_id)
                assert (got.after_stamp, got.last_stamp) == (want.after_stamp, want.last_stamp)
                seen += ids_of(got)
                if got.count < limit:
                    break
                after = got.last_id
            assert seen == [i for i in ids if i not in gone and (upto is None or i <= upto)]
    finally:
        pages.close()
        plain.close()


def fill(db: Path, n: int, odd: set[int]) -> None:
    """ids 1..n, one row a send; the rows in ``odd`` hold invalid UTF-8 (TEXT)."""
    serverdb.create(db)
    conn = serverdb.connect(db)
    for i in range(1, n + 1):
        content: object = b"bad \xff" if i in odd else f"m{i}"
        serverdb.send(
            conn,
            "juno",
            "atlas",
            content,
            leads=[],
            bytes_as_text=True,
            timestamp="2026-11-13T10:00:00",
        )
    conn.close()


def test_first_half_read_again_after_a_delete_overlaps_the_second(tmp_path: Path) -> None:
    """A first half that does not check out (invalid UTF-8) is read again with the whole
    page, not alone: alone, on a newer snapshot with one of its rows deleted, it reached
    into the second half's rows (5, 7, 7, 8: found by review)."""
    db = tmp_path / "m.db"
    fill(db, 20, odd={5})
    pages, plain = Prefetcher(Source(db)), Source(db)
    try:
        assert ids_of(pages.read(0, None, 4)) == [1, 2, 3, 4]
        assert pages._pending is not None  # halves (4, 2) -> 5, 6 and (6, 2) -> 7, 8
        for future in pages._pending[1:]:
            future.result()
        writer = serverdb.connect(db)
        writer.execute("DELETE FROM messages WHERE id = 6")  # the server deletes a row
        writer.close()
        got, want = pages.read(4, None, 4), plain.read(4, None, 4)
        assert ids_of(got) == ids_of(want) == [5, 7, 8, 9]
    finally:
        pages.close()
        plain.close()


def test_a_row_deleted_after_the_read_ahead_is_not_written_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, through the pipeline: a row of the first half deleted by the server
    right after the read ahead (before the page is checked here)."""
    db, log_dir = tmp_path / "m.db", tmp_path / "logs"
    fill(db, 30, odd={6})
    ahead = Prefetcher._read_ahead

    def read_ahead(self: Prefetcher, which: int, key: Any) -> Any:
        answer = ahead(self, which, key)
        if which == 0 and key[0] == 5:
            writer = serverdb.connect(db)
            writer.execute("DELETE FROM messages WHERE id = 7")
            writer.close()
        return answer

    monkeypatch.setattr(Prefetcher, "_read_ahead", read_ahead)
    pipeline = Pipeline(Source(db), log_dir, DayWriter(log_dir, SystemClock()), page_size=1)
    pipeline.prepare(database_existed=True)  # position 30; history pages of 5
    pipeline.backfill()
    pipeline.close()
    ids = logged_ids(log_dir)
    assert ids == sorted(set(ids)), f"written twice: {ids}"


@pytest.mark.parametrize("utc", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_random_static_databases_read_as_one_read_gives(
    tmp_path: Path, seed: int, utc: bool
) -> None:
    """REALs, BLOBs, invalid UTF-8, odd stamps, 20 rows deleted: every page read ahead in
    halves equals a plain read, for limits 1 to 13 and bounds inside either half."""
    rng = random.Random(seed)
    db = tmp_path / "r.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    n = 80
    for i in range(n):
        kind = rng.random()
        stamp = f"2026-11-{13 + (i // rng.randint(3, 9)) % 3}T10:00:00"
        if kind < 0.05:
            conn.execute(
                "INSERT INTO messages (content, timestamp, read_flag) VALUES ('r', ?, 0.5)",
                (stamp,),
            )
        elif kind < 0.10:
            conn.execute(
                "INSERT INTO messages (content, timestamp) VALUES (?, ?)", (b"\x00\xff", stamp)
            )
        elif kind < 0.15:
            conn.execute(
                "INSERT INTO messages (content, timestamp) VALUES (CAST(? AS TEXT), ?)",
                (b"\xff", stamp),
            )
        elif kind < 0.2:
            conn.execute(
                "INSERT INTO messages (content, timestamp) VALUES ('x', ?)",
                (rng.choice([None, 5, "bad", b"2026"]),),
            )
        else:
            conn.execute(
                "INSERT INTO messages (content, timestamp) VALUES ('ok \u2028', ?)", (stamp,)
            )
    for i in rng.sample(range(1, n + 1), 20):
        conn.execute("DELETE FROM messages WHERE id = ?", (i,))
    conn.close()
    pages, plain = Prefetcher(Source(db, utc=utc)), Source(db, utc=utc)
    try:
        for limit in (1, 2, 3, 4, 5, 7, 8, 13):
            for upto in (None, 30, 55, 81, 5, 0):
                after = rng.choice([0, 0, 3, 10])
                for _ in range(200):
                    got, want = pages.read(after, upto, limit), plain.read(after, upto, limit)
                    assert (got.runs, got.count, got.last_id) == (
                        want.runs,
                        want.count,
                        want.last_id,
                    )
                    assert (got.after_stamp, got.last_stamp) == (want.after_stamp, want.last_stamp)
                    if got.count < limit:
                        break
                    after = got.last_id
    finally:
        pages.close()
        plain.close()


def test_a_source_with_a_cache_size_reports_a_corrupt_file_as_a_source_error(
    tmp_path: Path,
) -> None:
    """Setting the cache reads the header: a file that is no database is a SourceError,
    as without it (it was a raw sqlite3.DatabaseError: found by review)."""
    from dead_drop_logger.record.source import SourceError

    db = tmp_path / "junk.db"
    db.write_bytes(b"not a database " * 20)
    for source in (Source(db), Source(db, cache_kib=256)):
        with pytest.raises(SourceError):
            source.read(0, None, 10)
