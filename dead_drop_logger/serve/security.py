"""Who may ask: the bind rule, the bearer token, the Host check; no framework here.

Why these rules:
- ``serve`` binds 127.0.0.1 unless told otherwise, and **any other address needs a
  token**: not only ``0.0.0.0`` but also ``::1``, ``localhost`` or ``127.0.0.2``. The rule
  is the literal one ("bound to 127.0.0.1 by default; binding to any other address
  requires a token") because it is the one a user can check by reading the command
  line, and because telling which names and addresses can only be reached from this
  machine (a ``127.0.0.0/8`` alias, an ``lo`` with extra addresses, a container's
  network) is a guess the server should not make for them.
- The token is made once (``secrets.token_urlsafe``, 256 bits) into a 0600 file in a
  0700 directory under the user's config directory (or ``--token-file``), never
  written anywhere else and never logged; ``serve --show-token`` prints it. It is sent
  as ``Authorization: Bearer TOKEN``, or as ``?access_token=TOKEN`` where a header cannot
  be set (a browser's EventSource), compared in constant time.
- Without a token (127.0.0.1), the ``Host`` header must name this machine
  (``127.0.0.1:PORT`` or ``localhost:PORT``): a web page elsewhere cannot make a
  browser read the API by pointing a name of its own at 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import platformdirs

DEFAULT_HOST = "127.0.0.1"
TOKEN_NAME = "serve-token"
APP = "dead-drop-logger"


class TokenError(Exception):
    """The token file cannot be read or made (the message is fit for the user)."""


def default_token_file() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / TOKEN_NAME


def needs_token(host: str) -> bool:
    """Whether binding ``host`` requires a token: every address but 127.0.0.1."""
    return host != DEFAULT_HOST


def load_or_make_token(path: Path) -> str:
    """The token in ``path``, made (0600, its directory 0700) when there is none."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read the token file {path}: {exc}") from None
    if text:
        _check_private(path)
        return text
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
            out.flush()
            os.fsync(out.fileno())
    except FileExistsError:  # another serve made it meanwhile: theirs
        return load_or_make_token(path)
    except OSError as exc:
        raise TokenError(f"cannot write the token file {path}: {exc.strerror or exc}") from None
    return token


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise TokenError(
            f"the token file {path} can be read by others (mode {mode:o}): chmod 600 it"
        )


@dataclass(frozen=True)
class Guard:
    """What a request must show: the token (None: none needed) or a local Host."""

    token: str | None
    port: int

    def allows(self, authorization: str | None, access_token: str | None) -> bool:
        if self.token is None:
            return True
        given = None
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                given = value.strip()
        if given is None:
            given = access_token
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_ok(self, host: str | None) -> bool:
        """With no token, the Host header must be this machine's own name."""
        if self.token is not None:
            return True
        if host is None:
            return False
        return host in (f"127.0.0.1:{self.port}", f"localhost:{self.port}")
