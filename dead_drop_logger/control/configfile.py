"""The settings file: ``config.toml`` in the platform's config directory, checked whole.

Why it exists: a hub with many rooms wants its settings written down once, where the
platform keeps such files (``platformdirs.user_config_dir``), not repeated in every
service unit. Why it looks like this:
- Every key is a ``run``/``start`` option in snake case, plus a ``[rooms]`` table of
  ``NAME = "PATH"``; the command line maps it onto option defaults, so the precedence
  (command line, environment, file, defaults) is click's own.
- The whole file is checked before anything starts, and every mistake is one line,
  ``path:line: what is wrong``, the way compilers report: a typo in a key must not be
  silently ignored (the logger would run with a default the user thinks they changed).
- TOML's parser gives a line for syntax errors only, so the line of each key is found
  by scanning the text (good enough for the flat file this is).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import LEVELS
from ..rooms_spec import RoomNameError, check_room_name
from .sizes import parse_size

APP = "dead-drop-logger"
FILE_NAME = "config.toml"
ROOMS_TABLE = "rooms"
SHIP_TABLE = "ship"
NOTIFY_TABLE = "notify"
AGENTS_KEYS_TABLE = "agents_keys"


def default_path() -> Path:
    """``~/.config/dead-drop-logger/config.toml`` on Linux (honouring XDG_CONFIG_HOME),
    ``~/Library/Application Support/dead-drop-logger/config.toml`` on macOS."""
    return Path(_linux_config_dir() or _platform_config_dir()) / FILE_NAME


def _linux_config_dir() -> str | None:
    """platformdirs' answer on Linux when the environment is plain (an absolute
    XDG_CONFIG_HOME, or none and an absolute HOME), without importing it: every command
    reads this, and platformdirs' import (tempfile, random, ...) was ~6 ms of a reading
    command's 0.1 s. Anything else: None, and platformdirs decides
    (tests/test_config_file.py holds that both agree)."""
    if sys.platform != "linux":
        return None
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, APP)
    home = os.environ.get("HOME", "")
    if xdg or not os.path.isabs(home):
        return None
    return os.path.join(os.path.expanduser("~/.config"), APP)


def _platform_config_dir() -> str:
    import platformdirs

    return platformdirs.user_config_dir(APP)


class ConfigError(Exception):
    """The file is unusable; ``str()`` is ``path:line: what is wrong``."""


Value = str | int | float | bool | tuple[str, ...]


def _path(value: object) -> Value:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a path (a non-empty string)")
    return value


def _flag(value: object) -> Value:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _number(
    minimum: float, *, open_min: bool = False, whole: bool = True
) -> Callable[[object], Value]:
    def check(value: object) -> Value:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a whole number" if whole else "must be a number")
        if whole and not isinstance(value, int):
            raise ValueError("must be a whole number")
        if not math.isfinite(value):  # TOML has nan and inf
            raise ValueError(f"must be a finite number (got {value})")
        if value < minimum or (open_min and value == minimum):
            relation = "above" if open_min else "at least"
            raise ValueError(f"must be {relation} {minimum:g} (got {value})")
        return value

    return check


def _size(value: object) -> Value:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError('must be a size: bytes, or a string such as "10MB"')
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"must be at least 1 byte (got {value})")
        return str(value)
    parse_size(value)  # raises ValueError with the reason
    return value


def _recipients(value: object) -> Value:
    """``encrypt_to``: a recipient or recipients file, or a list of them (checked, with
    the keys in recipients files, when the settings are built: see options)."""
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ValueError('must be a recipient or a list of them: ["age1...", "PATH"]')


def _agents_keys(value: object) -> Value:
    """``[agents_keys]``: ``NAME = "age1..."``, one recipient per agent, as the
    ``--agent-key NAME=RECIPIENT`` values (each key parsed in :func:`_check_agent_keys`)."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError('must be a table of NAME = "age1..." (the agents\' recipients)')
    found: list[str] = []
    for name, key in value.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{name}: must be the agent's age recipient (a string: age1...)")
        found.append(f"{name}={key.strip()}")
    return tuple(found)


def _level(value: object) -> Value:
    if not isinstance(value, str) or value.lower() not in LEVELS:
        raise ValueError(f"must be one of {', '.join(LEVELS)}")
    return value.lower()


# Each key: how to check it (and turn it into what the option takes).
KEYS: dict[str, Callable[[object], Value]] = {
    "db": _path,
    "rooms_dir": _path,
    "log_dir": _path,
    "poll_interval": _number(0, open_min=True, whole=False),
    "import_historical": _flag,
    "utc": _flag,
    "retention_days": _number(0),
    "max_bytes": _size,
    "keep_files": _number(1),
    "compress_after": _number(0),
    "no_watch": _flag,
    "log_level": _level,
    "pid_file": _path,
    "encrypt_to": _recipients,
    "seal_interval": _number(0, open_min=True, whole=False),
    "identity": _path,
    "encrypt_content_to_agents": _flag,
    "escrow_to": _recipients,
    AGENTS_KEYS_TABLE: _agents_keys,
}


@dataclass
class ConfigFile:
    """A checked settings file: its values (as the options take them) and their lines."""

    path: Path
    values: dict[str, Value] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # key, or "rooms.NAME" -> line
    ship: dict[str, object] = field(default_factory=dict)  # the [ship] table, checked
    notify: list[Any] = field(default_factory=list)  # notify.rules.Rule, checked whole

    def where(self, *keys: str) -> str:
        """``config.toml:LINE`` (``:L1,L2`` for a setting several entries make up)."""
        return f"{self.path.name}:{','.join(str(self.lines.get(key, 1)) for key in keys)}"


_SYNTAX_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TABLE = re.compile(r"^\s*\[\s*([^\]]*?)\s*\]")


def _key_lines(text: str) -> dict[str, int]:
    """The line of each top-level key and of each ``[rooms]`` entry (``rooms.NAME``)."""
    found: dict[str, int] = {}
    table = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _TABLE.match(line)
        if header and not line.startswith("[["):
            table = header.group(1).strip().strip("\"'")
            found.setdefault(table, number)
            continue
        key, sep, _ = line.partition("=")
        if not sep:
            continue
        key = key.strip().strip("\"'")
        name = f"{table}.{key}" if table else key
        found.setdefault(name, number)
    return found


def load(path: Path) -> ConfigFile:
    """Read and check the whole file. Raises ConfigError (one line) or OSError."""
    raw = path.read_bytes()  # FileNotFoundError first: most commands meet no file
    import tomllib  # only when there is a file: every command reads this (start-up)

    try:
        text = raw.decode("utf-8-sig")  # an editor's byte order mark is not content
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}:1: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _SYNTAX_LINE.search(message)
        line = int(match.group(1)) if match else 1
        what = message[: match.start()] if match else message
        column = f" (column {match.group(2)})" if match else ""
        raise ConfigError(f"{path}:{line}: TOML syntax error: {what}{column}") from None
    lines = _key_lines(text)
    config = ConfigFile(path, lines=lines)

    def fail(key: str, what: str) -> ConfigError:
        return ConfigError(f"{path}:{lines.get(key, 1)}: {what}")

    for key, value in data.items():
        if key == ROOMS_TABLE:
            config.rooms = _rooms(value, fail)
            continue
        if key == SHIP_TABLE:
            config.ship = _ship(value, fail)
            continue
        if key == NOTIFY_TABLE:  # [[notify]] rules: checked by notify/ (docs/notify.md)
            from ..notify import rules as notify_rules

            try:
                config.notify = notify_rules.parse(value, text, path)
            except notify_rules.RuleError as exc:
                raise ConfigError(str(exc)) from None
            continue
        check = KEYS.get(key)
        if check is None:
            known = ", ".join(
                [
                    *KEYS,
                    f"[{ROOMS_TABLE}]",
                    f"[{SHIP_TABLE}]",
                    f"[[{NOTIFY_TABLE}]]",
                ]
            )
            raise fail(key, f"unknown setting {key!r} (known: {known})")
        try:
            config.values[key] = check(value)
        except ValueError as exc:
            raise fail(key, f"{key}: {exc}") from None
    _check_agent_keys(config, fail)
    return config


def _check_agent_keys(config: ConfigFile, fail: Callable[[str, str], ConfigError]) -> None:
    """Agent-specific keys hold together, and every key is one (checked at start, not
    at the first message): the flag, its table and an escrow, or none of them."""
    on = config.values.get("encrypt_content_to_agents") is True
    named = config.values.get(AGENTS_KEYS_TABLE)
    if named and not on:
        raise fail(
            AGENTS_KEYS_TABLE,
            "[agents_keys] is set but encrypt_content_to_agents is not true: contents"
            " would be logged in plaintext; set encrypt_content_to_agents = true",
        )
    if not on:
        return
    if not named:
        raise fail(
            "encrypt_content_to_agents",
            'encrypt_content_to_agents needs an [agents_keys] table (NAME = "age1...")',
        )
    if "escrow_to" not in config.values:
        raise fail(
            "encrypt_content_to_agents",
            'encrypt_content_to_agents needs escrow_to = ["age1..."] (the key that reads'
            " every message, and those of agents with no key)",
        )
    from ..crypt import keys as crypt  # (pyrage: only when keys are set)

    assert isinstance(named, tuple)
    for item in named:
        name, _, key = item.partition("=")
        where = f"{AGENTS_KEYS_TABLE}.{name}"
        try:
            crypt.check_recipient(key)
        except crypt.CryptError as exc:
            at = where if where in config.lines else AGENTS_KEYS_TABLE
            raise fail(at, f"agents_keys.{name}: {exc}") from None
    escrow = config.values["escrow_to"]
    assert isinstance(escrow, tuple)
    try:
        config.values["escrow_to"] = crypt.load_recipients(escrow)
    except crypt.CryptError as exc:
        raise fail("escrow_to", f"escrow_to: {exc}") from None


def _rooms(value: object, fail: Callable[[str, str], ConfigError]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise fail(ROOMS_TABLE, f'{ROOMS_TABLE} must be a table of NAME = "PATH"')
    rooms: dict[str, str] = {}
    for name, path in value.items():
        key = f"{ROOMS_TABLE}.{name}"
        try:
            check_room_name(name)
        except RoomNameError as exc:
            raise fail(key, str(exc)) from None
        if not isinstance(path, str) or not path:
            raise fail(key, f"room {name!r}: must be the path of its database (a string)")
        rooms[name] = path
    return rooms


SHIP_KEYS: dict[str, Callable[[object], object]] = {
    "batch_lines": _number(1),
    "batch_ms": _number(0, whole=False),
    "password_env": _path,
    "token_env": _path,
}


def _ship(value: object, fail: Callable[[str, str], ConfigError]) -> dict[str, object]:
    """``[ship]``: ``to = ["URL", ...]`` and how (batch_lines, batch_ms, the secrets'
    environment variables); each URL checked as ``ship --to`` checks it."""
    from ..ship.target import TargetError, parse  # (stdlib only: no sink library)

    if not isinstance(value, Mapping):
        raise fail(SHIP_TABLE, f'{SHIP_TABLE} must be a table (to = ["URL", ...])')
    checked: dict[str, object] = {}
    for key, item in value.items():
        where = f"{SHIP_TABLE}.{key}"
        if key == "to":
            if not isinstance(item, list) or not all(isinstance(u, str) and u for u in item):
                raise fail(where, 'ship.to must be a list of URLs: to = ["nats://127.0.0.1:4222"]')
            checked["to"] = tuple(item)
            continue
        check = SHIP_KEYS.get(key)
        if check is None:
            known = ", ".join(["to", *SHIP_KEYS])
            raise fail(where, f"unknown setting ship.{key} (known: {known})")
        try:
            checked[key] = check(item)
        except ValueError as exc:
            raise fail(where, f"ship.{key}: {exc}") from None
    for url in checked.get("to", ()):  # type: ignore[attr-defined]
        try:
            parse(
                url,
                password_env=checked.get("password_env"),  # type: ignore[arg-type]
                token_env=checked.get("token_env"),  # type: ignore[arg-type]
            )
        except TargetError as exc:
            raise fail(f"{SHIP_TABLE}.to", str(exc)) from None
    return checked


def find(explicit: Path | None) -> tuple[Path, bool]:
    """The file to read and whether it must exist (one named explicitly must)."""
    if explicit is not None:
        return explicit.expanduser(), True
    return default_path(), False


EXAMPLE = """\
# dead-drop-logger settings. Every option of `dead-drop-logger run` can be set here,
# by its name in snake case; the command line and DEAD_DROP_* environment variables
# override this file. `dead-drop-logger config` shows what is in effect and why.
# Everything is commented out: the defaults apply. Each line shows its default; a
# setting that is not set by default shows an example value and says so.

# db = "~/.dead-drop/messages.db"     # one database (today's layout, no room dirs)
# log_dir = "~/.dead-drop/logs"
# poll_interval = 1.0                 # seconds
# import_historical = false
# utc = false
# retention_days = 30                 # 0 keeps everything
# max_bytes = "10MB"                  # example; default: not set (one file per day)
# keep_files = 100                    # example; default: not set (no limit)
# compress_after = 7                  # example, in days; default: not set (never)
# no_watch = false                    # true: no change notifications, poll only
# log_level = "info"
# pid_file = "~/.dead-drop/logger.pid"  # example; default: not set for run (start, stop,
#                                       # status and restart use this path)

# Encryption at rest (docs/encryption.md): log files sealed to these age recipients
# (keys, or recipients files); the reading commands read them with identity.
# encrypt_to = ["age1..."]            # example; default: not set (plain files)
# seal_interval = 60.0                # seconds a segment stays open at most
# identity = "~/.config/dead-drop-logger/identity.txt"  # example; default: not set

# Agent-specific keys: each message's content sealed to its agents' keys and the
# escrow's; the metadata stays plain and searchable (docs/encryption.md).
# encrypt_content_to_agents = false
# escrow_to = ["age1..."]             # example; default: not set (needed by the above)
# agents_keys = { juno = "age1..." }  # example; default: not set (or an [agents_keys] table)

# A Dead Drop hub: follow every DIR/NAME/messages.db, each room into log_dir/NAME/.
# rooms_dir = "/var/lib/dead-drop/rooms"  # example; default: not set

# Rooms that live elsewhere, NAME = "PATH of its messages.db":
# [rooms]
# ops = "/srv/ops/messages.db"

# Ship every logged line on, exactly once at the other end (run/start ship too):
# [ship]
# to = ["nats://127.0.0.1:4222", "postgresql://logger@127.0.0.1/hub"]  # example
# batch_lines = 1000
# batch_ms = 5
# password_env = "DEAD_DROP_SHIP_PASSWORD"  # example: the password, from the environment
# token_env = "DEAD_DROP_SHIP_TOKEN"        # example: a bearer token (HTTP, NATS)

# Notifications, one [[notify]] table per rule (every key: docs/notify.md):
# [[notify]]
# name = "blocked"
# sink = "webhook"                    # webhook, slack, ntfy, email, command, apprise
# url = "https://hooks.example.org/dead-drop"
# secret_env = "HOOK_SECRET"          # its signing secret, from the environment
# [notify.match]                      # the search filters: from, to, contains...
# contains = "blocked"
"""
