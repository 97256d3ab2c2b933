"""``top``: the team at a glance, live in the terminal.

Why it looks like this:
- Each frame is built from scratch (:func:`..read.teamview.build_frame`) from the rows
  the databases hold now, what the logs said, and the clock; this module only decides
  *when*: at once when a database changes (the logger's own watcher,
  :mod:`..record.watch`, with its gap set so a busy server redraws at most every
  250 ms), and on a timer each whole second, because health and ages change with time
  alone. A database is read again only when ``PRAGMA data_version`` says a commit
  happened; the logs are read incrementally (:class:`..read.logread.Tail`), so an
  idle ``top`` costs a ``stat`` or two a second and one redraw.
- No terminal library: ANSI escapes on the alternate screen (the shell's screen comes
  back as it was), cursor home and every line overwritten and cleared to its end, then
  the rest of the screen cleared, so nothing is ever blanked and nothing flickers;
  the keyboard in cbreak mode (``termios``/``tty``), read by a thread that stops the
  loop on ``q``; Ctrl-C, SIGTERM and SIGHUP stop it too, and the terminal is restored
  on every way out.
- ``--once`` prints one frame and exits: for scripts and tests (and the live fields of
  ``agents --json`` come from the same frame).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TextIO

from ..read.teamview import render
from ..record.team import Team
from ..record.watch import STOP, Waker, Watcher, WatcherUnavailable, database_files

REDRAW_GAP = 0.25  # at most one redraw per database change burst every 250 ms


def once(team: Team, out: TextIO, width: int | None, colour: bool) -> int:
    """Print one frame; 0 when a database could be read, else 1."""
    team.refresh()
    frame = team.frame()
    for line in render(frame, width, colour):
        out.write(line + "\n")
    out.flush()
    readable = any(r.problem is None for r in team.rows.values())
    return 0 if readable else 1


# -- live ---------------------------------------------------------------------------

ENTER = "\x1b[?1049h\x1b[?25l"  # the alternate screen, cursor hidden
LEAVE = "\x1b[?25h\x1b[?1049l"
HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"


class Screen:
    """The terminal while ``top`` runs: alternate screen and cbreak keyboard, restored
    on every way out (:meth:`restore` is idempotent)."""

    def __init__(self, out: TextIO, keys: int | None) -> None:
        self.out = out
        self.keys = keys
        self._saved: list[object] | None = None
        self._on = False
        self.drawn: list[str] = []

    def __enter__(self) -> Screen:
        if self.keys is not None:
            try:
                self._saved = termios.tcgetattr(self.keys)
                tty.setcbreak(self.keys)  # keys one by one, no echo; Ctrl-C still SIGINT
            except termios.error:
                self.keys = None
        self.out.write(ENTER)
        self.out.flush()
        self._on = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        if self._on:
            self._on = False
            with contextlib.suppress(OSError, ValueError):  # a terminal that hung up
                self.out.write(LEAVE)
                self.out.flush()
        if self._saved is not None and self.keys is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.keys, termios.TCSADRAIN, self._saved)  # type: ignore[arg-type]
            self._saved = None

    def draw(self, lines: list[str], force: bool = False) -> bool:
        """Overwrite the screen with ``lines`` (cut to its height); False when it
        already shows them."""
        rows = max(1, shutil.get_terminal_size().lines)
        if len(lines) > rows:
            lines = [*lines[: rows - 1], f"… {len(lines) - rows + 1} more lines"]
        if lines == self.drawn and not force:
            return False
        body = (CLEAR_LINE + "\r\n").join(lines)
        self.out.write(HOME + body + CLEAR_LINE + CLEAR_BELOW)
        self.out.flush()
        self.drawn = lines
        return True


def _read_keys(fd: int, quit_: Callable[[], None]) -> None:
    """Until ``q`` (or end of input): stop the loop."""
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if not data or b"q" in data or b"Q" in data:
            if data:
                quit_()
            return


@contextlib.contextmanager
def _watching(team: Team, waker: Waker) -> Iterator[Callable[[], None]]:
    """Ring ``waker`` when a database or a log changes; yields a function that watches
    the databases and log directories that appeared since (new rooms)."""
    try:
        watcher: Watcher | None = Watcher(retry=1.0, thread=True)
    except WatcherUnavailable:  # polling only: the timer reads every second
        watcher = None
    watched: set[Path] = set()

    def logs(name: str, is_dir: bool) -> bool:
        return name.startswith("messages-")

    def more() -> None:
        if watcher is None:
            return
        for db in team.order:
            path = db.path.resolve() if db.path.exists() else db.path.absolute()
            if path not in watched:
                watched.add(path)
                watcher.watch(path.parent, database_files(path), waker)
            if db.log_dir not in watched:
                watched.add(db.log_dir)
                watcher.watch(db.log_dir, logs, waker)

    try:
        more()
        yield more
    finally:
        if watcher is not None:
            watcher.close()


def live(team: Team, out: TextIO, colour: bool) -> int:
    """Redraw until ``q``, Ctrl-C, SIGTERM or SIGHUP; the terminal restored."""
    waker = Waker(gap=REDRAW_GAP, busy_gap=REDRAW_GAP)
    resized = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        waker.stop()

    def resize(signum: int, frame: FrameType | None) -> None:
        resized.set()
        waker.ring("resize")

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM,
                                                       signal.SIGHUP, signal.SIGWINCH)}  # fmt: skip
    keys = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)
        signal.signal(signal.SIGWINCH, resize)
        with Screen(out, keys) as screen, _watching(team, waker) as watch_more:
            if screen.keys is not None:
                threading.Thread(
                    target=_read_keys, args=(screen.keys, waker.stop), daemon=True
                ).start()
            first = True
            while True:
                if team.refresh():
                    waker.pace(1)  # it found the change: no more quick rechecks
                    watch_more()
                force = first or resized.is_set()  # a resized terminal may have garbled it
                first = False
                resized.clear()
                width = shutil.get_terminal_size().columns
                try:
                    screen.draw(render(team.frame(), width, colour, live=True), force)
                except OSError:  # the terminal is gone (hung up): nothing left to show
                    break
                tick = 1.0 - (time.time() % 1.0) + 0.005  # ages tick on whole seconds
                if waker.wait(tick).reason == STOP:
                    break
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        team.close()
    return 0
