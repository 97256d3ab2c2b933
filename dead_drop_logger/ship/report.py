"""What ``status`` says of each sink: where it got to, how far behind, its last error.

Why here: the shipper writes what it is doing (:mod:`.shipper`'s status file); the lag
is worked out by the reader of the status, from the sink's saved position and the logs
as they are now, so a shipper that died (or a sink down for hours) shows its true lag,
not the last figure it wrote. Lines: the committed lines past the position; seconds:
how old the oldest of them is (by its own ``timestamp``), 0 when there are none.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..read.feed import Feed
from ..read.logread import parse_line, timestamp_of
from . import position as positions
from .shipper import ship_dir


@dataclass
class SinkReport:
    name: str
    status: dict[str, Any]
    lag_lines: int | None
    lag_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        keep = (
            "sink",
            "kind",
            "state",
            "shipped",
            "last_key",
            "last_ack",
            "last_error",
            "error_at",
            "conflicts",
            "pid",
            "updated",
        )
        out = {key: self.status.get(key) for key in keep}
        out["lag_lines"] = self.lag_lines
        out["lag_seconds"] = self.lag_seconds
        return out


def text_of(sink: dict[str, Any]) -> str:
    """One line of ``status`` for a sink (:meth:`SinkReport.to_dict`)."""
    lines, seconds = sink.get("lag_lines"), sink.get("lag_seconds")
    lag = "unknown" if lines is None else f"{lines} lines"
    if seconds:
        lag += f", {seconds:.1f}s"
    text = (
        f"ship {sink.get('sink')}: {sink.get('state')}, {sink.get('shipped') or 0} shipped"
        f" (last {sink.get('last_key') or '-'}), behind {lag}"
    )
    if sink.get("last_error"):
        when = dt.datetime.fromtimestamp(float(sink.get("error_at") or 0)).strftime("%H:%M:%S")
        text += f"; last error at {when}: {sink['last_error']}"
    return text


def sinks(log_dir: Path, now: Callable[[], dt.datetime] = dt.datetime.now) -> list[SinkReport]:
    """Every sink that has shipped from ``log_dir`` (their status files), by name."""
    found = []
    try:
        names = sorted(p for p in ship_dir(log_dir).glob("*.status.json") if p.is_file())
    except OSError:
        return []
    for path in names:
        name = path.name[: -len(".status.json")]
        try:
            status = json.loads(path.read_bytes())
        except (OSError, ValueError):
            status = {"sink": name, "state": "unknown"}
        lines, seconds = lag(log_dir, ship_dir(log_dir) / f"{name}.position", now)
        found.append(SinkReport(name, status, lines, seconds))
    return found


def lag(
    log_dir: Path, position_path: Path, now: Callable[[], dt.datetime] = dt.datetime.now
) -> tuple[int | None, float | None]:
    """The committed lines past the saved position, and the age of the oldest."""
    try:
        saved = positions.load(position_path, log_dir)
    except (OSError, ValueError):
        return None, None
    start = saved.feed if saved is not None else None
    feed = Feed(log_dir, start)
    count = 0
    oldest: dt.datetime | None = None
    for line in feed.poll():
        if line.id is None:
            continue
        if count == 0:
            message = parse_line(line.raw)
            oldest = timestamp_of(message) if message else None
        count += 1
    seconds = max(0.0, (now() - oldest).total_seconds()) if oldest is not None else 0.0
    return count, seconds
