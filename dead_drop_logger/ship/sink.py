"""What every sink does, and which one a target opens.

Why it looks like this: a shipper owns one sink and calls it from its own thread, one
batch at a time, and moves its position only after :meth:`Sink.send` returned (the
sink acknowledged every line). A sink that fails raises :class:`SinkError`; the
shipper closes it, waits (backoff) and opens it again. Each sink's third-party client
(nats-py, psycopg) is imported in :func:`open_sink` only, so nothing imports them
unless a sink of that kind is configured (the ``[ship]`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .position import Item
from .target import Target


class SinkError(Exception):
    """The sink refused or could not take a batch (the message is fit for the log)."""


class MissingLibrary(SinkError):
    """The sink's client library is not installed (the ``[ship]`` extra)."""


class Sink(Protocol):
    def open(self) -> None:
        """Connect, and create the stream or table if missing."""

    def reconcile(self, items: Sequence[Item]) -> Sequence[Item]:
        """The first batch after :meth:`open`, without what the sink is known to hold
        already (the NATS stream's last message per room); the others return it."""

    def send(self, items: Sequence[Item]) -> None:
        """Deliver ``items``; return only once the sink has acknowledged them all."""

    def close(self) -> None: ...


class PreparingSink(Sink, Protocol):
    """A sink that builds what it sends apart from sending it (the rows, the frames),
    so the shipper can build the next batch's while this one is in flight."""

    def prepare(self, items: Sequence[Item]) -> object:
        """What :meth:`send_prepared` sends for ``items``; free of the connection (it
        runs in the shipper's reading thread, while another batch is sent)."""

    def send_prepared(self, items: Sequence[Item], prepared: object) -> None:
        """:meth:`Sink.send` of ``items``, with what :meth:`prepare` built for them."""


def open_sink(target: Target, log_dir: Path) -> Sink:
    """The sink for ``target`` (not yet opened). Raises MissingLibrary."""
    try:
        if target.kind == "nats":
            from .nats_sink import NatsSink

            return NatsSink(target)
        if target.kind == "postgresql":
            from .pg_sink import PostgresSink

            return PostgresSink(target)
    except ImportError as exc:
        raise MissingLibrary(
            f"{exc.name or 'a library'} is not installed: pip install 'dead-drop-logger[ship]'"
        ) from None
    from .http_sink import HttpSink

    return HttpSink(target)
