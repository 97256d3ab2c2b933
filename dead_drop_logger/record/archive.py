"""``import-archive``: log an archived hub room (``NAME_YYYYMMDD-HHMMSS/messages.db.gz``).

Why it looks like this: an archive is the room's database, gzipped, so it is logged by
the same pipeline as a live room, into the same ``LOG_DIR/NAME/``, under the same lock
and state. That is what makes it exactly once: the state records what the room's log
holds (id ranges), so the archive fills the gaps below the logged position (history)
and then follows on from it, and a second import, or one after a room that was
followed, writes only what is missing. The archive is unpacked into a private temporary
directory (SQLite cannot read a gzip) that is removed afterwards, on SIGTERM and SIGINT
too (the caller's stop event: the import stops after the page in hand); one left by an
import killed outright (kill -9, power loss) is removed by the next import, which knows
it is no one's because no process holds its ``flock``.

The state keeps naming the room's own database, never the temporary copy: the pipeline
records the owner already recorded, or ``room:NAME`` for a room log the archive starts
(see :mod:`.ownership`), so an import cut short at any point leaves an owner record the
room's follower accepts and any other database is refused by.

The hub gzips ``messages.db`` but not its ``-wal``: while a logger was following the
room, its open connection kept SQLite from checkpointing, so the archive can end below
the logged position. That is the same database, missing only what the log already
holds, so ownership is decided by a row both hold (the highest id the archive and the
log share: the position's recorded fingerprint, or that row's line in the log files),
never by the archive's length, and the pipeline's replaced-database rule (a last id
below the position means a reset) is not applied to an archive. An archive whose
shared row differs is another database: refused rather than logged, which would make
the log hold two rooms' ids.

That check is made again under the writer lock at the import's first batch, and every
later batch checks the log was not started over since (``State.resets``): a room made
again under its name while its archive is imported is a new database, which its
follower logs from its first row; the archive's rows must not follow them under the
same ids (they did, and the two took turns starting the log over). The import stops
there, with one line, and what it wrote before stays, once.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import Clock, SystemClock
from ..files import ensure_private_dir
from ..logdir import layout
from ..logdir import ranges as idranges
from ..logdir.state import State, StateStore
from . import history, ownership
from .pipeline import Pipeline, Progress, scan_ids
from .sealed import SegmentWriter
from .source import Source, SourceError
from .tables import TableFollower
from .writer import DayWriter


class ArchiveError(Exception):
    """The archive cannot be imported; the message is one line for the user."""


@dataclass(frozen=True)
class Imported:
    written: int  # lines written now
    already: int  # messages of the archive the room's log held before
    log_dir: Path
    interrupted: bool = False  # stopped (SIGTERM, SIGINT) before the end: run it again
    outside: history.Outside | None = None  # left out: older than the retention window
    tasks: int = 0  # task lines written (the archive's tasks: see _import_tables)


@contextlib.contextmanager
def unpacked(archive: Path) -> Iterator[Path]:
    """The archived database, gunzipped into a private temporary directory that this
    process holds an ``flock`` on while it exists (so no other import sweeps it)."""
    _sweep_leftovers()
    with tempfile.TemporaryDirectory(prefix=ownership.UNPACKED_PREFIX) as tmp:
        held = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
            db = Path(tmp) / "messages.db"
            try:
                with gzip.open(archive, "rb") as packed, open(db, "wb") as out:
                    shutil.copyfileobj(packed, out, 1 << 20)
            except FileNotFoundError:
                raise ArchiveError(f"{archive} does not exist") from None
            except (OSError, EOFError, zlib.error) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise ArchiveError(f"cannot unpack {archive}: {reason}") from None
            yield db
        finally:
            os.close(held)


def _sweep_leftovers() -> None:
    """Remove the unpacked copies of imports that were killed (no one holds their lock)."""
    tmp = Path(tempfile.gettempdir())
    try:
        entries = [p for p in tmp.iterdir() if p.name.startswith(ownership.UNPACKED_PREFIX)]
    except OSError:
        return
    for path in entries:
        try:
            if path.is_symlink() or path.stat().st_uid != os.getuid():
                continue
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # an import in progress holds it
            continue
        else:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


class _ArchivePipeline(Pipeline):
    """The pipeline, with the archive's own rule in place of the replaced-database rule
    (an archive without its WAL legitimately ends below the logged position): at the
    first batch, under the writer lock, the log must hold this archive's database
    (``check``: :func:`_check_owner`); at every later batch, still the same log, not
    one started over for a new database since (the room made again, its follower
    logging it from its first row: ``State.resets``). Else the archive's rows would
    go in under ids the new database's lines hold, and the two would take turns
    starting the log over."""

    def __init__(
        self,
        *args: Any,
        check: Callable[[State], None],
        made_again: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._check = check
        self._made_again = made_again
        self._checked: int | None = None  # the log's resets when it was found the archive's

    def _check_same_database(self, state: State, current: str | None) -> bool:
        if self._checked is None:
            self._check(state)
            self._checked = state.resets
        elif state.resets != self._checked:
            raise ArchiveError(self._made_again)
        return False


def import_archive(
    archive: Path,
    log_dir: Path,
    room: str,
    *,
    utc: bool = False,
    clock: Clock | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    retention_days: int = 0,
    keep_files: int | None = None,
    announce: Callable[[str], None] = lambda note: None,
    progress: Callable[[int, int], None] | None = None,
    recipients: tuple[str, ...] = (),
) -> Imported:
    """Log every message of ``archive`` that room ``room``'s log (``log_dir/room``) lacks.

    Messages older than ``retention_days`` are left out (retention would delete them at
    the logger's next start or midnight), as by the historical export: ``announce`` is
    told before anything is written (and what ``keep_files`` would delete), and a later
    import with 0 writes them, once.
    ``progress``: (rows written, rows to write), as the export reports it.

    Raises ArchiveError, LogDirError, or the pipeline's transient errors (a lock held
    too long, a full disk): running it again then resumes, nothing is written twice.
    """
    room_dir = log_dir / room
    with unpacked(archive) as db:
        source = Source(db, utc=utc)
        try:
            try:  # a database at all, before any directory is made for it
                last = source.max_id()
            except SourceError as exc:
                reason = str(exc).replace(f"database {db}", "").strip(" :")
                raise ArchiveError(
                    f"{archive} is not a Dead Drop messages database ({reason})"
                ) from None
            ensure_private_dir(log_dir)  # tightened as run and export do
            ensure_private_dir(room_dir)
            store = StateStore(room_dir)
            with store.locked():
                before = store.load()
                if before is not None:
                    _check_owner(archive, source, before, room_dir, last)
            # The archive is that database, unpacked elsewhere for a moment: the log
            # directory keeps naming the room's own database (ownership), not the copy.
            owner = before.database if before is not None and before.database else ""
            pipeline = _ArchivePipeline(
                source,
                room_dir,
                (
                    SegmentWriter(room_dir, clock or SystemClock(), recipients, utc=utc)
                    if recipients  # encrypted: sealed segments
                    else DayWriter(room_dir, clock or SystemClock(), utc=utc)
                ),
                database=owner or ownership.room_id(room),
                check=lambda state: _check_owner(archive, source, state, room_dir, last),
                made_again=(
                    f"room {room} was made again while {archive} was imported: its log"
                    f" {room_dir} now holds the new database's messages, not this"
                    " archive's; nothing more imported (import the archive as another"
                    " room with --room NAME)"
                ),
            )
            state = pipeline.prepare(database_existed=False)  # no state: all of it is new
            the_clock = clock or SystemClock()
            todo = history.plan(
                db,
                state,
                1,
                last,
                retention_days=retention_days,
                utc=utc,
                clock=the_clock,
                count=progress is not None,
                keep_files=keep_files,
                log_dir=room_dir,
            )
            for note in todo.notes():
                announce(note)
            held = idranges.subtract([(1, last)], idranges.gaps(state.logged, 1, last))
            already = history.count_in(db, held) if last else 0
            written = 0

            def page(step: Progress) -> None:
                nonlocal written
                written += step.lines
                if progress is not None:
                    progress(written, todo.rows)

            if progress is not None:
                progress(0, todo.rows)
            days = retention_days
            pipeline.backfill(1, last, should_stop=should_stop, on_page=page, retention_days=days)
            pipeline.catch_up(should_stop, retention_days=days, on_page=page)  # after the position
            interrupted = should_stop()
            tasks = (
                0 if interrupted else _import_tables(source, room_dir, the_clock, utc, recipients)
            )
        except SourceError as exc:  # the private copy: never busy, so never transient
            raise ArchiveError(str(exc).replace(str(db), str(archive))) from None
        finally:
            source.close()
    return Imported(written, already, room_dir, interrupted, todo.outside, tasks)


def _import_tables(
    source: Source, room_dir: Path, clock: Clock, utc: bool, recipients: tuple[str, ...] = ()
) -> int:
    """The archive's ``tasks`` and ``agents``, after its messages; the task lines written.

    A room log with no record of them gets the current rows as ``--import-historical``
    writes them: each task a snapshot line, each agent registered. One whose room was
    followed gets what the archive holds newer than that record, as a restarted
    follower would (a task moved since: its line, with the ``gap``/``via`` the messages
    tell), and nothing of what is older (see ``TableFollower.archive``). Exactly once by
    the tables' own commit: a second import, or one cut short and run again, finds the
    record and writes only what it lacks.
    """
    files = SegmentWriter(room_dir, clock, recipients, utc=utc) if recipients else None
    tables = TableFollower(source, room_dir, clock, utc=utc, archive=True, files=files)
    tables.begin(existed=True, importing=True)
    tables.tick()
    return tables.task_lines


def _check_owner(archive: Path, source: Source, state: State, room_dir: Path, last: int) -> None:
    """Refuse an archive whose rows are not the ones the room's log holds.

    Compared: the highest id both hold (the position, whose fingerprint the state
    records, or else the highest logged id the archive has, read from the log files).
    With no row in common (the log started, new messages only, after everything the
    archive holds), the archive must at least not be newer than the logged position.
    """
    if state.position <= 0:
        return
    if last >= state.position:
        shared: int | None = state.position
        logged = state.fingerprint
    else:
        below = idranges.within(state.logged, 1, last)
        shared = below[-1][1] if below else None
        logged = _logged_timestamp(room_dir, shared) if shared is not None else None
    if shared is None or logged is None:
        newest = source.fingerprint(last)
        if state.fingerprint is None or newest is None or newest <= state.fingerprint:
            return  # only history below everything logged: nothing contradicts it
        raise ArchiveError(
            f"{archive} is not the database logged in {room_dir} (it shares no logged"
            f" message, and its message {last} is newer than the logged {state.position}):"
            " import it as another room"
        )
    if source.fingerprint(shared) != logged:
        raise ArchiveError(
            f"{archive} is not the database logged in {room_dir} (its message"
            f" {shared} differs): import it as another room"
        )


def _logged_timestamp(room_dir: Path, row_id: int) -> str | None:
    """The timestamp of line ``row_id`` in a log directory's files (None if absent)."""
    for entry in layout.log_files(room_dir):
        for found, timestamp in scan_ids(entry.path):
            if found == row_id:
                return timestamp
    return None
