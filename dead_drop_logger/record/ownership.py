"""A log directory belongs to one database.

The state records which database its lines came from (``State.database``, an absolute
path). Every transaction checks it before anything is written, because
``~/.dead-drop/logs`` is every database's default: without the check a second database
pointed at the same directory looks like a server reset and is logged again from row 1,
next to the first one's lines (and two loggers on two databases reset each other on
every message).

- Same path: the database is the recorded one. A reset at that path (ids from 1 again)
  is :meth:`Pipeline._check_same_database`'s business, as before.
- Another path holding the same rows (the row at the position has the recorded
  fingerprint) while the recorded path no longer does: the database was moved. The new
  path is recorded, with one info line.
- Anything else is a different database: :class:`ForeignDatabase`, one line naming
  both databases and the way out, and nothing is written; unless the directory holds
  no message yet (:func:`holds_nothing`) and no other logger works in it (see
  :class:`..logdir.dirlock.Presence`): such a directory belongs to nobody, and the
  pipeline hands it to the new database as a first start, with one info line. So a
  ``run`` before the server made its database, a mistyped ``--db`` or a ``db =`` set
  after the service started do not bind the directory to a database that never logged
  anything there. Exactly once is untouched: there is no line to double or lose.

A room's log filled from its archive (``import-archive``) before any follower saw the
room records ``room:NAME``: the room's database, wherever the hub keeps it. The first
database at ``.../NAME/messages.db`` (where a hub keeps room NAME) is then the owner and
its path is recorded; any other database is refused. (A state left by an older
``import-archive`` naming its deleted temporary copy is read the same way.)

Rooms are known by name, so a room's database found under another room's name (a room
renamed, two rooms swapped) is recognised by the same rule as a moved database, against
the other rooms' logs (:func:`refuse_moved_room`), and refused with the way out rather
than logged again from its first row.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import ROOM_DB_NAME
from ..files import LogDirError
from ..logdir import layout
from ..logdir.layout import room_dirs
from ..logdir.state import STATE_NAME, State, StateError, StateStore
from .source import Source, SourceMissing, SourceUnusable

log = logging.getLogger(__name__)


class ForeignDatabase(LogDirError):
    """The log directory holds another database's messages."""


def database_id(path: Path) -> str:
    """How the state records a database: its absolute path (not resolved: a symlinked
    path is recorded as given, and compared resolved)."""
    return os.path.abspath(path.expanduser())


ROOM_ID = "room:"  # + NAME: room NAME's database, its path not known yet
UNPACKED_PREFIX = "dead-drop-archive-"  # import-archive's temporary copies


def room_id(name: str) -> str:
    return ROOM_ID + name


def same_path(recorded: str, ours: str) -> bool:
    return recorded == ours or os.path.realpath(recorded) == os.path.realpath(ours)


def _placeholder(recorded: str, log_dir: Path) -> bool:
    """A record naming room ``log_dir.name``'s database without its path."""
    if recorded.startswith(ROOM_ID):
        return recorded == room_id(log_dir.name)
    return Path(recorded).parent.name.startswith(UNPACKED_PREFIX)  # (older import-archive)


def _room_path(ours: str, log_dir: Path) -> bool:
    """Whether ``ours`` is where a hub keeps room ``log_dir.name``'s database."""
    path = Path(ours)
    return path.name == ROOM_DB_NAME and path.parent.name == log_dir.name


def claim(state: State, source: Source, log_dir: Path, ours: str | None = None) -> bool:
    """Check that ``state`` is ``source``'s (recorded as ``ours``, by default its path);
    True when the record changed (a moved database, a room's path now known).

    Raises ForeignDatabase for another database, SourceError when the database cannot
    be read right now (busy: the caller retries).
    """
    ours = ours or database_id(source.path)
    if not state.database or same_path(state.database, ours):
        return False  # (an empty record: a state from before databases were recorded)
    if _placeholder(state.database, log_dir) and (
        _placeholder(ours, log_dir) or _room_path(ours, log_dir)
    ):
        if _placeholder(ours, log_dir):
            return False  # another import of the room's archive: the record stays
        log.info("room %s's database is %s; following it", log_dir.name, ours)
        state.database = ours
        return True
    if _placeholder(ours, log_dir) and _room_path(state.database, log_dir):
        return False  # the room's archive, into the log of the room's database
    if _moved(state, source):
        log.info(
            "database %s moved to %s (the same messages); following it there",
            state.database,
            ours,
        )
        state.database = ours
        return True
    raise ForeignDatabase(
        f"log directory {log_dir} holds the messages of database {state.database}, not"
        f" {ours}; give {ours} another --log-dir"
    )


def holds_nothing(state: State, log_dir: Path) -> bool:
    """Whether the log directory holds no message: the state records none (logged,
    pending, or skipped as outside the retention) and every day file is empty."""
    if state.logged or state.pending or state.skipped:
        return False
    for entry in layout.log_files(log_dir):
        try:
            if entry.sealed or os.lstat(entry.path).st_size > 0:
                return False
        except FileNotFoundError:
            continue
    return True


def _moved(state: State, source: Source) -> bool:
    """Whether ``source`` holds the recorded rows and the recorded path no longer does."""
    if state.position <= 0 or state.fingerprint is None:
        return False  # nothing logged that could prove it is the same database
    if _fingerprint(source, state.position) != state.fingerprint:
        return False
    old = Source(Path(state.database), utc=source.utc)
    try:  # still there, still the same rows: a copy, which would diverge from the original
        return _fingerprint(old, state.position) != state.fingerprint
    finally:
        old.close()


def _fingerprint(source: Source, position: int) -> str | None:
    try:
        return source.fingerprint(position)
    except (SourceMissing, SourceUnusable):  # absent or not a database: not those rows
        return None


class MovedRoom(ForeignDatabase):
    """A room's database is another room's, moved here (rooms renamed or swapped)."""


def logged_in_another_room(source: Source, log_dir: Path, *, wait: bool) -> Path | None:
    """The log directory of another room (beside ``log_dir``) whose database ``source``
    is, moved here: the row at that log's position is the one it recorded, and the path
    it records no longer holds it (a room renamed, two rooms swapped, a room moved
    aside for a moment). None when there is none; a copy (the recorded path still holds
    the same rows) is a database of its own, as :func:`claim` says.

    Why: a room is known by its name, so a renamed room would be logged whole again
    under its new name, and two swapped rooms would each be taken for a database
    replaced at its path and logged from its first row into the other's log.

    ``wait``: read each other log's state under its writer lock, so a follower holding
    its transaction (group commit: the state on disk may not record its first lines
    yet) lets go and saves first; only for a caller holding no writer lock itself (two
    rooms each waiting for the other's lock would wait out the patience, again and
    again). Else the state as last saved is taken.
    """
    here = log_dir.name
    for other in room_dirs(log_dir.parent):
        if other.name == here:
            continue
        store = StateStore(other)
        try:
            if wait:
                with store.locked():  # (raises StateError when held too long: retried)
                    state = store.load()
            else:
                state = store.load()
        except StateError:
            if wait:
                raise
            continue
        if state is not None and state.database and _moved(state, source):
            return other
    return None


def refuse_moved_room(source: Source, log_dir: Path, *, wait: bool) -> None:
    """Raise MovedRoom when ``source`` is the database another room's log holds (see
    :func:`logged_in_another_room`): logging it here would log its history again."""
    other = logged_in_another_room(source, log_dir, wait=wait)
    if other is None:
        return
    db = source.path
    if (log_dir / STATE_NAME).exists():  # the room's own log holds another database
        raise MovedRoom(
            f"database {db} is the one logged in {other}, moved here (rooms {log_dir.name}"
            f" and {other.name} swapped?); not logged again: stop the logger and give each"
            f" log directory the name of the room its database now has (swap {log_dir} and"
            f" {other})"
        )
    raise MovedRoom(
        f"database {db} is the one logged in {other}, moved here (room {other.name} renamed"
        f" to {log_dir.name}?); not logged again: stop the logger and rename {other} to"
        f" {log_dir} to go on with its log"
    )
