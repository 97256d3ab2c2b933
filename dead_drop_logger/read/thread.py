"""``thread ID``: the conversation a message belongs to, from the logs alone.

Two passes over the files, neither holding the lines themselves: the first maps every
reply to its parent (``reply_to``); from that the thread is known (up to the root,
then every reply below it); the second collects just those lines. Each line's ``id``
and ``reply_to`` are read from the bytes where the logger's layout makes that certain
(``{"id":N,`` leads every line; ``"reply_to":N`` can only be the key, since a quote
inside a string is always escaped) and parsed as JSON otherwise.

CC copies: the server copies each send to the team leads in the same transaction, so a
send's copies take the ids just after it; a copy of a reply replies to the same parent
(it is in the thread anyway), and the root's copies, which reply to nothing, are found
there and checked to be the same send (:func:`is_copy_of`). The thread of a root's copy
is its original's.

Rooms: every room is its own database, so ids repeat across rooms; a message is known
by (room, id) and a reply's parent is in its own room. An id found in several of the
rooms read is ambiguous (:class:`AmbiguousId`): the caller asks for ``--room``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from ..crypt import agentkeys
from .logread import Entry, Line, Message, Reader, parse_line

_ID = re.compile(rb'\{"id":(-?\d+)[,}]')
_REPLY = re.compile(rb'"reply_to":(-?\d+)[,}]')
_REPLY_KEY = b'"reply_to":'

Key = tuple[str | None, int]  # (room, id): None is the plain log directory
LEADS_MAX = 4  # a send's CC copies take the ids just after it, one per team lead
_CC = b'"is_cc":1,'  # only the key can hold these bytes: a quote in a string is escaped
_SAME_SEND = ("from_agent", "content", "timestamp", "task_id", "reply_to")


class AmbiguousId(Exception):
    """The id is logged in more than one of the rooms read."""

    def __init__(self, message_id: int, rooms: list[str | None]) -> None:
        self.message_id = message_id
        self.rooms = rooms
        names = ", ".join("(the log directory)" if r is None else r for r in rooms)
        super().__init__(
            f"message {message_id} is in several rooms ({names}): choose one with --room NAME"
        )


@dataclass(frozen=True)
class Post:
    """One message of a thread: its depth below the root, and a note when it replies
    to a message that is not in the logs."""

    entry: Entry
    depth: int
    note: str | None = None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def line_id(line: Line, reader: Reader) -> int | None:
    """The line's ``id`` (None for a corrupt line or one without an integer id)."""
    found = _ID.match(line.raw)
    if found is not None:
        return int(found.group(1))
    message = parse_line(line.raw)
    if message is None:
        reader.skip(line.file)
        return None
    return _int(message.get("id"))


def _reply(raw: bytes) -> int | None:
    """The line's ``reply_to`` when it is an integer."""
    at = raw.rfind(_REPLY_KEY)
    if at < 0:
        if b"reply_to" not in raw:
            return None
    else:
        found = _REPLY.match(raw, at)
        if found is not None:
            return int(found.group(1))
        tail = raw[at + len(_REPLY_KEY) : at + len(_REPLY_KEY) + 5]
        if tail.startswith(b"null") or tail.startswith(b'"'):
            return None
    message = parse_line(raw)  # an unusual layout: the JSON decides
    return None if message is None else _int(message.get("reply_to"))


def _parents(reader: Reader, target: int) -> tuple[dict[Key, Key], set[str | None]]:
    """Every reply's parent, and the rooms where ``target`` is a CC copy that replies
    to nothing (a copy of a thread's root: its thread is its original's)."""
    parents: dict[Key, Key] = {}
    copy_in: set[str | None] = set()
    target_key = b'{"id":%d,' % target
    for line in reader.lines():
        parent = _reply(line.raw)
        if parent is None:
            if line.raw.startswith(target_key) and _CC in line.raw:
                copy_in.add(line.source.room)
            continue
        child = line_id(line, reader)
        if child is not None:
            room = line.source.room
            parents.setdefault((room, child), (room, parent))
    return parents, copy_in


def is_copy_of(copy: Message, original: Message) -> bool:
    """Whether ``copy`` is the CC copy the server made of ``original`` for a lead: the
    same send (sender, content, time, reply), to the lead instead of the recipient."""
    if agentkeys.is_sealed(copy) or agentkeys.is_sealed(original):
        # sealed per agent, each row to its own keys: the same send has two ciphertexts;
        # compared opened, or (not readable) by everything else the send shares
        same: tuple[str, ...] = ("from_agent", "timestamp", "task_id", "reply_to")
        opened = agentkeys.open_content(copy) and agentkeys.open_content(original)
        if opened and copy.get("content") != original.get("content"):
            return False
    else:
        same = _SAME_SEND
    return (
        copy.get("is_cc") in (1, True)
        and original.get("is_cc") not in (1, True)
        and copy.get("cc_original_to") == original.get("to_agent")
        and all(copy.get(k) == original.get(k) for k in same)
    )


def _neighbours(keys: set[Key]) -> set[Key]:
    """Where each message's CC copies are: the ids just after it (one per lead)."""
    return {(room, ident + k) for room, ident in keys for k in range(1, LEADS_MAX + 1)}


def _members(parents: dict[Key, Key], target: Key) -> set[Key]:
    """The target, its ancestors, and every reply below the topmost one."""
    chain = [target]
    while chain[-1] in parents and parents[chain[-1]] not in chain:
        chain.append(parents[chain[-1]])
    children: defaultdict[Key, list[Key]] = defaultdict(list)
    for child, parent in parents.items():
        children[parent].append(child)
    members = {chain[-1]}
    todo = [chain[-1]]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in members:
                members.add(child)
                todo.append(child)
    return members | set(chain)


class ScanGraph:
    """The replies of every line read, by scanning (the reference for the index's)."""

    def __init__(self, reader: Reader, target: int) -> None:
        self.reader = reader
        self.parents, self.copy_in = _parents(reader, target)

    def copies(self, _target: int) -> set[str | None]:
        return self.copy_in

    def members(self, key: Key) -> set[Key]:
        return _members(self.parents, key)

    def lines(self, wanted: set[Key]) -> Iterator[Line]:
        return _lines_with_ids(self.reader, wanted)


class Graph(Protocol):
    """Who replies to whom: the rooms where ``target`` is a CC copy that replies to
    nothing (a root's copy), each message's thread members, the lines of some ids."""

    def copies(self, target: int) -> set[str | None]: ...

    def members(self, key: Key) -> set[Key]: ...

    def lines(self, wanted: set[Key]) -> Iterator[Line]: ...


def thread(reader: Reader, target: int, use_index: bool = True) -> list[Post] | None:
    """The thread of message ``target`` in id order, None when it is not logged;
    raises :class:`AmbiguousId` when it is logged in more than one room read. Through
    the index when it covers every file read whole (:mod:`.indexgraph`)."""
    graph: Graph | None = None
    if use_index:
        from .indexgraph import index_graph

        graph = index_graph(reader)
    if graph is None:
        graph = ScanGraph(reader, target)
    copy_in = graph.copies(target)
    rooms = list(dict.fromkeys(source.room for source in reader.sources))
    starts: dict[str | None, list[Key]] = {}
    for room in rooms:  # a root's CC copy: its original is one of the ids just before it
        below = range(1, LEADS_MAX + 1) if room in copy_in else ()
        starts[room] = [(room, target), *((room, target - k) for k in below)]
    members: set[Key] = set()
    for keys in starts.values():
        for key in keys:
            members |= graph.members(key)
    corrupt = reader.corrupt_in.copy()
    every: dict[Key, Entry] = {}
    for line in graph.lines(members | _neighbours(members)):
        message = parse_line(line.raw)
        ident = None if message is None else _int(message.get("id"))
        if message is not None and ident is not None:
            every.setdefault((line.source.room, ident), Entry(line, message))
    reader.corrupt_in = corrupt  # the first pass counted them already
    holding = [room for room in rooms if (room, target) in every]
    if not holding:
        return None
    if len(holding) > 1:
        raise AmbiguousId(target, holding)
    room = holding[0]
    start = (room, target)
    for key in starts[room][1:]:
        if key in every and is_copy_of(every[start].message, every[key].message):
            start = key
            break
    shown = graph.members(start) | {(room, target)}
    for key in list(shown):  # each message's CC copies, the root's too
        for copy in _neighbours({key}):
            if (
                copy in every
                and key in every
                and is_copy_of(every[copy].message, every[key].message)
            ):
                shown.add(copy)
    found = {ident: every[(room, ident)] for _where, ident in shown if (room, ident) in every}
    posts: list[Post] = []
    for ident in sorted(found):
        parent = _int(found[ident].message.get("reply_to"))
        note = None
        if parent is not None and parent not in found:
            note = f"a reply to #{parent}, which is not in the logs"
        posts.append(Post(found[ident], _depth(found, ident), note))
    return posts


def _depth(found: dict[int, Entry], ident: int) -> int:
    """How many logged ancestors the message has (a cycle stops the count)."""
    depth, seen = 0, {ident}
    while True:
        parent = _int(found[ident].message.get("reply_to"))
        if parent is None or parent not in found or parent in seen:
            return depth
        depth, ident = depth + 1, parent
        seen.add(parent)


def _lines_with_ids(reader: Reader, wanted: set[Key]) -> Iterator[Line]:
    for line in reader.lines():
        ident = line_id(line, reader)
        if ident is not None and (line.source.room, ident) in wanted:
            yield line
