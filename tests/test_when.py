"""WHEN values of --since/--until, against an injected "now"."""

from __future__ import annotations

import datetime as dt

import pytest

from dead_drop_logger.read.when import parse_when

NOW = dt.datetime(2026, 2, 20, 10, 30, 15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-20", dt.datetime(2026, 2, 20)),
        ("2026-02-20T10:30", dt.datetime(2026, 2, 20, 10, 30)),
        ("2026-02-20 10:30:15", dt.datetime(2026, 2, 20, 10, 30, 15)),
        ("2026-02-20T10:30:15.250000", dt.datetime(2026, 2, 20, 10, 30, 15, 250000)),
        ("90s", NOW - dt.timedelta(seconds=90)),
        ("15m", NOW - dt.timedelta(minutes=15)),
        ("2h", NOW - dt.timedelta(hours=2)),
        ("3d", NOW - dt.timedelta(days=3)),
        ("1w", NOW - dt.timedelta(weeks=1)),
        ("today", dt.datetime(2026, 2, 20)),
        ("Yesterday", dt.datetime(2026, 2, 19)),
        (" today ", dt.datetime(2026, 2, 20)),
    ],
)
def test_forms(text: str, expected: dt.datetime) -> None:
    assert parse_when(text, now=NOW) == expected


def test_explicit_offset_becomes_naive_local_time() -> None:
    parsed = parse_when("2026-02-20T10:30:00+00:00", now=NOW)
    assert parsed.tzinfo is None
    utc = dt.datetime(2026, 2, 20, 10, 30, tzinfo=dt.UTC)
    assert parsed == utc.astimezone().replace(tzinfo=None)


@pytest.mark.parametrize("text", ["", "soon", "2026-02-30", "12x", "2026-13-01T10:00", "-3d"])
def test_bad_input_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="is not a date or time") as caught:
        parse_when(text, now=NOW)
    assert "examples: 2026-02-20" in str(caught.value)


def test_too_far_back() -> None:
    with pytest.raises(ValueError, match="too far back"):
        parse_when("99999999999w", now=NOW)
