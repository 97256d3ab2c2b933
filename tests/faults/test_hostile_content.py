"""Hostile content: every row, whatever its bytes, is exactly one valid UTF-8 JSON line."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import serverdb
from conftest import file_bytes, logged_ids
from faultkit import assert_clean, assert_exactly_once, insert, wait_all_logged

from dead_drop_logger.logdir import layout

BIG = "x" * (10 * 1024 * 1024)
BLOB = b"\x00\x01\xffbinary"

# (column values, columns given as SQL, what "content" must read back as)
CASES: list[tuple[dict[str, Any], tuple[str, ...], Any]] = [
    ({"content": "CAST(X'666ffffe6f' AS TEXT)"}, ("content",), "fo\ufffd\ufffdo"),
    ({"content": "CAST(X'c3' AS TEXT)"}, ("content",), "\ufffd"),  # cut mid-character
    (
        {"content": b"\x00\x01\xffbinary"},
        (),
        {"$base64": base64.b64encode(b"\x00\x01\xffbinary").decode()},
    ),
    ({"content": b""}, (), {"$base64": ""}),
    ({"content": "nul\x00inside"}, (), "nul\x00inside"),
    ({"content": "line\nbreak"}, (), "line\nbreak"),
    ({"content": "carriage\rreturn\r\n"}, (), "carriage\rreturn\r\n"),
    ({"content": "sep\u2028par\u2029end"}, (), "sep\u2028par\u2029end"),
    ({"content": "ctl\x01\x1b\x7f\x85\t\x0b\x0c"}, (), "ctl\x01\x1b\x7f\x85\t\x0b\x0c"),
    ({"content": 'quote" back\\slash </script>'}, (), 'quote" back\\slash </script>'),
    ({"content": "emoji \U0001f600 and ÿ"}, (), "emoji \U0001f600 and ÿ"),
    ({"content": "y" * 200 * 1024}, (), "y" * 200 * 1024),
    ({"content": BIG}, (), BIG),
    ({"content": 1.5}, (), "1.5"),  # TEXT affinity: the server stored text
    ({"content": "real", "read_flag": 1.5}, (), "real"),
    ({"content": "inf", "read_flag": "9e999"}, ("read_flag",), "inf"),
    ({"content": "-inf", "read_flag": "-9e999"}, ("read_flag",), "-inf"),
    ({"content": "int", "read_flag": 2**63 - 1}, (), "int"),
    ({"content": None}, (), None),
    ({"content": "null timestamp", "timestamp": None}, (), "null timestamp"),
    ({"content": "bad timestamp", "timestamp": "yesterday-ish"}, (), "bad timestamp"),
    ({"content": "int timestamp", "timestamp": 1700000000}, (), "int timestamp"),
    ({"content": "blob timestamp", "timestamp": b"\xff\x00"}, (), "blob timestamp"),
    # a date to SQLite, not to Python: a day file named by it stopped the writer
    ({"content": "year zero", "timestamp": "0000-01-01T00:00:00"}, (), "year zero"),
    ({"content": "last day", "timestamp": "9999-12-31T23:59:59"}, (), "last day"),
    (
        {"content": "bad agent", "from_agent": "CAST(X'ff41' AS TEXT)"},
        ("from_agent",),
        "bad agent",
    ),
]


def test_every_hostile_row_is_one_valid_json_line(server_db: Path, log_dir: Path, logger) -> None:
    first_day = dt.date.today()  # the logger's today is one of the days the test ran on
    # Retention off: the rows' 2026-01-02 is long past 30 days, and a midnight during the
    # test would have retention delete its file.
    proc = logger("--retention-days", "0").start()
    proc.wait_ready()
    ids = []
    for values, raw, _ in CASES:
        row = {"timestamp": "2026-01-02T03:04:05.000006", **values}
        ids += insert(server_db, [row], raw=raw)
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    last_day = dt.date.today()
    assert_clean(proc.stderr())
    assert_exactly_once(log_dir, server_db)

    by_id: dict[int, dict[str, Any]] = {}
    files = file_bytes(log_dir)  # plain day files, or sealed segments decrypted
    for _path, raw_bytes in files:
        if not raw_bytes:  # a new day's file, made at a midnight during the run
            continue
        assert raw_bytes.endswith(b"\n")
        text = raw_bytes.decode("utf-8")  # strict: every byte is valid UTF-8
        assert "\u2028" not in text and "\u2029" not in text  # escaped, never raw
        for line in text.split("\n")[:-1]:
            assert line.startswith("{") and line.endswith("}")
            obj = json.loads(line)
            by_id[obj["id"]] = obj
    assert sorted(by_id) == ids
    for row_id, (values, _, want) in zip(ids, CASES, strict=True):
        got = by_id[row_id]["content"]
        assert got == want, (values, got if len(str(got)) < 200 else len(got))

    def field(content: str, name: str) -> Any:
        return next(o[name] for o in by_id.values() if o["content"] == content)

    assert field("bad agent", "from_agent") == "\ufffdA"
    assert field("real", "read_flag") == 1.5
    assert field("inf", "read_flag") == math.inf
    assert field("-inf", "read_flag") == -math.inf
    assert field("int", "read_flag") == 2**63 - 1
    assert field("blob timestamp", "timestamp") == {"$base64": "/wA="}
    assert field("int timestamp", "timestamp") == "1700000000"  # TEXT affinity

    # Rows without a usable timestamp are filed under the logger's today (the first of
    # them opens that file), the rest under their own day.
    (undated,) = [(p, raw) for p, raw in files if b"null timestamp" in raw]
    entry = layout.parse(undated[0])
    assert entry is not None, undated[0]
    assert first_day <= entry.day <= last_day, undated[0]
    # the first line of its file (sealed: of its segment, and the first segment of its day)
    assert json.loads(undated[1].splitlines()[0])["content"] == "null timestamp"
    assert [p for p, _ in files if p.name.startswith("messages-2026-01-02.")]
    (zero,) = [p for p, raw in files if b"year zero" in raw]
    assert zero.name.startswith("messages-") and "0000-" not in zero.name  # undated: today
    (last,) = [p for p, raw in files if b"last day" in raw]
    assert last.name.startswith("messages-9999-12-31")
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)
