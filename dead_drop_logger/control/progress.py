"""A progress bar on stderr for the long imports: rows done of the total, the rate and
the time left, redrawn in place; nothing at all when stderr is not a terminal (a
service's journal, a pipe, a test), so logs and scripts never see it.

Why hand-written: it is one line of text, and the library reports progress through a
plain callback ``(done, total)`` (it never imports click), which this is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

REDRAW = 0.2  # seconds between two redraws: a terminal need not see every page


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Bar:
    """Call it with ``(done, total)``; it ends its line when ``done`` reaches
    ``total`` (or at :meth:`close`, for a run stopped before the end)."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self._is_terminal()
        self.clock = clock
        self._started: float | None = None
        self._drawn: float | None = None
        self._last = (0, 0)
        self._finished = False

    def _is_terminal(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or self._finished:
            return
        if total <= 0:  # nothing to do: no bar
            self._finished = True
            return
        now = self.clock()
        if self._started is None:
            self._started = now
        self._last = (done, total)
        if done >= total:
            self.close()
            return
        if self._drawn is not None and now - self._drawn < REDRAW:
            return
        self._draw(now, final=False)

    def line(self, now: float, *, final: bool) -> str:
        done, total = self._last
        elapsed = now - (self._started if self._started is not None else now)
        percent = f"{100 * done // total}%" if total else "100%"
        text = f"{self.label}  {done:,}/{total:,} rows  {percent}"
        rate = done / elapsed if elapsed > 0 else None
        if rate is not None:
            text += f"  {rate:,.0f} rows/s"
        if final:
            text += f"  done in {_duration(elapsed)}"
        elif rate:
            text += f"  {_duration((total - done) / rate)} left"
        return text

    def _draw(self, now: float, *, final: bool) -> None:
        self.stream.write(f"\r{self.line(now, final=final)}\x1b[K")
        self.stream.flush()
        self._drawn = now

    def close(self) -> None:
        """The last figures, and the end of the bar's line (nothing if it never drew)."""
        if not self.enabled or self._started is None or self._finished:
            return
        self._finished = True
        self._draw(self.clock(), final=True)
        self.stream.write("\n")
        self.stream.flush()
