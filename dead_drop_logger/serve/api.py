"""Every answer of the API, as plain functions over the reading commands' own code.

Why it looks like this: ``serve`` must say exactly what the command line says
(``/v1/messages`` is ``search --json``, ``/v1/threads`` ``thread --json``, ``/v1/agents``
``agents --json``, ``/v1/tasks`` ``tasks --json``, ``/v1/stats`` ``stats --json``), so each
answer is built by the same functions of :mod:`..read` the commands call, and the HTTP
layer (:mod:`.app`) only moves bytes. A unit test calls these without a socket.

A message is never serialised again: every answer that holds messages is made of the
logged lines' bytes (a JSON page is ``{"messages":[LINE,LINE],...}``, each LINE the
stored line without its newline), so the API cannot drift from the logs, and a line
the logger escaped one way reaches the client escaped that way. A content sealed per
agent (:mod:`..crypt.agentkeys`) is the one exception, made by the readers' one rule
(:func:`..crypt.agentkeys.shown_line`): opened with ``serve``'s identity when it opens
it (the line a plain logger writes, as ``search --json`` prints it), else ``search``'s
placeholder in its place with the marker kept, so the page shows what ``search`` shows.

Keyset pages: each message is known by its key ``ROOM:ID`` (``:ID`` in the log
directory itself, as :mod:`..read.feed` keys lines), and a page's ``next`` link carries
the key of its last message as ``cursor``: the next page starts just after that message
in the same order. The order is ``search``'s (day files in date order, rooms merged by
timestamp within a day), reversed for ``newest``, so a page never skips nor repeats a
message that was there when the first page was read; new messages land at the newest
end. A cursor whose message is no longer in the logs (retention deleted its day) is a
400 that says so.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..crypt import agentkeys
from ..logdir.layout import room_dirs
from ..read import agents as agent_table
from ..read import statlines, stats_format, taskcommand, taskstats
from ..read.logread import Entry, LogDir, LogReadError, Reader, line_id, parse_line, read_chunks
from ..read.reading import RequestError, agent_json_lines, make_reader, make_window
from ..read.search import Search, TimedOut
from ..read.tasklog import merge_problems
from ..read.teamview import Frame
from ..read.thread import AmbiguousId, thread
from ..read.when import local_now, parse_duration
from ..server import TASK_STATUSES
from .query import BadRequest, MessageQuery, Pairs, only_keys, rooms_of

BATCH = 1 << 16  # NDJSON is sent in pieces of about this many bytes


class NotFound(Exception):
    """404, with this message."""


class Conflict(Exception):
    """409: the id is in several rooms (the message names them)."""


@dataclass(frozen=True)
class Logs:
    """What ``serve`` reads: a log directory (and its rooms), written with ``--utc``
    or not."""

    log_dir: Path
    utc: bool = False

    def reader(self, rooms: tuple[str, ...] = (), window: str | None = None) -> Reader:
        try:
            return make_reader(self.log_dir, make_window(window, None), self.utc, rooms)
        except RequestError as exc:
            raise BadRequest(str(exc)) from None


def key_of(room: str | None, message_id: int | None) -> str:
    """``ROOM:ID``; ``:ID`` for the log directory itself. The room is percent-encoded
    (only a name with other characters than letters, digits and ``_.-~`` changes), so
    a key is one token in a URL, an event id and a list of keys."""
    return f"{urllib.parse.quote(room or '', safe='')}:{message_id}"


def entry_key(entry: Entry) -> str:
    ident = line_id(entry.line.raw)
    if ident is None:
        value = entry.message.get("id")
        ident = value if isinstance(value, int) else None
    return key_of(entry.line.source.room, ident)


def _bare(raw: bytes) -> bytes:
    return raw[:-1] if raw.endswith(b"\n") else raw


def _shown(entry: Entry) -> bytes:
    """The entry's line as the API hands it on (the module doc: a sealed content)."""
    return agentkeys.shown_line(entry.line.raw, entry.message)


# -- /v1/messages ------------------------------------------------------------------


def matches(logs: Logs, query: MessageQuery, deadline: float | None = None) -> Iterator[Entry]:
    """The matching messages in the query's order, after its cursor, up to its limit;
    past ``deadline`` (``time.monotonic()``) reading stops with :class:`TimedOut`."""
    search = Search(query.reader(logs.log_dir, logs.utc), query.filters, deadline=deadline)
    if query.order == "newest":
        entries = search.from_the_end(query.limit if query.cursor is None else None)
    else:
        entries = search.run()
    if query.cursor is not None:
        entries = _after(entries, query.cursor)
    if query.limit is not None:
        entries = itertools.islice(entries, query.limit)
    return entries


def _after(entries: Iterator[Entry], cursor: str) -> Iterator[Entry]:
    for entry in entries:
        if entry_key(entry) == cursor:
            yield from entries
            return
    raise BadRequest(
        f"cursor {cursor!r} is not among the messages that match (no longer in the logs?)"
    )


def too_slow(timeout: float) -> str:
    """What a request cut by the time limit is told."""
    return (
        f"the query took longer than {timeout:g} s (serve --request-timeout) and was"
        " stopped: narrow it (since/until, room, from, to, agent, task, contains; a"
        " simpler regex) or ask for fewer messages (limit)"
    )


def ndjson(
    logs: Logs, query: MessageQuery, deadline: float | None = None, timeout: float = 0.0
) -> Iterator[bytes]:
    """The matching lines byte for byte, as ``search --json`` prints them, in pieces.

    Past ``deadline``: :class:`TimedOut` if nothing was yielded yet (the answer can
    still be a JSON error); else the stream ends with one line that is no message,
    ``{"error":{"status":503,"message":...}}`` (every logged line starts ``{"id":``)."""
    pending: list[bytes] = []
    size = 0
    started = False
    try:
        for entry in matches(logs, query, deadline):
            line = _shown(entry)
            pending.append(line)
            size += len(line)
            if size >= BATCH:
                yield b"".join(pending)
                started = True
                pending, size = [], 0
    except LogReadError as exc:
        raise BadRequest(str(exc)) from None
    except TimedOut:
        if not started:
            raise
        pending.append(error_line(503, too_slow(timeout)))
    if pending:
        yield b"".join(pending)


def error_line(status: int, message: str) -> bytes:
    """``{"error":{"status":N,"message":M}}`` and a newline: every error's body."""
    body = {"error": {"status": status, "message": message}}
    return json.dumps(body, ensure_ascii=False).encode() + b"\n"


def page(
    logs: Logs,
    query: MessageQuery,
    pairs: Pairs,
    path: str = "/v1/messages",
    deadline: float | None = None,
) -> bytes:
    """One JSON page: ``{"order":O,"messages":[LINE...],"keys":[KEY...],"next":LINK}``:
    each message's key ``ROOM:ID`` beside it (a line does not say its room); ``next``
    (null on the last page) is this query with ``cursor`` the page's last key."""
    limit = query.limit or 1
    wanted = MessageQuery(
        query.window,
        query.rooms,
        query.filters,
        limit + 1,
        query.order,
        query.cursor,
        query.ndjson,
    )
    try:
        found = list(matches(logs, wanted, deadline))
    except LogReadError as exc:
        raise BadRequest(str(exc)) from None
    more = len(found) > limit
    found = found[:limit]
    link = None
    if more:
        kept = [(k, v) for k, v in pairs if k not in ("cursor", "access_token")]
        link = path + "?" + urllib.parse.urlencode([*kept, ("cursor", entry_key(found[-1]))])
    return (
        b'{"order":'
        + json.dumps(query.order).encode()
        + b',"messages":['
        + b",".join(_bare(_shown(entry)) for entry in found)
        + b'],"keys":'
        + json.dumps(
            [entry_key(e) for e in found], ensure_ascii=False, separators=(",", ":")
        ).encode()
        + b',"next":'
        + json.dumps(link).encode()
        + b"}"
    )


def one_message(logs: Logs, room: str | None, message_id: int) -> bytes:
    """The stored line of message ``message_id`` (in ``room``; None: wherever it is,
    refused when it is in several rooms), without its newline."""
    if room is None:
        sources = [LogDir(logs.log_dir)] + [LogDir(r, r.name) for r in room_dirs(logs.log_dir)]
    else:
        sources = list(logs.reader((room,)).sources)  # checks the room exists
    found: list[tuple[str | None, bytes]] = []
    for source in sources:
        raw = _find_in(Reader([source], utc=logs.utc), message_id)
        if raw is not None:
            found.append((source.room, raw))
    if not found:
        where = f"room {room}" if room is not None else "the logs"
        raise NotFound(f"message {message_id} is not in {where}")
    if len(found) > 1:
        rooms = ", ".join(r or "(the log directory)" for r, _raw in found)
        raise Conflict(
            f"message {message_id} is in several rooms ({rooms}): ask /v1/messages/ROOM/ID"
        )
    raw = found[0][1]
    message = parse_line(raw)
    return _bare(raw if message is None else agentkeys.shown_line(raw, message))


def _find_in(reader: Reader, message_id: int) -> bytes | None:
    """The line of ``message_id`` in the reader's (one) directory, newest files first
    (a message asked for is most often a recent one)."""
    needle = b'{"id":%d,' % message_id
    for source, entry in reversed(reader.files()):
        for chunk in read_chunks(source, entry):
            data = chunk.data
            at = data.find(needle)
            while at >= 0:
                if at == 0 or data[at - 1] == 0x0A:
                    raw = data[at : data.index(b"\n", at) + 1]
                    message = parse_line(raw)
                    if message is not None and message.get("id") == message_id:
                        return raw
                at = data.find(needle, at + 1)
    return None


# -- /v1/threads/{id} -----------------------------------------------------------------


def thread_posts(logs: Logs, message_id: int, pairs: Pairs) -> list[tuple[int, str | None, Entry]]:
    """The thread of ``message_id`` as ``thread`` finds it: (depth, note, entry)."""
    only_keys(pairs, ("room", "format"))
    reader = logs.reader(rooms_of(pairs))
    try:
        posts = thread(reader, message_id)
    except AmbiguousId as exc:
        raise Conflict(str(exc).replace("--room NAME", "?room=NAME")) from None
    except LogReadError as exc:
        raise BadRequest(str(exc)) from None
    if posts is None:
        raise NotFound(f"message {message_id} is not in the logs")
    return [(post.depth, post.note, post.entry) for post in posts]


def thread_ndjson(posts: list[tuple[int, str | None, Entry]]) -> bytes:
    """The thread's lines, one a line (``thread --json``'s; a sealed content as above)."""
    return b"".join(_shown(entry) for _depth, _note, entry in posts)


def thread_json(posts: list[tuple[int, str | None, Entry]], message_id: int) -> bytes:
    """``{"id":N,"posts":[{"depth":D,"note":NOTE,"key":KEY,"message":LINE}]}``."""
    items = [
        b'{"depth":%d,"note":%s,"key":%s,"message":%s}'
        % (
            depth,
            json.dumps(note, ensure_ascii=False).encode(),
            json.dumps(entry_key(entry), ensure_ascii=False).encode(),
            _bare(_shown(entry)),
        )
        for depth, note, entry in posts
    ]
    return b'{"id":%d,"posts":[%s]}' % (message_id, b",".join(items))


# -- /v1/agents, /v1/tasks, /v1/stats ---------------------------------------------------


def agents_lines(logs: Logs, pairs: Pairs, frame: Frame | None) -> list[str]:
    """``agents --json``'s lines (with the live fields of ``frame``, the team now)."""
    only_keys(pairs, ("room", "since", "until", "format"))
    values = dict(pairs)
    try:
        window = make_window(values.get("since"), values.get("until"))
        reader = make_reader(logs.log_dir, window, logs.utc, rooms_of(pairs))
        rows = agent_table.tally(reader)
    except (RequestError, LogReadError) as exc:
        raise BadRequest(str(exc)) from None
    return agent_json_lines(reader, rows, frame)


TASK_KEYS = ("room", "since", "until", "status", "agent", "project", "stale", "format")


def task_lines(logs: Logs, pairs: Pairs, task_id: str | None = None) -> list[str]:
    """``tasks --json``'s lines (one: the task's history, with ``task_id``)."""
    only_keys(pairs, TASK_KEYS)
    values = dict(pairs)
    statuses = [v for k, v in pairs if k == "status"]
    for status in statuses:
        if status not in TASK_STATUSES:
            raise BadRequest(f"status: {status!r} is not one of {', '.join(TASK_STATUSES)}")
    stale = None
    if "stale" in values:
        try:
            stale = parse_duration(values["stale"])
        except ValueError as exc:
            raise BadRequest(f"stale: {exc}") from None
    lines: list[str] = []
    try:
        window = make_window(values.get("since"), values.get("until"))
        reader = make_reader(logs.log_dir, window, logs.utc, rooms_of(pairs))
        chosen = taskcommand.TaskFilter(
            frozenset(statuses),
            frozenset(v for k, v in pairs if k == "agent"),
            frozenset(v for k, v in pairs if k == "project"),
            reader.window,
            stale,
        )
        found = taskcommand.run(reader, task_id, chosen, True, lines.append)
    except RequestError as exc:
        raise BadRequest(str(exc)) from None
    if task_id is not None and not found:
        raise NotFound(f"task {task_id} is not recorded in the logs")
    return lines


def stats_json(logs: Logs, pairs: Pairs, now: dt.datetime | None = None) -> str:
    """What ``stats --json`` prints for the same window and rooms."""
    only_keys(pairs, ("room", "since", "until"))
    values = dict(pairs)
    try:
        window = make_window(values.get("since"), values.get("until"))
        reader = make_reader(logs.log_dir, window, logs.utc, rooms_of(pairs))
        result = statlines.read(reader)
        result.task_figures, tasks = taskstats.read_figures(reader, now or local_now())
    except (RequestError, LogReadError) as exc:
        raise BadRequest(str(exc)) from None
    merge_problems(reader, tasks)
    if result.totals.messages == 0 and result.task_figures is None:
        raise NotFound("no messages in the logs" + (" in that range" if window.bounded else ""))
    return stats_format.to_json(result)


def json_array(lines: Sequence[str]) -> bytes:
    """Lines that are each one JSON object, as one JSON array (not parsed again)."""
    return ("[" + ",".join(lines) + "]").encode("utf-8")


def ndjson_lines(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def report_html(logs: Logs, title: str = "What the agents did") -> bytes:
    """The page ``report`` writes, for every message logged (the page's report link).
    Plotly (the ``[report]`` extra) is imported only now: ``serve`` starts without it."""
    from ..read import report as html_report

    try:
        html_report.plotly_js()
    except html_report.ReportUnavailable as exc:
        raise NotFound(str(exc)) from None

    reader = logs.reader()
    result = statlines.read(reader)
    result.task_figures, _tasks = taskstats.read_figures(reader, local_now())
    if result.totals.messages == 0 and result.task_figures is None:
        raise NotFound("no messages in the logs yet: nothing to report")
    html_report.fill_previews(result, reader.sources, utc=logs.utc)  # (sealed: as search)
    t = result.totals
    subtitle = (
        f"{t.messages:,} messages from {stats_format.when(t.first)} to "
        f"{stats_format.when(t.last)} in {logs.log_dir}"
    )
    return html_report.render(result, title, subtitle).encode("utf-8")
