"""Date ranges as id ranges, for the one-off historical export.

Ids only grow and the server stamps each message with the time it is sent, so the
messages of a span of days are (to within clock adjustments) one run of ids. The
export works on id ranges because the log directory's state records what it holds
as id ranges; filtering inside a range would record ids as logged that were not.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from .source import TABLE, TIMESTAMP_COLUMN, SourceError, day_expression


def _connect(db: Path) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(str(db.absolute())) + "?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open database {db}: {exc}") from None


def id_range(
    db: Path, since: dt.date | None, until: dt.date | None, *, utc: bool = False
) -> tuple[int, int] | None:
    """The ids from the first message dated on/after ``since`` to the last dated
    on/before ``until`` (inclusive, by the day the logger files a message under);
    None when no message falls in the range."""
    day = day_expression(TIMESTAMP_COLUMN, utc)
    low_sql = f"SELECT min(rowid) FROM {TABLE}"
    high_sql = f"SELECT max(rowid) FROM {TABLE}"
    low_args: tuple[str, ...] = ()
    high_args: tuple[str, ...] = ()
    if since is not None:
        low_sql += f" WHERE {day} >= ?"
        low_args = (since.isoformat(),)
    if until is not None:
        high_sql += f" WHERE {day} <= ?"
        high_args = (until.isoformat(),)
    conn = _connect(db)
    try:
        low = conn.execute(low_sql, low_args).fetchone()[0]
        high = conn.execute(high_sql, high_args).fetchone()[0]
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read database {db}: {exc}") from None
    finally:
        conn.close()
    if not isinstance(low, int) or not isinstance(high, int) or low > high:
        return None
    return low, high


def count_in(db: Path, ranges: Iterable[tuple[int, int]]) -> int:
    """How many messages the database holds with ids in ``ranges``."""
    conn = _connect(db)
    try:
        total = 0
        for low, high in ranges:
            sql = f"SELECT count(*) FROM {TABLE} WHERE rowid BETWEEN ? AND ?"
            total += int(conn.execute(sql, (low, high)).fetchone()[0])
        return total
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read database {db}: {exc}") from None
    finally:
        conn.close()
