"""Names of the files in a log directory: the one place that knows them.

``messages-YYYY-MM-DD.json`` is a day's file; ``messages-YYYY-MM-DD.N.json`` its later
parts when ``--max-bytes`` is set; ``.json.gz`` a compressed one; and
``messages-current.json`` a symlink to today's file, which every reader skips.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

PREFIX = "messages-"
CURRENT_NAME = "messages-current.json"
_NAME = re.compile(r"^messages-(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.json(\.gz)?$")


@dataclass(frozen=True, order=True)
class LogFile:
    """One of the logger's own files, ordered by day then part."""

    day: dt.date
    part: int
    compressed: bool
    path: Path


def day_path(log_dir: Path, day: str, part: int = 0) -> Path:
    suffix = f".{part}" if part else ""
    return log_dir / f"{PREFIX}{day}{suffix}.json"


def current_path(log_dir: Path) -> Path:
    """The symlink to today's file that ``tail -F`` can follow across days."""
    return log_dir / CURRENT_NAME


def current_temp_path(log_dir: Path) -> Path:
    """Where the next symlink is made before it is renamed over the current one."""
    return log_dir / f".{CURRENT_NAME}.tmp"


def compressed_path(path: Path) -> Path:
    """``messages-DAY[.N].json`` -> ``messages-DAY[.N].json.gz``."""
    return path.with_name(path.name + ".gz")


def compress_temp_path(path: Path) -> Path:
    """A hidden name (no reader's ``messages-*`` glob matches it) for a gzip in progress."""
    return path.with_name(f".{path.name}.gz.tmp")


def is_compress_temp(name: str) -> bool:
    return name.startswith(f".{PREFIX}") and name.endswith(".json.gz.tmp")


def parse(path: Path) -> LogFile | None:
    """The LogFile a path names, or None for anything that is not a log file."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    try:
        day = dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return LogFile(day, int(match.group(2) or 0), match.group(3) is not None, path)


def log_files(log_dir: Path) -> list[LogFile]:
    """Every log file in the directory (never the current symlink), oldest first."""
    found: list[LogFile] = []
    try:
        with os.scandir(log_dir) as entries:  # d_type: no extra stat per entry
            for entry in entries:
                if not entry.name.startswith(PREFIX) or entry.is_symlink():
                    continue
                parsed = parse(Path(entry.path))
                if parsed is not None:
                    found.append(parsed)
    except FileNotFoundError:
        return []
    return sorted(found)


LOCK_FILE = ".dead-drop-logger.lock"  # the writer lock (dirlock): in every log dir written


def room_dirs(log_dir: Path) -> list[Path]:
    """The rooms' log directories in ``log_dir`` (``LOG_DIR/NAME/``, see rooms.py): its
    subdirectories a logger has written to, by name."""
    try:
        subdirs = sorted(p for p in log_dir.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
    return [p for p in subdirs if (p / LOCK_FILE).exists()]


def room_links(log_dir: Path) -> list[Path]:
    """Symbolic links in ``log_dir`` to what looks like a room's log directory: the
    logger never writes through one (a room's directory is its own), so no reader reads
    one either; each is named in a warning instead of being skipped silently."""
    try:
        links = sorted(p for p in log_dir.iterdir() if p.is_symlink())
    except OSError:
        return []
    return [p for p in links if p.is_dir() and (p / LOCK_FILE).exists()]
