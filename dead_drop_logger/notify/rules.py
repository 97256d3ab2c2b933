"""The ``[[notify]]`` rules of config.toml, checked whole before anything starts.

Why it looks like this:
- A rule is one table: a name (its state file and its lines in the logger's log name it),
  a sink (where it delivers), and what it waits for: messages that match
  ``[notify.match]`` (the search filters, same names and meanings, built by the one
  :func:`..read.reading.make_filters`), or instead ``unanswered``, ``task_status`` or
  ``agent_health``.
- Every mistake is one line ``config.toml:LINE: ...`` (the settings file's rule), found
  by scanning the text for each ``[[notify]]`` block: TOML's parser says no lines.
- Secrets (a webhook's signing secret, an SMTP password) come from the file or from the
  environment (``secret_env``); a file holding one must not be readable by group or
  others, which is refused here rather than noticed after a leak.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import os
import re
import stat
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..read.reading import RequestError, make_filters
from ..read.search import Filters
from ..read.when import parse_duration
from ..rooms_spec import RoomNameError, check_room_name
from ..server import TASK_STATUSES

TABLE = "notify"
SINKS = ("webhook", "slack", "ntfy", "email", "command", "apprise")
HEALTHS = ("healthy", "stale", "dead")
MATCH_KEYS = (
    "from",
    "to",
    "agent",
    "task",
    "contains",
    "regex",
    "ignore_case",
    "no_cc",
    "room",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_QUIET = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
NTFY_PRIORITIES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}

DEFAULT_RETRY_FOR = 24 * 3600.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_BACKOFF_MAX = 300.0

# Keys a rule may hold, by sink ("*": every sink).
COMMON = (
    "name",
    "sink",
    "match",
    "unanswered",
    "task_status",
    "agent_health",
    "digest",
    "max_per_hour",
    "quiet_hours",
    "retry_for",
    "backoff_max",
    "timeout",
    "title",
)
BY_SINK: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "secret", "secret_env"),
    "slack": ("url",),
    "ntfy": ("url", "priority", "tags", "secret", "secret_env"),
    "email": (
        "smtp_url",
        "from_addr",
        "to_addrs",
        "smtp_user",
        "secret",
        "secret_env",
        "ca_file",
    ),
    "command": ("command",),
    "apprise": ("urls",),
}


class RuleError(ValueError):
    """A rule that cannot be used; ``str()`` is ``config.toml:LINE: what is wrong``."""


def matches_content(rule: Rule) -> bool:
    """Whether the rule's filters look into contents (``contains``, ``regex``)."""
    return bool(rule.filters.contains) or rule.filters.regex is not None


def sealed_content_problem(rules: Sequence[Rule], log_dir: Path, sealing: bool) -> str | None:
    """One line when a rule matches contents that are sealed per agent (``log_dir``'s
    marker, or ``sealing``: the logger about to seal them) and no identity is set to
    open any: such a rule could never fire, and nothing would say so. Refused at
    start, as every other mistake in a rule. With an identity, a rule matches the
    contents it opens, as ``search --contains`` does (juno's key: juno's messages)."""
    from ..crypt import agentkeys, keys

    found = [rule for rule in rules if matches_content(rule)]
    if not found or keys.identity_configured():
        return None
    if not sealing and not agentkeys.content_sealed(log_dir):
        return None
    rule = found[0]
    return (
        f"{rule.file}:{rule.line}: notify rule {rule.name!r} matches contents (contains,"
        f" regex), which are sealed per agent in {log_dir}, and no identity is set: it"
        " could never fire; give --identity PATH (or identity in the settings file,"
        " DEAD_DROP_IDENTITY) with a key that opens them, or match on from, to, agent, task"
    )


@dataclass(frozen=True)
class Rule:
    """One checked rule."""

    name: str
    sink: str
    line: int = 1
    url: str | None = None
    secret: str | None = None  # from the file; see :attr:`secret_env`
    secret_env: str | None = None
    filters: Filters = field(default_factory=Filters)
    rooms: tuple[str, ...] = ()  # [notify.match] room; empty: every room and the main log
    unanswered: float | None = None
    task_status: tuple[str, ...] = ()
    agent_health: tuple[str, ...] = ()
    digest: float | None = None
    max_per_hour: int | None = None
    quiet_hours: tuple[int, int] | None = None  # minutes after midnight: start, end
    retry_for: float = DEFAULT_RETRY_FOR
    backoff_max: float = DEFAULT_BACKOFF_MAX
    timeout: float = DEFAULT_TIMEOUT
    title: str | None = None
    priority: int | None = None
    tags: tuple[str, ...] = ()
    smtp_url: str | None = None
    from_addr: str | None = None
    to_addrs: tuple[str, ...] = ()
    smtp_user: str | None = None
    ca_file: str | None = None
    command: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    lines: Mapping[str, int] = field(default_factory=dict)
    file: str = "config.toml"  # the settings file, for messages

    @property
    def kind(self) -> str:
        """What the rule waits for: message, unanswered, task or agent."""
        if self.unanswered is not None:
            return "unanswered"
        if self.task_status:
            return "task"
        if self.agent_health:
            return "agent"
        return "message"

    @property
    def destination(self) -> str:
        """Where it delivers, without secrets (for status and the logger's log)."""
        if self.sink == "email":
            return f"{_no_password(self.smtp_url or '')} to {', '.join(self.to_addrs)}"
        if self.sink == "command":
            return " ".join(self.command)
        if self.sink == "apprise":
            return f"{len(self.urls)} apprise URL(s)"
        return _no_password(self.url or "")

    def where(self, key: str) -> str:
        return f"{self.file}:{self.lines.get(key, self.line)}"

    def secret_value(self) -> str | None:
        """The secret, from the environment when ``secret_env`` names it. Raises
        RuleError when that variable is not set."""
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env)
            if not value:
                raise RuleError(
                    f"{self.where('secret_env')}: rule {self.name!r}: secret_env"
                    f" {self.secret_env} is not set in the environment"
                )
            return value
        return self.secret

    def in_quiet_hours(self, now: dt.datetime) -> bool:
        if self.quiet_hours is None:
            return False
        start, end = self.quiet_hours
        minute = now.hour * 60 + now.minute
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end

    def quiet_end(self, now: dt.datetime) -> dt.datetime:
        """When the quiet hours ``now`` is in end."""
        assert self.quiet_hours is not None
        end = self.quiet_hours[1]
        moment = now.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
        if moment <= now:
            moment += dt.timedelta(days=1)
        return moment


def _no_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]*?)\s*\]\]?")


def block_lines(text: str) -> list[dict[str, int]]:
    """For each ``[[notify]]`` block in order, the line of the block (key ``""``) and of
    each of its keys (``match`` for its ``[notify.match]`` table, ``match.KEY`` for keys
    in it or in an inline ``match = {...}``)."""
    blocks: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    prefix = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header:
            name = header.group(2).strip().strip("\"'")
            if header.group(1) == "[[" and name == TABLE:
                current = {"": number}
                blocks.append(current)
                prefix = ""
            elif current is not None and name.startswith(f"{TABLE}."):
                prefix = name[len(TABLE) + 1 :] + "."
                current.setdefault(prefix[:-1], number)
            else:
                current = None
            continue
        if current is None:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = key.strip().strip("\"'")
        current.setdefault(prefix + key, number)
        if not prefix and value.strip().startswith("{"):
            for inner in re.findall(r"([A-Za-z_]+)\s*=", value):
                current.setdefault(f"{key}.{inner}", number)
    return blocks


def parse(value: object, text: str, path: Path) -> list[Rule]:
    """The rules of the file's ``notify`` key; raises RuleError (``NAME:LINE: ...``)."""
    blocks = block_lines(text)
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        line = blocks[0][""] if blocks else _first_line(text, TABLE)
        raise RuleError(f"{path}:{line}: notify rules are tables: [[notify]]")
    rules: list[Rule] = []
    for index, table in enumerate(value):
        lines = blocks[index] if index < len(blocks) else {"": 1}
        rule = _rule(table, lines, str(path))
        if any(other.name == rule.name for other in rules):
            raise RuleError(
                f"{path}:{lines.get('name', lines[''])}: a second rule named {rule.name!r}"
            )
        rules.append(rule)
    secret = next((r for r in rules if r.secret is not None), None)
    if secret is not None:
        _private(path, secret, str(path))
    return rules


def _first_line(text: str, word: str) -> int:
    for number, raw in enumerate(text.splitlines(), start=1):
        if word in raw:
            return number
    return 1


def _private(path: Path, rule: Rule, name: str) -> None:
    """Refuse a file holding a secret that group or others may read."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077:
        raise RuleError(
            f"{name}:{rule.lines.get('secret', rule.line)}: rule {rule.name!r} holds a secret"
            f" but {path} is readable by others (mode {mode:04o}): chmod 600 it, or take the"
            " secret from the environment (secret_env)"
        )


def _rule(table: Mapping[str, Any], lines: dict[str, int], file: str) -> Rule:
    block = lines[""]

    def fail(key: str, what: str) -> RuleError:
        return RuleError(f"{file}:{lines.get(key, block)}: {what}")

    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(
            "name",
            "a notify rule needs a name: letters, digits, '.', '_' or '-' (at most 64),"
            f" got {name!r}",
        )
    label = f"rule {name!r}"
    sink = table.get("sink")
    if sink not in SINKS:
        raise fail("sink", f"{label}: unknown sink {sink!r} (known: {', '.join(SINKS)})")
    allowed = (*COMMON, *BY_SINK[sink])
    for key in table:
        if key not in allowed:
            raise fail(
                key, f"{label}: unknown key {key!r} for sink {sink} (known: {', '.join(allowed)})"
            )
    values: dict[str, Any] = {"name": name, "sink": sink, "line": block, "lines": dict(lines)}
    values["file"] = file
    try:
        values.update(_sink_values(sink, table, fail, label))
        values.update(_events(table, fail, label))
        values.update(_noise(table, fail, label))
    except RuleError:
        raise
    match = table.get("match", {})
    if not isinstance(match, Mapping):
        raise fail("match", f"{label}: match must be a table: [notify.match]")
    filters, rooms = _match(match, lines, file, label, block)
    values["filters"], values["rooms"] = filters, rooms
    rule = Rule(**values)
    if rule.kind in ("task", "agent"):
        extra = [k for k in match if k not in ("room", "task", "agent")]
        if extra:
            raise fail(
                f"match.{extra[0]}",
                f"{label}: match.{extra[0]} applies to messages; a {rule.kind} rule takes"
                " only room, task and agent",
            )
    return rule


Fail = Any  # Callable[[str, str], RuleError]


def _text(table: Mapping[str, Any], key: str, fail: Fail, label: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise fail(key, f"{label}: {key} must be a non-empty string")
    return value


def _texts(table: Mapping[str, Any], key: str, fail: Fail, label: str) -> tuple[str, ...]:
    value = table.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise fail(key, f"{label}: {key} must be a string or a list of strings")
    return tuple(value)


def _url(value: str | None, key: str, fail: Fail, label: str, schemes: Sequence[str]) -> str:
    if value is None:
        raise fail("", f"{label}: {key} is required")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise fail(key, f"{label}: {key} {value!r} is not a {' or '.join(schemes)} URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise fail(key, f"{label}: {key} {value!r} has a bad port") from None
    return value


def _seconds(table: Mapping[str, Any], key: str, fail: Fail, label: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise fail(key, f'{label}: {key} must be a duration ("30s", "15m", "2h") or seconds')
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise fail(key, f"{label}: {key}: {exc}") from None
    else:
        seconds = float(value)
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise fail(key, f"{label}: {key} must be above 0")
    return seconds


def _sink_values(sink: str, table: Mapping[str, Any], fail: Fail, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    secret = _text(table, "secret", fail, label)
    secret_env = _text(table, "secret_env", fail, label)
    if secret is not None and secret_env is not None:
        raise fail("secret_env", f"{label}: secret and secret_env both given; keep one")
    out["secret"], out["secret_env"] = secret, secret_env
    if sink == "webhook" and secret is not None:
        check_whsec(secret, fail, label)
    if sink in ("webhook", "slack", "ntfy"):
        out["url"] = _url(_text(table, "url", fail, label), "url", fail, label, ("http", "https"))
    if sink == "ntfy":
        out["tags"] = _texts(table, "tags", fail, label)
        priority = table.get("priority")
        if priority is not None:
            if isinstance(priority, str) and priority in NTFY_PRIORITIES:
                priority = NTFY_PRIORITIES[priority]
            if isinstance(priority, bool) or priority not in (1, 2, 3, 4, 5):
                raise fail(
                    "priority", f"{label}: priority must be 1-5 or {', '.join(NTFY_PRIORITIES)}"
                )
            out["priority"] = priority
    if sink == "email":
        smtp = _text(table, "smtp_url", fail, label)
        out["smtp_url"] = _url(smtp, "smtp_url", fail, label, ("smtp", "smtps", "smtp+starttls"))
        sender = _text(table, "from_addr", fail, label)
        if sender is None or "@" not in sender:
            raise fail("from_addr", f"{label}: from_addr must be an address (a@b)")
        out["from_addr"] = sender
        to = _texts(table, "to_addrs", fail, label)
        if not to or not all("@" in a for a in to):
            raise fail("to_addrs", f"{label}: to_addrs must be one or more addresses")
        out["to_addrs"] = to
        out["smtp_user"] = _text(table, "smtp_user", fail, label)
        out["ca_file"] = _text(table, "ca_file", fail, label)
        if out["smtp_user"] is not None and secret is None and secret_env is None:
            raise fail("smtp_user", f"{label}: smtp_user needs its password: secret_env")
    if sink == "command":
        argv = table.get("command")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and a for a in argv)
        ):
            raise fail(
                "command", f'{label}: command must be a list: ["program", "arg", ...] (no shell)'
            )
        out["command"] = tuple(argv)
    if sink == "apprise":
        urls = _texts(table, "urls", fail, label)
        if not urls:
            raise fail("", f"{label}: urls is required (Apprise URLs)")
        if importlib.util.find_spec("apprise") is None:  # found, not imported
            raise fail(
                "sink", f"{label}: sink apprise needs: pip install 'dead-drop-logger[notify]'"
            )
        out["urls"] = urls
    return out


def check_whsec(secret: str, fail: Fail, label: str) -> None:
    body = secret.removeprefix("whsec_")
    try:
        base64.b64decode(body, validate=True)
    except ValueError:
        raise fail(
            "secret", f"{label}: secret must be a Standard Webhooks secret: whsec_ and base64"
        ) from None


def _events(table: Mapping[str, Any], fail: Fail, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["unanswered"] = _seconds(table, "unanswered", fail, label)
    statuses = _texts(table, "task_status", fail, label)
    for status in statuses:
        if status not in TASK_STATUSES:
            raise fail(
                "task_status",
                f"{label}: unknown task status {status!r} (known: {', '.join(TASK_STATUSES)})",
            )
    out["task_status"] = statuses
    healths = _texts(table, "agent_health", fail, label)
    for health in healths:
        if health not in HEALTHS:
            raise fail(
                "agent_health",
                f"{label}: unknown health {health!r} (known: {', '.join(HEALTHS)})",
            )
    out["agent_health"] = healths
    chosen = [k for k in ("unanswered", "task_status", "agent_health") if table.get(k)]
    if len(chosen) > 1:
        raise fail(chosen[1], f"{label}: one of unanswered, task_status, agent_health per rule")
    return out


def _noise(table: Mapping[str, Any], fail: Fail, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {"digest": _seconds(table, "digest", fail, label)}
    cap = table.get("max_per_hour")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise fail("max_per_hour", f"{label}: max_per_hour must be a whole number, at least 1")
    out["max_per_hour"] = cap
    quiet = table.get("quiet_hours")
    if quiet is not None:
        found = _QUIET.match(quiet) if isinstance(quiet, str) else None
        bounds = (
            (int(found.group(1)), int(found.group(2)), int(found.group(3)), int(found.group(4)))
            if found
            else None
        )
        if bounds is None or bounds[0] > 23 or bounds[2] > 23 or bounds[1] > 59 or bounds[3] > 59:
            raise fail("quiet_hours", f'{label}: quiet_hours must be "HH:MM-HH:MM" (22:00-07:00)')
        start, end = bounds[0] * 60 + bounds[1], bounds[2] * 60 + bounds[3]
        if start == end:
            raise fail("quiet_hours", f"{label}: quiet_hours start and end are the same")
        out["quiet_hours"] = (start, end)
    for key, default in (
        ("retry_for", DEFAULT_RETRY_FOR),
        ("backoff_max", DEFAULT_BACKOFF_MAX),
        ("timeout", DEFAULT_TIMEOUT),
    ):
        value = _seconds(table, key, fail, label)
        out[key] = default if value is None else value
    out["title"] = _text(table, "title", fail, label)
    return out


def _match(
    match: Mapping[str, Any], lines: dict[str, int], file: str, label: str, block: int
) -> tuple[Filters, tuple[str, ...]]:
    def fail(key: str, what: str) -> RuleError:
        return RuleError(f"{file}:{lines.get(f'match.{key}', lines.get('match', block))}: {what}")

    for key in match:
        if key not in MATCH_KEYS:
            raise fail(
                key, f"{label}: unknown filter {key!r} in match (known: {', '.join(MATCH_KEYS)})"
            )
    for flag in ("ignore_case", "no_cc"):
        if flag in match and not isinstance(match[flag], bool):
            raise fail(flag, f"{label}: match.{flag} must be true or false")
    task = match.get("task")
    if task is not None and not isinstance(task, str):
        raise fail("task", f"{label}: match.task must be a string")
    regex = match.get("regex")
    if regex is not None and not isinstance(regex, str):
        raise fail("regex", f"{label}: match.regex must be a string")
    texts = {k: _texts(match, k, fail, f"{label}: match") for k in ("from", "to", "agent")}
    contains = _texts(match, "contains", fail, f"{label}: match")
    rooms = _texts(match, "room", fail, f"{label}: match")
    for room in rooms:
        try:
            check_room_name(room)
        except RoomNameError as exc:
            raise fail("room", f"{label}: match.room: {exc}") from None
    try:
        filters = make_filters(
            senders=texts["from"],
            recipients=texts["to"],
            agents=texts["agent"],
            task=task,
            contains=contains,
            ignore_case=bool(match.get("ignore_case", False)),
            regex=regex,
            no_cc=bool(match.get("no_cc", False)),
        )
    except RequestError as exc:
        raise fail("regex", f"{label}: match.regex: {str(exc).split(': ', 1)[-1]}") from None
    return filters, rooms
