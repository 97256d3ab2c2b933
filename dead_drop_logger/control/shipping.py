"""Shipping started by the commands: ``ship``, and ``run``/``start`` with ``[ship]``.

Why here: a shipper is a thread beside the follower (or the only work of ``ship``);
control/ starts and stops it, so record/ never knows shipping exists and the
logger's own loop never waits for a sink. Only the ship package's own modules are
imported here; a sink's client library is imported by the sink's thread when it
opens (so ``run`` without ``[ship]`` imports none of them, nor the ship package).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0  # a batch still in flight then is repeated at the next start: harmless
LIBRARIES = {"nats": "nats", "postgresql": "psycopg"}  # each sink's client, by kind


@dataclass(frozen=True)
class ShipConfig:
    """What to ship to, and how (the ``[ship]`` table or the ``ship`` options)."""

    to: tuple[str, ...]
    batch_lines: int = 1000
    batch_ms: float = 5.0
    password_env: str | None = None
    token_env: str | None = None


@dataclass
class Shipping:
    """The running shippers; :meth:`stop` ends them."""

    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)


def check(ship: ShipConfig) -> None:
    """Check every target, and that its client library is installed (found, not
    imported). Raises ship.target.TargetError (one line)."""
    import importlib.util

    from ..ship import target

    for url in ship.to:
        sink = target.parse(url, password_env=ship.password_env, token_env=ship.token_env)
        library = LIBRARIES.get(sink.kind)
        if library is not None and importlib.util.find_spec(library) is None:
            raise target.TargetError(
                f"shipping to {sink.shown} needs {library}: pip install 'dead-drop-logger[ship]'"
            )


def start(
    ship: ShipConfig | None,
    log_dir: Path,
    *,
    from_start: bool = False,
    stop: threading.Event | None = None,
) -> Shipping:
    """One thread per target, each shipping ``log_dir`` until :meth:`Shipping.stop`
    (or ``stop`` is set)."""
    running = Shipping() if stop is None else Shipping(stop)
    if ship is None or not ship.to:
        return running
    from ..ship import target
    from ..ship.shipper import Batching, Shipper

    batching = Batching(lines=ship.batch_lines, ms=ship.batch_ms)
    for url in ship.to:
        sink = target.parse(url, password_env=ship.password_env, token_env=ship.token_env)
        shipper = Shipper(sink, log_dir, batching, from_start=from_start, stop=running.stop_event)
        thread = threading.Thread(target=shipper.run, name=f"ship {sink.shown}", daemon=True)
        thread.start()
        running.threads.append(thread)
        log.info("shipping %s to %s", log_dir, sink.shown)
    return running
