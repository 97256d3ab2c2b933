"""What can be checked before a logger starts, so that a mistake is one line at once.

``run`` and ``start`` (and ``restart``) refuse a path whose directory does not exist: a
mistyped ``--db /srv/dead-drop/mesages.db`` waits, as it should, for a database file
the server has not made yet, but ``--db /srv/dead-dorp/messages.db`` names a directory
nothing will make, and used to wait for ever with one warning. The default database's
directory (``~/.dead-drop``) is exempt: on a fresh machine the server makes it.

``restart`` stops a daemon that runs, so it checks first everything it can without
starting: the paths' directories, the log directory (can it be made, written), and
whether the log directory holds another database's messages. What only the start can
tell (another logger working in a log directory that holds nothing yet, a failure of
the daemon itself) is handled by ``restart`` starting the old daemon again.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import config
from ..logdir.state import State, StateError, StateStore
from ..record import ownership
from ..record.rooms import find_rooms
from ..record.source import Source, SourceError

USAGE = 2  # a path mistyped: the command line's (or the settings file's) mistake
UNUSABLE = 1  # as start says it when the daemon cannot run


class CannotStart(Exception):
    """One line for the user, and the exit code to leave with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def check_paths(settings: config.Settings) -> None:
    """Refuse a database, room or rooms directory whose directory does not exist."""
    named: list[tuple[str, Path]] = []
    if not settings.has_rooms:
        named.append(("--db", settings.db))
    named += [(f"--db {name}=", db) for name, db in settings.rooms]
    if settings.rooms_dir is not None:
        named.append(("--rooms-dir", settings.rooms_dir))
    for option, path in named:
        path = path.expanduser()
        if path.absolute() == config.DEFAULT_DB.absolute():
            continue  # ~/.dead-drop: the server makes it
        parent = path.absolute().parent
        what = "the rooms directory" if option == "--rooms-dir" else "database"
        if not parent.exists():
            raise CannotStart(
                f"{what} {path} cannot appear: directory {_missing(parent)} does not exist"
                f" (check {option.rstrip('=')})",
                USAGE,
            )
        if not parent.is_dir():
            raise CannotStart(f"{what} {path} cannot appear: {parent} is not a directory", USAGE)


def _missing(directory: Path) -> Path:
    """The first directory of ``directory``'s path that does not exist."""
    for ancestor in reversed((directory, *directory.parents)):
        if not ancestor.exists():
            return ancestor
    return directory


def check_log_dir(log_dir: Path) -> None:
    """Refuse a log directory that cannot be made or written (as the daemon would)."""
    log_dir = log_dir.expanduser().absolute()
    for directory in (log_dir, *log_dir.parents):
        if not directory.exists() and not directory.is_symlink():
            continue
        if not directory.is_dir():
            where = "a parent is not a directory"
            if directory == log_dir:
                where = "a file is in the way"
            raise CannotStart(f"cannot create log directory {log_dir}: {where}", UNUSABLE)
        if not os.access(directory, os.W_OK | os.X_OK):
            made = "is not writable" if directory == log_dir else f"cannot be made in {directory}"
            raise CannotStart(f"log directory {log_dir} {made}: permission denied", UNUSABLE)
        return


def check_owner(settings: config.Settings) -> None:
    """Refuse a log directory that holds another database's messages (read only)."""
    if not settings.has_rooms:
        _owned(settings.log_dir, settings.db, settings.utc)
        return
    try:
        rooms = find_rooms(settings)
    except OSError:
        rooms = dict(settings.rooms)  # (the rooms directory is the daemon's to wait for)
    for name, db in sorted(rooms.items()):
        _owned(settings.log_dir / name, db, settings.utc)


def _owned(log_dir: Path, db: Path, utc: bool) -> None:
    log_dir, db = log_dir.expanduser().absolute(), db.expanduser().absolute()
    store = StateStore(log_dir)
    try:
        state = store.load()
    except StateError:
        return  # the daemon says what is wrong with it, and retries
    if state is None:
        owner = store.owner()
        if owner is None:
            return
        state = State(database=owner)
    source = Source(db, utc=utc)
    try:
        ownership.claim(state, source, log_dir)
    except ownership.ForeignDatabase as exc:
        if not ownership.holds_nothing(state, log_dir):
            raise CannotStart(str(exc), UNUSABLE) from None
    except (SourceError, OSError):
        pass  # the database cannot be read now: the daemon waits for it, as it always did
    finally:
        source.close()


def check_all(settings: config.Settings) -> None:
    """Everything ``restart`` checks before it stops the running daemon."""
    check_paths(settings)
    check_log_dir(settings.log_dir)
    check_owner(settings)
