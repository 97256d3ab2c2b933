"""HTTP: one POST per batch, for Loki, Elasticsearch ``_bulk``, or any receiver.

Why it looks like this: HTTP has no key of its own, so each body says it, the way the
receiver deduplicates:

- **Elasticsearch** (a URL ending ``/_bulk``): a ``create`` action per line with
  ``_id`` = ``ROOM:ID``, so a repeated line is refused by the index (status 409,
  counted as delivered) and never stored twice. The index is the URL's
  (``/INDEX/_bulk``) or ``?index=`` (default ``dead-drop``).
- **Loki** (a URL ending ``/loki/api/v1/push``): one stream per room (labels
  ``service_name="dead-drop"``, ``room``), each line at its message's own timestamp,
  with the key as structured metadata: Loki drops a line it already holds with the
  same stream, timestamp and content, which is what a repeat is.
- **Anything else**: the logged lines as NDJSON, exactly as logged, one POST per room
  in the batch (``Dead-Drop-Room``: the room, ``%``-encoded; empty for the main log).

With ``?hub=NAME`` (several hubs into one index or Loki), keys are ``HUB/ROOM:ID``,
Loki streams get a ``hub`` label and NDJSON posts a ``Dead-Drop-Hub`` header.
Every POST carries ``Idempotency-Key: FIRST..LAST`` (the first and last ``ROOM:ID``
of its lines). A batch repeated after a crash can have other boundaries, so a generic
receiver deduplicates by line (room and the line's ``id``), as the other two do.
A 2xx is delivered; anything else (and a refused connection) is retried.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from .position import Item
from .sink import SinkError
from .target import Target

TIMEOUT = 30.0


def mode_of(path: str) -> str:
    if path.rstrip("/").endswith("/_bulk"):
        return "elasticsearch"
    if path.rstrip("/").endswith("/loki/api/v1/push"):
        return "loki"
    return "ndjson"


def runs(items: Sequence[Item]) -> Iterator[list[Item]]:
    """``items`` in runs of one room each, in order."""
    run: list[Item] = []
    for item in items:
        if run and item.room != run[0].room:
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def idempotency_key(target: Target, items: Sequence[Item]) -> str:
    return f"{target.key(items[0].key)}..{target.key(items[-1].key)}"


def elasticsearch_body(target: Target, items: Sequence[Item], index: str) -> bytes:
    out = []
    for item in items:
        action = {"create": {"_index": index, "_id": target.key(item.key)}}
        out.append(json.dumps(action, separators=(",", ":")).encode() + b"\n")
        out.append(item.raw)
    return b"".join(out)


def loki_nanos(raw: bytes) -> str:
    """The line's message timestamp (local time, as the server writes it) in epoch
    nanoseconds, as Loki wants it; 0 for a line without one."""
    try:
        stamp = json.loads(raw).get("timestamp")
        when = dt.datetime.fromisoformat(stamp)
    except (ValueError, TypeError, AttributeError):
        return "0"
    if when.tzinfo is None:
        when = when.astimezone()  # naive: the machine's local time
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return str((delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000)


def loki_body(target: Target, items: Sequence[Item]) -> bytes:
    streams: list[dict[str, Any]] = []
    hub = {"hub": target.hub} if target.hub else {}
    for run in runs(items):
        labels: dict[str, str] = {"service_name": "dead-drop", **hub, "room": run[0].room or ""}
        streams.append(
            {
                "stream": labels,
                "values": [
                    [loki_nanos(i.raw), i.raw[:-1].decode("utf-8"), {"key": target.key(i.key)}]
                    for i in run
                ],
            }
        )
    return json.dumps({"streams": streams}, separators=(",", ":"), ensure_ascii=False).encode()


def requests(target: Target, items: Sequence[Item]) -> list[tuple[str, dict[str, str], bytes]]:
    """The POSTs that deliver ``items``: (path with query, headers, body) each."""
    parts = urllib.parse.urlsplit(target.url)
    mode = mode_of(parts.path)
    query = parts.query
    path = (parts.path or "/") + (f"?{query}" if query and mode == "ndjson" else "")
    headers = {"User-Agent": "dead-drop-logger"}
    token = target.token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif parts.username:
        password = target.password() or ""
        pair = f"{urllib.parse.unquote(parts.username)}:{password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    out = []
    if mode == "elasticsearch":
        segments = [s for s in parts.path.split("/") if s]
        index = segments[-2] if len(segments) >= 2 else target.query("index", "dead-drop")
        body = elasticsearch_body(target, items, index)
        out.append(
            (
                "/_bulk" if len(segments) < 2 else parts.path,
                {
                    **headers,
                    "Content-Type": "application/x-ndjson",
                    "Idempotency-Key": idempotency_key(target, items),
                },
                body,
            )
        )
    elif mode == "loki":
        out.append(
            (
                path,
                {
                    **headers,
                    "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key(target, items),
                },
                loki_body(target, items),
            )
        )
    else:
        for run in runs(items):
            room = urllib.parse.quote(run[0].room or "", safe="")
            out.append(
                (
                    path,
                    {
                        **headers,
                        "Content-Type": "application/x-ndjson",
                        "Idempotency-Key": idempotency_key(target, run),
                        "Dead-Drop-Room": room,
                        **({"Dead-Drop-Hub": target.hub} if target.hub else {}),
                    },
                    b"".join(i.raw for i in run),
                )
            )
    return out


class HttpSink:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.parts = urllib.parse.urlsplit(target.url)
        self.conn: http.client.HTTPConnection | None = None

    def open(self) -> None:
        host = self.parts.hostname or "127.0.0.1"
        if self.parts.scheme == "https":
            self.conn = http.client.HTTPSConnection(host, self.parts.port, timeout=TIMEOUT)
        else:
            self.conn = http.client.HTTPConnection(host, self.parts.port, timeout=TIMEOUT)

    def reconcile(self, items: Sequence[Item]) -> Sequence[Item]:
        return items

    def send(self, items: Sequence[Item]) -> None:
        assert self.conn is not None
        for path, headers, body in requests(self.target, items):
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                response = self.conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()
                raise SinkError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
            if not 200 <= response.status < 300:
                raise SinkError(f"HTTP {response.status} {response.reason}")
            if mode_of(self.parts.path) == "elasticsearch":
                _bulk_errors(answer)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _bulk_errors(answer: bytes) -> None:
    """Raise unless every action was created or already there (409)."""
    try:
        value: Any = json.loads(answer)
    except ValueError:
        raise SinkError("_bulk answered with something other than JSON") from None
    if not isinstance(value, dict) or not value.get("errors"):
        return
    for entry in value.get("items", []):
        result: Any = next(iter(entry.values()), {}) if isinstance(entry, dict) else {}
        status = result.get("status", 0) if isinstance(result, dict) else 0
        if status not in (200, 201, 409):
            reason = result.get("error", {}) if isinstance(result, dict) else {}
            raise SinkError(f"_bulk refused a line: {status} {json.dumps(reason)[:200]}")
