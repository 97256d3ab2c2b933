"""The logger's own diagnostics: stderr (or a file for the daemon) through ``logging``.

The daemon's file (``~/.dead-drop/logger.log``) runs for months unattended, so it is
rotated at a size cap with two older copies: it can never fill the disk the logs need.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
from pathlib import Path
from typing import TextIO

from .config import LEVELS as LEVELS  # where the options read it without logging
from .files import open_private

TAG = "dead-drop-logger[%(process)d]"
FORMAT = "%(asctime)s {tag} %(levelname)s: %(message)s"
FILE_MAX_BYTES = 1024 * 1024  # logger.log, then logger.log.1 and .2: 3 MiB at most
FILE_BACKUPS = 2


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A size-capped log file whose every copy is 0600, whatever the umask."""

    def _open(self) -> io.TextIOWrapper:
        fd = open_private(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def configure(
    level: str = "info",
    *,
    stream: TextIO | None = None,
    file: Path | None = None,
    tag: str = TAG,
) -> None:
    """Send the package's log records to one stream or file, replacing earlier handlers.

    ``tag`` names the program in each line (``export_historical`` for the export)."""
    handler: logging.Handler
    if file is not None:
        handler = PrivateRotatingFileHandler(
            file, maxBytes=FILE_MAX_BYTES, backupCount=FILE_BACKUPS, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT.format(tag=tag), datefmt="%Y-%m-%dT%H:%M:%S%z"))
    handler.addFilter(_name_the_room)
    root = logging.getLogger("dead_drop_logger")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


ROOM_THREAD_PREFIX = "room-"


def _name_the_room(record: logging.LogRecord) -> bool:
    """Lines from a room's thread start with ``room NAME:``, so each says whose it is."""
    if record.threadName and record.threadName.startswith(ROOM_THREAD_PREFIX):
        record.msg = f"room {record.threadName[len(ROOM_THREAD_PREFIX) :]}: {record.msg}"
    return True


class Reporter:
    """Says each ongoing problem once (not once per poll), and when it is over."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._current: str | None = None

    def problem(self, message: str, *, level: int = logging.WARNING) -> None:
        if message != self._current:
            self._log.log(level, "%s", message)
            self._current = message

    def resolved(self, message: str = "resumed") -> None:
        if self._current is not None:
            self._log.info("%s", message)
            self._current = None

    @property
    def in_trouble(self) -> bool:
        return self._current is not None
