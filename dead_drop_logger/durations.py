"""How every command prints a length of time: ``65 ms``, ``39s``, ``5m 00s``, ``2h 52m``,
``3d 04h``.

One function, so that a response time, a task's span, the daemon's uptime (and any
duration a later command prints) read alike: two units at most, the larger first, the
smaller zero-padded so columns line up, each cut (not rounded) to its unit, as a clock
shows it. Below a second the milliseconds, since ``0s`` would say nothing (but nothing
at all, a task of one message, is ``0s``).
"""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """``seconds`` for people; ``-`` for None (no value: nothing was measured)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 0:
        return "-" + duration(-seconds)
    if 0 < seconds < 1:
        return f"{int(seconds * 1000)} ms"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"
