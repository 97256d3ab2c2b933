"""The fast read path is honest: every line it builds decodes to the same values as the
reference encoding (encoding.encode_row over the raw row) and goes to the same day file.

The database holds the rows a fast path cannot build (BLOBs, invalid UTF-8, REALs with
infinities, NUL, U+2028/U+2029, NULL and unparseable timestamps, a huge content) among
ordinary ones, and is read with several page sizes, so that single-day pages, pages
spanning days and pages that fall back row by row are all compared.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import serverdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dead_drop_logger.encoding import encode_row
from dead_drop_logger.record import source
from dead_drop_logger.record.source import Page, Source, day_expression

ODD_ROWS: list[tuple[str, tuple[object, ...]]] = [
    # (SQL values for from_agent, to_agent, content, timestamp, read_flag, reply_to)
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", b"\x00\xffblob", "2026-11-14T10:00:00", 0, None)),
    ("?, ?, CAST(X'6869FF' AS TEXT), ?, ?, ?", ("juno", "vega", "2026-11-14T10:00:01", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "real", "2026-11-14T10:00:02", 1.5, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "inf", "2026-11-14T10:00:03", float("inf"), None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "-inf", "2026-11-14T10:00:04", 0, float("-inf"))),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "nul\x00inside", "2026-11-14T10:00:05", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "sep\u2028and\u2029", "2026-11-14T10:00:06", 0, 3)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "null ts", None, 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "words ts", "yesterday", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "bad date", "2026-02-30T10:00:00", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "zoned", "2026-11-14T23:30:00+05:00", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "int ts", 1763100000, 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "blob ts", b"2026-11-14T10:00:00", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "odd ts", "2026-\x1f11-14", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", "vega", "accent ts", "2026-11-1é", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("ünï", "vega", "x" * 2_000_000, "2026-11-15T00:00:00", 0, None)),
    ("?, ?, ?, ?, ?, ?", ("juno", None, '"quotes" \\ \t\n\r\x1b 🚀', "2026-11-15T09:00:00", 0, 7)),
]


def build(path: Path) -> None:
    """Ordinary sends over three days, the odd rows among them, and a deleted row."""
    serverdb.create(path)
    conn = serverdb.connect(path)
    for day in ("2026-11-13", "2026-11-14"):
        for i in range(12):
            serverdb.send(conn, "juno", "atlas", f"plain {i} é —", timestamp=f"{day}T0{i % 10}:00")
    for values_sql, values in ODD_ROWS:
        conn.execute(
            "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag, reply_to)"
            f" VALUES ({values_sql})",
            values,
        )
        serverdb.send(conn, "atlas", "all", "between odd rows", timestamp="2026-11-15T08:00:00")
    conn.execute("DELETE FROM messages WHERE id = 5")
    conn.close()


def reference(path: Path, utc: bool) -> dict[int, tuple[Any, str | None]]:
    """id -> (decoded line, day) the straightforward way: encode_row over the raw row."""
    conn = sqlite3.connect(path)
    conn.text_factory = bytes
    columns = [r[1].decode() for r in conn.execute("PRAGMA table_info(messages)")]
    typed = ", ".join(f'"{c}", typeof("{c}")' for c in columns)
    day = day_expression("timestamp", utc)
    found: dict[int, tuple[Any, str | None]] = {}
    for row in conn.execute(f"SELECT rowid, {day}, {typed} FROM messages"):
        values, types = row[2::2], [t.decode() for t in row[3::2]]
        line = encode_row(columns, values, types)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        found[row[0]] = (json.loads(line), None if row[1] is None else row[1].decode())
    conn.close()
    return found


def read_all(source: Source, limit: int) -> list[tuple[int, Any, str | None, bytes]]:
    """(id, decoded line, day, raw line) for every line the source gives, page by page."""
    lines: list[tuple[int, Any, str | None, bytes]] = []
    after = 0
    while True:
        page: Page = source.read(after, None, limit)
        if not page:
            return lines
        assert 0 < len(page) <= limit and page.last_id > after
        for run in page.runs:
            assert run.data.endswith(b"\n")
            run_ids = []
            for raw in run.data.split(b"\n")[:-1]:
                obj = json.loads(raw.decode("utf-8"))  # strict: valid UTF-8 only
                run_ids.append(obj["id"])
                lines.append((obj["id"], obj, run.day, raw))
            assert run_ids == sorted(run_ids)
            assert (run.first_id, run.last_id) == (run_ids[0], run_ids[-1])
        after = page.last_id


def check_same(path: Path, limit: int, utc: bool, source: Source | None = None) -> None:
    expected = reference(path, utc)
    got = read_all(source or Source(path, utc=utc), limit)
    assert [row_id for row_id, *_ in got] == sorted(expected)  # all, once, in id order
    for row_id, obj, day, raw in got:
        want_obj, want_day = expected[row_id]
        assert obj == want_obj, f"id {row_id}: {raw[:200]!r}"
        assert day == want_day, f"id {row_id} filed under {day}, not {want_day}"
        assert b"\xe2\x80\xa8" not in raw and b"\xe2\x80\xa9" not in raw


@pytest.fixture(scope="module")
def odd_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fast") / "messages.db"
    build(path)
    return path


@pytest.mark.parametrize("utc", [False, True], ids=["local", "utc"])
@pytest.mark.parametrize("limit", [1, 3, 10, 10_000])
def test_fast_path_lines_decode_like_the_reference(odd_db: Path, limit: int, utc: bool) -> None:
    check_same(odd_db, limit, utc)


def test_page_too_big_for_one_string_is_read_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    serverdb.create(path)
    serverdb.send_many(path, 30)
    source = Source(path)
    source.max_id()  # opens the connection
    conn = source._connection()
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 2_000)  # a page no longer fits, a row does
    check_same(path, 1000, False, source)


def test_ordinary_pages_take_the_fast_path(odd_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above must cover the fast path, not only the fallback."""
    fallbacks: list[object] = []
    original = Source._read_rows

    def spy(self: Source, params: tuple[int, int, int]) -> Page:
        fallbacks.append(params)
        return original(self, params)

    monkeypatch.setattr(Source, "_read_rows", spy)
    source = Source(odd_db)
    one_day = source.read(0, 24, 1000)  # the first day's sends (id 5 deleted)
    assert len(one_day) == 23 and len(one_day.runs) == 1 and not fallbacks
    two_days = source.read(0, 30, 1000)  # and the next day's first three
    assert [r.day for r in two_days.runs] == ["2026-11-13", "2026-11-14"] and not fallbacks
    odd = source.read(0, None, 10_000)  # with the BLOB: row by row
    assert len(odd) > 23 and fallbacks


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
VALUE = st.one_of(
    st.none(),
    TEXT,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=20),
    st.binary(max_size=20).map(lambda b: ("cast", b)),  # raw bytes as TEXT: maybe invalid
)
STAMP = st.one_of(
    st.none(),
    TEXT,
    st.datetimes().map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat() + "T12:00:00"),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.tuples(VALUE, VALUE, STAMP, VALUE), min_size=1, max_size=12))
def test_any_values_decode_like_the_reference(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[object, ...]]
) -> None:
    path = tmp_path_factory.mktemp("any") / "messages.db"
    serverdb.create(path)
    conn = serverdb.connect(path)
    for content, to_agent, stamp, reply in rows:
        args, sql = [], []
        for value in (content, to_agent, stamp, reply):
            if isinstance(value, tuple):
                sql.append("CAST(? AS TEXT)")
                args.append(value[1])
            else:
                sql.append("?")
                args.append(value)
        conn.execute(
            "INSERT INTO messages (content, to_agent, timestamp, reply_to)"
            f" VALUES ({', '.join(sql)})",
            args,
        )
    conn.close()
    for limit in (2, 100):
        check_same(path, limit, utc=False)


@pytest.mark.parametrize("utc", [False, True], ids=["local", "utc"])
def test_a_timestamp_not_starting_with_a_date_has_no_day(utc: bool) -> None:
    """date() also reads numbers (Julian days) and 'now': those must not pick a day file."""
    conn = sqlite3.connect(":memory:")
    day = day_expression("timestamp", utc)
    for value in (
        1763100000,
        "1763100000",
        "now",
        "yesterday",
        "2026-13-01T10:00",
        "2026-02-30",
        None,
    ):
        found = conn.execute(f"SELECT {day} FROM (SELECT ? AS timestamp)", (value,)).fetchone()
        assert found == (None,), value
    zoned = conn.execute(
        f"SELECT {day} FROM (SELECT '2026-11-14T23:30:00-05:00' AS timestamp)"
    ).fetchone()
    assert zoned == ("2026-11-15" if utc else "2026-11-14",)


@pytest.mark.parametrize("limit", [1, 3, 10_000])
def test_a_page_carries_the_fingerprints_of_its_ends(odd_db: Path, limit: int) -> None:
    """What a follower's batch is checked and advanced by, read with the page (fast or
    row by row: the BLOB row's page is the latter), is what ``fingerprint`` says: after
    every id (5 was deleted: no row, no fingerprint) and after none."""
    source = Source(odd_db)
    last = source.max_id()
    for after in range(last + 1):
        page = source.read(after, None, limit)
        assert page.after_stamp == (source.fingerprint(after) if after else None), after
        want_last = source.fingerprint(page.last_id) if page else None
        assert page.last_stamp == want_last, after
    assert source.fingerprint(5) is None and source.fingerprint(1) is not None


@pytest.mark.parametrize(
    ("zone", "stamp", "utc_day", "local_day"),
    [
        ("Asia/Tokyo", "0001-01-01T05:00:00", None, "0001-01-01"),  # to UTC: year 0
        ("America/New_York", "9999-12-31T23:00:00", None, "9999-12-31"),  # to UTC: 10000
        ("Asia/Tokyo", "0001-01-02T05:00:00", "0001-01-01", "0001-01-02"),
        ("UTC", "0000-01-01T00:00:00", None, None),  # year 0: a date to SQLite only
    ],
)
def test_a_day_is_always_one_python_can_name(
    zone: str, stamp: str, utc_day: str | None, local_day: str | None
) -> None:
    """The routing day is a date Python's ``date`` holds (a day file named by year 0
    stopped the writer): SQLite's year 0, and the first and last days of Python's range
    that the conversion to UTC moves out of it, give no day (filed under today)."""
    import os
    import time

    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()  # SQLite's 'utc' modifier converts by the process's zone
    try:
        conn = sqlite3.connect(":memory:")
        got = conn.execute(
            f"SELECT {day_expression('t', True)}, {day_expression('t', False)}"
            " FROM (SELECT ? AS t)",
            (stamp,),
        ).fetchone()
        conn.close()
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
    assert got == (utc_day, local_day)
    for day in got:
        if day is not None:
            dt.date.fromisoformat(day)


CHARACTERS = ["\u2028", "\u2029", "\u2014", "\u2027", "\u202a", "🚀", "é"]
INVALID = [b"\xff", b"\xe2\x80", b"\xf0\x9f", b"\xed\xa0\x80", b"\x80\xa8"]
SLICE = source._UTF8_SLICE  # the check's slice: pieces are placed across its seams
PIECE = st.one_of(
    st.sampled_from(CHARACTERS).map(str.encode),
    st.sampled_from(INVALID),
    st.just(b"a" * (SLICE - 3)),
    st.integers(0, 5).map(lambda n: b"a" * n),
)


def page_check_expects(data: bytes) -> tuple[bool, bool]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return (False, False)
    return (True, "\u2028" in text or "\u2029" in text)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(PIECE, max_size=14))
def test_the_page_check_agrees_with_decoding_it_whole(pieces: list[bytes]) -> None:
    """Valid UTF-8 and holding U+2028/U+2029, as a plain decode of the whole page says."""
    data = b"".join(pieces)
    assert source._check_utf8(data) == page_check_expects(data)


@pytest.mark.parametrize("piece", [c.encode() for c in CHARACTERS] + INVALID)
def test_the_page_check_reads_a_character_cut_by_its_slices(piece: bytes) -> None:
    for shift in range(len(piece) + 1):
        for before in (b"a" * (SLICE - shift), b"a" * (2 * SLICE - shift)):
            data = before + piece + b"z"
            assert source._check_utf8(data) == page_check_expects(data), (shift, piece)
