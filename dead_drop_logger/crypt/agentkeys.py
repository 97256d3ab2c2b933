"""Agent-specific keys: each message's ``content`` sealed to its own agents' keys.

Why: with ``encrypt_to`` every file is sealed to the same readers, who read everything.
Some teams want each agent's owner to read that agent's conversations and nothing else,
while the metadata (who wrote to whom, when, which task) stays searchable and ``stats``
works with no key at all. So, with ``encrypt_content_to_agents``, only ``content`` is
encrypted, message by message, to the keys of the agents the message is between and to
the escrow key(s) that can read every message.

The line format (docs/encryption.md#agent-specific-keys): ``content`` holds the base64
(standard, padded) of one binary age file, and ``"content_enc":"age"`` is added as the
line's last field; every other field is written exactly as before, in the same place
(so the byte paths of ``stats``, ``agents`` and ``search --from`` are untouched).
``jq -r .content | base64 -d | age -d -i KEY`` gives the content's text. A content that
is not a JSON string (a BLOB's ``{"$base64": ...}``, a number) is sealed as its JSON
text and marked ``"age-json"``; a NULL content stays ``null``, unmarked (nothing to hide).

Who a message is sealed to: its ``from_agent``, its ``to_agent`` and, on a CC copy, its
``cc_original_to``; a broadcast (``to_agent = "all"``, or a CC copy of one) to every
agent with a key; always the escrow. A send and its CC copies in one batch are one age
file, sealed to the union of their readers. An agent with no key is left out (said
once per name, at warning): its part of a conversation is then read with the other
agent's key or the escrow, never written in plaintext.

Nothing here writes to disk: sealing happens in memory before the writer plans the
batch; opening happens in memory in the reader.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from ..encoding import escape_separators
from . import keys

FIELD = "content_enc"
AGE = "age"  # content was a JSON string: the age file holds its UTF-8 text
AGE_JSON = "age-json"  # content was another JSON value: the age file holds its JSON text
MARK = b',"content_enc":"age'  # in every sealed line's bytes (both kinds)
BROADCAST = "all"
MARKER = ".dead-drop-logger.content-sealed"  # written where a logger seals content
NO_IDENTITY = "[content encrypted for its agents: no identity given]"
NOT_YOURS = "[content encrypted for its agents: not readable with this identity]"
# what a notification's readable text says instead of a sealed content (notify/events.py)
NOT_SENT = "[content encrypted for its agents: read it with search --identity]"

_decode = json.JSONDecoder().raw_decode
_dump = json.JSONEncoder(ensure_ascii=False).encode


class ContentSealer:
    """Seals the content of NDJSON lines, as the logger reads them from the database."""

    def __init__(
        self,
        agents: Mapping[str, str],
        escrow: Iterable[str],
        *,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.agents = dict(agents)
        self.escrow = tuple(escrow)
        if not self.escrow:
            raise keys.CryptError("encrypt_content_to_agents needs an escrow recipient")
        for recipient in [*self.agents.values(), *self.escrow]:
            keys.check_recipient(recipient)
        self._everyone = set(self.agents.values()) | set(self.escrow)
        if warn is None:  # the logger's log (logging imported by the writer alone: start-up)
            import logging

            warn = logging.getLogger(__name__).warning
        self._warn = warn
        self._warned: set[str] = set()

    def recipients(self, sender: object, to: object, original_to: object) -> set[str]:
        """The keys a message between these agents is sealed to (escrow included)."""
        if BROADCAST in (to, original_to):  # a broadcast, or a lead's CC copy of one
            return set(self._everyone)
        found = set(self.escrow)
        for name in (sender, to, original_to):
            if not isinstance(name, str):
                continue
            key = self.agents.get(name)
            if key is not None:
                found.add(key)
            elif name not in self._warned:
                self._warned.add(name)
                self._warn(
                    f"agent {name!r} has no key in [agents_keys]: its messages are sealed"
                    " to the other agent's key and the escrow only"
                )
        return found

    def _ordered(self, found: set[str]) -> tuple[str, ...]:
        """The escrow's stanzas first (a reader with it unwraps the first one tried)."""
        return (*self.escrow, *sorted(found - set(self.escrow)))

    def seal_lines(self, data: bytes) -> bytes:
        """``data`` (whole lines, each ending in ``\\n``) with every content sealed.

        One send is one age file: the server writes a message and its CC copies (same
        sender, content and time, one row per lead) in one transaction, so they are
        found together here and sealed once, to the union of their readers (the lead
        received the message: its owner may read it), and every row of the send holds
        the same ciphertext (half the work, and ``thread`` still sees the copies as
        copies without a key)."""
        lines = data.split(b"\n")  # (not splitlines: \r is no line break here)
        tail = lines.pop()
        parsed: list[tuple[str, dict[str, tuple[int, int, object]]] | None] = []
        readers: dict[tuple[object, str, object], set[str]] = {}
        for line in lines:
            body = line.decode("utf-8")
            fields = _fields(body)
            span = fields.get("content")
            if span is None or span[2] is None:  # NULL content: nothing to hide
                parsed.append(None)
                continue
            parsed.append((body, fields))
            key = _send(body, fields)
            found = self.recipients(
                _value(fields, "from_agent"),
                _value(fields, "to_agent"),
                _value(fields, "cc_original_to"),
            )
            readers.setdefault(key, set()).update(found)
        sealed: dict[tuple[object, str, object], str] = {}
        out: list[bytes] = []
        for line, item in zip(lines, parsed, strict=True):
            if item is None:
                out.append(line + b"\n")
                continue
            body, fields = item
            start, end, value = fields["content"]
            key = _send(body, fields)
            kind = AGE if isinstance(value, str) else AGE_JSON
            encoded = sealed.get(key)
            if encoded is None:
                # a string's text; another value's JSON text exactly as logged
                plain = value if isinstance(value, str) else body[start:end]
                ciphertext = keys.encrypt(plain.encode("utf-8"), self._ordered(readers[key]))
                encoded = sealed[key] = base64.b64encode(ciphertext).decode("ascii")
            out.append(f'{body[:start]}"{encoded}"{body[end:-1]},"{FIELD}":"{kind}"}}\n'.encode())
        if tail:
            raise keys.CryptError("a block of lines to seal ends in a partial line")
        return b"".join(out)

    def seal_line(self, line: bytes) -> bytes:
        """One whole line sealed (as :meth:`seal_lines` seals a block)."""
        return self.seal_lines(line)


def _send(body: str, fields: Mapping[str, tuple[int, int, object]]) -> tuple[object, str, object]:
    """What the rows of one send share: the sender, the content as logged, the time."""
    start, end, _content = fields["content"]
    return (_value(fields, "from_agent"), body[start:end], _value(fields, "timestamp"))


def _value(fields: Mapping[str, tuple[int, int, object]], name: str) -> object:
    found = fields.get(name)
    return None if found is None else found[2]


def _fields(body: str) -> dict[str, tuple[int, int, object]]:
    """Each top-level field of a compact JSON object line: (start, end, value) of its
    value, so one value can be replaced and every other byte kept as logged."""
    if not body.startswith("{") or not body.endswith("}"):
        raise keys.CryptError("a line to seal is not a JSON object")
    found: dict[str, tuple[int, int, object]] = {}
    at = 1
    if body == "{}":
        return found
    while True:
        key, at = _decode(body, at)
        if not isinstance(key, str) or body[at] != ":":
            raise keys.CryptError("a line to seal is not a compact JSON object")
        start = at + 1
        value, at = _decode(body, start)
        found.setdefault(key, (start, at, value))
        if body[at] == "}":
            if at != len(body) - 1:
                raise keys.CryptError("a line to seal holds more than one JSON object")
            return found
        if body[at] != ",":
            raise keys.CryptError("a line to seal is not a compact JSON object")
        at += 1


# -- reading --------------------------------------------------------------------------------


def sealed_line(raw: bytes) -> bool:
    """Whether a stored line is one whose content the logger sealed (its last field)."""
    return raw.rstrip(b"\n").endswith(_ENDS)


_ENDS = (b',"content_enc":"age"}', b',"content_enc":"age-json"}')


def is_sealed(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` (a parsed line) holds sealed content (opened or not)."""
    return message.get(FIELD) in (AGE, AGE_JSON)


def open_content(message: MutableMapping[str, Any]) -> bool:
    """Open ``message``'s sealed content in place with the reader's identity: the
    plaintext in ``content`` and the marker gone, as if the line had been logged
    plain; when the identity cannot open it (or none is given), ``content`` becomes
    None and the marker stays. Returns whether the content is readable now.
    Raises CryptError only for an unusable identity (a file that is not one)."""
    kind = message.get(FIELD)
    if kind not in (AGE, AGE_JSON):
        return True
    content = message.get("content")
    if not isinstance(content, str):
        return False  # (already tried)
    message["content"] = None
    if not keys.identity_configured():
        return False
    text = _opened(content)
    if text is None:
        return False
    if kind == AGE_JSON:
        try:
            message["content"] = json.loads(text)
        except ValueError:
            return False
    else:
        message["content"] = text
    del message[FIELD]
    return True


_recent: dict[str, str | None] = {}  # the last contents opened (a send's CC copies: the same)
_RECENT = 256
_recent_for: object = None  # the identities _recent was opened with


def _opened(content: str) -> str | None:
    """The text of one sealed content (base64 of an age file), None if the identity
    does not open it; the rows of one send share a ciphertext, opened once."""
    global _recent_for
    identities = keys.identities()  # (raises CryptError for an unusable identity)
    if _recent_for is not identities:  # another identity: nothing known of it
        _recent.clear()
        _recent_for = identities
    if content in _recent:
        return _recent[content]
    text: str | None = None
    try:
        sealed = base64.b64decode(content, validate=True)
        plain: bytes = keys.age_module().decrypt(sealed, identities)
        text = plain.decode("utf-8", "replace")
    except Exception:  # not one of its recipients, or damaged
        text = None
    if len(_recent) >= _RECENT:
        _recent.clear()
    _recent[content] = text
    return text


def placeholder(message: Mapping[str, Any]) -> str | None:
    """What a reader shows instead of content it could not open (None: it is open)."""
    if not is_sealed(message) or isinstance(message.get("content"), str):
        return None
    return NOT_YOURS if keys.identity_configured() else NO_IDENTITY


def opened_line(raw: bytes, message: Mapping[str, Any]) -> bytes:
    """The stored line ``raw`` with its content opened (``message``'s, by
    :func:`open_content`) and the marker gone: the line a plain logger writes, every
    other byte as stored (``search --json``)."""
    return _with_content(raw, message.get("content"), keep_marker=False)


def _with_content(raw: bytes, content: object, *, keep_marker: bool) -> bytes:
    """``raw`` with ``content`` in its content's place, every other byte as stored (the
    marker dropped unless ``keep_marker``)."""
    body = raw.decode("utf-8").rstrip("\n")
    start, end, _sealed = _fields(body)["content"]
    if isinstance(content, str):
        value = escape_separators(_dump(content))
    else:
        value = escape_separators(json.dumps(content, ensure_ascii=False, separators=(",", ":")))
    rest = body[end:]
    if not keep_marker:
        for ending in _ENDS:
            if rest.endswith(ending.decode()):
                rest = rest[: -len(ending)] + "}"
                break
    return (body[:start] + value + rest + "\n").encode("utf-8")


# -- what every reader shows: the one rule ---------------------------------------------------


def shown(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as every reader shows it to a person (``search``'s and ``thread``'s
    text, ``serve``'s page, ``report``): opened in place when the identity opens it (as
    if logged plain), else a copy whose content is the :func:`placeholder` (the marker
    kept, so it is never taken for what an agent wrote). A message not sealed is
    returned as it is."""
    if open_content(message):
        return message
    return {**message, "content": placeholder(message)}


def shown_line(raw: bytes, message: MutableMapping[str, Any], *, stored: bool = False) -> bytes:
    """The stored line ``raw`` (``message`` parsed from it) as a reader hands it on:
    :func:`opened_line` when the identity opens it; else, with ``stored``, the line as
    stored (``search --json``: the ciphertext, for a reader with the key), without it
    the line with :func:`shown`'s placeholder as its content, the marker kept
    (``serve``'s API and events, whose page shows it as text). A line not sealed (no
    marker at its end) is ``raw`` itself."""
    if not sealed_line(raw):
        return raw
    if open_content(message):
        return opened_line(raw, message)
    if stored:
        return raw
    return _with_content(raw, placeholder(message), keep_marker=True)


# -- the log directory's marker -------------------------------------------------------------


def mark_content_sealed(log_dir: Path) -> None:
    """Record that ``log_dir``'s contents are sealed per message (before the first
    line), so nothing derived from content (the index's full text) is stored for it."""
    keys.write_marker(log_dir / MARKER, "message contents here are sealed per agent (age)")


def content_sealed(log_dir: Path) -> bool:
    """Whether a logger seals message contents per agent in ``log_dir`` (or a room of it)."""
    return keys.has_marker(log_dir, MARKER)
