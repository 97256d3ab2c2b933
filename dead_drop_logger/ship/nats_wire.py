"""Publishing a batch to JetStream on the NATS wire itself: every line in flight at
once, the acknowledgements read in bulk.

Why it exists: nats-py's ``publish_async`` costs tens of microseconds of Python per
message (a future, a semaphore, a header dict encoded, each acknowledgement parsed into
a message object and dispatched through a subscription's queue), which made the
client, not the server, the limit of a backlog (about 9,000 lines/s here). The
protocol is plain text: a batch is one buffer of ``HPUB`` frames (each with its
``Nats-Msg-Id`` header and its own reply subject), written at once; the server answers
each on that subject with a small JSON acknowledgement, and those are matched by one
regular expression over what arrives. Only a batch every line of which was
acknowledged (stored, or dropped as a duplicate) counts as delivered; any error,
``-ERR`` or silence past the timeout fails the batch, and the shipper retries it.

It speaks just what publishing needs: ``INFO``, ``CONNECT`` (user and password or
token, headers, no-responders), TLS when the URL's scheme is ``tls`` or the server
requires it, ``SUB`` on its own inbox, ``HPUB``, ``PING``/``PONG``. The stream's
management (created if missing, reconciled at connection) stays with nats-py.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .sink import SinkError

WINDOW = 2000  # lines written before the acknowledgements that came are read
_CONTROL = re.compile(rb"(?:PING|PONG|\+OK|-ERR[^\r]*|INFO [^\r]*)\r\n")
# the server's answers on the inbox: "MSG INBOX.N 1 SIZE" (a JSON acknowledgement) and
# "HMSG INBOX.N 1 HEADERS TOTAL" (a status: 503, no stream takes the subject)
_MSG = re.compile(rb"MSG [^ \r]*\.(\d+) 1 (\d+)\r\n")
_HMSG = re.compile(rb"HMSG [^ \r]*\.(\d+) 1 (\d+) (\d+)\r\n")


@dataclass(frozen=True)
class Frames:
    """A batch as written on the wire: ``count`` messages whose replies are numbered
    from ``first``, in chunks of :data:`WINDOW` frames."""

    first: int
    count: int
    chunks: list[bytes]
    largest: int  # the largest payload


def frames(inbox: bytes, first: int, messages: Sequence[tuple[bytes, bytes, bytes]]) -> Frames:
    """The ``HPUB`` frames of ``(subject, Nats-Msg-Id, payload)`` messages, each
    answered on ``INBOX.N`` (N from ``first`` on)."""
    reply = inbox + b"."
    chunks: list[bytes] = []
    window: list[bytes] = []
    largest = 0
    for at, (subject, key, payload) in enumerate(messages):
        largest = max(largest, len(payload))
        header = b"NATS/1.0\r\nNats-Msg-Id: " + key + b"\r\n\r\n"
        sizes = len(header), len(header) + len(payload)
        window.append(
            b"HPUB %s %s%d %d %d\r\n%s%s\r\n"
            % (subject, reply, first + at, *sizes, header, payload)
        )
        if len(window) >= WINDOW:
            chunks.append(b"".join(window))
            window = []
    if window:
        chunks.append(b"".join(window))
    return Frames(first, len(messages), chunks, largest)


def new_inbox() -> bytes:
    return f"_INBOX.{secrets.token_hex(11)}".encode()


class Publisher:
    """One connection that publishes batches and waits for their acknowledgements."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        inbox: bytes | None = None,
    ) -> None:
        self.timeout = timeout
        self.inbox = inbox if inbox is not None else new_inbox()
        self._next = 0  # the next reply number (for publish; never reused on the inbox)
        self._buffer = b""
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock: socket.socket | ssl.SSLSocket = sock
            info = self._info()
            self.max_payload = int(info.get("max_payload", 1 << 20))
            if tls or info.get("tls_required"):
                context = ssl.create_default_context()
                self.sock = context.wrap_socket(sock, server_hostname=host)
            connect: dict[str, object] = {
                "verbose": False,
                "pedantic": False,
                "headers": True,
                "no_responders": True,
                "lang": "python3",
                "version": "dead-drop-logger",
                "protocol": 1,
            }
            if token:
                connect["auth_token"] = token
            if user:
                connect["user"], connect["pass"] = user, password or ""
            self._write(
                b"CONNECT "
                + json.dumps(connect).encode()
                + b"\r\nSUB "
                + self.inbox
                + b".* 1\r\nPING\r\n"
            )
            self._until_pong()
        except BaseException:
            sock.close()
            raise

    def _info(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\r\n" not in self._buffer:
            self._read(deadline)
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        if not line.startswith(b"INFO "):
            raise SinkError(f"not a NATS server: {line[:60]!r}")
        value = json.loads(line[5:])
        if not isinstance(value, dict):
            raise SinkError("not a NATS server: INFO is not an object")
        return value

    def _until_pong(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            at = 0
            while True:
                found = _CONTROL.match(self._buffer, at)
                if found is None:
                    break
                self._control(found.group(0))
                at = found.end()
                if found.group(0) == b"PONG\r\n":
                    self._buffer = self._buffer[at:]
                    return
            self._buffer = self._buffer[at:]
            self._read(deadline)

    def _control(self, line: bytes) -> None:
        if line.startswith(b"-ERR"):
            raise SinkError(f"NATS: {line[5:].strip().decode('utf-8', 'replace')}")
        if line == b"PING\r\n":
            self._write(b"PONG\r\n")

    def _read(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SinkError(f"NATS: no answer within {self.timeout:g}s")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            raise SinkError(f"NATS: no answer within {self.timeout:g}s") from None
        if not data:
            raise SinkError("NATS: connection closed by the server")
        self._buffer += data

    def _write(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise SinkError(f"NATS: could not write within {self.timeout:g}s") from None

    def publish(self, messages: Sequence[tuple[bytes, bytes, bytes]]) -> None:
        """Publish ``(subject, Nats-Msg-Id, payload)`` messages; return once every one
        is acknowledged by the stream (stored, or a duplicate it already holds)."""
        first = self._next
        self._next += len(messages)
        self.publish_frames(frames(self.inbox, first, messages))

    def publish_frames(self, batch: Frames) -> None:
        """Write ``batch`` (built on this publisher's inbox, its numbers never used
        before on it); return once the stream acknowledged every message."""
        if batch.largest > self.max_payload:
            raise SinkError(
                f"a line of {batch.largest} bytes is over the server's max_payload"
                f" ({self.max_payload})"
            )
        waiting = bytearray(batch.count)  # 1: acknowledged
        left = batch.count
        for chunk in batch.chunks:
            self._write(chunk)
            left = self._acks(batch.first, waiting, left, wait=False)
        deadline = time.monotonic() + self.timeout
        while left:
            left = self._acks(batch.first, waiting, left, wait=True, deadline=deadline)

    def _acks(
        self,
        first: int,
        waiting: bytearray,
        left: int,
        *,
        wait: bool,
        deadline: float = 0.0,
    ) -> int:
        """Take the acknowledgements that arrived (reading once: when ``wait``, until
        something came; else only what is there already); the count still missing."""
        if wait:
            self._read(deadline)
        else:
            self.sock.setblocking(False)
            try:
                with contextlib.suppress(BlockingIOError, ssl.SSLWantReadError):
                    data = self.sock.recv(1 << 20)
                    if not data:
                        raise SinkError("NATS: connection closed by the server")
                    self._buffer += data
            finally:
                self.sock.setblocking(True)
        buffer = self._buffer
        at = 0
        end = len(buffer)
        size = len(waiting)
        while at < end:
            found = _MSG.match(buffer, at)
            if found is not None:
                start = found.end()
                stop = start + int(found.group(2))
                if stop + 2 > end:
                    break  # the rest has not arrived yet
                number = int(found.group(1)) - first
                at = stop + 2
                if not 0 <= number < size:
                    continue  # an answer to an earlier, failed batch
                body = buffer[start:stop]
                if b'"error"' in body:
                    self._buffer = buffer[at:]
                    raise SinkError(f"NATS: not stored: {_error(body)}")
                if not waiting[number]:
                    waiting[number] = 1
                    left -= 1
                continue
            found = _HMSG.match(buffer, at)
            if found is not None:
                start = found.end()
                stop = start + int(found.group(3))
                if stop + 2 > end:
                    break
                status = buffer[start : start + int(found.group(2))]
                at = stop + 2
                if 0 <= int(found.group(1)) - first < size:
                    self._buffer = buffer[at:]
                    said = status.split(b"\r\n")[0].decode("utf-8", "replace")
                    raise SinkError(f"NATS: not stored: {said}")
                continue
            found = _CONTROL.match(buffer, at)
            if found is not None:
                self._control(found.group(0))
                at = found.end()
                continue
            if b"\r\n" not in buffer[at:]:
                break  # a line not whole yet
            raise SinkError(f"NATS: unexpected {buffer[at : at + 60]!r}")
        self._buffer = buffer[at:]
        return left

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _error(body: bytes) -> str:
    try:
        value = json.loads(body)
        error = value["error"]
        return f"{error.get('description', error)} ({error.get('err_code', error.get('code'))})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return body[:200].decode("utf-8", "replace")
