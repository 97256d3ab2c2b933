"""``stats`` through the index: the files' partials (:mod:`.statfile`) merged.

Why: the partials hold each file's numbers and the state that crosses its edges, so
the merge, in the reader's order, is a few operations per file, not per message:
0.2 s for 1,000,000 messages instead of the pass's 6 s. :func:`read` merges the
partials of the files read; a file the window cuts, a file the index does not cover,
and the lines past a file's partial (the open day's newest) are read from the file and
made into partials the same way.

Exactly the scan's numbers: the merge is the pass's arithmetic only when the response
tracker's order-dependent parts cannot act, which :func:`read` checks and otherwise
answers by the scan: each room's messages' times never go back in log order (so a
message dropped from the waiting list as older than a day could never have been
answered, and "first" is "earliest"), no id is logged twice in a directory (so a reply
finds its one waiting message), and the waiting list cannot reach its memory cap
(bounded from the direct messages per hour before each of the tracker's sweeps, see
:func:`_sweeps`). Rooms are merged room by room in the reader's order, the tracker's
sweeps (which drop every room's old waiting messages by one room's time) replayed at
the same messages.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..index.store import Store, key_of, key_range
from ..logdir.layout import LogFile
from .logread import Chunk, LogDir, Reader
from .responses import DAY_SECONDS, MAX_PENDING, SWEEP_EVERY, ResponseTracker
from .statcore import THREAD_SPANS, TOP_THREADS, _span, _span_class, _Task
from .statfile import Kept, Partial, Room, feed_chunks, seconds

if TYPE_CHECKING:
    from .indexed import Covered
    from .stats import Stats, Threads


# -- merged -------------------------------------------------------------------------------


class NotExact(Exception):
    """The partials cannot give the scan's numbers here: scan."""


def _sweeps(parts: list[tuple[Room, Kept]]) -> dict[int, list[float]]:
    """The response tracker's sweeps (one every :data:`SWEEP_EVERY` direct messages,
    of every room): after which part each comes, and (when several rooms are read) the
    time before which it drops every room's waiting messages: within one room the
    sweep drops only what no later message could answer, so its time is not needed.
    Raises NotExact when the waiting list could reach its cap (:data:`MAX_PENDING`)
    between two sweeps: a sweep leaves at most the direct messages asked in the day
    (and hour) before the hour it falls in (each room's are in time order), and at
    most :data:`SWEEP_EVERY` come before the next."""
    rooms = len({room for room, _kept in parts}) > 1
    found: dict[int, list[float]] = {}
    done = 0
    for i, (_room, kept) in enumerate(parts):
        count = kept.state["asked"]
        sweep = (done // SWEEP_EVERY + 1) * SWEEP_EVERY
        while sweep <= done + count:
            at = sweep - done  # the sweeping message: the at-th of this part
            hour, before = 0, 0
            for hour_of, n in kept.state["hours"]:
                hour = hour_of
                before += n
                if before >= at:
                    break
            left = at
            for _r, other in parts[:i]:
                left += sum(n for h, n in other.state["hours"] if h >= hour - 25)
            if left + SWEEP_EVERY >= MAX_PENDING:
                raise NotExact
            if rooms:
                found.setdefault(i, []).append(seconds(kept.asked[at - 1]) - DAY_SECONDS)
            sweep += SWEEP_EVERY
        done += count
    return found


class _Waiting:
    """The messages of one (asker, responder) still waiting, in time order: those
    already taken out of their files' partials (``held``), then whole files' (read
    only when an answer needs them), each with the latest sweep's cut since it came."""

    __slots__ = ("held", "pair", "parts")

    def __init__(self, pair: tuple[str, str]) -> None:
        self.pair = pair
        self.held: dict[int, int] = {}
        self.parts: list[list[Any]] = []  # [Kept, cut or None]

    def all(self) -> dict[int, int]:
        held = self.held
        for kept, cut in self.parts:
            ids, times = kept.pending[self.pair]
            start = 0 if cut is None else bisect.bisect_left(times, cut, key=seconds)
            held.update(zip(ids[start:], times[start:], strict=True))
        self.parts.clear()
        return held

    def expire(self, cut: float) -> None:
        """The tracker's sweep: the messages asked before ``cut`` (seconds) go."""
        for entry in self.parts:
            entry[1] = cut if entry[1] is None else max(entry[1], cut)
        if self.held:
            times = list(self.held.values())
            old = bisect.bisect_left(times, cut, key=seconds)
            if old:
                self.held = dict(itertools.islice(self.held.items(), old, None))


@dataclass
class _Merged:
    """One room's threads and answers, merged file by file."""

    graph: dict[int, int]  # reply id -> its root
    seen: set[int]  # roots of the files before
    shared: set[int]  # roots with replies from more than one file (or chained)
    carry: dict[tuple[str, str], _Waiting]  # waiting messages of the files before
    answers: dict[str, Counter[int]]


def merge(parts: list[tuple[Room, Kept]], rooms: bool) -> Stats:
    """The numbers of ``parts`` (each file's partial, in the reader's order)."""
    from .stats import StatsBuilder, who  # (the index's upkeep never loads them)

    builder = StatsBuilder(rooms=rooms)
    totals = builder.totals
    latest: dict[Room, int] = {}
    for room, kept in parts:
        st = kept.state
        if kept.odd or not st["ordered"] or st["dupe"]:
            raise NotExact
        t_first, t_last = st["ts"][2:]
        if t_first is not None:  # each room's times never go back
            if room in latest and t_first < latest[room]:
                raise NotExact
            latest[room] = t_last
    sweeps = _sweeps(parts)
    per_room: dict[Room, _Merged] = {}
    chained: list[dict[int, int]] = []  # per part: its roots that are an earlier file's replies
    for i, (room, kept) in enumerate(parts):
        st = kept.state
        messages, broadcasts, direct, cc, undated, without_task, _all = st["n"]
        totals.messages += messages
        totals.broadcasts += broadcasts
        totals.direct += direct
        totals.cc_copies += cc
        totals.undated += undated
        builder._without_task += without_task
        for stamp in (st["first"], st["last"]):
            if stamp is not None:
                if totals.first is None or stamp < totals.first:
                    totals.first = stamp
                if totals.last is None or stamp > totals.last:
                    totals.last = stamp
        for name, sent, received, bcast, ccs, agent_hours, first, last in st["agents"]:
            agent = builder._agent(name, room)
            agent.sent += sent
            agent.received += received
            agent.broadcasts += bcast
            agent.cc += ccs
            agent.hours = [a + b for a, b in zip(agent.hours, agent_hours, strict=True)]
            for stamp in (first, last):
                if stamp is not None:
                    agent.seen(stamp)
        for a, b, n in st["pairs"]:
            builder._pairs[room, a, b] += n
        builder._days.update(st["days"])
        for day, sender, n in st["day_sender"]:
            builder._day_sender[day, who(sender, room)] += n
        for row, add in zip(builder._weekday_hour, st["wh"], strict=True):
            for h in range(24):
                row[h] += add[h]
        for key, n, agents, first, last in st["tasks"]:
            task = builder._tasks.get((room, key))
            if task is None:
                task = builder._tasks[room, key] = _Task()
            task.messages += n
            task.agents.update(agents)
            for stamp in (first, last):
                if stamp is not None:
                    if task.first is None or stamp < task.first:
                        task.first = stamp
                    if task.last is None or stamp > task.last:
                        task.last = stamp
        merged = per_room.get(room)
        if merged is None:
            merged = per_room[room] = _Merged({}, set(), set(), {}, {})
        chained.append(_threads_of(merged, kept))
        _answers_of(merged, kept, sweeps.get(i, ()), per_room)
    threads = _thread_summary(parts, per_room, chained)
    tracker = ResponseTracker()
    for room, merged in per_room.items():
        for responder, counts in merged.answers.items():
            if counts:
                tracker.take(room, responder, counts)
    return builder.result(threads=threads, tracker=tracker)


def _threads_of(merged: _Merged, kept: Kept) -> dict[int, int]:
    """Resolve ``kept``'s roots against the earlier files' replies; note the roots
    that more than one file (or an earlier file's reply) adds to."""
    graph = merged.graph
    syms = set(kept.syms)
    chain = {s: graph[s] for s in syms & graph.keys()}
    merged.shared.update(chain.values())
    plain = syms - chain.keys()
    merged.shared.update(plain & merged.seen)
    merged.seen.update(plain)
    merged.seen.update(chain.values())
    graph.update(zip(kept.root_ids, kept.root_syms, strict=True))
    if chain:
        for reply_id, sym in zip(kept.root_ids, kept.root_syms, strict=True):
            if sym in chain:
                graph[reply_id] = chain[sym]
    return chain


def _answers_of(
    merged: _Merged, kept: Kept, cuts: Iterable[float], per_room: dict[Room, _Merged]
) -> None:
    """The earlier files' waiting messages this file answers, then its own answers, the
    tracker's sweeps in it (``cuts``: each drops every room's messages asked before
    it), and its waiting messages carried on."""
    answers = merged.answers
    for responder, counts in kept.samples.items():
        found = answers.get(responder)
        if found is None:
            answers[responder] = counts
        else:
            found.update(counts)
    carry = merged.carry
    if carry:
        first_direct = kept.first_direct
        ext = kept.ext
        replies: dict[str, list[tuple[int, int]]] = {}  # replier -> (reply_to, time)
        for (reply_to, replier), when in ext.items():
            replies.setdefault(replier, []).append((reply_to, when))

        def answer(responder: str, asked: int, when: int) -> None:
            delay = seconds(when) - seconds(asked)
            if 0 <= delay <= DAY_SECONDS:
                counts = answers.get(responder)
                if counts is None:
                    counts = answers[responder] = Counter()
                counts[int(delay)] += 1

        for pair in list(carry):
            asker, responder = pair
            direct = first_direct.get((responder, asker))
            if direct is None and responder not in replies:
                continue
            waiting = carry[pair].all()
            if direct is None:  # only replies can answer, each its one message
                for reply_to, when in replies[responder]:
                    asked = waiting.pop(reply_to, None)
                    if asked is not None:
                        answer(responder, asked, when)
            else:  # every one is answered by the first of its reply and that message
                for waiting_id, asked in waiting.items():
                    reply = ext.get((waiting_id, responder))
                    answer(responder, asked, direct if reply is None or direct < reply else reply)
                waiting.clear()
            if not waiting:
                del carry[pair]
    for cut in cuts:
        for other in per_room.values():
            for waiting_of in other.carry.values():
                waiting_of.expire(cut)
    for a, b, _count in kept.state["pending"]:
        held = carry.get((a, b))
        if held is None:
            held = carry[a, b] = _Waiting((a, b))
        held.parts.append([kept, None])


def _thread_summary(
    parts: list[tuple[Room, Kept]], per_room: dict[Room, _Merged], chained: list[dict[int, int]]
) -> Threads:
    lengths: Counter[int] = Counter()
    by_length: dict[int, list[int]] = {}
    joined: dict[tuple[Room, int], list[Any]] = {}  # the shared threads, merged
    candidates: list[tuple[int, int, str, Room, str | None, str | None]] = []
    count = 0
    for (room, kept), chain in zip(parts, chained, strict=True):
        shared = per_room[room].shared
        st = kept.state
        for length, n in st["lengths"]:
            lengths[length] += n
        for length, spans in st["by_length"]:
            found = by_length.get(length)
            if found is None:
                by_length[length] = list(spans)
            else:
                for i, n in enumerate(spans):
                    found[i] += n
        count += len(kept.syms)
        if not kept.syms:
            continue
        syms = kept.syms
        mine = (set(syms) & shared) | chain.keys()  # threads other files add to
        if len(mine) > 64:
            where = {sym: i for i, sym in enumerate(syms) if sym in mine}
            at = [where[sym] for sym in mine]
        else:
            at = [syms.index(sym) for sym in mine]
        for i in at:
            sym, replies = syms[i], kept.replies[i]
            first, last = kept.first(i), kept.last(i)
            length = replies + 1
            lengths[length] -= 1
            by_length[length][_span_class(_span(first, last))] -= 1
            count -= 1
            root = chain.get(sym, sym)
            thread = joined.get((room, root))
            if thread is None:
                joined[room, root] = [replies, first, last]
                continue
            thread[0] += replies
            for stamp in (first, last):
                if stamp is not None:
                    if thread[1] is None or stamp < thread[1]:
                        thread[1] = stamp
                    if thread[2] is None or stamp > thread[2]:
                        thread[2] = stamp
        taken = 0
        for i, sym in enumerate(syms):
            if taken == TOP_THREADS:
                break
            if sym in mine:
                continue
            taken += 1
            candidates.append(
                (-kept.replies[i], sym, room or "", room, kept.first(i), kept.last(i))
            )
    for (room, root), (replies, first, last) in joined.items():
        count += 1
        lengths[replies + 1] += 1
        spans = by_length.setdefault(replies + 1, [0] * (len(THREAD_SPANS) + 1))
        spans[_span_class(_span(first, last))] += 1
        candidates.append((-replies, root, room or "", room, first, last))
    lengths = +lengths
    by_length = {k: v for k, v in by_length.items() if any(v)}
    from .responses import median
    from .stats import ThreadRow, Threads

    if count == 0:
        return Threads()

    top = heapq.nsmallest(TOP_THREADS, candidates, key=lambda c: (c[0], c[1], c[2]))
    rows = [ThreadRow(root, 1 - neg, first, last, room=room)
            for neg, root, _r, room, first, last in top]  # fmt: skip
    return Threads(
        count=count,
        longest=rows[0],
        median_length=median(lengths),
        busiest=rows,
        by_length=dict(sorted(by_length.items())),
    )


# -- the reader's entry -------------------------------------------------------------------


def read(reader: Reader) -> Stats | None:
    """The numbers through the index, or None: no index covers a file read, or the
    partials cannot be the scan's numbers (the caller scans; nothing was counted)."""
    from .indexed import covers

    covered = covers(reader)
    if not covered:
        return None
    before = (Counter(reader.corrupt_in), dict(reader.damaged), dict(reader.unreadable))
    try:
        return _read(reader, covered)
    except NotExact:
        reader.corrupt_in, reader.damaged, reader.unreadable = (
            before[0],
            before[1],
            before[2],
        )
        return None


def _read(reader: Reader, covered: dict[Any, Any]) -> Stats:
    files = reader.files()
    stores: dict[Room, Store] = {}  # each directory's index (a room's own)
    for source, entry in files:
        found = covered.get(entry.path)
        if found is not None:
            stores.setdefault(source.room, found.store)
    parts: list[tuple[Room, Kept]] = []
    scanned: dict[Store, list[tuple[int | None, int, set[int]]]] = {}  # lines read
    for source, entry in files:
        store = stores.get(source.room)
        if store is None:
            raise NotExact  # a directory without an index: the caller scans
        found = covered.get(entry.path)
        kept: Kept | None = None
        if found is not None:
            raw = store.partial(found.record.fid)
            if raw is not None and raw[0] <= found.record.end:
                kept = Kept.load(*raw, _waits_of(store, found.record.fid, raw[0]))
                place = kept.inside(reader.window)
                if place is False:
                    _past(reader, source, entry, found, kept, parts, scanned.setdefault(store, []))
                    continue
                if place is not True:
                    kept = None
        if kept is None:  # read whole
            part = Partial()
            feed_chunks(part, reader, reader.read_file(source, entry))
            parts.append((source.room, part.kept()))
            fid = None if found is None else found.record.fid
            scanned.setdefault(store, []).append((fid, 0, part.ids))
        elif entry.sealed:  # indexed whole, nothing past
            assert found is not None
            if kept.end < found.record.end:
                raise NotExact
            parts.append((source.room, kept))
        else:
            assert found is not None
            _resume(reader, source, entry, found, kept, parts, scanned.setdefault(store, []))
    for store in stores.values():
        if store.dupes() or _dupes(store, scanned.get(store, [])):
            raise NotExact
    return merge(parts, reader.rooms)


Pieces = list[tuple[int | None, int, set[int]]]


def _past(
    reader: Reader,
    source: LogDir,
    entry: LogFile,
    found: Covered,
    kept: Kept,
    parts: list[tuple[Room, Kept]],
    pieces: Pieces,
) -> None:
    """A file whose kept lines are all outside the window: the lines past them only."""
    if entry.sealed:
        if kept.end < found.record.end:
            raise NotExact
        return
    part = Partial()
    feed_chunks(part, reader, reader.read_file(source, entry, kept.end))
    parts.append((source.room, part.kept()))
    pieces.append((found.record.fid, kept.end, part.ids))


def _resume(
    reader: Reader,
    source: LogDir,
    entry: LogFile,
    found: Covered,
    kept: Kept,
    parts: list[tuple[Room, Kept]],
    pieces: Pieces,
) -> None:
    """A covered file: its partial, fed on with the lines past it (none: as it is)."""
    chunks = reader.read_file(source, entry, kept.end)
    first = next(chunks, None)
    if first is None:
        parts.append((source.room, kept))
        return
    raw = found.store.partial(found.record.fid)
    if raw is None or raw[0] != kept.end:
        raise NotExact  # (changed meanwhile)
    part = Partial.load(*raw, _waits_of(found.store, found.record.fid, kept.end)())

    def all_chunks() -> Iterator[Chunk]:
        yield first
        yield from chunks

    feed_chunks(part, reader, all_chunks())
    parts.append((source.room, part.kept()))
    pieces.append((found.record.fid, kept.end, part.ids))


def _waits_of(store: Store, fid: int, end: int) -> Callable[[], bytes]:
    def waits() -> bytes:
        found = store.partial_waits(fid, end)
        if found is None:
            raise NotExact  # saved anew since (the logger): read from the files
        return found

    return waits


def _dupes(store: Store, pieces: Pieces) -> bool:
    """Whether an id of the lines read from the files is also elsewhere (another piece,
    or a row of the index outside the piece's own bytes)."""
    every: set[int] = set()
    for fid, start, ids in pieces:
        if ids & every:
            return True
        every |= ids
        own = (key_of(fid, start), key_range(fid)[1]) if fid is not None else (-1, -1)
        listed = sorted(ids)
        for at in range(0, len(listed), 500):
            chunk = listed[at : at + 500]
            marks = ",".join("?" * len(chunk))
            for _hit in store.query(
                f"SELECT 1 FROM lines WHERE id IN ({marks}) AND key NOT BETWEEN ? AND ? LIMIT 1",
                (*chunk, *own),
            ):
                return True
    return False
