"""A request's query string as the reading commands' own objects: no second matcher.

Why it looks like this: ``/v1/messages`` and ``/v1/events`` take the filters of
``search`` (``since``, ``until``, ``from``, ``to``, ``agent``, ``task``, ``contains``,
``regex``, ``ignore_case``, ``no_cc``, ``room``) and must answer exactly what ``search``
answers, so each parameter is handed to the same functions the command line uses
(:func:`..read.reading.make_window`, :func:`..read.reading.make_filters`,
:func:`..read.reading.make_reader`), which raise :class:`..read.reading.RequestError`
for a bad date, regex or room: that is a 400 here, with the same words. A parameter
this API does not know is a 400 too (a typo such as ``form=juno`` would otherwise
silently match everything).

``q`` is the page's filter box: the search command line's own syntax (``--from juno
-i deploy``), split as a shell would and read into the same parameters; bare words
are texts the content must hold, each one (``deploy merge``: both).

No socket, no framework: a unit test checks every rule with plain lists of pairs.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..read.logread import EVERYTHING, Reader, Window
from ..read.reading import RequestError, make_filters, make_reader, make_window
from ..read.search import Filters
from ..rooms_spec import RoomNameError, check_room_name

Pairs = Sequence[tuple[str, str]]

MANY = {"from": "senders", "to": "recipients", "agent": "agents", "contains": "contains"}
ONE = ("since", "until", "task", "regex")
FLAGS = ("ignore_case", "no_cc")
FILTER_KEYS = frozenset((*MANY, *ONE, *FLAGS, "room", "q"))
PAGE_KEYS = frozenset(("limit", "order", "cursor", "format"))
ACCESS_KEYS = frozenset(("access_token",))  # the token, for EventSource (no headers)
ORDERS = ("newest", "oldest")
PAGE_LIMIT = 100  # a JSON page's default size
PAGE_MAX = 10_000  # and its largest (NDJSON has no cap)
TRUE = ("", "1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")

_BOX_OPTIONS = {
    "--from": "from",
    "--to": "to",
    "--agent": "agent",
    "--task": "task",
    "--contains": "contains",
    "--regex": "regex",
    "--since": "since",
    "--until": "until",
    "--room": "room",
}
_BOX_FLAGS = {"-i": "ignore_case", "--ignore-case": "ignore_case", "--no-cc": "no_cc"}


NO_FILTERS = Filters()


class BadRequest(Exception):
    """A request that cannot be answered as asked: 400, with this message."""


@dataclass(frozen=True)
class MessageQuery:
    """What ``/v1/messages`` (and ``/v1/events``) was asked for."""

    window: Window = EVERYTHING
    rooms: tuple[str, ...] = ()  # () every room (and the log directory itself)
    filters: Filters = NO_FILTERS
    limit: int | None = None
    order: str = "oldest"
    cursor: str | None = None
    ndjson: bool = False

    def reader(self, log_dir: Path, utc: bool) -> Reader:
        """The reader ``search`` would make for these rooms and this window."""
        try:
            return make_reader(log_dir, self.window, utc, self.rooms)
        except RequestError as exc:
            raise BadRequest(str(exc)) from None


def box_pairs(text: str) -> list[tuple[str, str]]:
    """The filter box (``q``): the search command line's options, as query pairs."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise BadRequest(f"q: {exc}") from None
    pairs: list[tuple[str, str]] = []
    it = iter(words)
    for word in it:
        name, eq, value = word.partition("=")
        if name in _BOX_OPTIONS:
            if not eq:
                value = next(it, None)  # type: ignore[assignment]
                if value is None:
                    raise BadRequest(f"q: {name} needs a value")
            pairs.append((_BOX_OPTIONS[name], value))
        elif word in _BOX_FLAGS:
            pairs.append((_BOX_FLAGS[word], "1"))
        elif word.startswith("-") and word != "-":
            known = ", ".join([*_BOX_OPTIONS, *_BOX_FLAGS])
            raise BadRequest(f"q: unknown option {word} (known: {known})")
        else:
            pairs.append(("contains", word))
    return pairs


def _flag(key: str, value: str) -> bool:
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise BadRequest(f"{key}: {value!r} is not a yes/no value (1, true, 0, false)")


def _check_keys(pairs: Pairs, allowed: Iterable[str]) -> None:
    known = frozenset(allowed)
    for key, _value in pairs:
        if key not in known:
            raise BadRequest(f"unknown parameter {key!r} (known: {', '.join(sorted(known))})")


def message_query(pairs: Pairs, *, paged: bool = True, ndjson: bool = False) -> MessageQuery:
    """The query of ``/v1/messages`` (``paged``) or ``/v1/events``; ``ndjson``: the
    client asked for NDJSON (``Accept``), as ``format=ndjson`` also says."""
    _check_keys(pairs, FILTER_KEYS | ACCESS_KEYS | (PAGE_KEYS if paged else frozenset()))
    expanded: list[tuple[str, str]] = []
    for key, value in pairs:
        expanded += box_pairs(value) if key == "q" else [(key, value)]
    many: dict[str, list[str]] = {name: [] for name in MANY.values()}
    one: dict[str, str] = {}
    flags = dict.fromkeys(FLAGS, False)
    rooms: list[str] = []
    page: dict[str, str] = {}
    for key, value in expanded:
        if key in MANY:
            many[MANY[key]].append(value)
        elif key in ONE:
            if key in one and one[key] != value:
                raise BadRequest(f"{key} given twice ({one[key]!r} and {value!r})")
            one[key] = value
        elif key in FLAGS:
            flags[key] = _flag(key, value)
        elif key == "room":
            try:
                rooms.append(check_room_name(value))
            except RoomNameError as exc:
                raise BadRequest(f"room: {exc}") from None
        elif key in PAGE_KEYS:
            page[key] = value
    try:
        window = make_window(one.get("since"), one.get("until"))
        filters = make_filters(
            senders=many["senders"],
            recipients=many["recipients"],
            agents=many["agents"],
            task=one.get("task"),
            contains=many["contains"],
            ignore_case=flags["ignore_case"],
            regex=one.get("regex"),
            no_cc=flags["no_cc"],
        )
    except RequestError as exc:
        raise BadRequest(str(exc)) from None
    fmt = page.get("format")
    if fmt not in (None, "json", "ndjson"):
        raise BadRequest(f"format: {fmt!r} is neither json nor ndjson")
    as_ndjson = fmt == "ndjson" or (fmt is None and ndjson)
    order = page.get("order", "oldest" if as_ndjson or not paged else "newest")
    if order not in ORDERS:
        raise BadRequest(f"order: {order!r} is neither newest nor oldest")
    limit = _limit(page.get("limit"), as_ndjson) if paged else None
    return MessageQuery(
        window,
        tuple(dict.fromkeys(rooms)),
        filters,
        limit,
        order,
        page.get("cursor"),
        as_ndjson,
    )


def _limit(value: str | None, ndjson: bool) -> int | None:
    if value is None:
        return None if ndjson else PAGE_LIMIT
    if not value.isdigit() or not value.isascii():
        raise BadRequest(f"limit: {value!r} is not a whole number")
    number = int(value)
    if not ndjson and not 1 <= number <= PAGE_MAX:
        raise BadRequest(f"limit: a JSON page holds 1 to {PAGE_MAX} messages (NDJSON: any)")
    return number


def message_id(text: str) -> int:
    digits = text[1:] if text.startswith("#") else text
    if not digits.isdigit() or not digits.isascii():
        raise BadRequest(f"{text!r} is not a message id (a number, as 2362)")
    return int(digits)


def only_keys(pairs: Pairs, allowed: Iterable[str]) -> None:
    """Refuse parameters outside ``allowed`` (and the token's)."""
    _check_keys(pairs, frozenset(allowed) | ACCESS_KEYS)


def rooms_of(pairs: Pairs) -> tuple[str, ...]:
    names = []
    for key, value in pairs:
        if key == "room":
            try:
                names.append(check_room_name(value))
            except RoomNameError as exc:
                raise BadRequest(f"room: {exc}") from None
    return tuple(dict.fromkeys(names))
