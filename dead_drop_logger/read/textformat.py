"""The text format of ``search`` and ``thread``: for people, not for pipes.

One header line per message (local time as the server stamped it, ``from → to``, the
id, and ``task``, ``re #N``, ``cc`` where they apply), then the content, indented.
Colour is the caller's decision (only on a terminal, never with ``NO_COLOR``); the
content's own control characters are shown escaped, so a message can never drive the
reader's terminal.

Very long content (a pasted log, a diff) would push every other message off the
screen: the text shows its first :data:`CUT_AT` characters and a note saying how many
more there are and that ``--full`` shows them. ``--oneline`` is the view to scan by eye
or pipe into grep: the header and the content on one line, line breaks shown as
:data:`NEWLINE`, cut to the width it is given (the terminal's) with ``…``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Iterator

from .logread import Message

INDENT = "    "
MAX_DEPTH = 4  # indentation stops here; deeper replies say their depth instead
CUT_AT = 2000  # characters of content the text view shows unless --full
NEWLINE = "⏎"  # a line break of the content, in --oneline
ELLIPSIS = "…"
_BREAKS = re.compile("[\n\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STYLE = {"time": "2", "agent": "1;36", "id": "33", "meta": "35", "note": "3;31"}


def _paint(text: str, style: str, colour: bool) -> str:
    return f"\x1b[{_STYLE[style]}m{text}\x1b[0m" if colour else text


def _visible(text: str) -> str:
    """Control characters (ESC, CR, ...) as escapes; tabs and line breaks are kept."""
    return _CONTROL.sub(lambda m: json.dumps(m.group())[1:-1], text)


def _name(value: object) -> str:
    return _visible(value) if isinstance(value, str) else json.dumps(value)


def show_time(value: object) -> str:
    """``2026-02-20 10:30:15`` for a timestamp (its zone, if any, kept as written);
    the raw value when it is not one."""
    if isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            return _visible(value)
        return stamp.replace(microsecond=0, tzinfo=None).isoformat(" ")
    return "?" if value is None else json.dumps(value)


def display_width(text: str) -> int:
    """Columns on a terminal: East Asian wide characters take two, combining marks none."""
    return sum(_char_width(c) for c in text)


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def cut_to_width(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, ending in ``…`` when it was cut."""
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += _char_width(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + ELLIPSIS if width > 0 else ""


def content_lines(content: object) -> list[str]:
    """The content as display lines: text split at its line breaks; a BLOB
    (``{"$base64": ...}``) or any other value described, not dumped raw."""
    if isinstance(content, str):
        return _visible(content).splitlines() or [""]
    if isinstance(content, dict) and isinstance(content.get("$base64"), str):
        size = len(content["$base64"]) * 3 // 4 - content["$base64"].count("=")
        return [f"[binary content, {size} bytes]"]
    return [json.dumps(content, ensure_ascii=False)]


def header(message: Message, colour: bool, room: str | None = None) -> str:
    parts = [
        _paint(show_time(message.get("timestamp")), "time", colour),
        *([_paint(f"[{room}]", "meta", colour)] if room is not None else []),
        _paint(
            f"{_name(message.get('from_agent'))} → {_name(message.get('to_agent'))}",
            "agent",
            colour,
        ),
        _paint(f"#{_name(message.get('id'))}", "id", colour),
    ]
    task = message.get("task_id")
    if task is not None:
        parts.append(_paint(f"task {_name(task)}", "meta", colour))
    reply = message.get("reply_to")
    if reply is not None:
        parts.append(_paint(f"re #{_name(reply)}", "meta", colour))
    if message.get("is_cc") in (1, True):
        original = message.get("cc_original_to")
        cc = "cc" if original is None else f"cc of → {_name(original)}"
        parts.append(_paint(cc, "meta", colour))
    return "  ".join(parts)


def format_message(
    message: Message,
    *,
    colour: bool = False,
    depth: int = 0,
    note: str | None = None,
    room: str | None = None,
    full: bool = False,
) -> Iterator[str]:
    """The lines (without newlines) that show one message, indented by ``depth`` (up to
    :data:`MAX_DEPTH` levels, then ``(depth N)`` leads the header, so a long exchange
    stays on the screen); a room's message names its room after the time. Text content
    longer than :data:`CUT_AT` characters is cut there, with a note, unless ``full``."""
    margin = INDENT * min(depth, MAX_DEPTH)
    yield margin + _deeper(depth, colour) + header(message, colour, room)
    if note is not None:
        yield margin + INDENT + _paint(f"({note})", "note", colour)
    content = message.get("content")
    cut = 0
    if not full and isinstance(content, str) and len(content) > CUT_AT:
        content, cut = content[:CUT_AT], len(content) - CUT_AT
    for line in content_lines(content):
        yield margin + INDENT + line
    if cut:
        yield (
            margin
            + INDENT
            + _paint(
                f"[cut: {cut:,} more characters of {CUT_AT + cut:,}; --full shows all]",
                "note",
                colour,
            )
        )


def _deeper(depth: int, colour: bool) -> str:
    return _paint(f"(depth {depth})", "meta", colour) + " " if depth > MAX_DEPTH else ""


def one_line(content: object) -> str:
    """The content on one line: line breaks as :data:`NEWLINE`, tabs as spaces."""
    if not isinstance(content, str):
        return content_lines(content)[0]
    return _BREAKS.sub(NEWLINE, _visible(content)).replace("\t", " ")


def format_oneline(
    message: Message,
    *,
    colour: bool = False,
    depth: int = 0,
    note: str | None = None,
    room: str | None = None,
    width: int | None = None,
) -> str:
    """One message on one line (``--oneline``): the header, then the content; cut to
    ``width`` columns (None: whole). Indented by ``depth`` as :func:`format_message`."""
    margin = INDENT * min(depth, MAX_DEPTH)
    lead = margin + _deeper(depth, False) + header(message, False, room)
    noted = f"  ({note})" if note is not None else ""
    text = f"{lead}{noted}  {one_line(message.get('content'))}"
    if width is not None:
        text = cut_to_width(text, width)
    if colour and text.startswith(lead):  # the header whole: painted as in the text view
        text = margin + _deeper(depth, True) + header(message, True, room) + text[len(lead) :]
    return text
