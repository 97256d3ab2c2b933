"""Every command-line option, defined once and shared by the commands that take it.

Each option that is a setting can also be set through the environment variable named in
its help. Options that describe one invocation (``--json``, ``--dry-run``, ``--since``,
``--until``) have none: a variable left exported would silently change later commands.
The option table in docs/options.md is checked against these by ``tests/test_readme.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.core import ParameterSource

from .. import config
from ..config import LEVELS
from ..read.when import parse_duration
from ..rooms_spec import RoomNameError, check_room_name, clashes, parse_dbs
from ..server import TASK_STATUSES as STATUSES
from . import configfile
from .sizes import parse_size

if TYPE_CHECKING:
    from . import settings_report

F = TypeVar("F", bound=Callable[..., Any])


def _compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


class FiniteFloatRange(click.FloatRange):
    """A float option's type: ``nan`` and ``inf`` are refused, not taken as a number of
    seconds (``nan`` compares false with every bound, so a plain FloatRange lets it
    through, and a poll loop waiting nan seconds spins)."""

    name = "number"  # "'soon' is not a valid number", not "... valid float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class DbValue(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """A ``--db`` value, ``PATH`` or ``NAME=PATH``; the environment variable holds one
    (a path with spaces or colons stays whole, as before rooms existed)."""

    name = "[NAME=]PATH"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [rv] if rv else []

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(value)


db = click.option(
    "--db",
    "db",
    type=DbValue(),
    multiple=True,
    default=(),
    show_default="~/.dead-drop/messages.db",
    envvar="DEAD_DROP_DB_PATH",
    show_envvar=True,
    help="The Dead Drop database to follow (opened read-only). Repeat as NAME=PATH to "
    "follow several rooms, each into LOG_DIR/NAME/; a bare PATH logs into LOG_DIR itself.",
)
db_path = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=config.DEFAULT_DB,
    show_default="~/.dead-drop/messages.db",
    envvar="DEAD_DROP_DB_PATH",
    show_envvar=True,
    help="The Dead Drop database (opened read-only).",
)
"""One database, for the commands that read exactly one (the export)."""
rooms_dir = click.option(
    "--rooms-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="DEAD_DROP_ROOMS_DIR",
    show_envvar=True,
    help="Follow every room of a Dead Drop hub: each DIR/NAME/messages.db, into "
    "LOG_DIR/NAME/ (rooms created later are found as they appear).",
)


def room_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_room_name(value)
    except RoomNameError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _room_names(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    return tuple(room_name(ctx, param, name) for name in value)


rooms_filter = click.option(
    "--room",
    "rooms",
    multiple=True,
    metavar="NAME",
    callback=_room_names,
    help="Read only room NAME's log, LOG_DIR/NAME/ (repeatable). Default: the log"
    " directory and every room's in it; each message (or row) shows its room.",
)


def _load_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Read the settings file before any other option, as their defaults."""
    path, required = configfile.find(value)
    try:
        loaded = configfile.load(path)
    except FileNotFoundError:
        if required:
            _config_error(ctx, f"{path}: no such settings file")
        ctx.meta[CONFIG_META] = None
        return path
    except OSError as exc:
        _config_error(ctx, f"{path}: cannot read: {exc.strerror}")
    except configfile.ConfigError as exc:
        _config_error(ctx, str(exc))
    defaults: dict[str, Any] = dict(loaded.values)
    dbs = [str(defaults.pop("db"))] if "db" in defaults else []
    dbs += [f"{name}={where}" for name, where in loaded.rooms.items()]
    if dbs:
        defaults["db"] = dbs
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[CONFIG_META] = loaded
    return path


def _config_error(ctx: click.Context, message: str) -> NoReturn:
    """A settings file that cannot be used: one line as every error, exit 2 (usage)."""
    command = ctx.find_root().command
    program = getattr(command, "program", None) or ctx.find_root().info_name
    click.echo(f"{program}: error: {message}", err=True)
    ctx.exit(2)


CONFIG_META = "dead_drop_logger.config_file"
config_file = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    is_eager=True,
    expose_value=False,
    callback=_load_config,
    envvar="DEAD_DROP_CONFIG",
    show_envvar=True,
    help="The settings file (default: config.toml in the user config directory, "
    "~/.config/dead-drop-logger/ on Linux). Command line and environment override it.",
)
log_dir = click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=config.DEFAULT_LOG_DIR,
    show_default="~/.dead-drop/logs",
    envvar="DEAD_DROP_LOG_DIR",
    show_envvar=True,
    help="Where the daily messages-YYYY-MM-DD.json files go.",
)
poll_interval = click.option(
    "--poll-interval",
    type=FiniteFloatRange(min=0, min_open=True),
    default=config.DEFAULT_POLL_INTERVAL,
    show_default=True,
    envvar="DEAD_DROP_POLL_INTERVAL",
    show_envvar=True,
    metavar="SECONDS",
    help="How often to check the database for new messages.",
)
import_historical = click.option(
    "--import-historical",
    is_flag=True,
    envvar="DEAD_DROP_IMPORT_HISTORICAL",
    show_envvar=True,
    help="First log every message already in the database that this log dir lacks.",
)
utc = click.option(
    "--utc",
    is_flag=True,
    envvar="DEAD_DROP_UTC",
    show_envvar=True,
    help="Date files and midnight in UTC instead of local time.",
)
read_utc = click.option(
    "--utc",
    is_flag=True,
    envvar="DEAD_DROP_UTC",
    show_envvar=True,
    help="The logs were written with --utc (their files dated in UTC), so a --since or"
    " --until day looks one file further.",
)
"""``--utc`` of the commands that read the logs: it says how they were written."""


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """Parse a size such as 10MB, 512KB or 1048576 (bytes)."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _retention_days(when: str) -> Callable[[F], F]:
    return click.option(
        "--retention-days",
        type=click.IntRange(min=0),
        default=config.DEFAULT_RETENTION_DAYS,
        show_default=True,
        envvar="DEAD_DROP_RETENTION_DAYS",
        show_envvar=True,
        metavar="N",
        help=f"Delete day files (all parts, .gz too) more than N days old, {when};"
        " 0 keeps everything.",
    )


retention_days = _retention_days("at start and after each midnight")
retention_days_now = _retention_days("once, now")
"""``--retention-days`` of the one-shot commands (prune, the export): no midnight."""
max_bytes = click.option(
    "--max-bytes",
    callback=_size,
    default=None,
    metavar="SIZE",
    envvar="DEAD_DROP_MAX_BYTES",
    show_envvar=True,
    help="Start a new part (messages-DAY.1.json, .2.json, ...) when the current file would "
    "exceed SIZE (10MB, 512KB, bytes). Default: one file per day.",
)
keep_files = click.option(
    "--keep-files",
    type=click.IntRange(min=1),
    default=None,
    envvar="DEAD_DROP_KEEP_FILES",
    show_envvar=True,
    metavar="N",
    help="Keep only the newest N log files (parts count as files; an encrypted day's "
    "segments as one). Default: no limit.",
)
compress_after = click.option(
    "--compress-after",
    type=click.IntRange(min=0),
    default=None,
    envvar="DEAD_DROP_COMPRESS_AFTER",
    show_envvar=True,
    metavar="DAYS",
    help="Gzip day files more than DAYS days old into messages-DAY.json.gz. Default: never.",
)
no_watch = click.option(
    "--no-watch",
    is_flag=True,
    envvar="DEAD_DROP_NO_WATCH",
    show_envvar=True,
    help="Do not wake on change notifications (inotify): check only every --poll-interval.",
)
dry_run = click.option(
    "--dry-run",
    is_flag=True,
    help="Only list what would be deleted.",
)
rebuild_index = click.option(
    "--rebuild",
    is_flag=True,
    help="Make the index anew from the log files (not only the new lines).",
)
log_level = click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    envvar="DEAD_DROP_LOG_LEVEL",
    show_envvar=True,
    help="How much the logger says about itself (on stderr).",
)

_PID_FILE: dict[str, Any] = {
    "default": config.DEFAULT_PID_FILE,
    "show_default": "~/.dead-drop/logger.pid",
    "envvar": "DEAD_DROP_PID_FILE",
    "show_envvar": True,
    "help": "The daemon's PID file (locked for as long as the daemon runs).",
}
pid_file = click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), **_PID_FILE)
status_pid_file = click.option("--pid-file", type=click.Path(path_type=Path), **_PID_FILE)
"""status's: a directory there is a PID file that cannot be read (LSB exit 4), not a
usage error (exit 2, which LSB status gives another meaning)."""
run_pid_file = click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="DEAD_DROP_PID_FILE",
    show_envvar=True,
    help="Hold this PID file while running, as `start` does, so that `status` and `stop`"
    " see this logger and a second one is refused (the service files pass"
    " ~/.dead-drop/logger.pid). Off by default.",
)
stop_timeout = click.option(
    "--timeout",
    "stop_timeout",
    type=FiniteFloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="DEAD_DROP_STOP_TIMEOUT",
    show_envvar=True,
    metavar="SECONDS",
    help="How long to wait for the daemon to exit after SIGTERM.",
)

json_object = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")

team_databases = _compose(db, rooms_dir)
"""The databases whose agents and tasks ``top`` and ``agents`` show live (as ``run``
follows them)."""
once = click.option(
    "--once", is_flag=True, help="Print one frame and exit (for scripts), instead of redrawing."
)


def _use_identity(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """Every reader decrypts with this identity (see crypt): set once, for the process."""
    from ..crypt import keys as crypt

    crypt.use_identity(value)


identity = click.option(
    "--identity",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    expose_value=False,
    callback=_use_identity,
    envvar="DEAD_DROP_IDENTITY",
    show_envvar=True,
    metavar="PATH",
    help="The age identity file that reads encrypted logs (docs/encryption.md); "
    "DEAD_DROP_IDENTITY may also hold the AGE-SECRET-KEY-1... key itself.",
)
logger_identity = click.option(
    "--identity",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="DEAD_DROP_IDENTITY",
    show_envvar=True,
    metavar="PATH",
    help="With --encrypt-to: the identity the logger reads its own encrypted files with "
    "when it must (a lost state rebuilt from them). Not needed to write.",
)
encrypt_to = click.option(
    "--encrypt-to",
    "encrypt_to",
    multiple=True,
    default=(),
    envvar="DEAD_DROP_ENCRYPT_TO",
    show_envvar=True,
    metavar="RECIPIENT",
    help="Encrypt every log file to this age recipient (age1...), or to the keys of "
    "this recipients file; repeat for more. Default: plain files (docs/encryption.md).",
)
seal_interval = click.option(
    "--seal-interval",
    type=FiniteFloatRange(min=0, min_open=True),
    default=config.DEFAULT_SEAL_INTERVAL,
    show_default=True,
    envvar="DEAD_DROP_SEAL_INTERVAL",
    show_envvar=True,
    metavar="SECONDS",
    help="With --encrypt-to: seal the segment being written at most this long after its "
    "first line (or at 1 MiB, or midnight); what a reader waits for at most.",
)
encrypt_content_to_agents = click.option(
    "--encrypt-content-to-agents",
    is_flag=True,
    default=False,
    envvar="DEAD_DROP_ENCRYPT_CONTENT_TO_AGENTS",
    show_envvar=True,
    help="Seal each message's content to the keys of its agents (--agent-key) and the "
    "escrow (--escrow-to); the metadata stays plain (docs/encryption.md).",
)
agents_keys = click.option(
    "--agent-key",
    "agents_keys",
    multiple=True,
    default=(),
    metavar="NAME=RECIPIENT",
    help="With --encrypt-content-to-agents: agent NAME's age recipient (age1...); "
    "repeat for each agent, or write an [agents_keys] table in config.toml.",
)
escrow_to = click.option(
    "--escrow-to",
    "escrow_to",
    multiple=True,
    default=(),
    envvar="DEAD_DROP_ESCROW_TO",
    show_envvar=True,
    metavar="RECIPIENT",
    help="With --encrypt-content-to-agents: the age recipient (or recipients file) that "
    "can read every message's content; repeat for more.",
)

log_source = _compose(config_file, log_dir, rooms_filter, read_utc, identity)
"""Where every reading command reads: the log directory (from the settings file too),
its rooms, and whether the logs were written with --utc."""

follow_options = _compose(
    config_file,
    db,
    rooms_dir,
    log_dir,
    poll_interval,
    import_historical,
    utc,
    retention_days,
    max_bytes,
    keep_files,
    compress_after,
    no_watch,
    log_level,
    encrypt_to,
    seal_interval,
    logger_identity,
    encrypt_content_to_agents,
    agents_keys,
    escrow_to,
)
"""The options of every command that runs a logger: run, start, restart."""


def settings_from(params: dict[str, Any]) -> config.Settings:
    """Build Settings from a command's parsed options. Raises click.UsageError."""
    try:
        bare, named = parse_dbs(params["db"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--db'") from None
    rooms_dir = params.get("rooms_dir")
    if bare is not None and rooms_dir is not None:
        raise click.BadParameter(
            "a bare --db PATH cannot be combined with --rooms-dir; name it: --db NAME=PATH",
            param_hint="'--db'",
        )
    if bare is None and not named and rooms_dir is None and config.DEFAULT_DB.is_dir():
        raise click.BadParameter(
            f"{config.DEFAULT_DB} is a directory, not a database file", param_hint="'--db'"
        )
    # One name, two databases: which one LOG_DIR/NAME/ logs must not be a silent choice.
    both = clashes(Path(rooms_dir).expanduser(), named) if rooms_dir is not None else []
    if both:
        raise click.BadParameter(
            f"room {both[0]!r} is both a directory of --rooms-dir {rooms_dir} and named by"
            f" --db {both[0]}=PATH (or [rooms]); rename one",
            param_hint="'--db'",
        )
    return config.Settings(
        db=bare or config.DEFAULT_DB,
        log_dir=Path(params["log_dir"]).expanduser(),
        poll_interval=float(params["poll_interval"]),
        import_historical=bool(params["import_historical"]),
        utc=bool(params["utc"]),
        retention_days=int(params["retention_days"]),
        max_bytes=params["max_bytes"],
        keep_files=params["keep_files"],
        compress_after=params["compress_after"],
        no_watch=bool(params["no_watch"]),
        rooms_dir=None if rooms_dir is None else Path(rooms_dir).expanduser(),
        rooms=tuple(sorted(named.items())),
        encrypt_to=_recipients(params.get("encrypt_to") or (), params.get("identity")),
        seal_interval=float(params.get("seal_interval") or config.DEFAULT_SEAL_INTERVAL),
        **_content_keys(params),
    )


def _content_keys(params: dict[str, Any]) -> dict[str, Any]:
    """Agent-specific keys (the flag, ``--agent-key``, ``--escrow-to``), checked
    together at start, each key parsed: one line, exit 2."""
    on = bool(params.get("encrypt_content_to_agents"))
    named = params.get("agents_keys") or ()
    escrow = params.get("escrow_to") or ()
    if named and not on:
        raise click.BadParameter(
            "agent keys are set but not --encrypt-content-to-agents (encrypt_content_to_agents"
            " = true): contents would be logged in plaintext",
            param_hint="'--agent-key'",
        )
    if not on:
        return {}
    from ..crypt import keys as crypt

    agents: dict[str, str] = {}
    for item in named:
        name, sep, key = str(item).partition("=")
        if not sep or not name.strip() or not key.strip():
            raise click.BadParameter(f"{item!r} is not NAME=RECIPIENT", param_hint="'--agent-key'")
        try:
            crypt.check_recipient(key.strip())
        except crypt.CryptError as exc:
            raise click.BadParameter(f"{name.strip()}: {exc}", param_hint="'--agent-key'") from None
        agents[name.strip()] = key.strip()
    if not agents:
        raise click.BadParameter(
            "--encrypt-content-to-agents needs the agents' keys: --agent-key NAME=RECIPIENT"
            " or an [agents_keys] table in config.toml",
            param_hint="'--encrypt-content-to-agents'",
        )
    if not escrow:
        raise click.BadParameter(
            "--encrypt-content-to-agents needs an escrow: --escrow-to RECIPIENT (escrow_to),"
            " the key that reads every message",
            param_hint="'--escrow-to'",
        )
    try:
        escrow_keys = crypt.load_recipients(escrow)
    except crypt.CryptError as exc:
        raise click.BadParameter(str(exc), param_hint="'--escrow-to'") from None
    return {
        "encrypt_content_to_agents": True,
        "agents_keys": tuple(f"{name}={key}" for name, key in sorted(agents.items())),
        "escrow_to": escrow_keys,
    }


def _recipients(values: tuple[str, ...], identity: Path | None) -> tuple[str, ...]:
    """The recipients ``--encrypt-to`` names (keys, recipients files), checked; the
    identity is the process's from now on (for a state rebuilt from the files)."""
    from ..crypt import keys as crypt

    crypt.use_identity(identity)
    if not values:
        return ()
    try:
        return crypt.load_recipients(values)
    except crypt.CryptError as exc:
        raise click.BadParameter(str(exc), param_hint="'--encrypt-to'") from None


def effective(ctx: click.Context, params: dict[str, Any]) -> settings_report.Effective:
    """What each option of ``ctx``'s command is, and which layer it came from."""
    from . import settings_report

    loaded: configfile.ConfigFile | None = ctx.meta.get(CONFIG_META)
    path = loaded.path if loaded else configfile.find(None)[0]
    if loaded is None and isinstance(ctx.params.get("config_file"), Path):
        path = ctx.params["config_file"]
    report = settings_report.Effective(path, loaded is not None)
    for param in ctx.command.params:
        name = param.name
        if not isinstance(param, click.Option) or name is None or name not in params:
            continue
        if param.expose_value is False or name in ("as_json", "example"):
            continue
        report.settings.append(
            settings_report.Setting(name, _plain(name, params[name]), _source(ctx, param, loaded))
        )
    return report


def _source(ctx: click.Context, param: click.Option, loaded: configfile.ConfigFile | None) -> str:
    name = param.name or ""
    source = ctx.get_parameter_source(name)
    if source is ParameterSource.COMMANDLINE:
        return "command line"
    if source is ParameterSource.ENVIRONMENT:
        return f"env {param.envvar}"
    if source is ParameterSource.DEFAULT_MAP and loaded is not None:
        if name == "db" and loaded.rooms:  # each [rooms] entry's own line
            keys = ["db"] if "db" in loaded.values else []
            keys += [f"{configfile.ROOMS_TABLE}.{room}" for room in loaded.rooms]
            return loaded.where(*keys)
        return loaded.where(name)
    return "default"


def _plain(name: str, value: Any) -> object:
    if name == "db" and not value:
        return [str(config.DEFAULT_DB)]
    if name in ("encrypt_to", "agents_keys", "escrow_to") and not value:
        return None  # not set: plain files
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [str(v) for v in value]
    return value


# -- reading the logs: search, thread, agents ------------------------------------------


class MessageId(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """A message id as the output shows it, ``#2362``, or as the number alone."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        digits = text[1:] if text.startswith("#") else text
        if not digits.isdigit() or not digits.isascii():
            self.fail(f"{value!r} is not a message id (a number, as 2362 or #2362)", param, ctx)
        return int(digits)


message_id = click.argument("message_id", metavar="ID", type=MessageId())

since = click.option(
    "--since",
    metavar="WHEN",
    help="Only messages stamped at or after WHEN: a date (2026-02-20, its midnight), a"
    " local time (2026-02-20T10:30), a time back from now (90s, 15m, 2h, 3d, 1w), today"
    " or yesterday.",
)
until = click.option(
    "--until",
    metavar="WHEN",
    help="Only messages stamped before WHEN (exclusive; same forms as --since).",
)
window = _compose(since, until)
as_json = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print each line exactly as stored (pipes into jq).",
)
json_rows = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object a line, one line per agent (pipes into jq).",
)
agent_filter = click.option(
    "--agent",
    "agents",
    multiple=True,
    metavar="AGENT",
    help="Sent by or to AGENT (repeatable); for tasks: assigned to AGENT.",
)
search_pattern = click.argument("pattern", required=False, metavar="[PATTERN]")
"""search's PATTERN, as grep's: the content holds it (one more --contains)."""
search_filters = _compose(
    search_pattern,
    window,
    click.option(
        "--from", "senders", multiple=True, metavar="AGENT", help="Sent by AGENT (repeatable)."
    ),
    click.option(
        "--to", "recipients", multiple=True, metavar="AGENT", help="Sent to AGENT (repeatable)."
    ),
    agent_filter,
    click.option("--task", metavar="ID", help="With this exact task_id."),
    click.option(
        "--contains",
        multiple=True,
        metavar="TEXT",
        help="Content holds TEXT (repeatable: all must be there, PATTERN too).",
    ),
    click.option(
        "-i", "--ignore-case", is_flag=True, help="PATTERN, --contains and --regex ignore case."
    ),
    click.option("--regex", metavar="REGEX", help="Content matches a Python regex."),
    click.option("--no-cc", is_flag=True, help="Leave out the CC copies made for the lead."),
)
oneline = click.option(
    "--oneline",
    is_flag=True,
    help="One line per message: time, from → to, id, then the content (line breaks shown"
    " as ⏎), cut to the terminal's width (or $COLUMNS); whole when not on a terminal.",
)
full = click.option(
    "--full",
    is_flag=True,
    help="Show every message's content whole: the text view otherwise cuts it after"
    " 2,000 characters (saying how much was cut), --oneline at the terminal's width.",
)
text_view = _compose(oneline, full)
"""How search and thread show a message as text: multi-line (the default) or one line."""
search_output = _compose(
    as_json,
    text_view,
    click.option("-c", "--count", is_flag=True, help="Print only the number of matches."),
    click.option(
        "-n",
        "--limit",
        type=click.IntRange(min=0),
        metavar="N",
        help="Stop after N matches; with --reverse the last N, newest first; with --follow"
        " the last N (instead of 10) before the new ones.",
    ),
    click.option(
        "--reverse", is_flag=True, help="Newest first (with --limit: the last N matches)."
    ),
    click.option(
        "-f",
        "--follow",
        is_flag=True,
        help="As tail -f: the last 10 matches (or --limit N), then every new match as it"
        " is logged, until Ctrl-C.",
    ),
    click.option(
        "--interval",
        type=FiniteFloatRange(min=0, min_open=True),
        default=0.5,
        show_default=True,
        metavar="SECONDS",
        help="How often --follow looks for new lines.",
    ),
)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


task_id = click.argument("task_id", required=False, metavar="[TASK-ID]")
task_filters = _compose(
    window,
    click.option(
        "--status",
        "statuses",
        multiple=True,
        type=click.Choice(STATUSES),
        help="In this status now (repeatable).",
    ),
    agent_filter,
    click.option(
        "--project", "projects", multiple=True, metavar="NAME", help="Of project NAME (repeatable)."
    ),
    click.option(
        "--stale",
        metavar="DURATION",
        callback=_duration,
        help="In the same status for longer than DURATION (90s, 15m, 2h, 3d, 1w).",
    ),
)
"""The tasks command's filters (--since/--until: a transition in that range)."""
json_tasks = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object a line, one per task; with TASK-ID one object, its"
    " whole history (pipes into jq).",
)


# ship: delivering the logged lines to other engines (see docs/ship.md)
def ship_config_from(ctx: click.Context, params: dict[str, Any]) -> Any:
    """The ShipConfig of ``ship`` (its options over the ``[ship]`` table) or of
    ``run``/``start`` (the table alone); None when nothing is to be shipped."""
    from .shipping import ShipConfig

    loaded: configfile.ConfigFile | None = ctx.meta.get(CONFIG_META)
    table: dict[str, Any] = dict(loaded.ship) if loaded is not None else {}
    to = tuple(params.get("ship_to") or ()) or tuple(table.get("to", ()))
    if not to:
        return None
    for name in ("batch_lines", "batch_ms", "password_env", "token_env"):
        if params.get(name) is not None:
            table[name] = params[name]
    return ShipConfig(
        to=to,
        batch_lines=int(table.get("batch_lines", 1000)),
        batch_ms=float(table.get("batch_ms", 5.0)),
        password_env=table.get("password_env"),
        token_env=table.get("token_env"),
    )


ship_options = _compose(
    click.option(
        "--to",
        "ship_to",
        multiple=True,
        metavar="URL",
        help="Where to ship (repeatable): nats://HOST:PORT, postgresql://USER@HOST/DB,"
        " http(s)://... (Loki's /loki/api/v1/push, Elasticsearch's /_bulk, or NDJSON)."
        " Default: the [ship] table's to.",
    ),
    click.option(
        "--from-start",
        is_flag=True,
        help="Ship again every line still in the logs (the sinks drop what they hold).",
    ),
    click.option(
        "--batch-lines",
        type=click.IntRange(min=1),
        default=None,
        help="Lines per batch at most (default 1000).",
    ),
    click.option(
        "--batch-ms",
        type=FiniteFloatRange(min=0),
        default=None,
        help="Milliseconds a batch waits for more lines after its first (default 5).",
    ),
    click.option(
        "--password-env",
        metavar="VAR",
        default=None,
        help="The environment variable holding the sinks' password (never on the command line).",
    ),
    click.option(
        "--token-env",
        metavar="VAR",
        default=None,
        help="The environment variable holding a bearer token (HTTP) or NATS token.",
    ),
)
"""The options of ``ship``."""


# -- serve: the live page and the HTTP API ------------------------------------------

serve_host = click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="DEAD_DROP_SERVE_HOST",
    show_envvar=True,
    help="Listen on this address. Any other than 127.0.0.1 (0.0.0.0, ::1, a LAN address)"
    " requires the bearer token on every request (--show-token prints it).",
)
serve_port = click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    envvar="DEAD_DROP_SERVE_PORT",
    show_envvar=True,
    help="Listen on this port (0: a free one, printed at start).",
)
token_file = click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default="serve-token in the user config directory",
    envvar="DEAD_DROP_SERVE_TOKEN_FILE",
    show_envvar=True,
    help="Where the bearer token is kept (made, 0600, the first time one is needed).",
)
show_token = click.option(
    "--show-token",
    is_flag=True,
    help="Print the bearer token (made now if there is none yet) and exit.",
)
cors_origin = click.option(
    "--cors-origin",
    "cors",
    multiple=True,
    metavar="ORIGIN",
    envvar="DEAD_DROP_SERVE_CORS",
    show_envvar=True,
    help="Let pages from ORIGIN (https://host:port) read the API in a browser"
    " (repeatable). Default: none.",
)
request_timeout = click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    envvar="DEAD_DROP_SERVE_REQUEST_TIMEOUT",
    show_envvar=True,
    help="Stop reading for a /v1/messages request after this long: a 503 saying so"
    " (a stream already started ends with an error line). /v1/events is exempt.",
)
serve_options = _compose(
    config_file,
    log_dir,
    read_utc,
    identity,
    db,
    rooms_dir,
    serve_host,
    serve_port,
    token_file,
    show_token,
    cors_origin,
    request_timeout,
)
"""``serve``'s options: the logs it reads, the databases whose team it shows, where it
listens and who may ask."""
notify_test = click.option(
    "--test",
    "test_rule",
    metavar="NAME",
    help="Send a sample event through rule NAME now and print the receiver's answer"
    " (exit 0 when it accepted it, 1 when not); nothing else runs.",
)
"""``notify --test``: try a rule's sink without waiting for a real match."""
