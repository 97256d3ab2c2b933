"""Where a rule delivers: one function per sink, each answering with an :class:`Outcome`.

Why it looks like this:
- The standard library only (http.client, smtplib, subprocess), so the logger's daemon stays
  small; Apprise, for the long tail of services, is an optional extra imported only when
  a rule uses it, with its per-send throttle turned off (the rule has its own pace).
- A webhook follows the Standard Webhooks spec: ``webhook-id`` (the event's key, or the
  digest's), ``webhook-timestamp`` (the attempt's time), ``webhook-signature`` =
  ``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` with the ``whsec_`` secret.
- What the receiver said decides what happens next: 2xx delivered; 410 the endpoint is
  gone (the rule is disabled); anything else is retried, ``Retry-After`` honoured.
- A command runs without a shell, the event as JSON on its stdin; exit 0 is delivered.
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import email.utils
import hashlib
import hmac
import http.client
import json
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .events import Event, text
from .rules import Rule

USER_AGENT = "dead-drop-logger-notify/1"
ANSWER = 300  # characters of a receiver's answer kept (status, --test)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    ok: bool
    detail: str  # the receiver's answer, or the error, in one line
    status: int | None = None
    retry_after: float | None = None  # seconds the receiver asked to wait
    gone: bool = False  # 410: the endpoint is no more


@dataclass(frozen=True)
class Notification:
    """What one attempt sends: one event, or several as a digest under one id."""

    rule: str
    events: Sequence[Event]
    key: str
    digest: bool

    def body(self) -> bytes:
        if not self.digest:
            return self.events[0].body.encode("utf-8")
        return json.dumps(
            {
                "type": "digest",
                "rule": self.rule,
                "count": len(self.events),
                "events": [
                    {"id": e.key, "type": e.kind, "room": e.room, "data": e.data()}
                    for e in self.events
                ],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")

    def text(self) -> str:
        if not self.digest:
            return text(self.events[0])
        lines = [f"{len(self.events)} notifications ({self.rule}):"]
        lines += [f"- {text(e)}" for e in self.events]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        if not self.digest:
            event = self.events[0]
            return {"rule": self.rule, "id": self.key, "type": event.kind, "data": event.data()}
        return {"rule": self.rule, "id": self.key, **json.loads(self.body())}


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature header value."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def send(rule: Rule, note: Notification, secret: str | None) -> Outcome:
    """One attempt to deliver ``note`` through the rule's sink."""
    if rule.sink == "webhook":
        return webhook(rule, note, secret)
    if rule.sink == "slack":
        payload = json.dumps({"text": _title(rule, note) + "\n" + note.text()}).encode()
        return post(rule.url or "", payload, {"Content-Type": "application/json"}, rule.timeout)
    if rule.sink == "ntfy":
        return ntfy(rule, note, secret)
    if rule.sink == "email":
        return mail(rule, note, secret)
    if rule.sink == "command":
        return command(rule, note)
    if rule.sink == "apprise":
        return apprise(rule, note)
    return Outcome(False, f"unknown sink {rule.sink}")


def _title(rule: Rule, note: Notification) -> str:
    if rule.title:
        return rule.title
    if note.digest:
        return f"dead-drop: {rule.name}: {len(note.events)} notifications"
    return f"dead-drop: {rule.name}"


def webhook(rule: Rule, note: Notification, secret: str | None) -> Outcome:
    body = note.body()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": note.key,
        "webhook-timestamp": str(stamp),
        "x-dead-drop-rule": rule.name,
    }
    if secret:
        headers["webhook-signature"] = sign(secret, note.key, stamp, body)
    return post(rule.url or "", body, headers, rule.timeout)


def ntfy(rule: Rule, note: Notification, secret: str | None) -> Outcome:
    headers = {"Title": _title(rule, note), "Content-Type": "text/plain; charset=utf-8"}
    if rule.priority is not None:
        headers["Priority"] = str(rule.priority)
    if rule.tags:
        headers["Tags"] = ",".join(rule.tags)
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    headers = {k: _latin1(v) for k, v in headers.items()}
    return post(rule.url or "", note.text().encode("utf-8"), headers, rule.timeout)


def _latin1(value: str) -> str:
    """A header value HTTP can carry (non-Latin-1 characters replaced)."""
    return value.encode("latin-1", "replace").decode("latin-1")


_LOCAL = threading.local()  # each rule's thread keeps its own connections
MAX_ANSWER = 1 << 20  # a longer answer is not read to its end: the connection is closed


class _Plain(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay


class _Secure(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _connections() -> dict[tuple[str, str, int], http.client.HTTPConnection]:
    found: dict[tuple[str, str, int], http.client.HTTPConnection] | None = getattr(
        _LOCAL, "connections", None
    )
    if found is None:
        found = _LOCAL.connections = {}
    return found


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    """POST ``body``; the connection is kept for the next POST to the same host (no new
    TCP, nor TLS, handshake per event). A kept connection the receiver closed meanwhile
    is replaced once: the request may then reach it twice, which at-least-once allows
    (same ``webhook-id``)."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        return Outcome(False, f"bad port in {_safe(url)}")
    host = parts.hostname or ""
    key = (parts.scheme, host, port)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = {"User-Agent": USER_AGENT, **headers}
    if parts.username is not None:
        token = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        sent["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode("ascii")
    pool = _connections()
    for attempt in (1, 2):
        conn = pool.get(key)
        reused = conn is not None
        if conn is None:
            conn = (
                _Secure(host, port, timeout=timeout)
                if secure
                else _Plain(host, port, timeout=timeout)
            )
            pool[key] = conn
        conn.timeout = timeout
        try:
            conn.request("POST", target, body, sent)
            answer = conn.getresponse()
            said = answer.read(MAX_ANSWER)
            if answer.will_close or not answer.isclosed():
                conn.close()
                del pool[key]
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            conn.close()
            del pool[key]
            if reused and attempt == 1:
                continue  # the receiver closed a kept connection: once more, on a new one
            return Outcome(False, _one_line(f"cannot reach {_safe(url)}: {exc}"))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            pool.pop(key, None)
            return Outcome(False, _one_line(f"cannot reach {_safe(url)}: {exc}"))
        status = answer.status
        text = said[:ANSWER].decode("utf-8", "replace")
        detail = _one_line(f"{status} {text or answer.reason}")
        if 200 <= status < 300:
            return Outcome(True, detail, status)
        return Outcome(
            False, detail, status, retry_after(answer.getheader("Retry-After")), gone=status == 410
        )
    return Outcome(False, f"cannot reach {_safe(url)}")  # not reached: the loop returns


def _safe(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def retry_after(value: str | None) -> float | None:
    """``Retry-After``: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _one_line(value: str) -> str:
    return " ".join(value.split())[:ANSWER]


def mail(rule: Rule, note: Notification, secret: str | None) -> Outcome:
    parts = urllib.parse.urlsplit(rule.smtp_url or "")
    host, port = parts.hostname or "localhost", parts.port
    user = rule.smtp_user or (urllib.parse.unquote(parts.username) if parts.username else None)
    message = email.message.EmailMessage()
    message["From"] = rule.from_addr or ""
    message["To"] = ", ".join(rule.to_addrs)
    message["Subject"] = _title(rule, note)
    message["Message-ID"] = email.utils.make_msgid(domain="dead-drop-logger")
    message["X-Dead-Drop-Id"] = note.key
    message.set_content(note.text() + "\n")
    context = ssl.create_default_context(cafile=rule.ca_file)
    try:
        client: smtplib.SMTP
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(host, port or 465, timeout=rule.timeout, context=context)
        else:
            client = smtplib.SMTP(host, port or 587, timeout=rule.timeout)
        with client:
            client.ehlo()
            secure = parts.scheme == "smtps"
            if parts.scheme == "smtp+starttls" or (
                parts.scheme == "smtp" and client.has_extn("starttls")
            ):
                client.starttls(context=context)
                client.ehlo()
                secure = True
            if user and not secure:
                return Outcome(
                    False, f"{host} offers no STARTTLS: the password is not sent in clear"
                )
            if user:
                if secret is None:
                    return Outcome(False, "smtp_user given but no password (secret_env)")
                client.login(user, secret)
            refused = client.send_message(message)
        if refused:
            return Outcome(False, _one_line(f"refused: {refused}"))
        return Outcome(True, f"accepted by {host} for {len(rule.to_addrs)} recipient(s)")
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error
        said = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        return Outcome(False, _one_line(f"{exc.smtp_code} {said}"), exc.smtp_code)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return Outcome(False, _one_line(f"cannot send through {host}: {exc}"))


def command(rule: Rule, note: Notification) -> Outcome:
    data = json.dumps(note.as_json(), ensure_ascii=False).encode("utf-8")
    try:
        done = subprocess.run(  # a list, no shell: the user's own program
            list(rule.command),
            input=data,
            capture_output=True,
            timeout=rule.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Outcome(False, f"{rule.command[0]} did not finish within {rule.timeout:g}s")
    except OSError as exc:
        return Outcome(False, f"cannot run {rule.command[0]}: {exc.strerror}")
    said = (done.stdout or done.stderr or b"").decode("utf-8", "replace")
    return Outcome(done.returncode == 0, _one_line(f"exit {done.returncode} {said}"))


_APPRISE: dict[tuple[str, ...], Any] = {}  # one Apprise per rule's URLs, kept


def apprise(rule: Rule, note: Notification) -> Outcome:
    """Through Apprise (the optional ``notify`` extra), its throttle off."""
    sender = _APPRISE.get(rule.urls)
    if sender is None:
        try:
            import apprise as apprise_lib  # the optional extra: only a rule using it loads it
        except ImportError:
            return Outcome(
                False, "apprise is not installed: pip install 'dead-drop-logger[notify]'"
            )
        sender = apprise_lib.Apprise()
        for url in rule.urls:
            if not sender.add(url):
                return Outcome(False, "apprise does not understand one of the rule's urls")
        for server in sender:
            server.request_rate_per_sec = 0  # its default: up to one send per 5.5 s per plugin
        _APPRISE[rule.urls] = sender
    ok = sender.notify(body=note.text(), title=_title(rule, note))
    return Outcome(bool(ok), "sent" if ok else "apprise reported a failure")
