"""One batch at a time from the database into the log directory, exactly once.

Each batch is a short transaction on the log directory: take the writer lock, reload
the state, undo any uncommitted batch, read one page from the database, append it,
save the new state, release. Nothing is kept in memory between batches that is not
also on disk, so any process may die at any instant and the next one resumes exactly.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import zlib
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..clock import monotonic, today
from ..crypt import agentkeys, segments
from ..crypt.keys import CryptError
from ..files import ensure_private_dir
from ..keep import retention
from ..logdir import layout
from ..logdir import ranges as idranges
from ..logdir.dirlock import Presence
from ..logdir.state import (
    STATE_NAME,
    DirectoryReplaced,
    FilesChanged,
    State,
    StateError,
    StateStore,
    StateUnreadable,
)
from . import copies, ownership
from .groupcommit import GroupCommit
from .prefetch import Prefetcher
from .sealed import Unsealed
from .source import Page, Run, Source, SourceNoTable, SourceUnusable
from .writer import Chunk, DayWriter, Pending, WriteError, line_id

log = logging.getLogger(__name__)

# Following: short reads (a few ms), so the server's checkpoints are never held back
# and the WAL does not grow. History (backfill) reads pages this many times bigger
# (~3 MB of lines, two in flight with the read ahead: well under 64 MB) for throughput.
PAGE_SIZE = 1_000
BACKFILL_PAGES = 5
# History pages committed under one hold of the lock, for up to this long. A page going
# to files the pending record on disk already covers (the same day's file, mostly) is
# appended without a save and without an fsync, as a held follower's batch is (see
# groupcommit); the hold's last save fsyncs them and records them all. A crash cuts
# back to that record and reads them again: 0.1 s of pages at most. (With a save for
# every page, an export of 1,000,000 messages made 666 fsyncs; now 365.) A follower that
# waits (it holds the lock's queue: see dirlock) ends the hold after the page in hand,
# so it waits 0.1 s at most, never the whole export.
BACKFILL_HOLD = 0.1
# Files the state keeps the end of (``State.ends``) besides those of a pending batch:
# the ones written last, which a copy taken while they are written may disagree on.
KEEP_ENDS = 8
# A writer looks for message files a restore wrote since its last save (see copies)
# at most this often (before a transaction, and at a quiet follower's polls): a
# directory scan, 0.3 ms for 30 day files.
LOOK_EVERY = 1.0


@dataclass
class Progress:
    """What one call wrote: the number of lines and the last id.

    ``outside_retention``: messages a backfill did not write because their day is older
    than the retention window (they would be deleted at the next prune). ``more``: the
    page was one of ids logged again (``State.refill``), however short: what is new is
    still to be read.
    """

    lines: int = 0
    last_id: int = 0
    outside_retention: int = 0
    more: bool = False


class Pipeline:
    """Moves messages from a :class:`Source` into a log directory."""

    def __init__(
        self,
        source: Source,
        log_dir: Path,
        writer: DayWriter,
        *,
        page_size: int = PAGE_SIZE,
        database: str | None = None,
        ticks: Callable[[], float] = monotonic,
    ) -> None:
        self.source = source
        # What the state records as the database the lines come from: its path, unless
        # told otherwise (an archive's temporary copy records the room's database).
        self.database = database or ownership.database_id(source.path)
        self.log_dir = log_dir
        self.writer = writer
        self.store = StateStore(log_dir, before_save=writer.sync, after_save=self._note_left)
        self.presence = Presence(log_dir)  # held while the log directory holds nothing
        self.page_size = page_size
        # This process loaded a state: one lost from now on (the log directory deleted
        # under it) is not a first start.
        self._ran_before = False
        self._marked: int | None = None  # the first-start position this process recorded
        self._owner_recorded = False
        self._directory: tuple[int, int] | None = None  # (device, inode) worked in last
        self._left: copies.Look | None = None  # what the last transaction left there
        self._ticks = ticks
        self._looked = float("-inf")  # when _written last looked
        self._written_found: str | None = None  # ... and what it found, not yet checked
        # A room's log directory is never written through a symlink, made one at any
        # time (checked at every transaction and before every append): see rooms.
        self.no_link = False
        self.backfill_page_size = page_size * BACKFILL_PAGES
        self.pages = Prefetcher(source)  # source.read, with the next page read ahead
        # The follower's batches, in a transaction held while the server keeps it busy.
        self.commits = GroupCommit(self.store, self.writer, self._transaction, clock=ticks)
        # Runs before the replaced-database rule logs a new database from its first row;
        # raises to refuse it instead (a room: another room's database, moved here).
        self.before_reset: Callable[[], None] = lambda: None
        # Encrypted (see sealed.py): the follower's rows read and not yet sealed, in
        # memory only, ahead of the state's position; ``seal_limits`` (bytes, seconds)
        # set: the follower buffers them into segments, else each batch is one.
        self.seal_limits: tuple[int, float] | None = None
        self.unsealed: Unsealed | None = None
        self._ticks = ticks
        # Agent-specific keys (crypt/agentkeys.py): every line's content sealed in
        # memory just before the writer plans the batch; None: lines as read.
        self.seal_content: Callable[[bytes], bytes] | None = None

    def close(self) -> None:
        self.commits.drop()  # (the follower releases its hold, saved, before it closes)
        self.writer.close()
        self.presence.release()
        self.pages.close()
        self.source.close()

    # -- state -------------------------------------------------------------------------

    def prepare(self, *, database_existed: bool, import_historical: bool = False) -> State:
        """Create the log directory and the state on a first start; returns the state.

        On a first start the position is the database's current last id (new messages
        only), or 0 when the database did not exist when the logger started (all of it
        is new). Raises SourceError when the database exists but cannot be read yet, so
        the caller retries rather than guessing a position. ``import_historical`` is
        recorded in the state, so an import cut short is resumed by the next start.
        """
        ensure_private_dir(self.log_dir)
        with self._transaction(database_existed=database_existed) as state:
            if import_historical and not state.importing:
                state.importing = True
                self.store.save(state)
            return state

    def claim(self) -> None:
        """Refuse now (ForeignDatabase) a log directory that holds another database's
        messages; record a moved database's new path. Nothing else is written but a
        lost or damaged state rebuilt from the files (its owner checked before the file
        policies touch anything)."""
        self.commits.release()  # (the lock is one: a hold of this process ends first)
        with self.store.locked():
            state = self._saved_or_rebuilt()
            if state is None:
                self._unbound()
            # (None: nobody's, this database takes it at its first transaction)
            elif self._claim(state):
                self.store.save(state)
                self.store.rewrite_owner(state.database)
            self._present(state)

    @contextlib.contextmanager
    def _transaction(self, *, database_existed: bool = True) -> Iterator[State]:
        self.commits.release()  # (the lock is one: a hold of this process ends first)
        self._settled()
        with self.store.locked():
            self._still_settled()
            if self._left is not None and self._left[0] != copies.look_state(
                self.log_dir, STATE_NAME
            ):  # another writer saved since (an export): what it wrote is not in this
                self._left = None  # record, so the next save looks at all of it again
            state = self._load(database_existed)
            if self._left is None:  # (a process that has not saved yet: from here on)
                self._left = copies.look(self.log_dir, STATE_NAME)
            # before anything is written: another database's rows must not go here
            changed = self._claim(state)
            if changed is None:  # another database's directory, holding nothing: ours
                state = self._take_over(state, database_existed)
            elif changed:
                self.store.save(state)
                self.store.rewrite_owner(state.database)  # (for a state rebuilt later)
            self._present(state)
            if not self._owner_recorded:  # once a process: for a state lost later
                self.store.record_owner(state.database)
                self._owner_recorded = True
            if state.pending:
                self.writer.truncate_back(state.pending, state.ends, state.logged)
                for name in state.pending:  # an end no longer there (cut to nothing)
                    if name in state.ends and _size(self.log_dir / name) < state.ends[name][0]:
                        del state.ends[name]
                state.pending = {}
                self.store.save(state)
            try:
                yield state
            except BaseException:
                self._left = None  # (a failed batch may leave its files unsaved: see copies)
                raise
            if self.presence.held and state.logged:  # its first lines: nothing stays open
                self.presence.release()

    def _not_a_link(self) -> None:
        """Raise LinkedLogDir when ``no_link`` and the log directory is a symlink."""
        if self.no_link and os.path.islink(self.log_dir):
            try:
                target = os.readlink(self.log_dir)
            except OSError:
                target = "?"
            raise LinkedLogDir(
                f"log directory {self.log_dir} is a symbolic link (to {target}); a room's"
                " log directory is never written through one: make it a directory"
            )

    def written_by_another(self) -> bool:
        """Whether a message file was written since this writer's last save by nobody
        who recorded it (see :func:`.copies.written_by_another`): the next transaction
        checks the directory as a copy's. (Not asked while a transaction is held.)"""
        return not self.commits.holding and self._written() is not None

    def _written(self) -> str | None:
        """The message file :meth:`written_by_another` finds, looking at most every
        ``LOOK_EVERY`` seconds (None between)."""
        if self._left is None:
            return None
        if self._written_found is None and self._ticks() - self._looked >= LOOK_EVERY:
            self._looked = self._ticks()
            now = copies.look(self.log_dir, STATE_NAME)
            self._written_found = copies.written_by_another(self._left, now)
        return self._written_found  # (kept until a transaction deals with it)

    def _note_left(self, saved: bool) -> None:
        """After every save: what this writer leaves in the directory (see copies); a
        failed one may be followed by a cut back that nobody records: nothing known."""
        if not saved:
            self._left = self._written_found = None
        elif self._left is None:
            self._left = copies.look(self.log_dir, STATE_NAME)
        else:  # (only what it wrote to can have changed by its hand: no scan)
            self._left = copies.relook(self._left, self.log_dir, STATE_NAME, self.writer.touched)
        if saved and self._left is not None:
            # A file appended to and rewritten by another since (a restore copied over
            # it after the append, before this save looked): this look takes it as the
            # writer's own, and no later look tells; so the next transaction checks it.
            rewritten = self.writer.rewritten(self._left[1])
            if rewritten is not None:
                self._written_found = rewritten
        self.writer.touched.clear()

    def _settled(self) -> None:
        """Before a transaction: a log directory other than the one this process worked
        in last (a backup restored in its place) is let settle first (see copies)."""
        self._not_a_link()
        try:
            here = os.stat(self.log_dir)
        except OSError:
            return  # (the transaction says what is wrong)
        identity = (here.st_dev, here.st_ino)
        if self._directory is not None and identity != self._directory:
            copies.settle(self.log_dir)
            self._left = None
        else:
            changed = self._written()
            if changed is not None:
                log.warning(
                    "%s was written in %s since this logger last wrote there, by nobody who"
                    " recorded it (a backup restored into it?); checking the log files once"
                    " it stops changing",
                    changed,
                    self.log_dir,
                )
                copies.settle(self.log_dir, announce=False)
                self.store.suspect = True  # the next load is checked as a copy's
                self._left = self._written_found = None
        self._directory = identity

    def _still_settled(self) -> None:
        """Under the lock: the directory is still the one let settle (else the next
        transaction lets the new one settle)."""
        try:
            here = os.stat(self.log_dir)
        except OSError:
            return
        if (here.st_dev, here.st_ino) != self._directory:
            raise DirectoryReplaced(f"{self.log_dir} was replaced; reading it again")
        self._not_a_link()

    def _claim(self, state: State) -> bool | None:
        """:func:`.ownership.claim`: True when the record changed; None when ``state`` is
        another database's but its directory holds no message and no other logger works
        in it, so this database may take it over. Raises ForeignDatabase."""
        try:
            return ownership.claim(state, self.source, self.log_dir, self.database)
        except ownership.ForeignDatabase:
            if not ownership.holds_nothing(state, self.log_dir) or self.presence.others():
                raise
            return None

    def _present(self, state: State | None) -> None:
        """Be present in the log directory while it holds no message (only then may
        another database take it: not from under this one); let go once it holds one."""
        if state is None or ownership.holds_nothing(state, self.log_dir):
            self.presence.hold()
        else:
            self.presence.release()

    def _unbound(self) -> None:
        """With no state and no line in the files, the lock file's marks (first start,
        owner) bind the directory to nobody unless their database is this one or a
        logger of theirs works here: forget another's, refuse while it works here."""
        owner = self.store.owner()
        if owner is not None and self._claim(State(database=owner)) is None:
            log.info(
                "log directory %s holds no message yet: it was database %s's, now %s's",
                self.log_dir,
                owner,
                self.database,
            )
            self.store.forget_marks()
            self._marked = None

    def _take_over(self, old: State, database_existed: bool) -> State:
        """Hand a directory that holds no message to this database: a first start."""
        self.store.forget_marks()
        self._marked = None
        self._owner_recorded = False
        state, note = self._first_state(database_existed, fresh=True)
        self.store.save(state)
        self.store.record_owner(state.database)
        self._owner_recorded = True
        log.info(
            "log directory %s holds no message yet: it was database %s's, now %s's",
            self.log_dir,
            old.database,
            self.database,
        )
        log.log(*note)
        return state

    def _load(self, database_existed: bool) -> State:
        state = self._saved_or_rebuilt()
        if state is not None:
            return state
        self._unbound()
        state, note = self._first_state(database_existed)
        self.store.save(state)
        log.log(*note)  # only once saved: a failed save retries without a repeat
        self._ran_before = True
        return state

    def _saved_or_rebuilt(self) -> State | None:
        """The saved state, or one rebuilt (and saved) from the log files when it is
        lost or damaged; None when there is none and the files hold no line."""
        try:
            state = self.store.load()
        except StateUnreadable:
            raise  # not damaged: never set aside; retried by the caller
        except StateError as exc:
            moved = self.store.set_aside()
            log.warning("%s; kept as %s, rebuilding from the log files", exc, moved)
            state = None
        if state is None:
            state = self._recover_from_files()
            if state is None:
                return None
            self.store.save(state)
        elif self.store.copied:
            self._reconcile_copy(state)
            self.store.save(state)  # (its own file recorded: no longer a copy)
        self._ran_before = True
        return state

    def _reconcile_copy(self, state: State) -> None:
        """Make a copied log directory's state agree with its files (see :mod:`.copies`):
        what they hold is logged; what the state records as logged and they lack is to
        be logged again (``refill``), once."""
        ids, (last, stamp), outside = self._scan_files(state.ends)
        held = idranges.from_ids(ids)
        why = copies.disagreement(self.log_dir, state)
        # Below the files' first id the state's ranges are days since pruned, unless a
        # file it records is missing from the copy (then nothing tells them apart).
        floor = 1 if copies.missing_files(self.log_dir, state) else min(ids, default=1)
        kept = idranges.within(state.logged, 1, floor - 1) if floor > 1 else []
        lacking = idranges.subtract(idranges.within(state.logged, floor, state.position), held)
        extra = idranges.subtract(held, state.logged)
        unnamed = idranges.from_ids(outside)
        if why is None and idranges.subtract(extra, idranges.subtract(extra, unnamed)):
            # lines it does not record in a file it does not name: only what ``ends``
            # names is cut back, so these would be logged again after the position
            why = "a file its record does not name holds lines it does not record"
        if why is None and not lacking and all(lo > state.position for lo, _hi in extra):
            # the state of these files: lines past its record (a batch it did not see
            # end) are cut back and read again, as after a crash
            state.pending.update(copies.past_the_record(self.log_dir, state))
            return
        if why is None:
            why = (
                f"its files lack {idranges.count(lacking)} messages it records as logged"
                f" and hold {idranges.count(extra)} it does not"
            )
        if why is not None:
            log.warning(
                "%s is a copy whose log files do not match its state (%s); rebuilding the"
                " state from the log files",
                self.log_dir,
                why,
            )
        if last > state.position:  # (lines past the record: whole lines, logged once)
            # ... and the ids between the record and them that no file holds: a batch
            # the copy holds part of (a file copied before it, a newer one after)
            between = idranges.gaps(held, state.position + 1, last)
            lacking = [*lacking, *idranges.subtract(between, state.skipped)]
            state.position, state.fingerprint = last, stamp
        state.refill = idranges.normalise([*state.refill, *lacking])
        state.logged = idranges.normalise([*kept, *held])
        state.position = max(state.position, self.store.first_start() or 0)
        state.pending = {}
        state.ends = {}

    def _first_state(
        self, database_existed: bool, *, fresh: bool = False
    ) -> tuple[State, tuple[int, str]]:
        """The state of a log directory whose files hold no line yet, and what to say
        about it (level, message) once it is saved. ``fresh``: a directory taken over
        from another database, a first start whatever this process saw before."""
        state = State(database=self.database)
        marked = self.store.first_start()
        if self._ran_before and not fresh:
            # Starting at the database's end would lose what arrived since the state
            # went; the log files hold nothing, so position 0 doubles nothing.
            note = (
                logging.WARNING,
                f"the state in {self.log_dir} is gone and no log files hold anything;"
                " logging the database from its first row",
            )
        elif marked is not None and marked != self._marked:
            # a first start got this far, then its state was lost
            state.position = marked
            note = (
                logging.WARNING,
                f"no state in {self.log_dir}: resuming after id {marked}, where it first started",
            )
        else:  # the first start (or this process retrying its own, after a failed save)
            if marked is not None:
                state.position = marked
            else:
                state.position = self._last_id() if database_existed else 0
                self.store.mark_first_start(state.position)
                self._marked = state.position
            if state.position:
                note = (logging.INFO, f"first start: logging messages after id {state.position}")
            else:
                note = (
                    logging.INFO,
                    "first start: the database was empty, absent or without its messages"
                    " table; logging it from its first row",
                )
        state.fingerprint = self.source.fingerprint(state.position) if state.position else None
        return state, note

    def _last_id(self) -> int:
        """The database's last id; 0 before the server has set up its table (so all of
        it will be new)."""
        try:
            return self.source.max_id()
        except SourceNoTable:
            return 0

    def _recover_from_files(self) -> State | None:
        """Rebuild the state from the ids the log files hold (None when they hold none)."""
        ids, last, _ = self._scan_files()
        if not ids:  # only empty files (today's, made at midnight or start): a first start
            return None
        # Whose lines these are: the damaged state's record, or the lock file's.
        owner = self.store.set_aside_owner() or self.store.owner()
        if owner is None:
            self._refuse_unless_ours(*last)
        state = State(
            position=last[0],
            logged=idranges.from_ids(ids),
            fingerprint=last[1],
            database=owner or self.database,
        )
        log.warning(
            "no usable state in %s: rebuilt from %d lines in the log files; resuming after id %d",
            self.log_dir,
            len(ids),
            state.position,
        )
        return state

    def _scan_files(
        self, named: Container[str] = ()
    ) -> tuple[list[int], tuple[int, str | None], list[int]]:
        """The ids the log files hold, the last one with its timestamp, and the ids in
        the files whose names ``named`` lacks."""
        ids: list[int] = []
        outside: list[int] = []
        last: tuple[int, str | None] = (0, None)
        for entry in layout.log_files(self.log_dir):
            elsewhere = entry.path.name.removesuffix(".gz") not in named
            for row_id, timestamp in scan_ids(entry.path):
                ids.append(row_id)
                if elsewhere:
                    outside.append(row_id)
                if row_id >= last[0]:
                    last = (row_id, timestamp)
        return ids, last, outside

    def _refuse_unless_ours(self, position: int, fingerprint: str | None) -> None:
        """With no record of whose lines the files hold, they are taken as this
        database's only if its row ``position`` is the one logged last; anything else
        (another database, or this one reset while the state was lost) is refused rather
        than logged again from its first row beside them."""
        current = self.source.fingerprint(position)
        if current is None:
            mismatch = max(self.source.max_id(), self.source.sequence()) < position
        else:
            mismatch = fingerprint is not None and current != fingerprint
        if mismatch:
            raise ownership.ForeignDatabase(
                f"log directory {self.log_dir} has lost its state and its files hold"
                f" message {position} of another database than {self.database}; give"
                f" {self.database} another --log-dir"
            )

    # -- batches -----------------------------------------------------------------------

    def _commit(
        self,
        state: State,
        rows: Page,
        low: int,
        high: int,
        *,
        advance: tuple[int, str | None] | None = None,
        final: bool = True,
        held: bool = False,
    ) -> None:
        """Append rows and record ``[low, high]`` as logged, with the two-step commit.

        ``advance`` (new position, its fingerprint) is applied only in the second save:
        the pending record must carry the old position, or a crash between the two
        saves would cut the batch out of the files while the position skips it.

        ``final=False`` leaves the last save to the caller: the next batch's pending
        save (which then records this range as logged too) or a closing save. Until
        then the disk still says this batch is pending, so a crash undoes and redoes it.

        ``held`` (a batch of a held transaction: see :mod:`.groupcommit`): no pending
        save while the one on disk already covers the batch's files, and no fsync; a
        checkpoint every ``SAVE_EVERY`` instead, after the append.
        """
        chunks: list[Chunk] = []
        if rows:
            runs = rows.runs
            if self.seal_content is None and os.path.lexists(self.log_dir / agentkeys.MARKER):
                raise WriteError(
                    f"{self.log_dir} seals each message's content to its agents"
                    f" ({agentkeys.MARKER}): no plaintext content goes into it; set"
                    " encrypt_content_to_agents (with [agents_keys] and escrow_to), or"
                    " remove that file to log contents plain"
                )
            if self.seal_content is not None:  # (a retried batch is sealed anew)
                runs = [replace(run, data=self.seal_content(run.data)) for run in runs]
            chunks = self.writer.plan(runs)
            sizes = self.writer.sizes(chunks)
            if self._check_ends(state, sizes):  # (a file rotated away: measured again)
                sizes = self.writer.sizes(chunks)
            # Pending in memory even when the record on disk covers the batch (no save):
            # a failure ends the hold with a save of this state, which must then cut
            # back what the batch wrote to its other files.
            state.pending = sizes
            # what the files hold up to those sizes: a copy is known by it (see copies)
            _record_ends(state, self.writer.ends(sizes), sizes)
            if not held or not self.commits.covers(sizes):
                self.store.save(state)  # (lines appended since the last save: fsynced first)
            # Files are opened by path: not into a directory restored in place of the
            # locked one since (its state does not record these lines; see copies).
            self.store.check_intact()
            self._not_a_link()
            # On failure the writer has cut the failing file back and pending stays on
            # disk, so the next transaction cuts back any file written before it.
            self.writer.append(chunks, sizes, durable=not held)
            self._check_landed(chunks)
            state.pending = {}
            _record_ends(state, self.writer.ends_after(chunks), {})
        if advance is not None:
            state.position, state.fingerprint = advance
            state.database = self.database
        state.logged = idranges.add(state.logged, low, high)
        if final:
            self.store.save(state)
        elif held and chunks and self.commits.checkpoint_due():
            # All of it recorded as logged, with a pending record at the files' new ends
            # that covers the batches to come.
            state.pending = self.writer.sizes(chunks)
            self.store.save(state)
            state.pending = {}

    def _check_ends(self, state: State, sizes: Pending) -> bool:
        """Raise FilesChanged when a file about to be appended to no longer holds what
        ``state.ends`` records of it (a backup copied over the directory: its state may
        be this process's, its files older): the next transaction checks it as a copy.
        True when a file was found rotated away (see :meth:`_rotated_away`)."""
        rotated = False
        for name, (size, inode) in sizes.items():
            end = state.ends.get(name)
            if end is None or name in state.pending or not inode:
                continue  # (absent: deleted or renamed away, by logrotate or a user)
            if size == 0 and self._rotated_away(state, name):
                rotated = True
                continue
            if size < end[0] or self.writer.end_at(name, end[0]) != end[1]:
                self.store.suspect = True
                raise FilesChanged(
                    f"{self.log_dir / name} no longer holds message {end[1]} at byte"
                    f" {end[0]} (a backup restored over it?); checking the log files"
                )
        return rotated

    def _check_landed(self, chunks: list[Chunk]) -> None:
        """Raise FilesChanged when a batch's lines did not land where the file ended
        when it was measured and checked (see :meth:`.DayWriter.append`): a restore
        wrote the file in between (truncated it and wrote the backup's older lines), so
        the lines logged since the backup are gone, and the file now ends with this
        batch's line, which every later check of its end finds. Nothing is recorded;
        the next transaction checks the files as a copy's: what they lack is logged
        again, what they hold is not, once. Lines that landed at byte 0 of a file the
        state records lines of (emptied in between: a rotation, or a restore that has
        not written it yet) count as a rotation only when, once the directory settled,
        the file holds exactly them (see :meth:`_rotated_away`)."""
        for name, (landed, expected) in self.writer.misplaced.items():
            data = b"".join(chunk.data for chunk in chunks if chunk.name == name)
            if landed == 0 and self._emptied_for(name, data):
                continue
            self.store.suspect = True
            copies.settle(self.log_dir, announce=False)  # (the restore's writes done)
            _cut_torn_tail(self.log_dir / name, data)
            raise FilesChanged(
                f"{self.log_dir / name} was rewritten while a batch was appended to it"
                f" (its lines went in at byte {landed}, not {expected}: a backup restored"
                " over it?); checking the log files"
            )

    def _emptied_for(self, name: str, data: bytes) -> bool:
        """Whether file ``name``, emptied just before a batch appended ``data`` to it,
        holds exactly those lines once the directory settled (a rotation: nobody wrote
        over them), with the state file still this process's."""
        copies.settle(self.log_dir, announce=False)
        if not self.store.lock_intact():
            return False
        try:
            fd = os.open(self.log_dir / name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_size != len(data) or os.pread(fd, len(data), 0) != data:
                return False
        finally:
            os.close(fd)
        log.warning(
            "%s was emptied or made anew while a batch was appended to it (rotated by"
            " logrotate, copytruncate or create?): the messages it held stay logged,"
            " not logged again",
            self.log_dir / name,
        )
        return True

    def _rotated_away(self, state: State, name: str) -> bool:
        """Whether file ``name``, found empty where the state records logged lines, was
        rotated away on purpose: renamed and made anew empty (logrotate's ``create``)
        or emptied in place (``copytruncate``, ``: > FILE``). Its lines were logged once
        and live on where the rotation put them: they stay recorded as logged and are
        not logged again, as for a file renamed or deleted (its end is forgotten).

        A backup being copied over the directory empties each file too, for a moment,
        before writing it: so the directory is first let settle, and the file counts
        as rotated only if it is still empty and the state file is still the one this
        process read (a restore writes that as well). Anything else is checked as a
        copy (FilesChanged), where what the file lacks is logged again."""
        copies.settle(self.log_dir, announce=False)
        try:
            still_empty = os.lstat(self.log_dir / name).st_size == 0
        except OSError:
            still_empty = True  # (gone since: renamed away, as good as empty)
        if not still_empty or not self.store.lock_intact():
            return False
        _size_there, last = state.ends.pop(name)
        log.warning(
            "%s was emptied or made anew (rotated by logrotate, copytruncate or create?):"
            " the messages it held up to id %d stay logged, not logged again",
            self.log_dir / name,
            last,
        )
        return True

    def _check_same_database(self, state: State, current: str | None) -> bool:
        """Start over, from the first row, when the database was replaced (server reset);
        True when it did. ``current``: the fingerprint of the row at the position now."""
        if state.position <= 0:
            return False
        if current is not None:
            if state.fingerprint is None or current == state.fingerprint:
                return False
            reason = f"message {state.position} is not the one already logged"
        else:
            last = max(self.source.max_id(), self.source.sequence())
            if last >= state.position:
                return False  # that row was deleted, but the database is the same one
            reason = f"its last id {last} is below the logged position {state.position}"
        self.before_reset()  # (a room's: not another room's database, moved here)
        log.warning(
            "database %s was replaced (%s); logging the new database from its first row",
            self.source.path,
            reason,
        )
        state.position = 0
        state.logged = []
        state.skipped = []
        state.refill = []  # (the old database's ids: the new one's are all to log anyway)
        state.fingerprint = None
        state.resets += 1
        self.store.save(state)
        return True

    def follow_once(self, *, hold: bool = False, retention_days: int = 0) -> Progress:
        """Log one page of messages newer than the position. ``hold``: keep the
        transaction for the next batch (see :mod:`.groupcommit`); the caller ends it
        with ``commits.release()``. ``retention_days`` (an archive's import, never the
        follower): as for :meth:`backfill`, messages older than the window are left out."""
        try:
            if self.seal_limits is not None:
                return self._follow_unsealed(hold=hold, retention_days=retention_days)
            return self._follow_page(hold, retention_days)
        except BaseException:
            self._left = None  # (a failed batch may leave its files unsaved: see copies)
            raise

    def _follow_page(self, hold: bool, retention_days: int) -> Progress:
        with self.commits.batch(hold=hold) as held:
            state = held.state
            if state.refill and not self._check_same_database(
                state, self.source.fingerprint(state.position)
            ):  # what a copy lacks (see _reconcile_copy), before what is new
                return self._refill(state)
            # One statement reads the page and the fingerprints it is checked and
            # advanced by (see Page): a page of a replaced database is read again.
            rows = self.source.read(state.position, None, self.page_size)
            if self._check_same_database(state, rows.after_stamp):
                rows = self.source.read(state.position, None, self.page_size)
            if not rows:
                return Progress()
            start, last = state.position, rows.last_id
            advance = (last, rows.last_stamp)
            kept, skipped, outside = self._within_retention(rows, retention_days)
            if skipped:
                state.skipped = idranges.normalise([*state.skipped, *skipped])
            self._commit(state, kept, start + 1, last, advance=advance, final=not hold, held=hold)
            held.unsaved = hold
            return Progress(len(kept), last, outside)

    # -- encrypted: the unsealed tail (see sealed.py) -----------------------------------

    def _follow_unsealed(self, *, hold: bool, retention_days: int) -> Progress:
        """:meth:`follow_once` writing encrypted: the page is added to the unsealed tail
        in memory (the state's position stays before it), sealed once due."""
        assert self.seal_limits is not None
        with self.commits.batch(hold=hold) as held:
            state = held.state
            tail = self._current_tail(state)
            if (
                state.refill
                and tail is None
                and not self._check_same_database(state, self.source.fingerprint(state.position))
            ):  # what a copy lacks (see _reconcile_copy), before what is new
                return self._refill(state)
            cursor = state.position if tail is None else tail.last_id
            rows = self.source.read(cursor, None, self.page_size)
            if tail is not None and rows.after_stamp != tail.last_stamp:
                # the row read last is no longer that row (the file replaced, the row
                # deleted): what was read is sealed before anything else is decided
                self._seal_tail(state)
                tail = None
                rows = self.source.read(state.position, None, self.page_size)
            if tail is None and self._check_same_database(state, rows.after_stamp):
                rows = self.source.read(state.position, None, self.page_size)
            kept, skipped, outside = self._within_retention(rows, retention_days)
            if rows:
                if tail is None:
                    now_day = today(self.writer.clock, self.writer.utc)
                    tail = self.unsealed = Unsealed(state.position, self._ticks(), now_day)
                tail.add(kept.runs, len(kept), rows.last_id, rows.last_stamp)
                if skipped:
                    tail.skipped = idranges.normalise([*tail.skipped, *skipped])
            if self.seal_due():
                self._seal_tail(state)
            return Progress(len(kept), rows.last_id, outside)

    def _current_tail(self, state: State) -> Unsealed | None:
        """The unsealed tail, if it still follows the state's position (else forgotten:
        its rows are still in the database, read again after the position)."""
        tail = self.unsealed
        if tail is not None and tail.base != state.position:
            log.info("the state moved under the unsealed segment; reading its rows again")
            tail = self.unsealed = None
        return tail

    def seal_due(self) -> bool:
        """Whether the unsealed tail is to be sealed now (its size, its age, midnight)."""
        tail = self.unsealed
        if tail is None or self.seal_limits is None:
            return False
        size, seconds = self.seal_limits
        day = today(self.writer.clock, self.writer.utc)
        return tail.due(self._ticks(), day, size, seconds)

    def seal_wait(self) -> float | None:
        """Seconds until the unsealed tail is due by its age (None: nothing unsealed)."""
        if self.unsealed is None or self.seal_limits is None:
            return None
        return max(0.0, self.seal_limits[1] - (self._ticks() - self.unsealed.opened))

    def seal(self) -> None:
        """Seal the unsealed tail now, if any (at stop, before a database is let go),
        in a transaction of its own."""
        if self.unsealed is None:
            return
        try:
            with self.commits.batch(hold=False) as held:
                if self._current_tail(held.state) is not None:
                    self._seal_tail(held.state)
        except BaseException:
            self._left = None  # (a failed batch may leave its files unsaved: see copies)
            raise

    def _seal_tail(self, state: State) -> None:
        """Commit the unsealed tail: its segments written, then the state advanced past
        it (the plain two-step commit). On failure it stays in memory, and the next
        seal tries again (the failed batch recorded as pending: cut back first)."""
        tail = self.unsealed
        if tail is None:
            return
        if tail.skipped:
            state.skipped = idranges.normalise([*state.skipped, *tail.skipped])
        page = Page(tail.runs, tail.count, tail.last_id)
        advance = (tail.last_id, tail.last_stamp)
        self._commit(state, page, tail.base + 1, tail.last_id, advance=advance)
        self.unsealed = None

    def _refill(self, state: State) -> Progress:
        """Log one page of the ids a copy lacks (``state.refill``), in its own two-step
        commit: a crash cuts it back with ``refill`` still recording them."""
        low, high = state.refill[0]
        todo = idranges.gaps(state.logged, low, high)  # (an export may have filled some)
        if not todo:
            state.refill = idranges.subtract(state.refill, [(low, high)])
            self.store.save(state)
            return Progress(more=True)
        low, high = todo[0]
        rows = self.source.read(low - 1, high, self.page_size)
        done_to = rows.last_id if len(rows) == self.page_size else high
        log.info("logging again ids %d..%d, which this copy lacks", low, done_to)
        # Out of ``refill`` only in the save that records them as logged: the pending
        # save must still name them, or a crash before the append lost them for good.
        self._commit(state, rows, low, done_to, final=False)
        state.refill = idranges.subtract(state.refill, [(state.refill[0][0], done_to)])
        self.store.save(state)
        return Progress(len(rows), rows.last_id or done_to, more=True)

    def catch_up(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        *,
        hold: bool = False,
        retention_days: int = 0,
        on_page: Callable[[Progress], None] = lambda p: None,
    ) -> Progress:
        """Follow until a page comes back short (the backlog is drained). ``hold`` and
        ``retention_days``: as for :meth:`follow_once`, over all the pages."""
        total = Progress()
        while not should_stop():
            step = self.follow_once(hold=hold, retention_days=retention_days)
            total.lines += step.lines
            total.last_id = step.last_id or total.last_id
            total.outside_retention += step.outside_retention
            on_page(step)
            if step.lines + step.outside_retention < self.page_size and not step.more:
                break
        return total

    def finish_old_file(self) -> int:
        """Log what the open connection's file still holds when the path now names
        another file (or none), then close it: the next read opens the path anew.

        A hub archiving a room copies ``messages.db`` without its WAL and may make the
        room again at once; a database replaced at its path goes the same way. The
        messages only in the old WAL exist only through this connection, so all of them
        are logged first, even when asked to stop. Returns the lines written. On a
        transient error (busy, disk full) the connection stays open (pinned), so the next
        call drains it again; a file that is no readable database holds nothing to lose.
        """
        if not self.source.replaced():
            return 0
        self.source.pin()
        try:
            lines = self.catch_up().lines
            self.seal()  # (its rows exist nowhere else: sealed before it is let go)
        except SourceUnusable:  # not a readable database (never was, or corrupt): no loss
            lines = 0
        self.source.close()
        return lines

    def backfill(
        self,
        low: int = 1,
        high: int | None = None,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_page: Callable[[Progress], None] = lambda p: None,
        retention_days: int = 0,
    ) -> Progress:
        """Log every message in ``[low, high]`` that this log directory does not hold.

        ``high`` defaults to the follower's position (the history before it). Safe to run
        again, and alongside a running follower: the gaps are recomputed under the lock
        for every page.

        With ``retention_days`` > 0, messages whose day is older than the retention
        window are not written (retention would delete them at the next prune): they
        are counted in ``outside_retention`` and recorded in ``State.skipped``, so a
        later backfill with ``retention_days=0`` still writes them, once.
        """
        total = Progress()
        finished = False
        while not finished and not should_stop():
            with self._transaction() as state:
                # A replaced database's rows must not fill the old one's gaps: they are
                # the follower's to log, from the new database's first row.
                self._check_same_database(state, self.source.fingerprint(state.position))
                held = monotonic()
                unsaved = False
                while True:
                    top = state.position if high is None else min(high, state.position)
                    covered = (
                        state.logged
                        if retention_days
                        else idranges.subtract(state.logged, state.skipped)
                    )
                    missing = idranges.gaps(covered, low, top)
                    if not missing:
                        finished = True
                        if high is None and low <= 1 and state.importing:
                            state.importing = False
                            unsaved = True
                        break
                    gap_low, gap_high = missing[0]
                    rows = self.pages.read(gap_low - 1, gap_high, self.backfill_page_size)
                    full = len(rows) == self.backfill_page_size
                    done_to = rows.last_id if full else gap_high
                    kept, skipped, outside = self._within_retention(rows, retention_days)
                    state.skipped = idranges.normalise(
                        [*idranges.subtract(state.skipped, [(gap_low, done_to)]), *skipped]
                    )
                    self._commit(state, kept, gap_low, done_to, final=False, held=True)
                    unsaved = True
                    step = Progress(len(kept), rows.last_id, outside)
                    total.lines += step.lines
                    total.last_id = step.last_id or total.last_id
                    total.outside_retention += step.outside_retention
                    on_page(step)
                    if (
                        should_stop()
                        or monotonic() - held >= BACKFILL_HOLD
                        or self.store.someone_waits()  # a follower: let it go first
                    ):
                        break
                if unsaved:
                    self.store.save(state)
        self.pages.close()  # no second connection left open on the database while following
        return total

    def _within_retention(
        self, rows: Page, retention_days: int
    ) -> tuple[Page, idranges.Ranges, int]:
        """Split a page by retention: what to write, the id ranges left out, their count.

        A run holds consecutive rows of one day, so a dropped run is one id range.
        """
        oldest = retention.cutoff(today(self.writer.clock, self.writer.utc), retention_days)
        if oldest is None:
            return rows, [], 0
        first = oldest.isoformat()  # ISO dates sort as strings
        kept: list[Run] = []
        dropped: list[Run] = []
        for run in rows.runs:
            (kept if run.day is None or run.day >= first else dropped).append(run)
        if not dropped:
            return rows, [], 0
        outside = sum(run.data.count(b"\n") for run in dropped)
        skipped = idranges.normalise((run.first_id, run.last_id) for run in dropped)
        return Page(kept, len(rows) - outside, rows.last_id), skipped, outside


class LinkedLogDir(DirectoryReplaced):
    """A room's log directory was made a symlink: nothing is written through it."""


def _record_ends(state: State, ends: dict[str, tuple[int, int]], sizes: Pending) -> None:
    """Update ``state.ends`` with ``ends`` (newest last), forgetting what ``sizes`` names
    without an end (empty, or not known), and all but the last ``KEEP_ENDS`` files not
    pending."""
    for name in (*sizes, *ends):
        state.ends.pop(name, None)
    state.ends.update(ends)
    extra = [name for name in state.ends if name not in state.pending]
    for name in extra[: max(0, len(extra) - KEEP_ENDS)]:
        del state.ends[name]


def _cut_torn_tail(path: Path, data: bytes) -> None:
    """Cut from ``path`` a tail of a batch's lines ``data`` that a restore wrote over
    in part (it wrote the file at its own offset while the batch appended at the end):
    the file then ends with the restore's lines, a fragment of one of the batch's (no
    line of its own: unreadable) and the batch's lines after it. The fragment and what
    follows it are cut (those lines are recorded nowhere: read again); whole lines of
    the batch without a fragment before them are left, as the copy's check finds them."""
    ours = set(data.splitlines(keepends=True))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - len(data) - 1)
        tail = os.pread(fd, size - start, start)
        first = tail.find(b"\n") + 1 if start else 0  # (from a whole line on)
        lines = tail[first:].splitlines(keepends=True)
        offset = size
        for line in reversed(lines):
            offset -= len(line)
            if line in ours:
                continue
            whole = line.endswith(b"\n") and line_id(line.rstrip(b"\n")) is not None
            if not whole and any(mine.endswith(line) for mine in ours):
                log.warning(
                    "cutting %d bytes of a batch's lines a restore wrote over in part from %s",
                    size - offset,
                    path,
                )
                os.ftruncate(fd, offset)
                os.fsync(fd)
            return
    except OSError as exc:
        log.warning("could not cut a torn batch from %s: %s", path, exc)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def scan_ids(path: Path) -> Iterator[tuple[int, str | None]]:
    """Ids (and timestamps) of the whole lines in a log file; cuts off a torn last line."""
    if path.suffix == layout.AGE:  # a sealed segment: whole, read with the identity
        try:
            data = segments.read_segment(path)
        except CryptError as exc:
            raise StateError(
                f"the log files of {path.parent} must be read to rebuild its state, and"
                f" they are encrypted: {exc}"
            ) from None
        for line in data.splitlines(keepends=True):
            parsed = _parse_id(line, path)
            if parsed is not None:
                yield parsed
        return
    if path.suffix == ".gz":  # written whole and fsynced before its rename: never torn
        try:
            with gzip.open(path, "rb") as packed:
                for line in packed:
                    parsed = _parse_id(line, path)
                    if parsed is not None:
                        yield parsed
        except (OSError, EOFError, zlib.error) as exc:  # damaged by someone else
            log.warning("%s is damaged (%s); using the lines read before the damage", path, exc)
        return
    offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            parsed = _parse_id(line, path)
            if parsed is not None:
                yield parsed
    if offset != path.stat().st_size:
        log.warning("cutting a torn last line from %s", path)
        with open(path, "r+b") as fh:
            fh.truncate(offset)
            os.fsync(fh.fileno())


def _parse_id(line: bytes, path: Path) -> tuple[int, str | None] | None:
    try:
        obj = json.loads(line)
        timestamp = obj.get("timestamp")
        return int(obj["id"]), timestamp if isinstance(timestamp, str) else None
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):  # 1e999
        log.warning("skipping an unreadable line in %s", path)
        return None
