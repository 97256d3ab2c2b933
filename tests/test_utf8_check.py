"""The UTF-8 check of a page of rows (record/source.py) with its ASCII fast path: an
ASCII page or slice is passed by ``isascii``, and nothing else changes."""

from __future__ import annotations

import pytest

from dead_drop_logger.record import source

S = source._UTF8_SLICE


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"plain ascii\n" * 1000, (True, False)),
        (b"a" * (S - 1) + "é".encode() + b"a" * S, (True, False)),  # a character across slices
        (b"a" * (S - 1) + b"\xc3" + b"a" * S, (False, False)),  # cut, then ASCII slices
        (b"a" * S + "\u2028".encode(), (True, True)),
        (b"a" * (2 * S) + b"\xff", (False, False)),  # invalid after ASCII slices
        (b"a" * (2 * S) + b"\xe2\x80", (False, False)),  # cut at the very end
        ("é".encode() + b"a" * (3 * S) + "\u2029".encode(), (True, True)),
    ],
)
def test_the_check_is_the_decoders(data: bytes, expected: tuple[bool, bool]) -> None:
    assert source._check_utf8(data) == expected
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert not expected[0]
    else:
        assert expected == (True, "\u2028" in text or "\u2029" in text)
