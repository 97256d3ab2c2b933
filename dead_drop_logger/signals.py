"""Stopping on SIGTERM or SIGINT without ever deadlocking.

Python runs a signal handler in the main thread between two bytecodes, which can be
while that thread is inside ``threading.Event.wait`` holding the event's internal lock,
a plain (non-reentrant) ``Lock``. A handler that calls ``Event.set()`` there waits
forever for a lock its own thread holds: the logger ignores every later SIGTERM and
``stop`` gives up after its timeout (seen once in a few hundred stops at a 0.05 s poll).
A :class:`StopEvent`'s lock is reentrant, so ``set()`` from a handler always completes.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType


class StopEvent(threading.Event):
    """A ``threading.Event`` that a signal handler may set."""

    def __init__(self) -> None:
        super().__init__()
        # CPython's Event keeps its state under ``_cond``; an RLock makes a set() that
        # interrupts this thread's own wait() reentrant instead of a self-deadlock.
        self._cond = threading.Condition(threading.RLock())


def stop_on_signals(stop: threading.Event, log: logging.Logger) -> None:
    """Have SIGTERM and SIGINT set ``stop``: finish the batch in hand, then exit."""
    if not isinstance(stop, StopEvent):
        raise TypeError("a signal handler may only set a StopEvent")

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
