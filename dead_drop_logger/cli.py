"""The ``dead-drop-logger`` command: a thin layer of click over the library."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from . import archive as archive_import
from . import config, configfile, daemon, diagnostics, options, rooms
from . import status as status_report
from .files import LogDirError
from .pidfile import AlreadyRunning
from .prune import prune_all
from .source import SourceError
from .state import StateError
from .writer import WriteError

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
@options.run_pid_file
def run(**params: Any) -> None:
    """Follow the database in the foreground until SIGTERM or Ctrl-C."""
    settings = options.settings_from(params)
    diagnostics.configure(params["log_level"], stream=sys.stderr)
    follower = rooms.runner(settings)
    follower.install_signal_handlers()
    held: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if params["pid_file"] is not None:
        held = daemon.held_pid_file(settings, Path(params["pid_file"]).expanduser())
    try:
        with held:
            follower.run()
    except AlreadyRunning as exc:
        fail(str(exc))
    except LogDirError as exc:
        fail(str(exc))
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        log.debug("unexpected error", exc_info=True)
        fail(f"unexpected {type(exc).__name__}: {exc}")


@cli.command()
@options.config_file
@options.log_dir
@options.retention_days
@options.utc
@options.dry_run
def prune(log_dir: Path, retention_days: int, utc: bool, dry_run: bool) -> None:
    """Apply --retention-days now: delete (or, with --dry-run, list) old log files,
    in the log directory and in every room's directory in it."""
    try:
        doomed = prune_all(log_dir.expanduser(), retention_days, utc=utc, dry_run=dry_run)
    except LogDirError as exc:
        fail(str(exc))
    except (OSError, StateError) as exc:
        fail(f"cannot prune {log_dir}: {exc}")
    verb = "would delete" if dry_run else "deleted"
    for path in doomed:
        click.echo(f"{verb} {path}")
    click.echo(f"{verb} {len(doomed)} files", err=True)


@cli.command("import-archive")
@options.config_file
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--room",
    required=True,
    callback=options.room_name,
    help="The room the archive is of: its messages go to LOG_DIR/NAME/.",
)
@options.log_dir
@options.utc
def import_archive(archive: Path, room: str, log_dir: Path, utc: bool) -> None:
    """Log an archived room (the hub's NAME_YYYYMMDD-HHMMSS/messages.db.gz), exactly once.

    Writes only what the room's log lacks: nothing on a second run, and for a room
    that was followed, only the messages it had not logged yet."""
    diagnostics.configure("warning", stream=sys.stderr)
    room_dir = log_dir.expanduser() / room
    try:
        done = archive_import.import_archive(archive.expanduser(), room_dir, utc=utc)
    except archive_import.ArchiveError as exc:
        fail(str(exc))
    except LogDirError as exc:
        fail(str(exc))
    except (OSError, SourceError, StateError, WriteError) as exc:
        fail(f"{exc}; run it again to resume (nothing is written twice)")
    click.echo(
        f"imported {done.written} messages from {archive} into {done.log_dir}"
        f" ({done.already} already there)"
    )


def _start(params: dict[str, Any]) -> None:
    settings = options.settings_from(params)
    try:
        pid = daemon.start(
            settings,
            pid_path=Path(params["pid_file"]).expanduser(),
            log_file=config.DEFAULT_DAEMON_LOG,
            log_level=params["log_level"],
        )
    except (AlreadyRunning, daemon.DaemonError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start: {exc.strerror} ({exc.filename or params['pid_file']})")
    click.echo(f"dead-drop-logger started (pid {pid}); its own log: {config.DEFAULT_DAEMON_LOG}")


def _stop(params: dict[str, Any]) -> None:
    try:
        done = daemon.stop(Path(params["pid_file"]).expanduser(), timeout=params["stop_timeout"])
    except daemon.DaemonError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot stop: {exc.strerror} ({exc.filename or params['pid_file']})")
    click.echo(f"dead-drop-logger {done.message}")


@cli.command()
@options.follow_options
@options.pid_file
def start(**params: Any) -> None:
    """Start the logger in the background.

    Returns once the daemon runs, printing its pid; refuses when one already runs.
    Its own log goes to ~/.dead-drop/logger.log."""
    _start(params)


@cli.command()
@options.config_file
@options.pid_file
@options.stop_timeout
def stop(**params: Any) -> None:
    """Stop the background logger.

    Sends SIGTERM to the pid the locked PID file names, waits for it to exit and
    removes the PID file. Exits 0 also when it was not running."""
    _stop(params)


@cli.command()
@options.follow_options
@options.pid_file
@options.stop_timeout
def restart(**params: Any) -> None:
    """Stop the background logger, then start it again.

    The new logger runs with the options given here."""
    _stop(params)
    _start(params)


@cli.command()
@options.config_file
@options.pid_file
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(pid_file: Path, as_json: bool) -> None:
    """Is the background logger running, and how far has it got?

    Exit codes (LSB): 0 running, 1 dead but its PID file was left behind, 3 not
    running, 4 the PID file cannot be read."""
    try:
        report = status_report.gather(pid_file.expanduser())
    except OSError as exc:
        fail(f"cannot read {exc.filename or pid_file}: {exc.strerror}", code=4)
    click.echo(report.to_json() if as_json else report.to_text())
    sys.exit(report.exit_code)


@cli.command("config")
@options.follow_options
@options.run_pid_file
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--example", is_flag=True, help="Print a commented example settings file instead.")
def show_config(as_json: bool, example: bool, **params: Any) -> None:
    """Print the settings `run` would use, and where each came from.

    Sources: default, config.toml:LINE (the settings file), env DEAD_DROP_... or
    command line. Takes the same options as run, so a trial option shows its effect."""
    if example:
        click.echo(configfile.EXAMPLE, nl=False)
        return
    ctx = click.get_current_context()
    options.settings_from(params)  # the same refusals as run
    effective = options.effective(ctx, params)
    click.echo(effective.to_json() if as_json else effective.to_text())


def main() -> None:
    cli(prog_name="dead-drop-logger")
