"""Recipients, identities and the age calls themselves: the one place pyrage is used.

Why one place: pyrage is an optional extra, imported here only when something is to be
encrypted or decrypted (a logger with ``encrypt_to``, a reader meeting an ``.age``
file, ``keys new``), so a logger without encryption never loads it; and the rules for
what a recipient or an identity may be (a key, or a file of them; ``DEAD_DROP_IDENTITY``)
are written once.

A reader's identity is set once per process (:func:`use_identity`, from ``--identity``
or the settings file's ``identity``), else taken from ``DEAD_DROP_IDENTITY``: a path to
an age identity file, or the ``AGE-SECRET-KEY-1...`` key itself. Decrypted bytes live
in memory only; nothing here writes plaintext anywhere.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ENV_IDENTITY = "DEAD_DROP_IDENTITY"
MARKER = ".dead-drop-logger.encrypted"  # written where a logger encrypts (is_encrypted)
SECRET_PREFIX = "AGE-SECRET-KEY-"


class CryptError(Exception):
    """Encryption or decryption cannot be done (the message is fit for the user)."""


class MissingIdentity(CryptError):
    """An encrypted file is to be read and no identity is configured."""


def age_module() -> ModuleType:
    """pyrage, imported on first use (the ``[encrypt]`` extra)."""
    try:
        import pyrage
    except ImportError:
        raise CryptError(
            "encryption needs pyrage: pip install 'dead-drop-logger[encrypt]'"
            " (./install.sh installs it)"
        ) from None
    module: ModuleType = pyrage
    return module


# -- recipients (writing) ----------------------------------------------------------------


def _recipient(text: str) -> Any:
    age = age_module()
    try:
        if text.startswith("ssh-"):
            return age.ssh.Recipient.from_str(text)
        return age.x25519.Recipient.from_str(text)
    except Exception:  # pyrage.RecipientError, or a ValueError of its parser
        raise CryptError(f"{text[:20]!r} is not an age recipient (age1... or an ssh key)") from None


def check_recipient(text: str) -> None:
    """Raise CryptError (one line) unless ``text`` is an age recipient (age1..., ssh)."""
    _recipient(text)


def _is_key(text: str) -> bool:
    return text.startswith(("age1", "ssh-"))


def load_recipients(values: Sequence[str]) -> tuple[str, ...]:
    """The recipients ``values`` name: each a key (``age1...``, ``ssh-ed25519 ...``) or
    the path of a recipients file (one key a line, ``#`` comments), each key checked.
    Raises CryptError (one line)."""
    found: list[str] = []
    for value in values:
        value = value.strip()
        if _is_key(value):
            found.append(value)
            continue
        path = Path(value).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CryptError(
                f"encrypt_to {value!r} is neither a recipient (age1...) nor a readable"
                f" recipients file ({exc.strerror or exc})"
            ) from None
        keys = [
            ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
        ]
        if not keys:
            raise CryptError(f"recipients file {path} holds no recipient")
        found.extend(keys)
    for key in found:
        _recipient(key)
    return tuple(dict.fromkeys(found))


_parsed: dict[tuple[str, ...], list[Any]] = {}


def encrypt(data: bytes, recipients: Sequence[str]) -> bytes:
    """``data`` as one standard (binary) age file to ``recipients``."""
    key = tuple(recipients)
    parsed = _parsed.get(key)
    if parsed is None:
        parsed = _parsed[key] = [_recipient(r) for r in key]
    try:
        result: bytes = age_module().encrypt(data, parsed)
    except Exception as exc:
        raise CryptError(f"cannot encrypt: {exc}") from None
    return result


# -- identities (reading) ----------------------------------------------------------------

_source: str | None = None  # --identity / the settings file's identity; None: the env
_identities: tuple[str | None, list[Any]] | None = None


def use_identity(source: str | os.PathLike[str] | None) -> None:
    """Read encrypted files with this identity (a path, or the key itself) from now on;
    None: ``DEAD_DROP_IDENTITY``, if set."""
    global _source, _identities
    _source = None if source is None else os.fspath(source)
    _identities = None


def _configured() -> str | None:
    source = _source if _source else os.environ.get(ENV_IDENTITY) or None
    return source


def identity_configured() -> bool:
    return _configured() is not None


def _parse_identities(source: str) -> list[Any]:
    age = age_module()
    if source.strip().startswith(SECRET_PREFIX):
        text, where = source, ENV_IDENTITY
    else:
        path = Path(source).expanduser()
        where = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CryptError(f"cannot read identity {path}: {exc.strerror or exc}") from None
        if b"PRIVATE KEY" in raw:  # an ssh private key
            try:
                return [age.ssh.Identity.from_buffer(raw)]
            except Exception as exc:
                raise CryptError(f"identity {path} is not a usable ssh key: {exc}") from None
        text = raw.decode("utf-8", "replace")
    keys = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(SECRET_PREFIX)]
    if not keys:
        raise CryptError(f"identity {where} holds no AGE-SECRET-KEY-1... line")
    try:
        return [age.x25519.Identity.from_str(key) for key in keys]
    except Exception:
        raise CryptError(f"identity {where} holds a damaged AGE-SECRET-KEY line") from None


def identities() -> list[Any]:
    """The configured identities, parsed once. Raises MissingIdentity when none is."""
    global _identities
    source = _configured()
    if source is None:
        raise MissingIdentity(
            "the logs are encrypted and no identity is set: give --identity PATH, set"
            f" identity in config.toml or {ENV_IDENTITY} (an age identity file)"
        )
    if _identities is None or _identities[0] != source:
        _identities = (source, _parse_identities(source))
    return _identities[1]


_fast: tuple[list[Any], list[Any]] | None = None  # (pyrage identities, stream.Key of them)


def _fast_keys(keys: list[Any]) -> list[Any]:
    """The X25519 identities among ``keys`` as :class:`.stream.Key` (none without the
    ``cryptography`` package: then pyrage opens every file)."""
    global _fast
    if _fast is None or _fast[0] is not keys:
        from . import stream

        _fast = (keys, stream.keys_of(keys) if stream.available() else [])
    return _fast[1]


def decrypt(data: bytes, path: Path) -> bytes:
    """The plaintext of the age file ``data`` (read from ``path``), in memory.
    Raises MissingIdentity or CryptError (a wrong key, a damaged file).

    A file sealed to an X25519 recipient of ours is opened by :mod:`.stream` (several
    times faster); anything else by pyrage."""
    keys = identities()
    fast = _fast_keys(keys)
    if fast:
        from . import stream

        try:
            opened = stream.open_age(data, fast)
        except stream.Damaged as exc:
            raise CryptError(f"cannot decrypt {path}: {exc}") from None
        if opened is not None:
            return opened
    age = age_module()
    try:
        result: bytes = age.decrypt(data, keys)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise CryptError(f"cannot decrypt {path} with the identity given ({reason})") from None
    return result


# -- keys new ------------------------------------------------------------------------------


def new_identity(path: Path) -> str:
    """Write a new identity to ``path`` (0600, never over an existing file), in
    ``age-keygen``'s format; return its recipient."""
    age = age_module()
    identity = age.x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except FileExistsError:
        raise CryptError(f"{path} exists; not overwriting an identity") from None
    except OSError as exc:
        raise CryptError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return recipient


# -- the predicate for what lives beside the logs (the index) -------------------------------


def mark_encrypted(log_dir: Path) -> None:
    """Record that ``log_dir`` is written encrypted (before its first segment), so
    :func:`is_encrypted` says so even while it holds no ``.age`` file yet."""
    write_marker(log_dir / MARKER, "this log directory is written encrypted (age)")


def write_marker(marker: Path, what: str) -> None:
    """A small durable file whose presence says how a log directory is written (0600,
    fsynced, never through a symlink); left as it is when there."""
    if marker.exists():
        return
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{what}; see docs/encryption.md\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def has_marker(log_dir: Path, marker: str, suffix: str | None = None) -> bool:
    """Whether ``log_dir`` or a room directory in it holds ``marker`` (or, in
    ``log_dir`` itself, a file ending in ``suffix``)."""
    try:
        with os.scandir(log_dir) as entries:
            for entry in entries:
                if entry.name == marker or (suffix and entry.name.endswith(suffix)):
                    return True
                if entry.is_dir(follow_symlinks=False) and (Path(entry.path) / marker).exists():
                    return True
    except OSError:
        return False
    return False


def is_encrypted(log_dir: Path) -> bool:
    """Whether ``log_dir`` (or a room directory in it) holds encrypted logs, or a logger
    writes it encrypted: then nothing derived from message content may be stored beside
    it in plaintext (the index stores no content for it)."""
    return has_marker(log_dir, MARKER, ".age")
