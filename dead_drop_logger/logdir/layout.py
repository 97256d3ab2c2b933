"""Names of the files in a log directory: the one place that knows them.

``messages-YYYY-MM-DD.json`` is a day's file; ``messages-YYYY-MM-DD.N.json`` its later
parts when ``--max-bytes`` is set; ``.json.gz`` a compressed one; and
``messages-current.json`` a symlink to today's file, which every reader skips.
With encryption (docs/encryption.md) a day is written in sealed segments, each a whole
age file written once: ``messages-YYYY-MM-DD.NNNNNN.json.age`` (``.json.gz.age`` when
gzipped before encryption), numbered on from the day's highest part, zero-padded so
the names sort as they are read.

A name is only ours when it is a regular file: a hub room may be called anything, so
``LOG_DIR/messages-2020-01-01.json/`` can be a room's log directory, which every
reader, ``prune`` and retention must take for a room, never read or delete as a day.

Beside them, task changes and agent events go to ``tasks-YYYY-MM-DD.json`` and
``agents-YYYY-MM-DD.json`` (docs/tasks.md), named the same way (parts, ``.gz``). Every
function here speaks of message files unless given another ``kind``, so a reader of
messages never takes a task line for a message; the file policies (retention,
compression) ask for all of them (``KINDS``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

PREFIX = "messages-"
CURRENT_NAME = "messages-current.json"
MESSAGES = "messages"
TASKS = "tasks"
AGENTS = "agents"
KINDS = (MESSAGES, TASKS, AGENTS)
_NAME = re.compile(
    r"^(messages|tasks|agents)-(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.json(\.gz)?(\.age)?$"
)
AGE = ".age"
SEGMENT_DIGITS = 6


@dataclass(frozen=True, order=True)
class LogFile:
    """One of the logger's own files, ordered by day then part."""

    day: dt.date
    part: int
    compressed: bool
    path: Path
    kind: str = MESSAGES
    encrypted: bool = False  # a sealed age segment (read whole, with an identity)

    @property
    def sealed(self) -> bool:
        """Written once, whole, never appended to: a gzip or an age segment."""
        return self.compressed or self.encrypted


def day_path(log_dir: Path, day: str, part: int = 0, kind: str = MESSAGES) -> Path:
    suffix = f".{part}" if part else ""
    return log_dir / f"{kind}-{day}{suffix}.json"


def segment_path(
    log_dir: Path, day: str, number: int, kind: str = MESSAGES, *, gzipped: bool = False
) -> Path:
    """An encrypted segment's name: ``KIND-DAY.NNNNNN.json[.gz].age``."""
    gz = ".gz" if gzipped else ""
    return log_dir / f"{kind}-{day}.{number:0{SEGMENT_DIGITS}d}.json{gz}{AGE}"


def segment_temp_path(path: Path) -> Path:
    """A hidden name (no reader's glob matches it) for a segment being written."""
    return path.with_name(f".{path.name}.tmp")


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
    return any(name.startswith(f".{kind}-") for kind in KINDS) and name.endswith(".json.gz.tmp")


def parse(path: Path, kinds: tuple[str, ...] = (MESSAGES,)) -> LogFile | None:
    """The LogFile a path names, or None for anything that is not a log file of one of
    ``kinds`` (message files unless told otherwise)."""
    match = _NAME.match(path.name)
    if match is None or match.group(1) not in kinds:
        return None
    try:
        day = dt.date.fromisoformat(match.group(2))
    except ValueError:
        return None
    return LogFile(
        day,
        int(match.group(3) or 0),
        match.group(4) is not None,
        path,
        match.group(1),
        match.group(5) is not None,
    )


def log_files(log_dir: Path, kinds: tuple[str, ...] = (MESSAGES,)) -> list[LogFile]:
    """Every log file of ``kinds`` in the directory, oldest first; message files unless
    told otherwise. Regular files only: never the current symlink, nor a room's
    directory named like a day file."""
    found: list[LogFile] = []
    prefixes = tuple(f"{kind}-" for kind in kinds)
    try:
        with os.scandir(log_dir) as entries:  # d_type: no extra stat per entry
            for entry in entries:
                if not entry.name.startswith(prefixes) or not entry.is_file(follow_symlinks=False):
                    continue
                parsed = parse(Path(entry.path), kinds)
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


def rooms_to_watch(log_dir: Path) -> list[Path]:
    """What a watcher for new lines watches besides ``log_dir``: every real subdirectory
    not hidden, a room's or one on its way to be. A room's directory is made before its
    lock, so a watcher woken by its creation that waited for :func:`room_dirs` to name
    it missed the room's first lines (and slept till its timer: an hour in a test)."""
    try:
        with os.scandir(log_dir) as entries:
            return sorted(
                Path(e.path)
                for e in entries
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            )
    except OSError:
        return []


def room_links(log_dir: Path) -> list[Path]:
    """Symbolic links in ``log_dir`` to what looks like a room's log directory: the
    logger never writes through one (a room's directory is its own), so no reader reads
    one either; each is named in a warning instead of being skipped silently."""
    try:
        links = sorted(p for p in log_dir.iterdir() if p.is_symlink())
    except OSError:
        return []
    return [p for p in links if p.is_dir() and (p / LOCK_FILE).exists()]
