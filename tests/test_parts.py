"""Size parts (--max-bytes): which file each line goes to, and that a crash in the
middle of a batch that switches parts still leaves every message exactly once."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import FakeClock, log_lines, logged_ids
from crashing import Crash, CrashingWriter
from hypothesis import given
from hypothesis import strategies as st

from dead_drop_logger.control.sizes import parse_size
from dead_drop_logger.keep import compress
from dead_drop_logger.logdir import layout
from dead_drop_logger.record.pipeline import Pipeline
from dead_drop_logger.record.rotation import split_parts
from dead_drop_logger.record.source import Run, Source
from dead_drop_logger.record.writer import Chunk, DayWriter


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10MB", 10 * 1024**2),
        ("512KB", 512 * 1024),
        ("1048576", 1048576),
        ("2k", 2048),
        ("1.5M", 1572864),
        ("3 GiB", 3 * 1024**3),
        ("100B", 100),
    ],
)
def test_sizes_accept_units_and_plain_bytes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "ten", "10XB", "-5", "0", "0KB"])
def test_sizes_reject_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@given(
    st.lists(st.integers(min_value=1, max_value=300), max_size=60),
    st.integers(min_value=0, max_value=400),
    st.integers(min_value=1, max_value=250),
)
def test_split_never_splits_and_only_overflows_with_a_lone_line(
    lengths: list[int], size: int, max_bytes: int
) -> None:
    runs = split_parts(lengths, 3, size, max_bytes)
    # every line placed once, in order, in non-decreasing parts starting at part 3
    assert [i for _, a, b in runs for i in range(a, b)] == list(range(len(lengths)))
    parts = [p for p, _, _ in runs]
    if parts:  # consecutive numbers, starting in part 3 unless its first line overflows it
        overflow = size > 0 and size + lengths[0] > max_bytes
        assert parts == list(range(4 if overflow else 3, (4 if overflow else 3) + len(parts)))
    for part, a, b in runs:
        total = sum(lengths[a:b]) + (size if part == 3 else 0)
        if total > max_bytes:  # over the limit only as a single line in a fresh part
            assert b - a == 1 and (part != 3 or size == 0)


def test_split_without_limit_keeps_one_part() -> None:
    assert split_parts([5, 10_000_000, 7], 0, 10**9, None) == [(0, 0, 3)]


def rows(day: str, *lengths: int, first: int = 1) -> list[Run]:
    """Rows whose lines are valid JSON of exactly the given byte lengths."""
    made = []
    for offset, length in enumerate(lengths):
        row_id = first + offset
        head = f'{{"id":{row_id},"pad":"'
        line = (head + "x" * (length - len(head) - 3) + '"}\n').encode()
        assert len(line) == length
        made.append(Run(day, line, row_id, row_id))
    return made


def write(writer: DayWriter, batch: list[Run]) -> list[Chunk]:
    chunks = writer.plan(batch)
    writer.append(chunks, writer.sizes(chunks))
    return chunks


def test_parts_fill_in_order_and_an_oversize_line_sits_alone(tmp_path: Path) -> None:
    writer = DayWriter(tmp_path, FakeClock("2026-03-01T12:00:00"), max_bytes=100)
    write(writer, rows("2026-03-01", 40, 40, 40, 250, 30, first=1))
    write(writer, rows("2026-03-01", 30, 50, first=6))
    sizes = {f.path.name: f.path.stat().st_size for f in layout.log_files(tmp_path)}
    assert sizes == {
        "messages-2026-03-01.json": 80,
        "messages-2026-03-01.1.json": 40,
        "messages-2026-03-01.2.json": 250,  # alone: larger than the limit
        "messages-2026-03-01.3.json": 60,  # 30, then 30 from the next batch
        "messages-2026-03-01.4.json": 50,
    }
    ids = [obj["id"] for obj in log_lines(tmp_path)]
    assert sorted(ids) == list(range(1, 8))


def test_a_compressed_part_is_never_appended_to(tmp_path: Path) -> None:
    (tmp_path / "messages-2026-02-01.json.gz").write_bytes(b"")
    writer = DayWriter(tmp_path, FakeClock("2026-03-01T12:00:00"))
    chunks = write(writer, rows("2026-02-01", 40))
    assert [c.name for c in chunks] == ["messages-2026-02-01.1.json"]


def test_without_limit_an_existing_later_part_keeps_growing(tmp_path: Path) -> None:
    limited = DayWriter(tmp_path, FakeClock("2026-03-01T12:00:00"), max_bytes=50)
    write(limited, rows("2026-03-01", 40, 40))
    unlimited = DayWriter(tmp_path, FakeClock("2026-03-01T12:00:00"))
    assert [c.name for c in write(unlimited, rows("2026-03-01", 40, 40, first=3))] == [
        "messages-2026-03-01.1.json"
    ]


def test_crash_in_a_batch_that_switches_parts_leaves_each_message_once(
    server_db: Path, log_dir: Path
) -> None:
    clock = FakeClock("2026-03-01T12:00:00")
    conn = serverdb.connect(server_db)
    first = serverdb.send(conn, "juno", "atlas", "before", timestamp="2026-03-01T11:00:00")
    source = Source(server_db)
    log_dir.mkdir()
    crashing = Pipeline(source, log_dir, CrashingWriter(log_dir, clock, max_bytes=600))
    crashing.prepare(database_existed=False)
    sent = list(first)
    for i in range(12):
        sent += serverdb.send(
            conn, "juno", "atlas", f"message {i}", timestamp="2026-03-01T11:30:00"
        )
    with pytest.raises(Crash):
        crashing.follow_once()
    assert json.loads((log_dir / ".dead-drop-logger.state").read_bytes())["pending"]

    resumed = Pipeline(source, log_dir, DayWriter(log_dir, clock, max_bytes=600))
    resumed.catch_up()
    assert logged_ids(log_dir) == sorted(sent)
    files = layout.log_files(log_dir)
    assert len(files) >= 2
    for entry in files:  # no file over the limit except a lone line
        data = entry.path.read_bytes()
        assert len(data) <= 600 or data.count(b"\n") == 1
    source.close()
    conn.close()


def many_day_files(log_dir: Path, count: int) -> None:
    """Years of (tiny) day files before 2026-03-01, as a long-running logger leaves."""
    log_dir.mkdir(exist_ok=True)
    day = dt.date(2026, 2, 28)
    for _ in range(count):
        (log_dir / f"messages-{day.isoformat()}.json").write_bytes(b'{"id":0}\n')
        day -= dt.timedelta(days=1)


def test_a_batch_does_not_list_the_log_directory(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing 1,100 day files on every batch cost milliseconds under the lock: after
    the first, batches only check the few names they rely on."""
    many_day_files(log_dir, 1_100)
    clock = FakeClock("2026-03-01T12:00:00")
    source = Source(server_db)
    pipeline = Pipeline(source, log_dir, DayWriter(log_dir, clock, max_bytes=300))
    pipeline.prepare(database_existed=False)
    conn = serverdb.connect(server_db)
    sent = serverdb.send(conn, "juno", "atlas", "first", timestamp="2026-03-01T11:00:00")
    pipeline.catch_up()  # the first batch lists the directory once
    listings: list[object] = []
    real = os.scandir

    def counting(path: Any) -> Any:
        listings.append(path)
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    monkeypatch.setattr(os, "listdir", counting)
    for i in range(5):  # each batch one send; parts switch every ~2 sends at 300 bytes
        sent += serverdb.send(conn, "juno", "atlas", f"m{i}", timestamp="2026-03-01T11:30:00")
        assert pipeline.follow_once().lines == 2
    assert listings == []
    monkeypatch.undo()
    assert [i for i in logged_ids(log_dir) if i] == sorted(sent)
    today = [f for f in layout.log_files(log_dir) if f.day == dt.date(2026, 3, 1)]
    assert len(today) >= 3  # it did switch parts without listing
    source.close()
    conn.close()


def test_parts_made_or_compressed_by_another_process_are_noticed(tmp_path: Path) -> None:
    clock = FakeClock("2026-03-01T12:00:00")
    ours = DayWriter(tmp_path, clock)
    assert [c.name for c in write(ours, rows("2026-03-01", 40))] == ["messages-2026-03-01.json"]
    theirs = DayWriter(tmp_path, clock, max_bytes=50)  # another logger on the directory
    write(theirs, rows("2026-03-01", 40, first=2))  # makes part 1
    assert [c.name for c in write(ours, rows("2026-03-01", 40, first=3))] == [
        "messages-2026-03-01.1.json"
    ]
    write(ours, rows("2026-02-01", 40, first=4))  # a past day, known to the cache
    old = tmp_path / "messages-2026-02-01.json"
    compress.compress(old)  # by another process's --compress-after
    assert [c.name for c in write(ours, rows("2026-02-01", 40, first=5))] == [
        "messages-2026-02-01.1.json"  # never a plain part 0 beside its .gz
    ]
    assert sorted(obj["id"] for obj in log_lines(tmp_path)) == [1, 2, 3, 4, 5]
