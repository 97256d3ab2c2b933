"""--compress-after: old day files become .json.gz without ever losing or doubling one,
even when a crash interrupts the compression; the logger still reads them back."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import stat
from pathlib import Path

import pytest
import serverdb
from conftest import FakeClock, LoggerProcess, log_lines, logged_ids, wait_until

from dead_drop_logger.keep import compress, housekeeping
from dead_drop_logger.logdir import layout
from dead_drop_logger.logdir.state import STATE_NAME
from dead_drop_logger.record.pipeline import Pipeline
from dead_drop_logger.record.source import Source
from dead_drop_logger.record.writer import DayWriter

TODAY = dt.date(2026, 3, 10)
LINES = b'{"id":1,"content":"a"}\n{"id":2,"content":"b"}\n'


def day_file(log_dir: Path, day: str, data: bytes = LINES) -> Path:
    log_dir.mkdir(exist_ok=True)
    path = log_dir / f"messages-{day}.json"
    path.write_bytes(data)
    return path


def test_compress_after_days_keeps_content_mode_and_recent_files(tmp_path: Path) -> None:
    old = day_file(tmp_path, "2026-03-07")  # 3 days old
    edge = day_file(tmp_path, "2026-03-08")  # 2 days old: not "older than 2"
    today = day_file(tmp_path, "2026-03-10")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    policy = housekeeping.Policy(retention_days=0, compress_after=2)
    outcome = housekeeping.run(tmp_path, TODAY, policy)
    packed = tmp_path / "messages-2026-03-07.json.gz"
    assert outcome.compressed == [packed]
    assert not old.exists() and edge.exists() and today.exists()
    assert gzip.decompress(packed.read_bytes()) == LINES
    assert stat.S_IMODE(packed.stat().st_mode) == 0o600
    assert packed.stat().st_mtime == 1_700_000_000  # the day's last write, not now
    assert [obj["id"] for obj in log_lines(tmp_path)].count(1) == 3  # three files, once each


def test_compress_zero_compresses_everything_before_today_only(tmp_path: Path) -> None:
    day_file(tmp_path, "2026-03-09")
    day_file(tmp_path, "2026-03-10")
    housekeeping.run(tmp_path, TODAY, housekeeping.Policy(retention_days=0, compress_after=0))
    assert {f.path.name for f in layout.log_files(tmp_path)} == {
        "messages-2026-03-09.json.gz",
        "messages-2026-03-10.json",
    }


def test_crash_before_the_rename_leaves_the_original_and_no_temp(tmp_path: Path) -> None:
    original = day_file(tmp_path, "2026-03-01")
    temp = layout.compress_temp_path(original)
    temp.write_bytes(gzip.compress(LINES)[:10])  # a torn gzip from a killed compression
    assert log_lines(tmp_path) != []  # readers never see the temp
    compress.recover(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["messages-2026-03-01.json"]
    assert original.read_bytes() == LINES


def test_crash_after_the_rename_keeps_one_copy(tmp_path: Path) -> None:
    original = day_file(tmp_path, "2026-03-01")
    packed = layout.compressed_path(original)
    packed.write_bytes(gzip.compress(LINES))  # renamed into place, original not yet unlinked
    compress.recover(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["messages-2026-03-01.json.gz"]
    assert logged_ids(tmp_path) == [1, 2]


def test_a_gz_that_differs_from_its_original_is_never_trusted(tmp_path: Path) -> None:
    original = day_file(tmp_path, "2026-03-01")
    packed = layout.compressed_path(original)
    packed.write_bytes(gzip.compress(LINES[:10]))
    compress.recover(tmp_path)
    assert original.exists() and packed.exists()


def test_state_is_rebuilt_from_compressed_files_too(server_db: Path, log_dir: Path) -> None:
    clock = FakeClock("2026-03-10T12:00:00")
    conn = serverdb.connect(server_db)
    sent = serverdb.send(conn, "juno", "atlas", "old", timestamp="2026-03-01T10:00:00")
    sent += serverdb.send(conn, "juno", "atlas", "new", timestamp="2026-03-10T10:00:00")
    source = Source(server_db)
    pipeline = Pipeline(source, log_dir, DayWriter(log_dir, clock))
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    housekeeping.run(log_dir, TODAY, housekeeping.Policy(compress_after=1))
    assert (log_dir / "messages-2026-03-01.json.gz").exists()

    (log_dir / STATE_NAME).unlink()  # lost state: rebuilt from every file, .gz included
    sent += serverdb.send(conn, "juno", "atlas", "late", timestamp="2026-03-10T11:00:00")
    again = Pipeline(source, log_dir, DayWriter(log_dir, clock))
    again.prepare(database_existed=True)
    again.catch_up()
    assert again.backfill().lines == 0  # nothing missing: the .gz ids count as logged
    assert logged_ids(log_dir) == sorted(sent)
    source.close()
    conn.close()


def test_late_lines_for_a_compressed_day_go_to_a_new_part(server_db: Path, log_dir: Path) -> None:
    clock = FakeClock("2026-03-10T12:00:00")
    conn = serverdb.connect(server_db)
    sent = serverdb.send(conn, "juno", "atlas", "one", timestamp="2026-03-01T10:00:00")
    source = Source(server_db)
    pipeline = Pipeline(source, log_dir, DayWriter(log_dir, clock))
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    housekeeping.run(log_dir, TODAY, housekeeping.Policy(compress_after=1))
    sent += serverdb.send(conn, "juno", "atlas", "two", timestamp="2026-03-01T11:00:00")
    pipeline.catch_up()
    housekeeping.run(log_dir, TODAY, housekeeping.Policy(compress_after=1))
    assert {f.path.name for f in layout.log_files(log_dir)} == {
        "messages-2026-03-01.json.gz",
        "messages-2026-03-01.1.json.gz",
    }
    assert logged_ids(log_dir) == sorted(sent)
    source.close()
    conn.close()


def test_a_plain_file_and_a_different_gz_are_both_kept_not_compressed_over(
    tmp_path: Path,
) -> None:
    """The plain file holds id 1, the .gz ids 1-3: compressing the plain file would
    replace the .gz and lose ids 2 and 3."""
    plain = day_file(tmp_path, "2026-03-01", LINES[: LINES.index(b"\n") + 1])
    packed = layout.compressed_path(plain)
    whole = LINES + b'{"id":3,"content":"c"}\n'
    packed.write_bytes(gzip.compress(whole))
    housekeeping.run(tmp_path, TODAY, housekeeping.Policy(retention_days=0, compress_after=1))
    assert gzip.decompress(packed.read_bytes()) == whole
    assert plain.read_bytes() == LINES[: LINES.index(b"\n") + 1]
    assert logged_ids(tmp_path) == [1, 1, 2, 3]  # every line of both, none lost


def test_compress_never_replaces_an_existing_gz(tmp_path: Path) -> None:
    plain = day_file(tmp_path, "2026-03-01")
    packed = layout.compressed_path(plain)
    packed.write_bytes(gzip.compress(b'{"id":9}\n'))
    with pytest.raises(FileExistsError):
        compress.compress(plain)
    assert gzip.decompress(packed.read_bytes()) == b'{"id":9}\n'
    assert plain.read_bytes() == LINES
    assert sorted(os.listdir(tmp_path)) == [plain.name, packed.name]  # no temp left


def test_an_import_compresses_the_old_days_it_wrote_right_away(
    server_db: Path, log_dir: Path
) -> None:
    """They used to stay plain until the next start or midnight."""
    now = dt.datetime.now()
    old_day = (now - dt.timedelta(days=10)).date()
    conn = serverdb.connect(server_db)
    sent = serverdb.send(conn, "juno", "atlas", "old", timestamp=f"{old_day}T10:00:00")
    sent += serverdb.send(conn, "juno", "atlas", "new", timestamp=now.isoformat())
    conn.close()
    proc = LoggerProcess(server_db, log_dir).start(
        "--import-historical", "--compress-after", "3", "--retention-days", "0"
    )
    try:
        packed = log_dir / f"messages-{old_day}.json.gz"
        plain = log_dir / f"messages-{old_day}.json"
        # The .gz is linked in before the plain file is removed (never a moment
        # with neither): wait for both steps, not the first.
        wait_until(
            lambda: packed.exists() and not plain.exists(),
            what="the imported old day compressed",
        )
        assert logged_ids(log_dir) == sorted(sent)
    finally:
        assert proc.stop() == 0
