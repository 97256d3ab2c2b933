"""The fast path of ``stats`` (fields by bytes) gives the exact path's numbers.

On the hostile log directory (tests/logsets.py: names in other fields, escapes,
non-ASCII names, U+2028, invalid UTF-8, BLOB content, a corrupt line, gzipped days,
size parts) and on the hand-worked team's directory, with and without a window.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from dead_drop_logger.read import statlines
from dead_drop_logger.read.logread import Reader, Window
from dead_drop_logger.read.stats import StatsBuilder

WINDOWS = [
    Window(),
    Window(dt.datetime(2026, 2, 18), None),
    Window(dt.datetime(2026, 2, 17, 9, 3), dt.datetime(2026, 2, 19, 9, 0)),
]


def exact(log_dir: Path, window: Window) -> tuple[object, int]:
    reader = Reader.of(log_dir, window)
    builder = StatsBuilder()
    for entry in reader.messages():
        builder.add(entry.message)
    return builder.result(), reader.corrupt


def fast(log_dir: Path, window: Window) -> tuple[object, int]:
    reader = Reader.of(log_dir, window)
    return statlines.read(reader), reader.corrupt


# Lines a crash or a hand edit could leave: not JSON, not an object, not UTF-8, a line
# cut inside its head, one whose tail is damaged, one with a new column at the end.
DAMAGED = (
    b"not json\n[1, 2]\n\xff\xfe\n"
    b'{"id":900,"from_agent":"juno","to_ag\n'
    b'{"id":901,"from_agent":"juno","to_agent":"vega","content":"x","timestamp":"2026-02-20'
    b'T10:00:00","read_flag":0,"is_cc":0,"cc_original_to":null,"task_id":"T-9","reply_to":\n'
    b'{"id":902,"from_agent":"juno","to_agent":"vega","content":"x","timestamp":"2026-02-20'
    b'T10:00:00","read_flag":0,"is_cc":0,"cc_original_to":null,"task_id":"T-9","reply_to":1,'
    b'"room":"ops"}\n'
)


@pytest.mark.parametrize("window", WINDOWS, ids=["all", "since", "since-until"])
def test_fast_path_equals_exact_path_on_hostile_logs(
    hostile_logs, tmp_path: Path, window: Window
) -> None:
    log_dir = tmp_path / "copy"
    shutil.copytree(hostile_logs.log_dir, log_dir, symlinks=True)
    last = max(log_dir.glob("messages-2026-02-20*.json"))
    with open(last, "ab") as out:
        out.write(DAMAGED)
    expected, corrupt = exact(log_dir, window)
    assert fast(log_dir, window) == (expected, corrupt)
    assert expected.totals.messages >= 10  # type: ignore[attr-defined]
    # all but the line with a new column, when the damaged day is read at all
    assert corrupt == (5 if window.admits_day(dt.date(2026, 2, 20)) else 0)
