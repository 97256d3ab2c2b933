"""One sink's shipper: read committed lines, deliver a batch, save the position.

Why it looks like this:
- One thread per sink, each with its own feed and position: a slow or dead sink holds
  back only itself, never another sink nor the logger (which never waits for a
  shipper; a shipper only reads the log files). Memory is one batch.
- A batch is up to ``lines`` lines, or what there is after ``ms`` milliseconds since
  its first line; then it is sent, and only once the sink has acknowledged it is the
  position saved (:mod:`.position`). A crash (``kill -9``) anywhere repeats at most
  the batch in flight; the sink's key drops the repeat.
- Through a backlog (a batch came full), the next batch is read from the logs, and
  built into what the sink sends (:meth:`.sink.PreparingSink.prepare`: the rows, the
  frames), in a second thread while this one is in flight: the sink's round trip and
  the server's work overlap the Python work of reading, instead of adding to it.
  Nothing about positions changes: the batch read ahead starts from a copy of the
  position of the batch in flight, is sent only after that one was acknowledged and
  its position saved, and is thrown away if it failed. Memory is then two batches.
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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..files import create_private, ensure_private_dir, write_all
from ..read.feed import Feed
from . import position as positions
from .position import Item, ShipPosition
from .sink import PreparingSink, Sink, SinkError, open_sink
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
class Batch:
    """Lines read from the logs for one delivery, and where reading got to after them."""

    position: ShipPosition
    items: list[Item]
    moved: bool  # False: nothing new at all (caught up)
    prepared: object = None  # what the sink built for ``items`` (None: not yet)


def _prepare(sink: Sink, items: Sequence[Item]) -> object:
    prepare = getattr(sink, "prepare", None)
    return prepare(items) if prepare is not None and items else None


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
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: Future[Batch] | None = None

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
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ship-read")
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
                    self._drop_ahead()
                    failing = self._failed(exc, failing, delay)
                    if sink is not None:
                        sink.close()
                        sink = None
                    self.stop.wait(delay)
                    delay = min(delay * 2, self.batching.retry_max)
                except Exception as exc:  # a bug: said, retried, never the logger's end
                    log.debug("ship: unexpected error", exc_info=True)
                    self._drop_ahead()
                    failing = self._failed(exc, failing, delay)
                    if sink is not None:
                        sink.close()
                        sink = None
                    self.stop.wait(delay)
                    delay = min(delay * 2, self.batching.retry_max)
        finally:
            self._drop_ahead()
            self._reader.shutdown()
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
        ahead, self._ahead = self._ahead, None
        batch = ahead.result() if ahead is not None else self._read(acked)
        if not batch.moved:
            return None
        items: Sequence[Item] = batch.items
        prepared = batch.prepared
        if first and items:
            kept = list(sink.reconcile(items))
            if len(kept) != len(items):
                items, prepared = kept, None
        if prepared is None:
            prepared = _prepare(sink, items)
        if len(batch.items) >= self.batching.lines and self._reader is not None:
            # a backlog: read (and build) the next batch while this one is in flight
            self._ahead = self._reader.submit(self._read, batch.position.copy(), sink)
        if items:
            if prepared is None:
                sink.send(items)
            else:
                cast(PreparingSink, sink).send_prepared(items, prepared)
        position = batch.position
        position.shipped = acked.shipped + len(items)
        positions.save(self.position_path, position)
        if items:
            self.status["shipped"] = position.shipped
            self.status["last_key"] = items[-1].key
            self.status["last_ack"] = self.wall()
        self.status["conflicts"] = getattr(sink, "conflicts", 0)
        self._state("shipping")
        return position

    def _read(self, after: ShipPosition, sink: Sink | None = None) -> Batch:
        """The next batch after ``after`` (untouched: read from a copy); built for
        ``sink`` when given (in the reading thread)."""
        position = after.copy()
        items, moved = self._collect(position)
        batch = Batch(position, items, moved)
        if sink is not None:
            batch.prepared = _prepare(sink, items)
        return batch

    def _drop_ahead(self) -> None:
        """Throw away the batch read ahead (after a failure, or at the end)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            try:
                ahead.result()
            except Exception:  # its error is met again when the batch is read anew
                log.debug("ship: reading ahead failed", exc_info=True)

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
        try:  # atomic for readers, not fsynced: what it says is seen again at the next
            # write, and a lost one costs nothing (two fsyncs per batch did, in latency)
            tmp = self.status_path.with_name(self.status_path.name + ".tmp")
            fd = create_private(tmp)
            try:
                write_all(fd, json.dumps(self.status).encode())
            finally:
                os.close(fd)
            os.replace(tmp, self.status_path)
        except OSError as exc:
            log.debug("ship: cannot write %s: %s", self.status_path, exc)
