"""The numbers of one log file that ``stats`` keeps in the index: its *partial*.

Why: ``stats`` is one pass in log order over every message (:class:`.stats.StatsBuilder`),
6 s over 1,000,000 messages. Its numbers are sums, minima and maxima per agent, pair,
day, hour, task and thread, except two that depend on order across files: a reply's
thread (its root can be in an earlier file) and response times (a message waits for an
answer that can come in a later file). So when the index takes in a file's lines
(:mod:`.indexed`) it also feeds that file's :class:`Partial`, in file order: its
counts, and for those two the state that crosses the file's edges: every reply's root
*within* the file, the direct messages still unanswered at its end, the first direct
message of each pair and the replies to messages not in the file (what can answer an
earlier file's waiting messages), and the answers found inside it as a count per whole
second. :mod:`.statparts` merges them. A partial is made the same way from lines read
from a file (:func:`feed_chunks`: a file the window cuts, lines past the index).

It holds names, ids and times, as the index's rows do, never content (an encrypted
log directory's index holds no more than its rows). Kept as a JSON state, the threads'
columns of integers and their times, and the waiting messages apart (:class:`Kept`:
read only when an answer needs them). Its arithmetic is the pass's
(:mod:`.statcore`'s counters, the tracker's float seconds) for times that never go
back; a file whose times do is marked (``ordered``) and never merged.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..index.store import CC, ODD, FileRecord, Store, key_of, key_range, micros
from .logread import Chunk, Reader, Tail, Window, parse_line
from .responses import DAY_SECONDS
from .statcore import THREAD_SPANS, _Agent, _span, _span_class, _Task, parse_stamp

Room = str | None  # None: the plain log directory

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
EPOCH_US = 719_162 * DAY_US  # 1970-01-01 in the index's microseconds since 0001-01-01


def seconds(ts: int) -> float:
    """A time as the response tracker holds it: exactly ``(when - 1970).total_seconds()``."""
    return (ts - EPOCH_US) / 10**6


class Partial:
    """The numbers of one file's messages, fed in file order (:meth:`feed`)."""

    def __init__(self) -> None:
        self.end = 0  # the bytes of the file it covers
        self.saved = 0  # of those, what the index holds (the logger saves it now and then)
        self.messages = self.broadcasts = self.direct = self.cc = self.undated = 0
        self.first: str | None = None
        self.last: str | None = None
        self.agents: dict[str, _Agent] = {}
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.days: Counter[str] = Counter()
        self.day_sender: Counter[tuple[str, str]] = Counter()
        self.weekday_hour = [[0] * 24 for _ in range(7)]
        self.tasks: dict[str, _Task] = {}
        self.without_task = 0
        self.roots: dict[int, int] = {}  # reply id -> its root within the file
        self.threads: dict[int, list[Any]] = {}  # root -> [replies, first, last]
        self.ts_min: int | None = None  # every line's time (the window's test)
        self.ts_max: int | None = None
        self.undated_all = 0
        self.t_first: int | None = None  # the messages' (not CC copies') times
        self.t_last: int | None = None
        self.ordered = True  # their times never went back
        self.asked = array("q")  # the times of the direct messages the tracker counts
        self.pending: dict[tuple[str, str], dict[int, int]] = {}  # (asker, responder)
        self.waiting: dict[int, tuple[str, str]] = {}  # waiting id -> its pair
        self.samples: dict[str, Counter[int]] = {}  # responder -> whole seconds -> answers
        self.first_direct: dict[tuple[str, str], int] = {}  # (from, to) -> first time
        self.ext: dict[tuple[int, str], int] = {}  # (reply_to, from) -> first time
        self.ids: set[int] = set()  # ids seen (not kept: rebuilt from the rows)
        self.dupe = False  # an id seen twice
        self.odd = False  # a line the fields cannot say as the scan's exact path would

    def _agent(self, name: str) -> _Agent:
        agent = self.agents.get(name)
        if agent is None:
            agent = self.agents[name] = _Agent()
        return agent

    def feed(
        self,
        msg_id: int,
        sender: str,
        to: str,
        stamp: str | None,
        ts: int | None,
        is_cc: bool,
        task: str | None,
        reply: int | None,
    ) -> None:
        """One line (``ts``: its time in the index's microseconds, None: undated;
        ``stamp``: its text when dated), as :meth:`.stats.StatsBuilder.add_fields`."""
        if ts is None:
            self.undated_all += 1
            stamp = None
        else:
            if self.ts_min is None or ts < self.ts_min:
                self.ts_min = ts
            if self.ts_max is None or ts > self.ts_max:
                self.ts_max = ts
        ids = self.ids
        if msg_id in ids:
            self.dupe = True
        ids.add(msg_id)
        if is_cc:
            self.cc += 1
            copied = self._agent(to)
            copied.cc += 1
            if stamp is not None:
                copied.seen(stamp)
            return
        self.messages += 1
        agent = self._agent(sender)
        agent.sent += 1
        broadcast = to == "all"
        if broadcast:
            self.broadcasts += 1
            agent.broadcasts += 1
        else:
            self.direct += 1
            self.pairs[sender, to] += 1
            self._agent(to).received += 1
        if ts is None or stamp is None:
            self.undated += 1
        else:
            if self.first is None or stamp < self.first:
                self.first = stamp
            if self.last is None or stamp > self.last:
                self.last = stamp
            day = stamp[:10]
            self.days[day] += 1
            self.day_sender[day, sender] += 1
            hour = ts // HOUR_US % 24
            self.weekday_hour[ts // DAY_US % 7][hour] += 1
            agent.hours[hour] += 1
            agent.seen(stamp)
            if not broadcast:
                self._agent(to).seen(stamp)
        if task is None:
            self.without_task += 1
        else:
            found = self.tasks.get(task)
            if found is None:
                found = self.tasks[task] = _Task()
            found.messages += 1
            found.agents.add(sender)
            if not broadcast:
                found.agents.add(to)
            if stamp is not None:
                if found.first is None or stamp < found.first:
                    found.first = stamp
                if found.last is None or stamp > found.last:
                    found.last = stamp
        if reply is not None:
            root = self.roots.get(reply, reply)
            self.roots[msg_id] = root
            thread = self.threads.get(root)
            if thread is None:
                thread = self.threads[root] = [0, None, None]
            thread[0] += 1
            if stamp is not None:
                if thread[1] is None or stamp < thread[1]:
                    thread[1] = stamp
                if thread[2] is None or stamp > thread[2]:
                    thread[2] = stamp
        if ts is not None:
            self._track(msg_id, sender, to, ts, reply)

    def _track(self, msg_id: int, sender: str, to: str, ts: int, reply: int | None) -> None:
        """The response tracker's part, for times that never go back (else the partial
        is not used: ``ordered``)."""
        if self.t_last is not None and ts < self.t_last:
            self.ordered = False
        if self.t_first is None:
            self.t_first = ts
        self.t_last = ts
        now = seconds(ts)
        if reply is not None:
            pair = self.waiting.get(reply)
            if pair is None:
                if reply not in self.ids:
                    self.ext.setdefault((reply, sender), ts)
            elif pair[1] == sender:
                asked = self.pending[pair][reply]
                delay = now - seconds(asked)
                if 0 <= delay <= DAY_SECONDS:
                    self._record(sender, delay)
                    del self.pending[pair][reply]
                    del self.waiting[reply]
        if to == "all" or to == sender:
            return
        self.asked.append(ts)
        self.first_direct.setdefault((sender, to), ts)
        answered = self.pending.get((to, sender))
        if answered:
            for waiting_id, asked in answered.items():
                delay = now - seconds(asked)
                if 0 <= delay <= DAY_SECONDS:
                    self._record(sender, delay)
                del self.waiting[waiting_id]
            answered.clear()
        waiting = self.pending.get((sender, to))
        if waiting is None:
            waiting = self.pending[sender, to] = {}
        waiting[msg_id] = ts
        self.waiting[msg_id] = (sender, to)

    def _record(self, responder: str, delay: float) -> None:
        counts = self.samples.get(responder)
        if counts is None:
            counts = self.samples[responder] = Counter()
        counts[int(delay)] += 1

    def _prune(self) -> None:
        """Forget waiting messages no later message can answer (older than a day)."""
        if self.t_last is None:
            return
        now = seconds(self.t_last)
        for pair, waiting in list(self.pending.items()):
            old = [i for i, asked in waiting.items() if now - seconds(asked) > DAY_SECONDS]
            for waiting_id in old:
                del waiting[waiting_id]
                del self.waiting[waiting_id]
            if not waiting:
                del self.pending[pair]

    # -- kept in the index ---------------------------------------------------------

    def dump(self) -> tuple[str, bytes, str, bytes]:
        """(state as JSON, the threads' ints, their texts, the waiting messages' ints)
        for :meth:`.Store.save_partial`."""
        self._prune()
        order = sorted(self.threads, key=lambda root: (-self.threads[root][0], root))
        rows = [self.threads[root] for root in order]
        lengths: Counter[int] = Counter()
        by_length: dict[int, list[int]] = {}
        for replies, first, last in rows:
            lengths[replies + 1] += 1
            spans = by_length.setdefault(replies + 1, [0] * (len(THREAD_SPANS) + 1))
            spans[_span_class(_span(first, last))] += 1
        stamps = [stamp or "" for row in rows for stamp in row[1:]]  # first, last, ...
        ints = array("q", order)
        ints.extend(r[0] for r in rows)
        ints.extend(self.roots.keys())
        ints.extend(self.roots.values())
        at = 0
        ints.append(at)
        for stamp in stamps:
            at += len(stamp)
            ints.append(at)
        waits = array("q", self.asked)
        pend_pairs = []
        for (a, b), waiting in self.pending.items():
            if waiting:
                waits.extend(waiting.keys())
                waits.extend(waiting.values())
                pend_pairs.append([a, b, len(waiting)])
        hours: Counter[int] = Counter(ts // HOUR_US for ts in self.asked)
        state = {
            "n": [self.messages, self.broadcasts, self.direct, self.cc, self.undated,
                  self.without_task, self.undated_all],
            "first": self.first, "last": self.last,
            "agents": [[name, a.sent, a.received, a.broadcasts, a.cc, a.hours, a.first, a.last]
                       for name, a in self.agents.items()],
            "pairs": [[a, b, n] for (a, b), n in self.pairs.items()],
            "days": self.days,
            "day_sender": [[d, s, n] for (d, s), n in self.day_sender.items()],
            "wh": self.weekday_hour,
            "tasks": [[k, t.messages, sorted(t.agents), t.first, t.last]
                      for k, t in self.tasks.items()],
            "threads": len(order), "roots": len(self.roots), "asked": len(self.asked),
            "hours": sorted(hours.items()),
            "lengths": [[k, v] for k, v in lengths.items()],
            "by_length": [[k, v] for k, v in by_length.items()],
            "ts": [self.ts_min, self.ts_max, self.t_first, self.t_last],
            "ordered": self.ordered, "dupe": self.dupe,
            "pending": pend_pairs,
            "samples": [[r, [[d, n] for d, n in c.items()]] for r, c in self.samples.items()],
            "first_direct": [[a, b, t] for (a, b), t in self.first_direct.items()],
            "ext": [[i, s, t] for (i, s), t in self.ext.items()],
        }  # fmt: skip
        text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
        return text, ints.tobytes(), "".join(stamps), waits.tobytes()

    @classmethod
    def load(cls, end: int, state_text: str, raw: bytes, texts: str, waits: bytes) -> Partial:
        """A partial to go on feeding (the inverse of :meth:`dump`; ``ids`` empty)."""
        kept = Kept.load(end, state_text, raw, texts, waits)
        part = cls()
        part.end = end
        st = kept.state
        (part.messages, part.broadcasts, part.direct, part.cc, part.undated,
         part.without_task, part.undated_all) = st["n"]  # fmt: skip
        part.first, part.last = st["first"], st["last"]
        for name, sent, received, broadcasts, cc, hours, first, last in st["agents"]:
            agent = part._agent(name)
            agent.sent, agent.received, agent.broadcasts, agent.cc = sent, received, broadcasts, cc
            agent.hours, agent.first, agent.last = hours, first, last
        part.pairs = Counter({(a, b): n for a, b, n in st["pairs"]})
        part.days = Counter(st["days"])
        part.day_sender = Counter({(d, s): n for d, s, n in st["day_sender"]})
        part.weekday_hour = st["wh"]
        for key, messages, agents, first, last in st["tasks"]:
            task = part.tasks[key] = _Task()
            task.messages, task.agents, task.first, task.last = messages, set(agents), first, last
        for i, root in enumerate(kept.syms):
            part.threads[root] = [kept.replies[i], kept.first(i), kept.last(i)]
        part.roots = dict(zip(kept.root_ids, kept.root_syms, strict=True))
        part.ts_min, part.ts_max, part.t_first, part.t_last = st["ts"]
        part.ordered, part.dupe = st["ordered"], st["dupe"]
        part.asked = array("q", kept.asked)
        for (a, b), (ids, times) in kept.pending.items():
            part.pending[a, b] = dict(zip(ids, times, strict=True))
            for waiting_id in ids:
                part.waiting[waiting_id] = (a, b)
        part.samples = kept.samples
        part.first_direct = kept.first_direct
        part.ext = kept.ext
        return part

    def kept(self) -> Kept:
        """What the merge reads, without a trip through the index."""
        return Kept.load(self.end, *self.dump(), odd=self.odd)


Waits = bytes | Callable[[], bytes]  # the waiting messages' ints, or how to read them


@dataclass
class Kept:
    """A partial as the merge reads it: the small numbers as they were kept, the threads
    in columns ordered longest first (then by root); the waiting messages read only
    when asked for (a merge that no answer crosses never reads them)."""

    end: int
    state: dict[str, Any]
    syms: array[int]
    replies: array[int]
    root_ids: array[int]
    root_syms: array[int]
    offsets: array[int]  # of each thread's first and last time in texts
    texts: str
    waits: Waits
    odd: bool = False
    _asked: array[int] | None = None
    _pending: dict[tuple[str, str], tuple[array[int], array[int]]] | None = None

    @classmethod
    def load(
        cls, end: int, state_text: str, raw: bytes, texts: str, waits: Waits, odd: bool = False
    ) -> Kept:
        state = json.loads(state_text)
        ints = array("q")
        ints.frombytes(raw)
        n, m = state["threads"], state["roots"]
        return cls(
            end,
            state,
            ints[:n],
            ints[n : 2 * n],
            ints[2 * n : 2 * n + m],
            ints[2 * n + m : 2 * n + 2 * m],
            ints[2 * n + 2 * m :],
            texts,
            waits,
            odd,
        )

    def first(self, i: int) -> str | None:
        """The i-th thread's first reply's time (None: no dated reply)."""
        return self.texts[self.offsets[2 * i] : self.offsets[2 * i + 1]] or None

    def last(self, i: int) -> str | None:
        return self.texts[self.offsets[2 * i + 1] : self.offsets[2 * i + 2]] or None

    def _waits(self) -> None:
        raw = self.waits if isinstance(self.waits, bytes) else self.waits()
        ints = array("q")
        ints.frombytes(raw)
        k = self.state["asked"]
        self._asked = ints[:k]
        self._pending = {}
        at = k
        for a, b, count in self.state["pending"]:
            self._pending[a, b] = (ints[at : at + count], ints[at + count : at + 2 * count])
            at += 2 * count

    @property
    def asked(self) -> array[int]:
        """The times of the direct messages the tracker counted, in file order."""
        if self._asked is None:
            self._waits()
        assert self._asked is not None
        return self._asked

    @property
    def pending(self) -> dict[tuple[str, str], tuple[array[int], array[int]]]:
        """(asker, responder) -> the ids and times of those still waiting at its end."""
        if self._pending is None:
            self._waits()
        assert self._pending is not None
        return self._pending

    @property
    def samples(self) -> dict[str, Counter[int]]:
        return {r: Counter({d: n for d, n in c}) for r, c in self.state["samples"]}

    @property
    def first_direct(self) -> dict[tuple[str, str], int]:
        return {(a, b): t for a, b, t in self.state["first_direct"]}

    @property
    def ext(self) -> dict[tuple[int, str], int]:
        return {(i, s): t for i, s, t in self.state["ext"]}

    def inside(self, window: Window) -> bool | None:
        """True: every line is inside ``window``; False: none is; None: it cuts the file."""
        if not window.bounded:
            return True
        ts_min, ts_max = self.state["ts"][:2]
        undated = self.state["n"][6]
        if ts_min is None:
            return False  # no dated line: none is inside a bounded window
        low = micros(window.since) if window.since is not None else None
        high = micros(window.until) if window.until is not None else None
        if (low is not None and ts_max < low) or (high is not None and ts_min >= high):
            return False
        if undated == 0 and (low is None or ts_min >= low) and (high is None or ts_max < high):
            return True
        return None


# -- made as the index takes in a file's lines ------------------------------------------

SAVE_EVERY = 4 << 20  # bytes of a growing file between two saves of its partial (the logger)


def feed_batch(part: Partial, lines: Iterable[tuple[Any, ...]]) -> None:
    """The lines of an index batch (:func:`..index.store.batch_of`)."""
    feed = part.feed
    for _off, _len, msg_id, ts, sender, to, task, reply, flags, stamp in lines:
        if flags & ODD:
            part.odd = True
            continue
        feed(msg_id, sender, to, stamp, ts, bool(flags & CC), task, reply)


def known_ids(store: Store, record: FileRecord, end: int) -> set[int]:
    """The ids of the rows of ``record``'s file before byte ``end``."""
    low = key_range(record.fid)[0]
    return {
        i
        for (i,) in store.query(
            "SELECT id FROM lines WHERE key BETWEEN ? AND ? AND id IS NOT NULL",
            (low, key_of(record.fid, end) - 1),
        )
    }


# -- read from the files ------------------------------------------------------------------

_TIMESTAMP = b',"timestamp":"'


def feed_chunks(
    part: Partial, reader: Reader, chunks: Iterable[Chunk], upto: int | None = None
) -> None:
    """Lines read from a file into ``part``, inside the reader's window (as
    :func:`.statlines.feed` reads them; a line of another shape makes the partial
    odd: the caller scans instead), up to byte ``upto`` (None: the end). Corrupt lines
    are counted in the reader."""
    from .statlines import _HEAD as head_re
    from .statlines import _TAIL as tail_re

    window = reader.window
    bounded = window.bounded
    feed = part.feed
    if upto is not None:
        chunks = Tail._upto(iter(chunks), upto)
    for chunk in chunks:
        part.end = chunk.end
        for line in chunk.lines():
            head = head_re.match(line)
            tail = None
            if head is not None:
                at = line.find(_TIMESTAMP, head.end())
                tail = tail_re.match(line, at) if at > 0 else None
            if head is None or tail is None:
                if parse_line(line) is None:
                    reader.skip(chunk.file)
                else:
                    part.odd = True
                continue
            stamp_bytes, cc, task, reply = tail.groups()
            try:
                stamp = stamp_bytes.decode()
                sender, to = head.group(2).decode(), head.group(3).decode()
                task_id = None if task is None else task.decode()
            except UnicodeDecodeError:
                reader.skip(chunk.file)
                continue
            when = parse_stamp(stamp)
            if bounded and not window.admits(when):
                continue
            feed(
                int(head.group(1)),
                sender,
                to,
                stamp,
                None if when is None else micros(when),
                cc == b"1",
                task_id,
                None if reply is None else int(reply),
            )
