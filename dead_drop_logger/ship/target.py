"""Where a shipper delivers: a sink's URL checked once, its name, and its secrets.

Why it exists: every sink is named by one URL (``nats://``, ``postgresql://``,
``http(s)://``) on the command line or in ``[ship] to``, and that URL is checked before
anything starts, so a typo is one line (exit 2), not a thread failing later. A URL may
carry a password; it is never written anywhere: the sink's name (its position and
status files, its log lines) is built from the URL *without* its credentials, and the
secrets proper come from the environment (``password_env``, ``token_env``) so they are
not in a settings file or a process list at all.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass

SCHEMES = {
    "nats": "nats",
    "tls": "nats",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "http": "http",
    "https": "http",
}


class TargetError(ValueError):
    """A sink URL or setting that cannot be used (the message is fit for the user)."""


@dataclass(frozen=True)
class Target:
    """One sink: its URL (with any password), kind, and the secrets' environment."""

    url: str
    kind: str  # nats, postgresql, http
    password_env: str | None = None
    token_env: str | None = None

    @property
    def shown(self) -> str:
        """The URL without user info (what logs, status and names show)."""
        return redact(self.url)

    @property
    def name(self) -> str:
        """A file name for this sink: its scheme, host, port, and a hash of the URL
        without its credentials (two tables on one server are two sinks)."""
        parts = urllib.parse.urlsplit(self.shown)
        readable = f"{parts.scheme}-{parts.hostname or 'local'}-{parts.port or ''}".rstrip("-")
        readable = re.sub(r"[^A-Za-z0-9_.-]", "_", readable)
        digest = hashlib.sha256(self.shown.encode()).hexdigest()[:10]
        return f"{readable}-{digest}"

    def password(self) -> str | None:
        """The password: from ``password_env`` when set (and present), else the URL's."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise TargetError(f"password_env {self.password_env} is not set")
            return value
        return urllib.parse.urlsplit(self.url).password

    def token(self) -> str | None:
        """The bearer token from ``token_env`` (None when not configured)."""
        if not self.token_env:
            return None
        value = os.environ.get(self.token_env)
        if value is None:
            raise TargetError(f"token_env {self.token_env} is not set")
        return value

    @property
    def hub(self) -> str:
        """``?hub=NAME``: which hub's logs these are, when several hubs ship into one
        stream, table or index (room names and ids are only unique within a hub)."""
        return self.query("hub", "")

    def key(self, item_key: str) -> str:
        """What the sink deduplicates by: ``HUB/ROOM:ID`` with a hub, else ``ROOM:ID``."""
        hub = self.hub
        return f"{hub}/{item_key}" if hub else item_key

    def query(self, key: str, default: str) -> str:
        values = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query).get(key)
        return values[-1] if values else default


def redact(url: str) -> str:
    """``url`` without its user info (``user:secret@`` dropped whole)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def parse(url: str, *, password_env: str | None = None, token_env: str | None = None) -> Target:
    """Check ``url`` (raises TargetError with one line saying what is wrong)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise TargetError(f"ship target {redact_safely(url)!r}: {exc}") from None
    kind = SCHEMES.get(parts.scheme.lower())
    if kind is None:
        raise TargetError(
            f"ship target {redact_safely(url)!r}: unknown scheme {parts.scheme!r}"
            " (nats://, postgresql://, http:// or https://)"
        )
    if not parts.hostname and kind != "postgresql":
        raise TargetError(f"ship target {redact_safely(url)!r} names no host")
    for env in (password_env, token_env):
        if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
            raise TargetError(f"{env!r} is not an environment variable name")
    return Target(url, kind, password_env, token_env)


def redact_safely(url: str) -> str:
    try:
        return redact(url)
    except ValueError:
        return "<unparseable URL>"
