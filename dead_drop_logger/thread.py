"""``thread ID``: the conversation a message belongs to, from the logs alone.

Two passes over the files, neither holding the lines themselves: the first maps every
reply to its parent (``reply_to``); from that the thread is known (up to the root,
then every reply below it); the second collects just those lines. Each line's ``id``
and ``reply_to`` are read from the bytes where the logger's layout makes that certain
(``{"id":N,`` leads every line; ``"reply_to":N`` can only be the key, since a quote
inside a string is always escaped) and parsed as JSON otherwise.

Rooms: every room is its own database, so ids repeat across rooms; a message is known
by (room, id) and a reply's parent is in its own room. An id found in several of the
rooms read is ambiguous (:class:`AmbiguousId`): the caller asks for ``--room``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from .logread import Entry, Line, Reader, parse_line

_ID = re.compile(rb'\{"id":(-?\d+)[,}]')
_REPLY = re.compile(rb'"reply_to":(-?\d+)[,}]')
_REPLY_KEY = b'"reply_to":'

Key = tuple[str | None, int]  # (room, id): None is the plain log directory


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


def line_id(raw: bytes, reader: Reader) -> int | None:
    """The line's ``id`` (None for a corrupt line or one without an integer id)."""
    found = _ID.match(raw)
    if found is not None:
        return int(found.group(1))
    message = parse_line(raw)
    if message is None:
        reader.corrupt += 1
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


def _parents(reader: Reader) -> dict[Key, Key]:
    parents: dict[Key, Key] = {}
    for line in reader.lines():
        parent = _reply(line.raw)
        if parent is None:
            continue
        child = line_id(line.raw, reader)
        if child is not None:
            room = line.source.room
            parents.setdefault((room, child), (room, parent))
    return parents


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


def thread(reader: Reader, target: int) -> list[Post] | None:
    """The thread of message ``target`` in id order, None when it is not logged;
    raises :class:`AmbiguousId` when it is logged in more than one room read."""
    parents = _parents(reader)
    rooms = list(dict.fromkeys(source.room for source in reader.sources))
    members: set[Key] = set()
    for room in rooms:
        members |= _members(parents, (room, target))
    corrupt = reader.corrupt
    every: dict[Key, Entry] = {}
    for line in _lines_with_ids(reader, members):
        message = parse_line(line.raw)
        ident = None if message is None else _int(message.get("id"))
        if message is not None and ident is not None:
            every.setdefault((line.source.room, ident), Entry(line, message))
    reader.corrupt = corrupt  # the first pass counted them already
    holding = [room for room in rooms if (room, target) in every]
    if not holding:
        return None
    if len(holding) > 1:
        raise AmbiguousId(target, holding)
    room = holding[0]
    found = {ident: entry for (where, ident), entry in every.items() if where == room}
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
        ident = line_id(line.raw, reader)
        if ident is not None and (line.source.room, ident) in wanted:
            yield line
