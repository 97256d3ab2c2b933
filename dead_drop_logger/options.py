"""Every command-line option, defined once and shared by the commands that take it.

Each option that is a setting can also be set through the environment variable named in
its help. Options that describe one invocation (``--json``, ``--dry-run``, ``--since``,
``--until``) have none: a variable left exported would silently change later commands.
The README's option table is checked against these by ``tests/test_readme.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import config
from .diagnostics import LEVELS
from .sizes import parse_size

F = TypeVar("F", bound=Callable[..., Any])


def _compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


db = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=config.DEFAULT_DB,
    show_default="~/.dead-drop/messages.db",
    envvar="DEAD_DROP_DB_PATH",
    show_envvar=True,
    help="The Dead Drop database to follow (opened read-only).",
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
    type=click.FloatRange(min=0, min_open=True),
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


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """Parse a size such as 10MB, 512KB or 1048576 (bytes)."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


retention_days = click.option(
    "--retention-days",
    type=click.IntRange(min=0),
    default=config.DEFAULT_RETENTION_DAYS,
    show_default=True,
    envvar="DEAD_DROP_RETENTION_DAYS",
    show_envvar=True,
    metavar="N",
    help="Delete day files (all parts, .gz too) more than N days old, at start and after "
    "each midnight; 0 keeps everything.",
)
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
    help="Keep only the newest N log files (parts count as files). Default: no limit.",
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
log_level = click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    envvar="DEAD_DROP_LOG_LEVEL",
    show_envvar=True,
    help="How much the logger says about itself (on stderr).",
)

pid_file = click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=config.DEFAULT_PID_FILE,
    show_default="~/.dead-drop/logger.pid",
    envvar="DEAD_DROP_PID_FILE",
    show_envvar=True,
    help="The daemon's PID file (locked for as long as the daemon runs).",
)
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
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="DEAD_DROP_STOP_TIMEOUT",
    show_envvar=True,
    metavar="SECONDS",
    help="How long to wait for the daemon to exit after SIGTERM.",
)

json_object = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")

follow_options = _compose(
    db,
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
)
"""The options of every command that runs a logger: run, start, restart."""


def settings_from(params: dict[str, Any]) -> config.Settings:
    """Build Settings from a command's parsed options."""
    return config.Settings(
        db=Path(params["db"]).expanduser(),
        log_dir=Path(params["log_dir"]).expanduser(),
        poll_interval=float(params["poll_interval"]),
        import_historical=bool(params["import_historical"]),
        utc=bool(params["utc"]),
        retention_days=int(params["retention_days"]),
        max_bytes=params["max_bytes"],
        keep_files=params["keep_files"],
        compress_after=params["compress_after"],
        no_watch=bool(params["no_watch"]),
    )


# -- reading the logs: search, thread, agents ------------------------------------------

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
search_filters = _compose(
    window,
    click.option(
        "--from", "senders", multiple=True, metavar="AGENT", help="Sent by AGENT (repeatable)."
    ),
    click.option(
        "--to", "recipients", multiple=True, metavar="AGENT", help="Sent to AGENT (repeatable)."
    ),
    click.option(
        "--agent",
        "agents",
        multiple=True,
        metavar="AGENT",
        help="Sent by or to AGENT (repeatable).",
    ),
    click.option("--task", metavar="ID", help="With this exact task_id."),
    click.option(
        "--contains",
        multiple=True,
        metavar="TEXT",
        help="Content holds TEXT (repeatable: all must be there).",
    ),
    click.option("-i", "--ignore-case", is_flag=True, help="--contains and --regex ignore case."),
    click.option("--regex", metavar="PATTERN", help="Content matches a Python regex."),
    click.option("--no-cc", is_flag=True, help="Leave out the CC copies made for the lead."),
)
search_output = _compose(
    as_json,
    click.option("--count", is_flag=True, help="Print only the number of matches."),
    click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Stop after N matches."),
    click.option(
        "--reverse", is_flag=True, help="Newest first (with --limit: the last N matches)."
    ),
    click.option(
        "--follow",
        is_flag=True,
        help="Then keep printing new matches as they are logged, until Ctrl-C.",
    ),
    click.option(
        "--interval",
        type=click.FloatRange(min=0, min_open=True),
        default=0.5,
        show_default=True,
        metavar="SECONDS",
        help="How often --follow looks for new lines.",
    ),
)
