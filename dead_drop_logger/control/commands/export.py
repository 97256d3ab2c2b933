"""``dead-drop-logger export`` (and ``export_historical.py``, its thin wrapper): the
command line of :mod:`..record.export`.

It reads the same settings as ``run`` (config.toml or ``DEAD_DROP_CONFIG``, the
``DEAD_DROP_*`` variables, the command line): the databases it exports are the ones
``run`` follows (``db``, ``[rooms]``, ``rooms_dir``, each room into LOG_DIR/NAME/), and
the retention it respects is the one the logger's housekeeping applies, so what it
writes is not deleted at the logger's next start.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from ... import config
from .. import options
from ..cli_errors import OneLineErrors

if TYPE_CHECKING:
    from ...signals import StopEvent

EXPORT_LOG = "dead_drop_logger.export"  # (logging imported by the command: start-up)


def _program() -> str:
    root = click.get_current_context().find_root().command
    return root.program if isinstance(root, OneLineErrors) else "dead-drop-logger"


def fail(message: str, code: int = 1) -> None:
    click.echo(f"{_program()}: error: {message}", err=True)
    sys.exit(code)


def day_option(name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        name, type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD", help=help_text
    )


def _settings_retention(ctx: click.Context) -> tuple[int, str]:
    """The retention the logger's settings give, without this command line: what a
    logger started from the same settings deletes by (and where that came from)."""
    value = os.environ.get("DEAD_DROP_RETENTION_DAYS")
    if value is not None and value.strip().isdigit():
        return int(value), "DEAD_DROP_RETENTION_DAYS"
    if ctx.default_map and "retention_days" in ctx.default_map:
        return int(ctx.default_map["retention_days"]), "the settings file"
    return config.DEFAULT_RETENTION_DAYS, "the default"


@click.command("export", short_help="Log the history already in the database, exactly once.")
@options.config_file
@options.db
@options.rooms_dir
@options.log_dir
@day_option("--since", "Only messages from this day on (inclusive).")
@day_option("--until", "Only messages up to this day (inclusive).")
@options.utc
@options.retention_days_now
@options.max_bytes
@options.keep_files
@options.log_level
@options.encrypt_to
@click.pass_context
def export(
    ctx: click.Context,
    /,
    since: dt.datetime | None,
    until: dt.datetime | None,
    **params: Any,
) -> None:
    """Log every message already in the database that the log directory lacks, with
    the settings run uses (every room too). Messages older than --retention-days are
    left out, and said so before anything is written: the logger would delete them.

    --since and --until are inclusive days (YYYY-MM-DD), by the day a message is filed
    under (its own timestamp, local as the server wrote it, or UTC with --utc).

    \b
    Examples:
      dead-drop-logger export
      dead-drop-logger export --since 2026-01-01 --retention-days 0
    """
    import logging

    from ... import diagnostics
    from ...files import LogDirError
    from ...record.export import ExportError
    from ...record.follow import TRANSIENT
    from ...record.rooms import find_rooms, room_settings
    from ...record.sqlite_process import stop_memory_statistics
    from ...signals import StopEvent, stop_on_signals

    stop_memory_statistics()  # first: before any connection (see sqlite_process)
    log_level = params["log_level"]
    diagnostics.configure(log_level, stream=sys.stderr, tag="export_historical")
    if log_level != "debug":  # its "first start: logging after id N" is the follower's news
        logging.getLogger("dead_drop_logger.record.pipeline").setLevel(logging.WARNING)
    first = since.date() if since else None
    last = until.date() if until else None
    if first and last and first > last:
        raise click.BadParameter("--since is after --until", param_hint="--since")
    settings = options.settings_from(
        {
            "poll_interval": config.DEFAULT_POLL_INTERVAL,
            "import_historical": False,
            "compress_after": None,
            "no_watch": False,
            **params,
        }
    )
    days = settings.retention_days
    if ctx.get_parameter_source("retention_days") is ParameterSource.COMMANDLINE:
        theirs, where = _settings_retention(ctx)
        if theirs and (days == 0 or days > theirs):
            click.echo(
                f"{_program()}: warning: a logger with these settings keeps {theirs} days"
                f" ({where}): it deletes the older days this writes at its next start or"
                " midnight; set retention_days = 0 in the settings file to keep them",
                err=True,
            )
    if settings.has_rooms:
        try:
            rooms = sorted(find_rooms(settings).items())
        except OSError as exc:
            fail(f"cannot list the rooms in {settings.rooms_dir}: {exc.strerror}")
        targets = [room_settings(settings, name, db) for name, db in rooms]
        if not targets:
            click.echo("no rooms: nothing to export")
            return
    else:
        targets = [settings]
    stop = StopEvent()
    stop_on_signals(stop, logging.getLogger(EXPORT_LOG))
    for target in targets:
        if settings.has_rooms and not target.db.expanduser().exists():
            click.echo(f"room {target.log_dir.name}: no database at {target.db}: nothing to export")
            continue
        try:
            _export_one(target, first, last, stop)
        except ExportError as exc:
            fail(str(exc))
        except LogDirError as exc:
            fail(str(exc))
        except TRANSIENT as exc:
            logging.getLogger(EXPORT_LOG).debug("export failed", exc_info=True)
            fail(f"{exc}; run it again to resume (nothing is written twice)")
        if stop.is_set():
            click.echo("interrupted before the end: run it again to finish", err=True)
            sys.exit(130)


def _export_one(
    settings: config.Settings, first: dt.date | None, last: dt.date | None, stop: StopEvent
) -> None:
    from ...record.export import export as export_history
    from ..progress import Bar

    def before(note: str) -> None:
        click.echo(f"{_program()}: {note}", err=True)

    bar = Bar("exporting")
    try:
        done = export_history(
            settings.db.expanduser(),
            settings.log_dir,
            since=first,
            until=last,
            utc=settings.utc,
            retention_days=settings.retention_days,
            max_bytes=settings.max_bytes,
            keep_files=settings.keep_files,
            recipients=settings.encrypt_to,
            stop=stop,
            before=before,
            progress=bar if bar.enabled else None,
        )
    finally:
        bar.close()
    if done.low is None:
        click.echo(f"no messages in that range: nothing to export from {settings.db}")
        return
    click.echo(
        f"exported {done.written} messages with ids {done.low}..{done.top} to"
        f" {settings.log_dir} ({done.already} already there)"
    )
    if done.outside is not None and done.outside.messages:
        click.echo(
            f"{done.outside.messages} messages older than the"
            f" {done.outside.retention_days}-day retention were not written (retention would"
            " delete them); --retention-days 0 keeps them"
        )


def script(program: str) -> click.Command:
    """The same command as a program of its own (``export_historical.py``)."""

    class Script(OneLineErrors):
        pass

    Script.program = program
    return Script(
        name=program,
        params=export.params,
        callback=export.callback,
        help=(export.help or "").replace("dead-drop-logger export", f"python {program}"),
        context_settings={"help_option_names": ["-h", "--help"]},
    )
