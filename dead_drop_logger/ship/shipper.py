"""One sink's shipper: read committed lines, deliver a batch, save the position.

Why it looks like this:
- One thread per sink, each with its own feed and position: a slow or dead sink holds
  back only itself, never another sink nor the logger (which never waits for a
  shipper; a shipper only reads the log files). Memory is one batch.
- A batch is up to ``lines`` lines, or what there is after ``ms`` milliseconds since
  its first line; then it is sent, and only once the sink has acknowledged it is the
  position saved (:mod:`.position`). A crash (``kill -9``) anywhere repeats at most
  the batch in flight; the sink's key drops the repeat.
- A failure (the sink down, refusing, a timeout) is retried with exponential backoff
  (``retry_min`` doubling to ``retry_max``), from the last acknowledged position, for
  as long as it takes: the logs are the buffer, however long the outage.
- What it is doing is written to a small status file beside its position, which
  ``status`` reads (with the lag, worked out there from the position and the logs).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..files import ensure_private_dir, replace_durably
from ..read.feed import Feed
from . import position as positions
from .position import Item, ShipPosition
from .sink import Sink, SinkError, open_sink
from .target import Target, TargetError
from .wake import LogWatch

log = logging.getLogger(__name__)

SHIP_DIR = ".ship"  # in the log directory: LOG_DIR/.ship/NAME.position, NAME.status.json
STATUS_EVERY = 0.5  # seconds between two status writes while all goes well


def ship_dir(log_dir: Path) -> Path:
    return log_dir / SHIP_DIR


@dataclass(frozen=True)
class Batching:
    lines: int = 1000
    ms: float = 5.0
    poll: float = 0.02  # seconds between two looks at the logs, without change notifications
    idle: float = 2.0  # with them: the safety net's period when caught up
    retry_min: float = 0.5
    retry_max: float = 30.0


@dataclass
class Shipper:
    target: Target
    log_dir: Path
    batching: Batching = field(default_factory=Batching)
    from_start: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    opener: Callable[[Target, Path], Sink] = open_sink
    notify: bool = True  # False: poll only (as where inotify is not available)

    def __post_init__(self) -> None:
        self.position_path = ship_dir(self.log_dir) / f"{self.target.name}.position"
        self.status_path = ship_dir(self.log_dir) / f"{self.target.name}.status.json"
        self.status: dict[str, object] = {
            "sink": self.target.shown,
            "kind": self.target.kind,
            "pid": os.getpid(),
            "state": "starting",
            "shipped": 0,
            "last_key": None,
            "last_ack": None,
            "last_error": None,
            "error_at": None,
            "conflicts": 0,
        }
        self._written = 0.0

    def run(self) -> None:
        """Ship until :attr:`stop` is set."""
        ensure_private_dir(ship_dir(self.log_dir))
        watch = LogWatch(self.log_dir, enabled=self.notify)
        idle = self.batching.idle if watch.available else self.batching.poll
        acked = self._load()
        self.status["shipped"] = acked.shipped
        sink: Sink | None = None
        delay = self.batching.retry_min
        first = True
        failing = False
        try:
            while not self.stop.is_set():
                try:
                    if sink is None:
                        sink = self.opener(self.target, self.log_dir)
                        try:
                            sink.open()
                        except BaseException:
                            sink.close()
                            raise
                        first = True
                    done = self._one_batch(sink, acked, first)
                    first = False
                    if failing:
                        log.info("ship: %s: delivering again", self.target.shown)
                        failing = False
                    delay = self.batching.retry_min
                    if done is None:
                        self._state("caught up")
                        watch.wait(idle, self.stop)
                        continue
                    acked = done
                except (SinkError, TargetError, OSError) as exc:
                    failing = self._failed(exc, failing, delay)
                    if sink is not None:
                        sink.close()
                        sink = None
                    self.stop.wait(delay)
                    delay = min(delay * 2, self.batching.retry_max)
                except Exception as exc:  # a bug: said, retried, never the logger's end
                    log.debug("ship: unexpected error", exc_info=True)
                    failing = self._failed(exc, failing, delay)
                    if sink is not None:
                        sink.close()
                        sink = None
                    self.stop.wait(delay)
                    delay = min(delay * 2, self.batching.retry_max)
        finally:
            watch.close()
            if sink is not None:
                sink.close()
            self._state("stopped", force=True)

    def _load(self) -> ShipPosition:
        if self.from_start:
            start = ShipPosition.start(self.log_dir)
            saved = self._saved()
            if saved is not None:
                start.shipped = saved.shipped
            positions.save(self.position_path, start)
            log.info("ship: %s: from the start of the logs", self.target.shown)
            return start
        saved = self._saved()
        return saved if saved is not None else ShipPosition.start(self.log_dir)

    def _saved(self) -> ShipPosition | None:
        try:
            return positions.load(self.position_path, self.log_dir)
        except ValueError as exc:
            aside = self.position_path.with_name(self.position_path.name + ".corrupt")
            os.replace(self.position_path, aside)
            log.warning(
                "ship: %s: position %s unusable (%s), set aside; shipping from the start"
                " (the sink drops what it holds)",
                self.target.shown,
                self.position_path,
                exc,
            )
            return None

    def _failed(self, exc: BaseException, failing: bool, delay: float) -> bool:
        text = str(exc) or type(exc).__name__
        if not failing:
            log.warning(
                "ship: %s: %s; retrying (backoff up to %gs)",
                self.target.shown,
                text,
                self.batching.retry_max,
            )
        self.status["last_error"] = text
        self.status["error_at"] = self.wall()
        self._state("retrying", force=True)
        return True

    def _one_batch(self, sink: Sink, acked: ShipPosition, first: bool) -> ShipPosition | None:
        """Deliver the next batch; its acknowledged position (None: nothing new)."""
        position = acked.copy()
        items, moved = self._collect(position)
        if not moved:
            return None
        if first and items:
            items = list(sink.reconcile(items))
        if items:
            sink.send(items)
        position.shipped += len(items)
        positions.save(self.position_path, position)
        if items:
            self.status["shipped"] = position.shipped
            self.status["last_key"] = items[-1].key
            self.status["last_ack"] = self.wall()
        self.status["conflicts"] = getattr(sink, "conflicts", 0)
        self._state("shipping")
        return position

    def _collect(self, position: ShipPosition) -> tuple[list[Item], bool]:
        feed = Feed(self.log_dir, position.feed)
        limit = self.batching.lines
        items: list[Item] = []
        moved = False
        deadline: float | None = None
        while True:
            lines = feed.poll()
            try:
                for line in lines:
                    moved = True
                    item = position.generations.item(line)
                    if item is not None:
                        items.append(item)
                        if len(items) >= limit:
                            break
            finally:
                close = getattr(lines, "close", None)
                if close is not None:
                    close()  # the feed's generator: its open file, at once
            if len(items) >= limit or (moved and not items):
                return items, moved
            if not items:
                return items, moved
            now = self.clock()
            if deadline is None:
                deadline = now + self.batching.ms / 1000
            if now >= deadline or self.stop.is_set():
                return items, moved
            self.stop.wait(min(self.batching.poll, deadline - now))

    def _state(self, state: str, *, force: bool = False) -> None:
        changed = self.status.get("state") != state
        self.status["state"] = state
        now = self.clock()
        if not (force or changed or now - self._written >= STATUS_EVERY):
            return
        self._written = now
        self.status["updated"] = self.wall()
        try:
            replace_durably(self.status_path, json.dumps(self.status).encode())
        except OSError as exc:
            log.debug("ship: cannot write %s: %s", self.status_path, exc)
