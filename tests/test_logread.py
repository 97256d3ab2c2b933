"""The one log reader, on log directories written by the real logger (gzipped days, size
parts, hostile content), and on copies of them changed the way a live directory changes
under a reader."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import HostileLogs, day_files, log_lines

from dead_drop_logger.keep import compress
from dead_drop_logger.logdir import layout
from dead_drop_logger.logdir.state import STATE_NAME
from dead_drop_logger.read.logread import (
    DamagedFile,
    LogDir,
    LogReadError,
    Reader,
    Tail,
    Window,
    read_chunks,
    select_files,
    timestamp_of,
)


def stored_lines(log_dir: Path) -> list[bytes]:
    """Every stored line, straight from the files, in id order (the reference)."""
    found: list[bytes] = []
    for path in day_files(log_dir, "messages-*.json*"):
        raw = path.read_bytes()
        found += (gzip.decompress(raw) if path.suffix == ".gz" else raw).splitlines(True)
    return sorted(found, key=lambda line: json.loads(line)["id"])


def copy_of(logs: HostileLogs, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(logs.log_dir, target, symlinks=True)
    return target


def test_the_fixture_has_gzip_parts_and_the_link(hostile_logs: HostileLogs) -> None:
    names = {p.name for p in hostile_logs.log_dir.iterdir()}
    assert "messages-2026-02-17.json.gz" in names
    assert "messages-2026-02-19.1.json" in names
    assert "messages-current.json" in names


def test_reads_every_line_once_in_day_and_part_order(hostile_logs: HostileLogs) -> None:
    reader = Reader.of(hostile_logs.log_dir)
    lines = [line.raw for line in reader.lines()]
    assert sorted(lines, key=lambda line: json.loads(line)["id"]) == stored_lines(
        hostile_logs.log_dir
    )
    order = [(f.day, f.part) for _src, f in reader.files()]
    assert order == sorted(order) and len(order) == len(set(order))
    assert all(f.path.name != layout.CURRENT_NAME for _src, f in reader.files())
    messages = [entry.message for entry in reader.messages()]
    assert sorted(messages, key=lambda m: m["id"]) == sorted(
        log_lines(hostile_logs.log_dir), key=lambda m: m["id"]
    )
    assert reader.corrupt == 0


def test_small_blocks_give_the_same_lines_and_offsets(hostile_logs: HostileLogs) -> None:
    big = list(Reader.of(hostile_logs.log_dir).lines())
    small = list(Reader([LogDir(hostile_logs.log_dir)], block=7).lines())
    assert [(line.file, line.offset, line.raw) for line in small] == [
        (line.file, line.offset, line.raw) for line in big
    ]


def test_a_window_opens_only_its_days(hostile_logs: HostileLogs) -> None:
    window = Window(dt.datetime(2026, 2, 19, 9), dt.datetime(2026, 2, 20))
    reader = Reader.of(hostile_logs.log_dir, window)
    assert {f.day for _src, f in reader.files()} == {dt.date(2026, 2, 19)}
    got = [entry.message["id"] for entry in reader.messages()]
    expected = [
        m["id"]
        for m in log_lines(hostile_logs.log_dir)
        if "2026-02-19T09:00:00" <= str(m["timestamp"]) < "2026-02-20"
    ]
    assert sorted(got) == sorted(expected) and got


def test_window_boundaries() -> None:
    window = Window(dt.datetime(2026, 2, 19, 9), dt.datetime(2026, 2, 20))
    assert window.admits(dt.datetime(2026, 2, 19, 9))
    assert not window.admits(dt.datetime(2026, 2, 20))
    assert not window.admits(None)
    assert Window().admits(None)
    assert not window.admits_day(dt.date(2026, 2, 20))
    assert window.admits_day(dt.date(2026, 2, 20), slack_days=1)
    assert not window.admits_day(dt.date(2026, 2, 18))
    assert window.admits_day(dt.date(2026, 2, 18), slack_days=1)
    late = Window(until=dt.datetime(2026, 2, 20, 0, 0, 1))
    assert late.admits_day(dt.date(2026, 2, 20))


def test_timestamps() -> None:
    assert timestamp_of({"timestamp": "2026-02-20 23:30:00"}) == dt.datetime(2026, 2, 20, 23, 30)
    assert timestamp_of({"timestamp": "2026-02-20T23:30:00+05:00"}) == dt.datetime(
        2026, 2, 20, 23, 30
    )
    assert timestamp_of({"timestamp": "garbage"}) is None
    assert timestamp_of({"timestamp": 5}) is None
    assert timestamp_of({}) is None


def test_a_line_caught_mid_append_is_not_there_yet(
    hostile_logs: HostileLogs, tmp_path: Path
) -> None:
    log_dir = copy_of(hostile_logs, tmp_path)
    last = select_files(log_dir)[-1]
    before = list(Reader.of(log_dir).lines())
    size = last.path.stat().st_size
    with open(last.path, "ab") as out:
        out.write(b'{"id": 100000, "content": "half')
    reader = Reader.of(log_dir)
    assert [line.raw for line in reader.lines()] == [line.raw for line in before]
    assert list(reader.messages()) and reader.corrupt == 0
    with open(last.path, "ab") as out:
        out.write(b' done"}\n')
    resumed = [chunk.data for chunk in read_chunks(LogDir(log_dir), last, size)]
    assert resumed == [b'{"id": 100000, "content": "half done"}\n']


def test_corrupt_lines_are_counted_and_skipped(hostile_logs: HostileLogs, tmp_path: Path) -> None:
    log_dir = copy_of(hostile_logs, tmp_path)
    last = select_files(log_dir)[-1]
    with open(last.path, "ab") as out:
        out.write(b"not json\n[1, 2]\n\xff\xfe\n")
    reader = Reader.of(log_dir)
    messages = list(reader.messages())
    assert len(messages) == len(stored_lines(hostile_logs.log_dir))
    assert reader.corrupt == 3


def test_a_part_both_plain_and_gzipped_is_read_once(
    hostile_logs: HostileLogs, tmp_path: Path
) -> None:
    log_dir = copy_of(hostile_logs, tmp_path)
    packed = log_dir / "messages-2026-02-17.json.gz"
    (log_dir / "messages-2026-02-17.json").write_bytes(gzip.decompress(packed.read_bytes()))
    assert [line.raw for line in Reader.of(log_dir).lines()] == [
        line.raw for line in Reader.of(hostile_logs.log_dir).lines()
    ]
    assert packed in [f.path for f in select_files(log_dir)]


def test_a_file_compressed_after_listing_is_read_from_its_gzip(
    hostile_logs: HostileLogs, tmp_path: Path
) -> None:
    log_dir = copy_of(hostile_logs, tmp_path)
    plain = next(f for f in select_files(log_dir) if not f.compressed)
    expected = plain.path.read_bytes()
    compress.compress(plain.path)
    assert not plain.path.exists()
    assert b"".join(c.data for c in read_chunks(LogDir(log_dir), plain)) == expected
    middle = expected.index(b"\n") + 1
    assert (
        b"".join(c.data for c in read_chunks(LogDir(log_dir), plain, middle)) == (expected[middle:])
    )


def test_rooms_are_read_day_by_day_and_say_where_a_line_came_from(
    hostile_logs: HostileLogs, tmp_path: Path
) -> None:
    room = copy_of(hostile_logs, tmp_path)
    reader = Reader([LogDir(hostile_logs.log_dir), LogDir(room, "ops")])
    lines = list(reader.lines())
    assert {line.source.room for line in lines} == {None, "ops"}
    assert len(lines) == 2 * len(stored_lines(room))
    days = [line.file.day for line in lines]
    assert days == sorted(days)


def test_directories_missing_or_not_directories(tmp_path: Path) -> None:
    assert select_files(tmp_path / "nowhere") == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(LogReadError, match="not a directory"):
        select_files(tmp_path / "file")


def test_gzip_damage_is_read_up_to_the_damage_and_named(
    hostile_logs: HostileLogs, tmp_path: Path
) -> None:
    log_dir = copy_of(hostile_logs, tmp_path)
    packed = log_dir / "messages-2026-02-17.json.gz"
    before = stored_lines(log_dir)
    packed.write_bytes(packed.read_bytes()[:-8] + b"garbage!")  # a damaged trailer
    with pytest.raises(DamagedFile, match="is damaged"):
        list(read_chunks(LogDir(log_dir), select_files(log_dir)[0]))
    reader = Reader.of(log_dir)
    lines = [line.raw for line in reader.lines()]
    assert sorted(lines) == sorted(before)  # the damage is past the last line
    assert list(reader.damaged) == [packed]


def test_tail_yields_only_what_is_new(hostile_logs: HostileLogs, tmp_path: Path) -> None:
    log_dir = copy_of(hostile_logs, tmp_path)
    # A copy's files count only up to the ends its state records until a writer takes it
    # over (read/committed.py); this one stands for a directory a writer appends to, as
    # a writer leaves a copy it took over: no ends recorded.
    state = log_dir / STATE_NAME
    state.write_text(json.dumps({**json.loads(state.read_text()), "ends": {}}))
    tail = Tail(Reader.of(log_dir))
    first = b"".join(chunk.data for chunk in tail.poll())
    assert sorted(first.splitlines(True)) == sorted(stored_lines(log_dir))
    assert list(tail.poll()) == []
    plain = [f for f in select_files(log_dir) if not f.compressed]
    with open(plain[-1].path, "ab") as out:
        out.write(b'{"id": 100001}\n{"id": 100002, "half')
    assert [c.data for c in tail.poll()] == [b'{"id": 100001}\n']
    with open(plain[-1].path, "ab") as out:
        out.write(b'"}\n')
    assert [c.data for c in tail.poll()] == [b'{"id": 100002, "half"}\n']
    compress.compress(plain[0].path)  # the same lines, now gzipped: nothing new
    assert list(tail.poll()) == []
    day = plain[-1].day.isoformat()
    (log_dir / f"messages-{day}.99.json").write_bytes(b'{"id": 100003}\n')
    assert [c.data for c in tail.poll()] == [b'{"id": 100003}\n']
    (log_dir / f"messages-{day}.99.json").unlink()
    assert list(tail.poll()) == []
    assert [key for key in tail.positions if key[2] == 99] == [], tail.positions


def test_tail_resumes_after_the_last_id_it_read_when_the_file_is_rewritten(
    tmp_path: Path,
) -> None:
    """A day file replaced under a follower by one whose lines sit at other offsets (a
    backup restored, a copy): it goes on after the last line it read, found by its id,
    never from its old byte offset (the middle of another line)."""
    day = tmp_path / "messages-2026-03-01.json"
    day.write_bytes(b'{"id":1,"c":"aaaa"}\n{"id":2,"c":"bb"}\n')
    tail = Tail(Reader.of(tmp_path))
    assert b"".join(c.data for c in tail.poll()).count(b"\n") == 2
    copy = tmp_path / "copy.tmp"
    copy.write_bytes(b'{"id":1,"c":"a"}\n{"id":2,"c":"bb"}\n{"id":3,"c":"new"}\n')
    os.replace(copy, day)
    assert [c.data for c in tail.poll()] == [b'{"id":3,"c":"new"}\n']
    assert list(tail.poll()) == []
