"""A rule's durable state in the log directory: what it matched, what it delivered.

Why it looks like this (at least once, never lost, the in-flight one at most repeated):
- ``LOG_DIR/.notify/`` (a name no room can take) holds per rule ``NAME.state.json``
  (replaced whole, atomically: written, fsynced, renamed, the directory fsynced),
  ``NAME.journal`` (the matched events, one JSON line each with its sequence number,
  appended and fsynced) and ``NAME.dead.json`` (the dead letters).
- Matching first appends the events to the journal, then saves the state with the new
  read position and ``next_seq``. A crash between the two leaves journal lines at or
  past the saved ``next_seq``: they are dropped at load and matched again from the old
  position, with the same keys.
- Delivery is in order; after each the state's ``done`` (the last sequence number
  delivered or dead-lettered) is saved. A crash after the receiver answered and before
  that save sends that one notification again, with the same ``webhook-id``.
- A digest (several events in one notification) is saved as the ``batch`` before its
  first attempt, so a restart sends the same batch under the same id.
- The journal is emptied when everything in it is done, and rewritten with only what is
  pending when its done part grows large.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import create_private, ensure_private_dir, fsync_dir, open_private, write_all
from .events import Event

DIR_NAME = ".notify"
COMPACT_AFTER = 4096  # done lines in the journal before it is rewritten


def notify_dir(log_dir: Path) -> Path:
    return log_dir / DIR_NAME


class StateError(Exception):
    """A rule's state cannot be read or written; the message names the file."""


@dataclass
class RuleState:
    """Everything about a rule that must survive a restart (see the module doc)."""

    positions: dict[str, Any] = field(default_factory=dict)
    next_seq: int = 1
    done: int = 0
    matched: int = 0
    delivered: int = 0  # events delivered
    sent: int = 0  # notifications sent (a digest is one)
    dead: int = 0
    batch: dict[str, Any] | None = None  # {"first", "last", "digest"} once attempted
    attempts: int = 0
    failing_since: float | None = None
    next_at: float | None = None
    last_error: str | None = None
    disabled: dict[str, Any] | None = None  # {"reason", "at", "destination"}
    sent_times: list[float] = field(default_factory=list)
    waiting: list[Any] = field(default_factory=list)  # unanswered: watched messages
    destination: str = ""
    updated: float = 0.0

    @property
    def pending(self) -> int:
        return self.next_seq - 1 - self.done

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Store:
    """One rule's files."""

    def __init__(self, log_dir: Path, name: str) -> None:
        self.dir = notify_dir(log_dir)
        self.name = name
        self.state_path = self.dir / f"{name}.state.json"
        self.journal_path = self.dir / f"{name}.journal"
        self.dead_path = self.dir / f"{name}.dead.json"
        self.events: deque[tuple[int, Event]] = deque()  # pending, in order
        self._journal_lines = 0

    def load(self) -> RuleState | None:
        """The saved state (None: the rule never ran here) and its pending events."""
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.state_path}: {exc.strerror}") from None
        try:
            state = RuleState.from_json(json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise StateError(f"{self.state_path} is damaged ({exc})") from None
        self.events.clear()
        self._journal_lines = 0
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            data = b""
        keep = 0
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                break  # a line cut by a crash: what follows was never saved either
            seq = int(entry["seq"])
            if seq >= state.next_seq:
                break  # appended, but the state that counts it was never saved
            keep += len(line) + 1
            self._journal_lines += 1
            if seq > state.done:
                self.events.append((seq, Event.from_json(entry)))
        if keep < len(data):
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.journal_path, keep)
        return state

    def append(self, events: Iterable[tuple[int, Event]]) -> None:
        """Journal matched events (fsynced) before the state that counts them is saved."""
        rows = list(events)
        if not rows:
            return
        ensure_private_dir(self.dir)
        data = b"".join(
            json.dumps(event.to_json(seq), ensure_ascii=False, separators=(",", ":")).encode()
            + b"\n"
            for seq, event in rows
        )
        fd = open_private(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.events.extend(rows)
        self._journal_lines += len(rows)

    def save(self, state: RuleState) -> None:
        """Replace the state file atomically and durably."""
        ensure_private_dir(self.dir)
        state.updated = time.time()
        temp = self.dir / f".{self.name}.state.tmp"
        fd = create_private(temp)
        try:
            write_all(fd, json.dumps(state.to_json(), separators=(",", ":")).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.state_path)
        fsync_dir(self.dir)

    def done_upto(self, state: RuleState, seq: int) -> None:
        """Drop the events up to ``seq`` from memory once the state saying so is saved;
        empty (or compact) the journal."""
        while self.events and self.events[0][0] <= seq:
            self.events.popleft()
        if not self.events:
            if self._journal_lines:
                with contextlib.suppress(FileNotFoundError):
                    os.truncate(self.journal_path, 0)
                self._journal_lines = 0
        elif self._journal_lines - len(self.events) > COMPACT_AFTER:
            self._rewrite()

    def _rewrite(self) -> None:
        temp = self.dir / f".{self.name}.journal.tmp"
        fd = create_private(temp)
        try:
            write_all(
                fd,
                b"".join(
                    json.dumps(e.to_json(s), ensure_ascii=False, separators=(",", ":")).encode()
                    + b"\n"
                    for s, e in self.events
                ),
            )
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.journal_path)
        fsync_dir(self.dir)
        self._journal_lines = len(self.events)

    def dead_letter(self, events: Iterable[tuple[int, Event]], rule: str, error: str) -> None:
        ensure_private_dir(self.dir)
        now = time.time()
        data = b"".join(
            json.dumps(
                {
                    "rule": rule,
                    "key": event.key,
                    "kind": event.kind,
                    "room": event.room,
                    "matched_at": event.at,
                    "dead_at": now,
                    "error": error,
                    "body": event.body,
                },
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
            + b"\n"
            for _seq, event in events
        )
        fd = open_private(self.dead_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


class RuleLock:
    """``NAME.lock``, held (``flock``) by the one process that runs a rule: ``run`` and
    ``notify`` started on the same settings must not both deliver it."""

    def __init__(self, log_dir: Path, name: str) -> None:
        self.path = notify_dir(log_dir) / f"{name}.lock"
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Take it if no other process holds it; True when held."""
        ensure_private_dir(self.path.parent)
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def saved_states(log_dir: Path) -> dict[str, RuleState]:
    """Every rule's saved state in a log directory (for ``status``), by name."""
    found: dict[str, RuleState] = {}
    folder = notify_dir(log_dir)
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return found
    for name in names:
        if not name.endswith(".state.json") or name.startswith("."):
            continue
        with contextlib.suppress(OSError, ValueError, TypeError):
            found[name.removesuffix(".state.json")] = RuleState.from_json(
                json.loads((folder / name).read_bytes())
            )
    return found
