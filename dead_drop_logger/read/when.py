"""``--since`` / ``--until`` values: WHEN as a person types it, as a naive local time.

Why naive local: the server stamps each message with ``datetime.now().isoformat()``, its
local wall time without a zone, and the logger files it by that date. Comparing like
with like keeps a date on the command line equal to the day file of the same name.

Accepted forms (``now`` is injectable so tests need no real clock):

- ``2026-02-20`` (its midnight), ``2026-02-20T10:30``, ``2026-02-20 10:30:15`` (ISO 8601;
  a time with an explicit UTC offset is converted to local time);
- ``90s``, ``15m``, ``2h``, ``3d``, ``1w``: that long before now;
- ``today``, ``yesterday``: that day's midnight.
"""

from __future__ import annotations

import datetime as dt
import re

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
EXAMPLES = "2026-02-20, 2026-02-20T10:30, '2026-02-20 10:30:15', 90s, 15m, 2h, 3d, 1w, today"


def local_now() -> dt.datetime:
    """Now, as naive local wall time (the server's notion of a timestamp)."""
    return dt.datetime.now()


def parse_when(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """The naive local datetime ``text`` names; ValueError with a message for the user."""
    value = text.strip()
    lowered = value.lower()
    current = local_now() if now is None else now
    midnight = dt.datetime.combine(current.date(), dt.time())
    if lowered == "today":
        return midnight
    if lowered == "yesterday":
        return midnight - dt.timedelta(days=1)
    relative = _RELATIVE.match(lowered)
    if relative is not None:
        amount, unit = int(relative.group(1)), relative.group(2)
        try:
            return current - dt.timedelta(seconds=amount * _UNIT_SECONDS[unit])
        except OverflowError:
            raise ValueError(f"{text!r} reaches too far back") from None
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time())
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time (examples: {EXAMPLES})") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone().replace(tzinfo=None)
    return parsed


def parse_duration(text: str) -> float:
    """A length of time as ``--stale`` takes it (``90s``, ``15m``, ``2h``, ``3d``,
    ``1w``), in seconds; ValueError with a message for the user."""
    relative = _RELATIVE.match(text.strip().lower())
    if relative is None:
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 15m, 2h, 3d, 1w)")
    return float(int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)])
