"""Response times, measured while the log streams past, in bounded memory.

Why a module of its own: this is the one statistic that needs state across messages
(the direct messages still waiting for an answer), and the one whose definition people
will argue about, so it lives in one place with its definition:

    For a direct message m from A to B (not a broadcast, not a CC copy, A != B), B's
    response time is the time from m until the first of
      - B's next direct message to A, or
      - B's first message (direct or broadcast) whose ``reply_to`` is m's id,
    provided that comes within 24 hours of m (timestamps are the server's wall clock).
    A message not answered within 24 hours has no response time. One answer can answer
    several messages: A->B at 10:00 and 10:05, then B->A at 10:20 gives 20 min and 15 min.

Memory: only messages of the last 24 hours can still be answered, so pending messages
older than that (by the timestamp of the message being read) are dropped as the stream
goes on; on top of that at most ``max_pending`` wait at once (the oldest of the pair
go first, counted in ``evicted``). Answers are kept as a count per whole second
(at most 86,401 keys per responder), so median and p90 are exact to the second.

Rooms: each room is its own server (ids repeat, names mean different agents), so an
agent is a (room, name) and a message can only be answered in its own room: pending
messages are kept per (room, asker, responder), and a ``reply_to`` is looked up among
the messages waiting in the replier's room only.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

DAY_SECONDS = 86_400
MAX_PENDING = 250_000
SWEEP_EVERY = 50_000

# Upper bounds (seconds, exclusive) of the distribution's buckets, with their labels.
BUCKETS: tuple[tuple[float, str], ...] = (
    (60, "< 1 min"),
    (300, "1-5 min"),
    (900, "5-15 min"),
    (3600, "15-60 min"),
    (4 * 3600, "1-4 h"),
    (math.inf, "4-24 h"),
)


@dataclass
class ResponderTimes:
    """One responder's answers: how many, median and 90th percentile (seconds)."""

    responder: str
    count: int
    median: float
    p90: float
    buckets: list[int]
    room: str | None = None


def median(counts: Counter[int]) -> float:
    """The median of a multiset given as value -> count (mean of the two middle values
    when the count is even)."""
    return (_kth(counts, _lower_middle(counts)) + _kth(counts, _upper_middle(counts))) / 2


def p90(counts: Counter[int]) -> float:
    """The 90th percentile by nearest rank: the smallest value with at least 90% of
    the values at or below it."""
    total = sum(counts.values())
    return float(_kth(counts, math.ceil(0.9 * total)))


def _lower_middle(counts: Counter[int]) -> int:
    return (sum(counts.values()) + 1) // 2


def _upper_middle(counts: Counter[int]) -> int:
    return sum(counts.values()) // 2 + 1


def _kth(counts: Counter[int], rank: int) -> int:
    """The rank-th smallest value (1-based)."""
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise ValueError("rank beyond the number of values")


def buckets(counts: Counter[int]) -> list[int]:
    """How many answers fall in each of :data:`BUCKETS`."""
    out = [0] * len(BUCKETS)
    for value, count in counts.items():
        for i, (upper, _) in enumerate(BUCKETS):
            if value < upper:
                out[i] += count
                break
    return out


Room = str | None  # None: the plain log directory
Who = tuple[Room, str]  # an agent: its room and name


class ResponseTracker:
    """Feed it every non-CC message in log order; ask :meth:`results` at the end."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        # (room, asker, responder) -> {message id: its time}, oldest first
        self._pending: dict[tuple[Room, str, str], OrderedDict[int, float]] = {}
        self._by_responder: dict[Who, list[tuple[str, OrderedDict[int, float]]]] = {}
        self._answers: dict[Who, Counter[int]] = {}
        self._size = 0
        self._seen = 0
        self.max_pending = max_pending
        self.evicted = 0

    def add(
        self,
        msg_id: int | None,
        sender: str,
        to: str,
        when: float,
        reply_to: int | None,
        room: Room = None,
    ) -> None:
        """One message of ``room`` (``to`` is "all" for a broadcast), ``when`` in seconds."""
        if reply_to is not None:
            self._answer_reply((room, sender), reply_to, when)
        if to == "all" or to == sender:
            return
        waiting = self._pending.get((room, to, sender))
        if waiting:
            self._answer_all((room, sender), waiting, when)
        if msg_id is not None:
            self._wait(msg_id, room, sender, to, when)
        self._seen += 1
        if self._seen % SWEEP_EVERY == 0:
            self._sweep(when)

    def _answer_reply(self, sender: Who, reply_to: int, when: float) -> None:
        for _, waiting in self._by_responder.get(sender, ()):
            asked = waiting.get(reply_to)
            if asked is None:
                continue
            if 0 <= when - asked <= DAY_SECONDS:
                self._record(sender, when - asked)
                del waiting[reply_to]
                self._size -= 1
            return

    def _answer_all(self, responder: Who, waiting: OrderedDict[int, float], when: float) -> None:
        later: list[tuple[int, float]] = []
        for msg_id, asked in waiting.items():
            delay = when - asked
            if delay < 0:  # stamped after this answer (history filled in out of order)
                later.append((msg_id, asked))
            elif delay <= DAY_SECONDS:
                self._record(responder, delay)
        self._size -= len(waiting) - len(later)
        waiting.clear()
        waiting.update(later)

    def _wait(self, msg_id: int, room: Room, sender: str, to: str, when: float) -> None:
        key = (room, sender, to)
        waiting = self._pending.get(key)
        if waiting is None:
            waiting = self._pending[key] = OrderedDict()
            self._by_responder.setdefault((room, to), []).append((sender, waiting))
        self._expire(waiting, when)
        if self._size >= self.max_pending and waiting:
            waiting.popitem(last=False)
            self._size -= 1
            self.evicted += 1
        if msg_id not in waiting:
            self._size += 1
        waiting[msg_id] = when

    def _expire(self, waiting: OrderedDict[int, float], now: float) -> None:
        cutoff = now - DAY_SECONDS
        while waiting:
            first = next(iter(waiting))
            if waiting[first] >= cutoff:
                return
            del waiting[first]
            self._size -= 1

    def _sweep(self, now: float) -> None:
        for waiting in self._pending.values():
            self._expire(waiting, now)

    def _record(self, responder: Who, delay: float) -> None:
        counts = self._answers.get(responder)
        if counts is None:
            counts = self._answers[responder] = Counter()
        counts[int(delay)] += 1

    @property
    def pending(self) -> int:
        """How many direct messages wait for an answer right now."""
        return self._size

    def waiting(self, responder: str, room: Room, now: float) -> tuple[int, float | None]:
        """The direct messages ``responder`` has not answered yet and still can (asked
        within 24 hours before ``now``): how many, and when the oldest was asked."""
        count, oldest = 0, None
        for _asker, waiting in self._by_responder.get((room, responder), ()):
            for asked in waiting.values():
                if 0 <= now - asked <= DAY_SECONDS:
                    count += 1
                    oldest = asked if oldest is None else min(oldest, asked)
        return count, oldest

    def waiting_messages(self) -> list[tuple[Room, str, str, int, float]]:
        """Every direct message waiting for an answer now: (room, asker, responder, id,
        asked), for a caller that acts on the unanswered ones (notify's ``unanswered``)."""
        return [
            (room, asker, responder, msg_id, asked)
            for (room, asker, responder), waiting in self._pending.items()
            for msg_id, asked in waiting.items()
        ]

    def forget(self, room: Room, asker: str, responder: str, msg_id: int) -> None:
        """Stop waiting for an answer to one message (its caller has acted on it)."""
        waiting = self._pending.get((room, asker, responder))
        if waiting is not None and waiting.pop(msg_id, None) is not None:
            self._size -= 1

    def take(self, room: Room, responder: str, counts: Counter[int]) -> None:
        """Answers counted elsewhere (whole seconds -> answers: the index's partials),
        as if recorded here."""
        found = self._answers.get((room, responder))
        if found is None:
            self._answers[room, responder] = Counter(counts)
        else:
            found.update(counts)

    def results(self) -> list[ResponderTimes]:
        """Per responder, most answers first (then by name, then room)."""
        return sorted(
            (
                ResponderTimes(name, sum(c.values()), median(c), p90(c), buckets(c), room)
                for (room, name), c in self._answers.items()
            ),
            key=lambda r: (-r.count, r.responder, r.room or ""),
        )

    def distribution(self, responder: str, room: Room = None) -> Iterable[tuple[int, int]]:
        """(whole seconds, count) pairs of one responder's answers, in order."""
        counts = self._answers.get((room, responder), Counter())
        return sorted(counts.items())
