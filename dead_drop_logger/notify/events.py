"""What a rule notifies about: committed lines turned into events, each with a stable key.

Why the keys look like this: delivery is at least once, so a receiver deduplicates by
the key (the webhook's ``webhook-id``); a key must therefore be the same however often
the line is read again after a crash: ``room:id`` for a message (the log directory
itself is the empty room), and for the other events the line's own fields.

- ``message``: a message line matching the rule's filters (:class:`..read.search.Filters`,
  the search's own test); the body is the logged line, byte for byte.
- ``unanswered``: a direct message matching the filters that its recipient has not
  answered within the rule's time, by the response rule of ``stats``
  (:class:`..read.responses.ResponseTracker`; every message is fed to it, so an answer
  that does not match the filters still answers).
- ``task``: a task line (``tasks-*.json``) whose ``to`` (or a state in its ``via``) is one
  of ``task_status``.
- ``agent``: an agent line (``agents-*.json``) of event ``health`` turning to one of
  ``agent_health`` (the logger writes it when the server's health rule says so).

A content sealed per agent (:mod:`..crypt.agentkeys`) is matched as ``search`` matches
it: opened with the process's identity, only what it opens (a rule that matches contents
with no identity at all is refused at start: :func:`.rules.sealed_content_problem`). It
is never sent opened: a body is the line as stored (ciphertext and marker), as ``ship``
delivers it, and the readable text (Slack, ntfy, email, Apprise) says
:data:`..crypt.agentkeys.NOT_SENT` in its place. A notification goes to a third party
(ntfy.sh's topics are public); opening would hand it what the per-agent keys keep from
everyone but the message's agents, under the name of whichever key ``notify`` holds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..crypt import agentkeys
from ..read.logread import parse_line, timestamp_of
from ..read.responses import ResponseTracker
from ..server import local
from .lines import Item, key_of
from .rules import Rule

PREVIEW = 300  # characters of a message's content in a readable notification


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to notify about. ``body`` is what a webhook posts (JSON text)."""

    key: str
    kind: str
    room: str | None
    body: str
    at: float  # when the rule matched it (clock seconds)

    def data(self) -> Any:
        return json.loads(self.body)

    def to_json(self, seq: int) -> dict[str, Any]:
        return {
            "seq": seq,
            "key": self.key,
            "kind": self.kind,
            "room": self.room,
            "at": self.at,
            "body": self.body,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        return cls(data["key"], data["kind"], data.get("room"), data["body"], float(data["at"]))


def _body(raw: bytes) -> str:
    return raw.rstrip(b"\n").decode("utf-8", "replace")


def messages(rule: Rule, items: Iterable[Item], now: float) -> Iterator[Event]:
    """The message lines matching the rule."""
    for item in items:
        message = parse_line(item.raw)
        if message is None or not rule.filters.matches(message):
            continue
        key = key_of(item.room, message.get("id"))
        yield Event(key, "message", item.room, _body(item.raw), now)


def tasks(rule: Rule, items: Iterable[Item], now: float) -> Iterator[Event]:
    """Task lines reaching one of the rule's statuses."""
    wanted = set(rule.task_status)
    for item in items:
        line = parse_line(item.raw)
        if line is None:
            continue
        after, before = line.get("to"), line.get("from")
        listed = line.get("via")
        via: list[Any] = listed if isinstance(listed, list) else []
        reached = [s for s in [*via, after] if s in wanted]
        if not reached or (before == after and not via):
            continue
        task = line.get("task")
        if rule.filters.task is not None and task != rule.filters.task:
            continue
        found = line.get("row")
        row: dict[str, Any] = found if isinstance(found, dict) else {}
        if rule.filters.agents and row.get("assigned_to") not in rule.filters.agents:
            continue
        key = f"task:{item.room or ''}:{task}:{after}:{line.get('at')}"
        yield Event(key, "task", item.room, _body(item.raw), now)


def agents(rule: Rule, items: Iterable[Item], now: float) -> Iterator[Event]:
    """Agent lines whose health turns to one of the rule's."""
    wanted = set(rule.agent_health)
    for item in items:
        line = parse_line(item.raw)
        if line is None or line.get("event") != "health" or line.get("health") not in wanted:
            continue
        agent = line.get("agent")
        if rule.filters.agents and agent not in rule.filters.agents:
            continue
        key = f"agent:{item.room or ''}:{agent}:{line.get('health')}:{line.get('at')}"
        yield Event(key, "agent", item.room, _body(item.raw), now)


Waiting = list[Any]  # [room, asker, responder, id, asked, line]


class Unanswered:
    """The direct messages matching a rule that wait for an answer, by stats' rule."""

    def __init__(self, rule: Rule, saved: Iterable[Waiting] = ()) -> None:
        assert rule.unanswered is not None
        self.rule = rule
        self.after = rule.unanswered
        self.tracker = ResponseTracker()
        self.lines: dict[tuple[str | None, int], Waiting] = {}
        for entry in sorted(saved, key=lambda w: float(w[4])):
            room, asker, responder, msg_id, asked, _line = entry
            self.tracker.add(int(msg_id), asker, responder, float(asked), None, room)
            self.lines[(room, int(msg_id))] = list(entry)
        self.earliest: float | None = None  # the oldest watched message's time
        self._prune()

    def _prune(self) -> None:
        """Forget the watched messages answered (or expired) since; note the oldest."""
        still = {(room, msg_id) for room, _a, _r, msg_id, _t in self.tracker.waiting_messages()}
        for gone in set(self.lines) - still:
            del self.lines[gone]
        self.earliest = min((float(w[4]) for w in self.lines.values()), default=None)

    def feed(self, items: Iterable[Item]) -> None:
        for item in items:
            message = parse_line(item.raw)
            if message is None or message.get("is_cc") in (1, True):
                continue
            sender, to = message.get("from_agent"), message.get("to_agent")
            stamp = timestamp_of(message)
            if not isinstance(sender, str) or not isinstance(to, str) or stamp is None:
                continue
            when = stamp.timestamp()
            reply = message.get("reply_to")
            reply_to = reply if isinstance(reply, int) and not isinstance(reply, bool) else None
            msg_id = message.get("id")
            watched = (
                isinstance(msg_id, int)
                and to not in ("all", sender)
                and self.rule.filters.matches(message)
            )
            self.tracker.add(msg_id if watched else None, sender, to, when, reply_to, item.room)
            if watched:
                assert isinstance(msg_id, int)
                self.lines[(item.room, msg_id)] = [
                    item.room, sender, to, msg_id, when, _body(item.raw)
                ]  # fmt: skip
        self._prune()

    def due(self, now: dt.datetime, at: float) -> list[Event]:
        """The watched messages unanswered for the rule's time at ``now``; each once."""
        moment = local(now).timestamp()
        if self.earliest is None or moment - self.earliest < self.after:
            return []  # (each round: so nothing is looked through before its time)
        found: list[Event] = []
        for room, asker, responder, msg_id, asked in sorted(
            self.tracker.waiting_messages(), key=lambda w: w[4]
        ):
            if (room, msg_id) not in self.lines or moment - asked < self.after:
                continue
            line = self.lines.pop((room, msg_id))[5]
            self.tracker.forget(room, asker, responder, msg_id)
            body = json.dumps(
                {
                    "type": "unanswered",
                    "waited_seconds": int(moment - asked),
                    "responder": responder,
                    "message": json.loads(line),
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            found.append(Event(f"unanswered:{key_of(room, msg_id)}", "unanswered", room, body, at))
        self._prune()
        return found

    def saved(self) -> list[Waiting]:
        return list(self.lines.values())


def text(event: Event) -> str:
    """One readable line about an event (Slack, ntfy, email, a digest)."""
    data = event.data()
    where = f"[{event.room}] " if event.room else ""
    if event.kind == "message":
        return f"{where}{_message_text(data)}"
    if event.kind == "unanswered":
        waited = int(data.get("waited_seconds", 0)) // 60
        return (
            f"{where}unanswered for {waited} min by {data.get('responder')}: "
            f"{_message_text(data.get('message', {}))}"
        )
    if event.kind == "task":
        row = data.get("row") or {}
        title = row.get("title") or ""
        who = row.get("assigned_to")
        return (
            f"{where}task {data.get('task')} {data.get('from')} -> {data.get('to')}"
            + (f" ({who})" if who else "")
            + (f": {title}" if title else "")
        )
    if event.kind == "agent":
        return f"{where}agent {data.get('agent')} is {data.get('health')} (was {data.get('from')})"
    return f"{where}{event.body}"


def _message_text(message: dict[str, Any]) -> str:
    if agentkeys.is_sealed(message):  # never opened into a notification: see the module doc
        content = agentkeys.NOT_SENT
    else:
        content = str(message.get("content", ""))
    if len(content) > PREVIEW:
        content = content[:PREVIEW] + "..."
    task = f" [{message['task_id']}]" if message.get("task_id") else ""
    return (
        f"{message.get('from_agent')} -> {message.get('to_agent')}{task}"
        f" (#{message.get('id')}): {content}"
    )
