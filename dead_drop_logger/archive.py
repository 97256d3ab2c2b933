"""``import-archive``: log an archived hub room (``NAME_YYYYMMDD-HHMMSS/messages.db.gz``).

Why it looks like this: an archive is the room's database, gzipped, so it is logged by
the same pipeline as a live room, into the same ``LOG_DIR/NAME/``, under the same lock
and state. That is what makes it exactly once: the state records what the room's log
holds (id ranges), so the archive fills the gaps below the logged position (history)
and then follows on from it, and a second import, or one after a room that was
followed, writes only what is missing. The archive is unpacked into a private temporary
directory (SQLite cannot read a gzip) that is removed afterwards.

An archive that is not the database the room's log holds (its message at the logged
position differs) is refused rather than treated as a replaced database, which would
make the log start over and hold two rooms' ids.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import history
from . import ranges as idranges
from .clock import Clock, SystemClock
from .files import ensure_private_dir
from .pipeline import Pipeline
from .source import Source
from .state import StateStore
from .writer import DayWriter


class ArchiveError(Exception):
    """The archive cannot be imported; the message is one line for the user."""


@dataclass(frozen=True)
class Imported:
    written: int  # lines written now
    already: int  # messages of the archive the room's log held before
    log_dir: Path


@contextlib.contextmanager
def unpacked(archive: Path) -> Iterator[Path]:
    """The archived database, gunzipped into a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="dead-drop-archive-") as tmp:
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


def import_archive(
    archive: Path, log_dir: Path, *, utc: bool = False, clock: Clock | None = None
) -> Imported:
    """Log every message of ``archive`` that ``log_dir`` (the room's) does not hold.

    Raises ArchiveError, LogDirError, or the pipeline's transient errors (a lock held
    too long): running it again then resumes, nothing is written twice.
    """
    with unpacked(archive) as db:
        source = Source(db, utc=utc)
        try:
            ensure_private_dir(log_dir)
            store = StateStore(log_dir)
            with store.locked():
                before = store.load()
            last = source.max_id()
            if (
                before is not None
                and before.position > 0
                and (
                    last < before.position
                    or source.fingerprint(before.position) != before.fingerprint
                )
            ):
                raise ArchiveError(
                    f"{archive} is not the database logged in {log_dir} (its message"
                    f" {before.position} differs): import it as another room"
                )
            # The archive is that database, unpacked elsewhere for a moment: the log
            # directory keeps naming the room's own database (ownership), not the copy.
            recorded = before.database if before is not None else ""
            _record_database(store, "")
            try:
                pipeline = Pipeline(
                    source, log_dir, DayWriter(log_dir, clock or SystemClock(), utc=utc)
                )
                state = pipeline.prepare(database_existed=False)  # no state: all of it is new
                held = idranges.subtract([(1, last)], idranges.gaps(state.logged, 1, last))
                already = history.count_in(db, held) if last else 0
                written = pipeline.backfill(1).lines  # the gaps below the logged position
                written += pipeline.catch_up().lines  # and everything after it
            finally:
                _record_database(store, recorded)
        finally:
            source.close()
    return Imported(written, already, log_dir)


def _record_database(store: StateStore, database: str) -> None:
    """Set the database a log directory's state names (nothing without a state)."""
    with store.locked():
        state = store.load()
        if state is not None and state.database != database:
            state.database = database
            store.save(state)
