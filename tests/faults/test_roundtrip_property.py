"""Property: any stored value comes back from the log line as itself, or as documented.

Reader (Source, both its SQLite json_object fast path and the encoding.py slow path)
and writer (DayWriter) together, in-process, on a real server database. The
documented replacements (dead_drop_logger/encoding.py): BLOB -> {"$base64": ...},
TEXT holding invalid UTF-8 -> that text decoded with U+FFFD for each bad sequence.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import ENCRYPTED_SUITE, age_decrypt, age_identity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dead_drop_logger.record.sealed import SegmentWriter
from dead_drop_logger.record.source import Source
from dead_drop_logger.record.writer import DayWriter

TEXT_CHARS = st.characters(blacklist_categories=["Cs"])  # sqlite3 cannot bind surrogates
TEXT = st.text(TEXT_CHARS)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


class Cast:
    """Bytes stored as TEXT (``CAST(? AS TEXT)``): maybe not UTF-8 at all."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"Cast({self.raw!r})"


VALUES = st.one_of(
    TEXT,
    st.binary(),
    st.binary().map(Cast),
    TEXT.map(lambda t: Cast(t.encode())),
    INT64,
    st.floats(allow_nan=False),  # SQLite stores NaN as NULL
    st.none(),
)


def expected(value: object) -> object:
    if isinstance(value, Cast):
        return value.raw.decode("utf-8", "replace")
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode("ascii")}
    return value


class FixedClock:
    def now(self) -> dt.datetime:
        return dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)


class Harness:
    """One server database with an untyped column, its reader and a log directory,
    written plain (DayWriter) or, in a ``sealed`` test, in sealed segments
    (SegmentWriter, each read back by Debian's age)."""

    def __init__(self, root: Path) -> None:
        self.db = root / "messages.db"
        serverdb.create(self.db)
        self.conn = serverdb.connect(self.db)
        self.conn.execute("ALTER TABLE messages ADD COLUMN value")  # no affinity: kept as is
        self.log_dir = root / "logs"
        self.log_dir.mkdir()
        self.source = Source(self.db)
        self.sealed = os.environ.get(ENCRYPTED_SUITE) == "1"  # (see encryptvariants)
        self.writer = (
            SegmentWriter(self.log_dir, FixedClock(), [age_identity()[1]])
            if self.sealed
            else DayWriter(self.log_dir, FixedClock())
        )
        self.position = 0

    def written(self, name: str) -> bytes:
        """The file's bytes as a reader gets them (a segment decrypted)."""
        path = self.log_dir / name
        return age_decrypt(path) if self.sealed else path.read_bytes()

    def roundtrip(self, value: object, timestamp: object = "2030-01-01T00:00:00") -> Any:
        if isinstance(value, Cast):
            sql, param = "CAST(? AS TEXT)", value.raw
        else:
            sql, param = "?", value
        self.conn.execute(
            f"INSERT INTO messages (content, value, timestamp) VALUES ({sql}, {sql}, ?)",
            (param, param, timestamp),
        )
        rows = self.source.read(self.position, None, 10)
        assert len(rows) == 1
        self.position = rows.last_id
        chunks = self.writer.plan(rows.runs)
        self.writer.append(chunks, self.writer.sizes(chunks))
        line = self.written(chunks[0].name).splitlines(keepends=True)[-1]
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        text = line.decode("utf-8")  # strict
        assert "\u2028" not in text and "\u2029" not in text
        obj = json.loads(text)
        assert obj["id"] == rows.last_id
        return obj


class Harnesses:
    """The module's harnesses: one for its plain tests, one for its sealed ones (a
    module's fixture: hypothesis runs every example of a test on the same one)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[bool, Harness] = {}

    def get(self) -> Harness:
        sealed = os.environ.get(ENCRYPTED_SUITE) == "1"  # (set by the encryption fixture)
        if sealed not in self.made:
            folder = self.root / ("sealed" if sealed else "plain")
            folder.mkdir()
            self.made[sealed] = Harness(folder)
        return self.made[sealed]


@pytest.fixture(scope="module")
def harnesses() -> Iterator[Harnesses]:
    with tempfile.TemporaryDirectory() as root:
        made = Harnesses(Path(root))
        yield made
        for h in made.made.values():
            h.source.close()
            h.conn.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_any_value_round_trips(harnesses: Harnesses, value: object) -> None:
    obj = harnesses.get().roundtrip(value)
    want = expected(value)
    assert obj["value"] == want
    # content has TEXT affinity: numbers become text there, everything else as above
    if not isinstance(value, int | float) or isinstance(value, bool):
        assert obj["content"] == want


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timestamp=st.one_of(TEXT, st.binary(), INT64, st.none()))
def test_any_timestamp_gives_one_line_in_some_day_file(
    harnesses: Harnesses, timestamp: object
) -> None:
    obj = harnesses.get().roundtrip("hello", timestamp)
    # TEXT affinity stores an integer timestamp as its text
    want = str(timestamp) if isinstance(timestamp, int) else expected(timestamp)
    assert obj["timestamp"] == want


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        min_size=1,
        max_size=12,
    )
)
def test_any_column_name_round_trips(name: str) -> None:
    with tempfile.TemporaryDirectory() as root:
        h = Harness(Path(root))
        try:
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                h.conn.execute(f"ALTER TABLE messages ADD COLUMN {quoted}")
            except sqlite3.OperationalError:  # a duplicate of an existing name
                return
            h.conn.execute(f"INSERT INTO messages ({quoted}, timestamp) VALUES ('v', 'x')")
            rows = h.source.read(0, None, 10)
            chunks = h.writer.plan(rows.runs)
            h.writer.append(chunks, h.writer.sizes(chunks))
            line = h.written(chunks[0].name)
            assert json.loads(line.decode("utf-8"))[name] == "v"
        finally:
            h.source.close()
            h.conn.close()
