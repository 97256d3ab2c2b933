"""The ``dead-drop-logger`` command: a thin layer of click over the library."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from . import diagnostics, options
from .files import LogDirError
from .follow import Follower
from .prune import prune_log_dir
from .state import StateError

log = logging.getLogger(__name__)


def fail(message: str, code: int = 1) -> None:
    """One clear line on stderr and a meaningful exit code: no traceback."""
    click.echo(f"dead-drop-logger: error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dead-drop-logger")
def cli() -> None:
    """Follow a Dead Drop messages database and append every message, exactly once,
    to daily NDJSON files (~/.dead-drop/logs/messages-YYYY-MM-DD.json)."""


@cli.command()
@options.follow_options
def run(**params: Any) -> None:
    """Follow the database in the foreground until SIGTERM or Ctrl-C."""
    settings = options.settings_from(params)
    diagnostics.configure(params["log_level"], stream=sys.stderr)
    follower = Follower(settings)
    follower.install_signal_handlers()
    try:
        follower.run()
    except LogDirError as exc:
        fail(str(exc))
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        log.debug("unexpected error", exc_info=True)
        fail(f"unexpected {type(exc).__name__}: {exc}")


@cli.command()
@options.log_dir
@options.retention_days
@options.utc
@options.dry_run
def prune(log_dir: Path, retention_days: int, utc: bool, dry_run: bool) -> None:
    """Apply --retention-days now: delete (or, with --dry-run, list) old log files."""
    try:
        doomed = prune_log_dir(log_dir.expanduser(), retention_days, utc=utc, dry_run=dry_run)
    except LogDirError as exc:
        fail(str(exc))
    except (OSError, StateError) as exc:
        fail(f"cannot prune {log_dir}: {exc}")
    verb = "would delete" if dry_run else "deleted"
    for path in doomed:
        click.echo(f"{verb} {path}")
    click.echo(f"{verb} {len(doomed)} files", err=True)


def main() -> None:
    cli(prog_name="dead-drop-logger")
