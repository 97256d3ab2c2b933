"""Rotation: which file (part) a day's lines go to, the midnight switch, and the
``messages-current.json`` symlink.

- Parts: new lines go to the day's highest part; when appending a line would take a
  part past ``--max-bytes``, the next part starts. A line is never split, and a line
  larger than the limit gets a part of its own. A compressed part is never appended to:
  late lines for that day (a historical import) start the part after it.
- Midnight: the follower asks :class:`Rotator` every tick; when the day changes it
  creates the new day's (empty, 0600) file, so ``tail -F`` on it works from 00:00,
  points the symlink at it, and runs the file policies (:mod:`.housekeeping`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..clock import Clock, monotonic, today
from ..files import fsync_dir, open_private
from ..keep import housekeeping
from ..logdir import layout
from ..logdir.layout import LogFile

log = logging.getLogger(__name__)

POLICY_RETRY = 60.0


# -- parts -----------------------------------------------------------------------------


def latest_parts(log_dir: Path) -> dict[str, LogFile]:
    """The highest part of every day present (a compressed one wins a tie)."""
    latest: dict[str, LogFile] = {}
    for entry in layout.log_files(log_dir):  # sorted: day, part, plain before .gz
        latest[entry.day.isoformat()] = entry
    return latest


def open_part(log_dir: Path, day: str, latest: dict[str, LogFile]) -> tuple[int, int]:
    """The part the next line of ``day`` goes to, and that part's current size."""
    top = latest.get(day)
    if top is None:
        return 0, 0
    if top.compressed:
        return top.part + 1, 0
    try:
        return top.part, top.path.lstat().st_size
    except FileNotFoundError:  # deleted under us: it is created afresh
        return top.part, 0


class Parts:
    """The highest part of every day, kept in memory so a batch never lists the directory.

    Listing a log directory of years of day files (1,100 names; many more with
    ``--max-bytes``) on every batch cost 20-200 ms under the lock. The directory is
    listed once; after that each use checks only the two or three names its answer
    rests on (a later part, made by another writer sharing the directory; a ``.gz`` of
    the part, made by another process's compression) and lists again only when one of
    them says the directory changed. A part deleted under us needs no check: it is
    created afresh, as before.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._latest: dict[str, LogFile] | None = None
        # day -> (the part its probes are for, the names _changed looks at): made once
        # a part, not every batch
        self._probes: dict[str, tuple[LogFile | None, tuple[str, ...]]] = {}

    def open_part(self, day: str) -> tuple[int, int]:
        """The part the next line of ``day`` goes to, and that part's current size."""
        if self._latest is None or self._changed(day):
            self._latest = latest_parts(self.log_dir)
        return open_part(self.log_dir, day, self._latest)

    def wrote(self, day: str, part: int) -> None:
        """Note a part this process writes (it exists once the batch is appended)."""
        if self._latest is None:
            return
        top = self._latest.get(day)
        if top is None or part > top.part:
            path = layout.day_path(self.log_dir, day, part)
            self._latest[day] = LogFile(dt.date.fromisoformat(day), part, False, path)

    def forget(self) -> None:
        """List again next time (after this process deleted or compressed files)."""
        self._latest = None
        self._probes.clear()

    def _changed(self, day: str) -> bool:
        assert self._latest is not None
        top = self._latest.get(day)
        known = self._probes.get(day)
        if known is None or known[0] is not top:
            nearest = layout.day_path(self.log_dir, day, 0 if top is None else top.part + 1)
            names = [nearest, layout.compressed_path(nearest)]
            if top is not None and not top.compressed:
                names.append(layout.compressed_path(top.path))
            known = self._probes[day] = (top, tuple(os.fspath(name) for name in names))
        return any(_is_file(name) for name in known[1])


def _is_file(path: str | Path) -> bool:
    """A regular file (what a listing counts: never a symlink) is at ``path``.

    Asked with ``access`` first: the usual answer (nothing there) comes without the
    exception ``lstat`` raises, which cost more than the call itself every batch."""
    if not os.access(path, os.F_OK, follow_symlinks=False):
        return False
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def split_parts(
    lengths: Sequence[int], part: int, size: int, max_bytes: int | None
) -> list[tuple[int, int, int]]:
    """Assign consecutive lines (by byte length) to parts, starting in ``part`` of
    ``size`` bytes. Returns ``(part, first_index, end_index)`` runs.

    A part is only left when it already holds something, so a line never straddles two
    parts and an over-size line sits alone in an otherwise empty part.
    """
    runs: list[tuple[int, int, int]] = []
    start = 0
    for index, length in enumerate(lengths):
        if max_bytes is not None and size > 0 and size + length > max_bytes:
            if index > start:
                runs.append((part, start, index))
            part, size, start = part + 1, 0, index
        size += length
    if len(lengths) > start:
        runs.append((part, start, len(lengths)))
    return runs


# -- midnight and the current symlink --------------------------------------------------


def seconds_to_midnight(clock: Clock, utc: bool) -> float:
    """Time left in the routing day (UTC or the clock's zone)."""
    now = clock.now()
    if utc:
        now = now.astimezone(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), now.tzinfo)
    return max((midnight - now).total_seconds(), 0.0)


def ensure_file(path: Path) -> bool:
    """Create ``path`` empty (0600) if missing; True when it was created. A symlink
    there (even a dangling one) is left to the writer, which replaces it."""
    if os.path.lexists(path):
        return False
    os.close(open_private(path, os.O_WRONLY | os.O_CREAT))
    fsync_dir(path.parent)
    return True


def point_current(log_dir: Path, target: Path) -> bool:
    """Atomically make ``messages-current.json`` point at ``target``; True if it changed.

    The new link is made under a temporary name and renamed over the old one, so a
    reader always finds either the old or the new link. The target is relative, so the
    link survives the directory being moved. A regular file in the way is not ours to
    replace: it is left alone with a warning.
    """
    link = layout.current_path(log_dir)
    try:
        if os.readlink(link) == target.name:
            return False
    except FileNotFoundError:
        pass
    except OSError:  # EINVAL: not a symlink
        log.warning("%s is not a symlink; leaving it alone", link)
        return False
    tmp = layout.current_temp_path(log_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target.name, tmp)
    os.replace(tmp, link)
    fsync_dir(log_dir)
    return True


@dataclass
class Rotator:
    """The follower's per-tick hook for everything that depends on the date.

    Making today's file and the link is cheap and retried every tick until it works;
    the policies (which may gzip large files) are retried at most every
    ``POLICY_RETRY`` seconds after a failure, so a full disk is not hammered.
    """

    log_dir: Path
    clock: Clock
    utc: bool = False
    policy: housekeeping.Policy = field(default_factory=housekeeping.Policy)
    max_bytes: int | None = None
    day: dt.date | None = None
    policies_due: float | None = None  # monotonic time the policies should next run
    parts: Parts | None = None  # shared with the writer: one picture of the directory
    # Written encrypted (sealed segments): no plain day file to make, nor a link to one
    # (``tail -f`` of plaintext is what encryption takes away: ``search -f`` remains).
    encrypted: bool = False

    def __post_init__(self) -> None:
        if self.parts is None:
            self.parts = Parts(self.log_dir)

    def today(self) -> dt.date:
        return today(self.clock, self.utc)

    def tick(
        self, *, wrote: bool = False, before_policies: Callable[[], None] = lambda: None
    ) -> None:
        """At a new day (and at start): today's file, the symlink, the policies. After a
        batch with ``--max-bytes``: follow a part switch with the symlink (and apply
        ``--keep-files``, which counts parts). ``before_policies`` runs first when the
        policies do (they take the writer lock). Raises OSError / StateError."""
        current = self.today()
        if current != self.day:
            if self.day is not None:
                log.info("new day %s", current.isoformat())
            if not self.encrypted:
                target = self._today_path(current)
                ensure_file(target)
                point_current(self.log_dir, target)
            self.day = current
            self.policies_due = monotonic()
        elif (
            wrote
            and not self.encrypted
            and self.max_bytes is not None
            and self._refresh_link(current)
            and self.policy.keep_files
        ):
            self.policies_due = monotonic()
        if self.policies_due is not None and monotonic() >= self.policies_due:
            self.policies_due = monotonic() + POLICY_RETRY  # stays set if this raises
            before_policies()
            self._apply_policies(current)
            self.policies_due = None

    def policies_now(self) -> None:
        """Run the policies at the next tick, not at midnight: a historical import has
        just written old days that --compress-after / --retention-days / --keep-files
        are about."""
        self.policies_due = monotonic()

    def wait_time(self, poll_interval: float) -> float:
        """How long the loop may sleep: never past midnight (just after it, in fact)."""
        return min(poll_interval, seconds_to_midnight(self.clock, self.utc) + 0.001)

    def _apply_policies(self, day: dt.date) -> None:
        outcome = housekeeping.run(self.log_dir, day, self.policy)
        if outcome.deleted or outcome.compressed:
            assert self.parts is not None
            self.parts.forget()  # what it knew of those days is gone
            log.info(
                "retention: %d files deleted, %d compressed",
                len(outcome.deleted),
                len(outcome.compressed),
            )

    def _today_path(self, day: dt.date) -> Path:
        name = day.isoformat()
        assert self.parts is not None
        part, _size = self.parts.open_part(name)
        return layout.day_path(self.log_dir, name, part)

    def _refresh_link(self, day: dt.date) -> bool:
        target = self._today_path(day)
        if not target.exists():
            return False
        return point_current(self.log_dir, target)
