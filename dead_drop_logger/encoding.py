"""How one SQLite value becomes JSON: the reference encoding every line follows.

The source reader builds most lines inside SQLite (``json_object``) for speed; rows that
path cannot express exactly (BLOBs, REALs, invalid UTF-8) are encoded here instead.
Both produce the same values, which ``tests/test_encoding.py`` checks.

Decisions, documented in docs/encoding.md:
- TEXT is UTF-8; invalid bytes become U+FFFD.
- BLOB becomes ``{"$base64": "<standard base64>"}`` (an object, so it cannot be
  mistaken for TEXT).
- REAL becomes a JSON number that reads back as the same double; +/-infinity is written
  ``1e999`` / ``-1e999``, which every JSON reader decodes to infinity.
- U+2028 and U+2029 are escaped as well as control characters, so that no reader that
  splits on Unicode line separators (Python's ``str.splitlines``, old JavaScript) ever
  sees one message as two lines.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence

LINE_SEPARATORS = (("\u2028", "\\u2028"), ("\u2029", "\\u2029"))

_dump_str = json.JSONEncoder(ensure_ascii=False).encode


def escape_separators(text: str) -> str:
    """Escape U+2028/U+2029, which JSON allows raw but some readers treat as newlines."""
    for raw, escaped in LINE_SEPARATORS:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


def encode_value(value: object, sql_type: str) -> str:
    """One SQLite value (as fetched with ``text_factory=bytes``) as a JSON fragment."""
    if value is None:
        return "null"
    if sql_type == "blob":
        assert isinstance(value, bytes)
        return '{"$base64":' + _dump_str(base64.b64encode(value).decode("ascii")) + "}"
    if isinstance(value, bytes):  # TEXT, fetched raw so bad bytes cannot raise
        return _dump_str(value.decode("utf-8", "replace"))
    if isinstance(value, str):
        return _dump_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "1e999" if value > 0 else "-1e999"
        if math.isnan(value):  # SQLite stores NaN as NULL; kept for completeness
            return "null"
        return repr(value)
    raise TypeError(f"unexpected SQLite value {value!r}")


def encode_row(columns: Sequence[str], values: Sequence[object], types: Sequence[str]) -> bytes:
    """A whole row as one compact JSON object line, terminated by ``\\n``."""
    body = ",".join(
        _dump_str(name) + ":" + encode_value(value, sql_type)
        for name, value, sql_type in zip(columns, values, types, strict=True)
    )
    return (escape_separators("{" + body + "}") + "\n").encode("utf-8")
