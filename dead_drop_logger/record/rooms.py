"""Rooms: one process follows many databases, each into its own log directory.

Why it looks like this:
- A Dead Drop hub runs one server per room, each with its own database
  (``ROOMS_DIR/NAME/messages.db``), and creates and archives rooms at any time. Each
  room gets the whole single-database machinery (a :class:`.Follower` with its
  pipeline, state, lock, rotation, retention, parts, compression) in ``LOG_DIR/NAME/``:
  nothing is re-implemented, so every promise of one database holds for each room.
- One thread per room, so one room's trouble (a locked or corrupt database, a full
  disk, an unreadable directory) only ever waits in that room's own thread: SQLite and
  file I/O release the GIL, so the others go on, delayed by one batch at most.
- The supervisor (this module's :class:`Rooms`) only finds rooms: it lists the rooms
  directory every poll interval and starts a thread for each new name.
- Archiving deletes a room's directory after gzipping ``messages.db`` but not its WAL,
  so messages still in the WAL exist only while our connection holds the deleted files
  open: a room whose database vanishes first logs what that connection can still read,
  then, when its directory is gone, says so once and is released. A room that comes
  back under the same name is a new database (the replaced-database rule).
- A room is known by its name, its database by its rows: a room renamed, or two rooms
  swapped, is the database another room's log holds (:mod:`.ownership`). It is refused
  with the way out (rename the log directories to match), never logged again from its
  first row under the other name, and a room there for a moment (``mv a tmp``) gets
  no log directory.
- Rooms there at the logger's first start follow the first-start rule (new messages
  only); a room found later, or one without a state at a later start that was not there
  at the first start, is new: logged from its first row. A marker file in the log
  directory, written durably before any room starts, says a first start happened and
  lists the rooms there then (so one room that cannot be followed yet holds nothing
  back, and one of them that got no state before a stop still starts as a first start).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..clock import Clock, SystemClock
from ..config import ROOM_DB_NAME, Settings
from ..diagnostics import ROOM_THREAD_PREFIX
from ..files import LogDirError, create_private, ensure_private_dir, fsync_dir
from ..logdir.state import STATE_NAME
from ..rooms_spec import RoomNameError, check_room_name
from ..signals import stop_on_signals
from . import ownership
from .follow import MAX_BACKOFF, Follower, signature
from .watch import Waker, WakingStopEvent, Watcher, WatcherUnavailable

log = logging.getLogger(__name__)

ROOMS_MARK = ".dead-drop-logger.rooms"  # in LOG_DIR: the rooms' first start happened
# An idle room's own timer, in poll intervals: 50 rooms each ticking every poll interval
# would cost ten times the CPU of one sweep of stat() calls over all of them.
SAFETY_POLLS = 10


def room_settings(settings: Settings, name: str, db: Path) -> Settings:
    """One room's settings: its database, its own log directory, nothing else changed."""
    return replace(settings, db=db, log_dir=settings.log_dir / name, rooms_dir=None, rooms=())


def find_rooms(settings: Settings) -> dict[str, Path]:
    """Every room now: the explicit ones and each directory under the rooms directory.

    Raises OSError when the rooms directory cannot be listed.
    """
    found: dict[str, Path] = {}
    if settings.rooms_dir is not None:
        with os.scandir(settings.rooms_dir) as entries:
            for entry in entries:
                try:
                    name = check_room_name(entry.name)
                    if entry.is_dir():
                        found[name] = Path(entry.path) / ROOM_DB_NAME
                except (RoomNameError, OSError):
                    continue
    found.update(settings.rooms)
    return found


class RoomFollower(Follower):
    """A room's follower: logs what a vanished database still holds, then lets go.

    ``discovered``: the room appeared after the logger's first start, so all of it is
    new. ``releasable``: found in the rooms directory, so it ends when its directory
    goes (an explicitly named room waits for its database, as a single one does).
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        discovered: bool,
        releasable: bool,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        watcher: Watcher | None = None,
    ) -> None:
        super().__init__(settings, clock=clock, stop=stop, watcher=watcher)
        # The supervisor's sweep checks every room at the poll interval and rings the
        # ones that changed; the room's own timer is only the safety net behind it.
        self.idle_wait = settings.poll_interval * SAFETY_POLLS
        self.seen: tuple[object, ...] = ()  # the sweep's last signature of its files
        target = settings.db.resolve()  # SQLite writes the -wal beside a symlink's target
        self.sweep_paths = (settings.db, target.with_name(target.name + "-wal"))
        self.name = name
        self.discovered = discovered
        self.releasable = releasable
        # A database found replaced at the room's path may be another room's, moved here.
        self.pipeline.before_reset = lambda: self._not_another_rooms(wait=False)
        self.pipeline.no_link = True  # (made a symlink while followed: refused then too)

    def gone(self) -> bool:
        """Whether the room's directory is gone for good (then it is released)."""
        if not self.releasable or self.settings.db.parent.exists():
            return False
        self.finished = True
        return True

    def _not_another_rooms(self, *, wait: bool) -> None:
        """Refuse (MovedRoom) another room's database, moved here: before a log of its
        own is begun (nothing is made for it, not even its directory; ``wait``: the
        other logs' states read under their locks), and before a database replaced at
        its path is logged from its first row (inside the room's own transaction: their
        states as last saved)."""
        ownership.refuse_moved_room(self.source, self.settings.log_dir, wait=wait)

    def _database_existed(self) -> bool:
        return not self.discovered and super()._database_existed()

    def run(self) -> None:
        """Follow the room. Raises LogDirError when its log directory is a symbolic
        link: the room's state, lock and day files would be written (and the directory
        chmodded) wherever it points, so the room is not followed until it is a
        directory (the supervisor says so once and retries; other rooms go on). A room
        whose directory is gone is released; another room's database moved here is
        refused before a log of its own is begun."""
        if self.gone():
            return
        log_dir = self.settings.log_dir
        if log_dir.is_symlink():
            try:
                target = os.readlink(log_dir)
            except OSError:
                target = "?"
            raise LogDirError(
                f"log directory {log_dir} is a symbolic link (to {target}); a room's log"
                " directory is never written through one: make it a directory"
            )
        if not (log_dir / STATE_NAME).exists() and not self._retrying(
            lambda: self._not_another_rooms(wait=True)
        ):
            return  # (stopped while the database could not be read)
        super().run()

    def _tick(self) -> None:
        if self.source.exists():
            super()._tick()
            return
        drained = self.pipeline.finish_old_file()  # what the deleted files still hold
        if self.releasable and not self.settings.db.parent.exists():
            self.finished = True
            log.info(
                "gone (%s removed); %d more messages logged from it; released",
                self.settings.db.parent,
                drained,
            )
            return
        if not self.releasable:
            super()._tick()  # the database is missing: waiting for it, said once
        # else: a room's directory without its database (being made, or being archived)


class Rooms:
    """Follows every room until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.waker = Waker()  # rung when a room's directory appears or goes
        self.stop = stop or WakingStopEvent(self.waker)  # setting it ends the supervisor's wait
        self.mark = settings.log_dir / ROOMS_MARK
        self.active: dict[str, tuple[RoomFollower, threading.Thread]] = {}
        self._listing_trouble: str | None = None
        self._mark_trouble = False
        self.watcher: Watcher | None = None
        # As Follower's: called once every room there at the start follows (or says
        # the trouble it waits on), so that start returns with every position taken.
        self.on_following: Callable[[], None] | None = None

    def _report_following(self) -> None:
        ready, self.on_following = self.on_following, None
        if ready is not None:
            ready()

    def install_signal_handlers(self) -> None:
        stop_on_signals(self.stop, log)  # its StopEvent ends the supervisor's wait

    def request_stop(self) -> None:
        """Every room ends after its batch in hand; waits in progress end at once."""
        self.stop.set()
        self.waker.stop()
        for room, _thread in list(self.active.values()):
            room.request_stop()

    def run(self) -> None:
        """Follow until stopped. Raises LogDirError when LOG_DIR itself is unusable."""
        ensure_private_dir(self.settings.log_dir)
        # Here, not in __init__: the daemon closes every file descriptor it did not make.
        self.watcher = self._start_watcher()
        try:
            self._supervise()
        finally:
            if self.watcher is not None:
                self.watcher.close()

    def _start_watcher(self) -> Watcher | None:
        """One inotify instance for the rooms directory and every room's database."""
        if self.settings.no_watch:
            return None
        try:
            watcher = Watcher(retry=max(self.settings.poll_interval, 0.05))
        except WatcherUnavailable as exc:
            log.info("no change notifications (%s); polling only", exc)
            return None
        if self.settings.rooms_dir is not None:
            watcher.watch(self.settings.rooms_dir, lambda _name, is_dir: is_dir, self.waker)
        return watcher

    def _supervise(self) -> None:
        there_first = self._first_start_rooms()
        if there_first is None:  # the first start: the rooms there now, on disk first
            there_first = set(self._list())
            while not self._write_mark(there_first):
                self._report_following()  # (the trouble is said: start need not wait)
                if self.stop.wait(self.settings.poll_interval):
                    return
        where = self.settings.rooms_dir
        log.info(
            "following %s into %s",
            f"the rooms in {where}" if where else "the rooms named",
            self.settings.log_dir,
        )
        first = sorted(self._list().items())
        waiting, lock = {name for name, _db in first}, threading.Lock()

        def followed(name: str) -> None:
            with lock:
                waiting.discard(name)
                if not waiting:
                    self._report_following()

        if not waiting:
            self._report_following()
        for name, db in first:
            room = self._start(name, db, discovered=name not in there_first, start=False)
            room.on_following = functools.partial(followed, name)
            self.active[name][1].start()
        while not self.stop.is_set():
            self._reap()
            for name, db in sorted(self._list().items()):
                if name not in self.active:
                    self._start(name, db, discovered=True)
            self._sweep()
            self.waker.wait(self.settings.poll_interval)
        for room, thread in list(self.active.values()):
            room.request_stop()
            thread.join()
        log.info("stopped")

    def _list(self) -> dict[str, Path]:
        try:
            found = find_rooms(self.settings)
        except OSError as exc:
            message = f"cannot list the rooms in {self.settings.rooms_dir}: {exc.strerror}"
            if message != self._listing_trouble:
                log.warning("%s; retrying", message)
            self._listing_trouble = message
            return dict(self.settings.rooms)
        if self._listing_trouble is not None:
            log.info("rooms directory %s readable again", self.settings.rooms_dir)
            self._listing_trouble = None
        return found

    def _start(self, name: str, db: Path, *, discovered: bool, start: bool = True) -> RoomFollower:
        settings = room_settings(self.settings, name, db)
        room = RoomFollower(
            name,
            replace(settings, no_watch=True) if self.watcher is None else settings,
            discovered=discovered,
            releasable=name not in dict(self.settings.rooms),
            clock=self.clock,
            stop=self.stop,
            watcher=self.watcher,
        )
        if discovered:
            log.info("new room %s (%s): logging all of it", name, db)
        thread = threading.Thread(
            target=self._serve, args=(room,), name=f"{ROOM_THREAD_PREFIX}{name}"
        )
        self.active[name] = (room, thread)
        if start:
            thread.start()
        return room

    def _serve(self, room: RoomFollower) -> None:
        """A room's thread: its follower, restarted after trouble that ended it."""
        try:
            self._follow_room(room)
        finally:
            room.report_following()  # (ended before it followed: start waits no longer)

    def _follow_room(self, room: RoomFollower) -> None:
        while not self.stop.is_set() and not room.finished:
            # (Its lines start with "room NAME:" already: they come from its thread.)
            try:
                room.run()
            except LogDirError as exc:  # its log directory unusable, or another database's
                if room.gone():
                    return
                room.reporter.problem(f"{exc}; retrying every {MAX_BACKOFF:g}s")
            except Exception as exc:  # a bug in one room must not end the others
                log.debug("unexpected error", exc_info=True)
                what = f"unexpected {type(exc).__name__}: {exc}"
                room.reporter.problem(f"{what}; retrying every {MAX_BACKOFF:g}s")
            else:
                return
            room.report_following()  # (the trouble is said: start need not wait it out)
            self.stop.wait(MAX_BACKOFF)

    def _sweep(self) -> None:
        """Ring every room whose database or WAL changed since the last sweep: the
        poll-interval check of a single follower, for all rooms in one thread (with
        change notifications, it is a second net; without them, the only one)."""
        for room, _thread in self.active.values():
            db, wal = room.sweep_paths
            seen = (signature(db), signature(wal))
            if seen != room.seen:
                if room.seen:
                    room.waker.ring(db.name)
                room.seen = seen

    def _reap(self) -> None:
        for name, (room, thread) in list(self.active.items()):
            if room.finished and not thread.is_alive():
                thread.join()
                del self.active[name]

    def _first_start_rooms(self) -> set[str] | None:
        """The rooms there at the first start; None before the first start. (A mark
        without a list, from an older version: none, so every room without a state
        is new, as it then was.)"""
        try:
            raw = self.mark.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return set()
        try:
            names = json.loads(raw)["rooms"]
        except (ValueError, KeyError, TypeError):
            return set()
        return {name for name in names if isinstance(name, str)}

    def _write_mark(self, rooms: set[str]) -> bool:
        """Record, durably, that the first start happened and which rooms were there."""
        tmp = self.mark.with_name(self.mark.name + ".tmp")
        try:
            fd = create_private(tmp)  # afresh: never written through a planted link
            try:
                os.write(fd, json.dumps({"rooms": sorted(rooms)}).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.mark)
            fsync_dir(self.settings.log_dir)
        except OSError as exc:  # retried every poll interval, said once
            said, self._mark_trouble = self._mark_trouble, True
            log.log(
                logging.DEBUG if said else logging.WARNING,
                "cannot record the rooms' first start in %s: %s; retrying",
                self.mark,
                exc,
            )
            return False
        return True


def runner(
    settings: Settings, *, clock: Clock | None = None, stop: threading.Event | None = None
) -> Follower | Rooms:
    """What follows ``settings``: one database as always, or every room."""
    if settings.has_rooms:
        return Rooms(settings, clock=clock, stop=stop)
    return Follower(settings, clock=clock, stop=stop)
