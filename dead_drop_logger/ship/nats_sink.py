"""NATS JetStream: one subject per room, deduplicated by ``Nats-Msg-Id``.

Why it looks like this:
- Each line is published as it is logged (the payload is the line's exact bytes,
  without its newline) on ``PREFIX.ROOM.messages`` (``PREFIX`` is ``deaddrop`` by
  default; the main log's token is ``~``; a room name's characters other than letters,
  digits, ``_`` and ``-`` are written ``~HH``, since ``.``, ``*``, ``>`` and spaces
  cannot be in a subject token), with the header ``Nats-Msg-Id: ROOM:ID``: the stream
  drops a second publish with the same id inside its duplicate window. With
  ``?hub=NAME`` (several hubs into one stream): ``PREFIX.HUB.ROOM.messages`` and
  ``HUB/ROOM:ID``.
- The duplicate window is two minutes by default; a shipper killed, then restarted
  after a longer outage, repeats its last batch after the window closed. So at every
  connection the first batch is *reconciled*: for each room in it, the stream's last
  message on the room's subject is read, and if its ``Nats-Msg-Id`` is in the batch,
  the room's lines up to it are already in the stream and are not published again
  (a batch is published in order, and the stream stores a subject's messages in the
  order it received them, so what reached it is a prefix of each room's lines).
- A batch is published without waiting for each acknowledgement in turn (all in
  flight at once, acknowledgements awaited together): one round trip per batch, not
  per line, written on the wire by :mod:`.nats_wire` (nats-py's per-message
  ``publish_async`` was the limit of a backlog); nats-py keeps the stream's management
  and the reconciliation. The stream (``DEADDROP`` by default, subjects ``deaddrop.>``) is created
  if missing, with the server's defaults (file storage, a two-minute window); make it
  yourself to choose replicas, retention and limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors

from .nats_wire import Frames, Publisher, frames, new_inbox
from .position import Item
from .sink import SinkError
from .target import Target

TIMEOUT = 10.0


def subject_token(room: str | None) -> str:
    """A room's name as one subject token (``~`` for the main log)."""
    if room is None:
        return "~"
    return re.sub(
        r"[^A-Za-z0-9_-]",
        lambda m: "".join(f"~{b:02X}" for b in m.group(0).encode()),
        room,
    )


class NatsSink:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.stream = target.query("stream", "DEADDROP")
        self.prefix = target.query("subject", "deaddrop")
        self.loop = asyncio.new_event_loop()
        self.nc: Any = None
        self.js: Any = None
        self.wire: Publisher | None = None
        self._subjects: dict[str | None, str] = {}
        self._wire_subjects: dict[str | None, bytes] = {}
        self.inbox = new_inbox()  # the publisher's, across its connections
        self._next = 0  # the next reply number on it

    def subject(self, room: str | None) -> str:
        found = self._subjects.get(room)
        if found is None:
            hub = f"{subject_token(self.target.hub)}." if self.target.hub else ""
            found = f"{self.prefix}.{hub}{subject_token(room)}.messages"
            self._subjects[room] = found
        return found

    def _run(self, coro: Any) -> Any:
        try:
            return self.loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT * 3))
        except SinkError:
            raise
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None

    def open(self) -> None:
        self._run(self._open())
        from urllib.parse import urlsplit

        parts = urlsplit(self.target.url)
        try:
            self.wire = Publisher(
                parts.hostname or "127.0.0.1",
                parts.port or 4222,
                tls=parts.scheme == "tls",
                user=self._user(),
                password=self.target.password(),
                token=self.target.token(),
                timeout=TIMEOUT,
                inbox=self.inbox,
            )
        except (OSError, ValueError) as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None

    async def _open(self) -> None:
        options: dict[str, Any] = {
            "servers": [self._server()],
            "connect_timeout": 5,
            "allow_reconnect": False,
            "max_reconnect_attempts": 0,
        }
        token = self.target.token()
        password = self.target.password()
        user = self._user()
        if token:
            options["token"] = token
        if user:
            options["user"], options["password"] = user, password or ""

        async def quiet(_exc: Exception) -> None:  # errors are raised to the shipper
            return None

        options["error_cb"] = quiet
        self.nc = await nats.connect(**options)
        self.js = self.nc.jetstream(timeout=TIMEOUT)
        try:
            await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(name=self.stream, subjects=[f"{self.prefix}.>"])

    def _server(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.target.url)
        host = parts.hostname or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}:{parts.port or 4222}"

    def _user(self) -> str | None:
        from urllib.parse import unquote, urlsplit

        user = urlsplit(self.target.url).username
        return unquote(user) if user else None

    def reconcile(self, items: Sequence[Item]) -> Sequence[Item]:
        return list(self._run(self._reconcile(items)))

    async def _reconcile(self, items: Sequence[Item]) -> Sequence[Item]:
        rooms: dict[str | None, dict[str, int]] = {}
        for at, item in enumerate(items):
            rooms.setdefault(item.room, {})[self.target.key(item.key)] = at
        drop: set[int] = set()
        for room, keys in rooms.items():
            try:
                last = await self.js.get_last_msg(self.stream, self.subject(room))
            except nats.js.errors.NotFoundError:
                continue
            held = (last.headers or {}).get("Nats-Msg-Id")
            if held in keys:
                upto = keys[held]
                drop.update(at for at, item in enumerate(items[: upto + 1]) if item.room == room)
        return [item for at, item in enumerate(items) if at not in drop]

    def prepare(self, items: Sequence[Item]) -> object:
        """The batch's frames (in the shipper's reading thread)."""
        subjects = self._wire_subjects
        hub = self.target.hub
        prefix = f"{hub}/" if hub else ""
        messages = []
        for item in items:
            subject = subjects.get(item.room)
            if subject is None:
                subject = subjects[item.room] = self.subject(item.room).encode()
            messages.append((subject, (prefix + item.key).encode(), item.raw[:-1]))
        first = self._next
        self._next += len(messages)
        return frames(self.inbox, first, messages)

    def send(self, items: Sequence[Item]) -> None:
        self.send_prepared(items, self.prepare(items))

    def send_prepared(self, items: Sequence[Item], prepared: object) -> None:
        assert self.wire is not None and isinstance(prepared, Frames), "open() first"
        try:
            self.wire.publish_frames(prepared)
        except OSError as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
            self.wire = None
        if self.nc is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self.loop.run_until_complete(asyncio.wait_for(self.nc.close(), 5))
            self.nc = None
        self.loop.close()
