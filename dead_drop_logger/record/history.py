"""Date ranges as id ranges, and the plan of a historical import.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..clock import Clock, today
from ..keep import retention
from ..logdir import layout
from ..logdir import ranges as idranges
from ..logdir.state import State
from .source import TABLE, TIMESTAMP_COLUMN, SourceError, day_expression, stamp_date


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


@dataclass(frozen=True)
class Tally:
    """Of the messages with ids in some ranges: how many, and of them those filed under a
    day before a cut-off (what retention would delete): how many, on how many days,
    and the oldest day."""

    messages: int
    older: int = 0
    days: int = 0
    oldest: dt.date | None = None


def tally(
    db: Path, ranges: Iterable[tuple[int, int]], first_kept: dt.date, *, utc: bool = False
) -> Tally:
    """The messages with ids in ``ranges``, and those of them filed before ``first_kept``.

    One pass over the rows counts both (before an export of a million messages two
    passes, one with a date check per row, took 0.66 s: a sixth of the export); the
    old ones are grouped by day in a second pass only when there are any. The pass
    goes in two halves at once, each on a connection of its own (SQLite counts without
    the GIL): 0.13 s instead of 0.24 for 1,000,000, before the export can start.
    """
    first: list[tuple[int, int]] = []
    second: list[tuple[int, int]] = []
    for low, high in ranges:
        middle = (low + high) // 2
        first.append((low, middle))
        if middle < high:
            second.append((middle + 1, high))
    with ThreadPoolExecutor(2, thread_name_prefix="tally") as pool:
        halves = list(pool.map(lambda part: _tally(db, part, first_kept, utc), [first, second]))
    per_day: dict[str, int] = {}
    for _, _, days in halves:
        for when, count in days.items():
            per_day[when] = per_day.get(when, 0) + count
    oldest = dt.date.fromisoformat(min(per_day)) if per_day else None
    return Tally(sum(h[0] for h in halves), sum(h[1] for h in halves), len(per_day), oldest)


def _tally(
    db: Path, ranges: list[tuple[int, int]], first_kept: dt.date, utc: bool
) -> tuple[int, int, dict[str, int]]:
    """:func:`tally` of some ranges, on one connection: the messages, the older ones,
    and those per day."""
    day = day_expression(TIMESTAMP_COLUMN, utc)
    old = f"CASE WHEN {day} < ?3 THEN {day} END"
    if not utc:  # a local day is the stamp's first ten characters, when a date: compared
        # as they are first, they rule out a newer row without the date check
        cut = stamp_date(TIMESTAMP_COLUMN)
        old = f"CASE WHEN {cut} < ?3 AND {day} < ?3 THEN {day} END"
    rows = f"SELECT {old} AS old FROM {TABLE} WHERE rowid BETWEEN ?1 AND ?2"
    count_sql = f"SELECT count(*), count(old) FROM ({rows})"
    days_sql = f"SELECT old, count(*) FROM ({rows}) WHERE old IS NOT NULL GROUP BY old"
    cutoff = first_kept.isoformat()
    messages = older = 0
    per_day: dict[str, int] = {}
    if not ranges:
        return 0, 0, per_day
    conn = _connect(db)
    try:
        for low, high in ranges:
            total, found = conn.execute(count_sql, (low, high, cutoff)).fetchone()
            messages += int(total)
            older += int(found)
            if found:
                for when, count in conn.execute(days_sql, (low, high, cutoff)):
                    per_day[when] = per_day.get(when, 0) + int(count)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read database {db}: {exc}") from None
    finally:
        conn.close()
    return messages, older, per_day


@dataclass(frozen=True)
class Outside:
    """History the retention window leaves out: ``messages`` on ``days`` days from
    ``oldest``, all before ``first_kept``; ``earlier``: of them, those an earlier run
    already left out."""

    retention_days: int
    first_kept: dt.date
    messages: int
    days: int
    oldest: dt.date | None
    earlier: int = 0

    def note(self) -> str:
        """What retention does to them, and how to keep them, in one line."""
        since = f" from {self.oldest}" if self.oldest else ""
        return (
            f"{self.messages} messages on {self.days} days{since} are older than the"
            f" {self.retention_days}-day retention (before {self.first_kept}): not written,"
            " as retention would delete them; retention_days = 0 in the settings file"
            " (or --retention-days 0 for the logger too) keeps everything"
        )


@dataclass(frozen=True)
class Plan:
    """What a historical import of ids ``[low, top]`` will do."""

    todo: idranges.Ranges  # the id ranges to read
    rows: int  # of them, the messages to write (the progress bar's total)
    already: int  # messages of the range the log holds
    outside: Outside | None  # messages retention leaves out (None: it keeps everything)
    crowded: str | None = None  # what --keep-files would delete of it, said in a line

    def notes(self) -> list[str]:
        """What to say before the import: what retention and keep-files will do."""
        notes = [self.outside.note()] if self.outside and self.outside.messages else []
        return notes + ([self.crowded] if self.crowded else [])


def plan(
    db: Path,
    state: State,
    low: int,
    top: int,
    *,
    retention_days: int,
    utc: bool,
    clock: Clock,
    count: bool = True,
    keep_files: int | None = None,
    log_dir: Path | None = None,
) -> Plan:
    """Plan the import of ``[low, top]`` into a log directory whose state is ``state``.

    The state counts ids an earlier run left out for retention as handled: they are not
    in the log. With retention 0 this run writes them; otherwise they stay out. Counting
    rows costs a pass over them: ``count=False`` counts only what retention leaves out.

    With ``keep_files`` (and the ``log_dir``), ``crowded`` says when the days written
    would take the log past that many files, so that the logger's next housekeeping
    deletes some of them: said, not decided, since parts (``--max-bytes``) make the
    count of files known only once they are written.
    """
    skipped = idranges.within(state.skipped, low, top)
    handled = idranges.within(state.logged, low, top)
    present = idranges.subtract(handled, skipped)
    todo = idranges.gaps(handled if retention_days else present, low, top)
    first_kept = retention.cutoff(today(clock, utc), retention_days)
    outside = None
    older = 0
    in_todo: int | None = None
    if first_kept is not None:
        counted = tally(db, todo, first_kept, utc=utc)
        in_todo, older, days, oldest = counted.messages, counted.older, counted.days, counted.oldest
        earlier = count_in(db, skipped) if skipped else 0
        if earlier:  # their days too, for the count of days
            wider = tally(db, idranges.gaps(present, low, top), first_kept, utc=utc)
            days, oldest = wider.days, wider.oldest
        outside = Outside(retention_days, first_kept, older + earlier, days, oldest, earlier)
    if in_todo is None and count:
        in_todo = count_in(db, todo)
    rows = (in_todo or 0) - older if count else 0
    already = count_in(db, present) if count else 0
    crowded = None
    if keep_files and log_dir is not None:
        crowded = _crowded(db, todo, first_kept, keep_files, log_dir, today(clock, utc), utc)
    return Plan(todo, rows, already, outside, crowded)


def _crowded(
    db: Path,
    todo: idranges.Ranges,
    first_kept: dt.date | None,
    keep_files: int,
    log_dir: Path,
    day_now: dt.date,
    utc: bool,
) -> str | None:
    """A line saying which imported days --keep-files would delete (None: none)."""
    day = day_expression(TIMESTAMP_COLUMN, utc)
    sql = f"SELECT DISTINCT {day} FROM {TABLE} WHERE rowid BETWEEN ? AND ?"
    imported: set[dt.date] = set()
    conn = _connect(db)
    try:
        for low, high in todo:
            for (found,) in conn.execute(sql, (low, high)):
                when = dt.date.fromisoformat(found) if found else day_now
                if first_kept is None or when >= first_kept:
                    imported.add(when)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read database {db}: {exc}") from None
    finally:
        conn.close()
    held = {f.day for f in layout.log_files(log_dir) if retention.holds_messages(f)}
    days = sorted(held | imported)
    going = [d for d in days[: max(0, len(days) - keep_files)] if d < day_now]
    lost = [d for d in going if d in imported]
    if not lost:
        return None
    return (
        f"keep_files = {keep_files} keeps only the newest {keep_files} log files, and with"
        f" this import the log holds at least {len(days)} (from {days[0]}): the logger's"
        f" next start or midnight deletes the {len(going)} oldest days, through"
        f" {going[-1]}, {len(lost)} of them written now; unset keep_files (or set it to"
        f" {len(days)} or more) to keep them"
    )
