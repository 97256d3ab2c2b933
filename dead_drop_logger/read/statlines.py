"""Feeding ``stats`` fast: the seven fields it needs, read from each stored line by bytes.

Why: ``json.loads`` of a whole line (content included, which is most of its bytes) is
most of the cost of ``stats``, and the numbers need only ``id``, ``from_agent``,
``to_agent``, ``timestamp``, ``is_cc``, ``task_id`` and ``reply_to``. A line the logger
wrote has its keys in table order, so two anchored regular expressions read the part
before ``content`` and the part from ``timestamp`` on. The cut is exact: inside a JSON
string every ``"`` is escaped, so ``,"timestamp":"`` cannot occur in the content. Any line
of another shape (a name with an escape, a new column, a corrupt line) goes through the
exact path, :meth:`logread.Reader.parse`'s ``parse_line``; tests check that both paths
give the same numbers on hostile logs. The fast path checks a line's structure, not
every byte of its content: a line damaged only inside its content still counts.
"""

from __future__ import annotations

import re

from .logread import Reader, parse_line
from .stats import Stats, StatsBuilder, parse_stamp

_HEAD = re.compile(rb'\{"id":(\d+),"from_agent":"([^"\\]*)","to_agent":"([^"\\]*)","content":')
_TAIL = re.compile(
    rb',"timestamp":"([^"\\]*)","read_flag":[^,"]*,"is_cc":(\d+),'
    rb'"cc_original_to":(?:null|"[^"\\]*"),"task_id":(?:null|"([^"\\]*)"),'
    rb'"reply_to":(?:null|(\d+))(?:,"[^\n]*)?\}\n\Z'
)
_TIMESTAMP = b',"timestamp":"'


def feed(reader: Reader, builder: StatsBuilder) -> None:
    """Every line the reader reads, inside its window, into ``builder``; corrupt lines
    are counted in ``reader.corrupt`` as :meth:`Reader.messages` counts them."""
    window = reader.window
    bounded = window.bounded
    admits = window.admits
    head_match = _HEAD.match
    tail_match = _TAIL.match
    add = builder.add_fields
    for chunk in reader.chunks():
        room = chunk.source.room  # ids and names are a room's own
        for line in chunk.lines():
            head = head_match(line)
            tail = None
            if head is not None:
                at = line.find(_TIMESTAMP, head.end())
                tail = tail_match(line, at) if at > 0 else None
            if head is None or tail is None:
                message = parse_line(line)
                if message is None:
                    reader.skip(chunk.file)
                elif not bounded or admits(parse_stamp(message.get("timestamp"))):
                    builder.add(message, room)
                continue
            stamp_bytes, cc, task, reply = tail.groups()
            try:
                stamp = stamp_bytes.decode()
                sender, to = head.group(2).decode(), head.group(3).decode()
                task_id = None if task is None else task.decode()
            except UnicodeDecodeError:  # not UTF-8: corrupt, as the exact path says
                reader.skip(chunk.file)
                continue
            when = parse_stamp(stamp)
            if bounded and not admits(when):
                continue
            add(
                int(head.group(1)),
                sender,
                to,
                stamp,
                when,
                cc == b"1",
                task_id,
                None if reply is None else int(reply),
                room,
            )


def read(reader: Reader, use_index: bool = True) -> Stats:
    """Every number over what the reader reads (its window applied): through the
    index's partials where it has them (:mod:`.statparts`), else by this scan."""
    if use_index:
        from .statparts import read as through_index

        found = through_index(reader)
        if found is not None:
            return found
    builder = StatsBuilder(rooms=reader.rooms)
    feed(reader, builder)
    return builder.result()
