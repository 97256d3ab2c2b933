"""The logger's own commands: ``run`` (in the foreground), ``start``, ``stop`` and
``restart`` (the daemon), ``status`` (how far it has got) and ``config`` (the settings it
would use)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from .. import options
from . import common

if TYPE_CHECKING:
    from ... import config


def _given(ctx: click.Context, params: dict[str, Any]) -> set[str]:
    """The options given on the command line or through their environment variables."""
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {name for name in params if ctx.get_parameter_source(name) in given}


@click.command(short_help="Follow the database in the foreground.")
@options.follow_options
@options.run_pid_file
def run(**params: Any) -> None:
    """Follow the database in the foreground until SIGTERM or Ctrl-C.

    \b
    Examples:
      dead-drop-logger run
      dead-drop-logger run --import-historical --max-bytes 50MB --compress-after 7
    """
    import contextlib
    import logging

    from ... import diagnostics
    from ...files import LogDirError
    from ...record.follow import Follower
    from ...record.rooms import runner
    from ...record.sqlite_process import stop_memory_statistics
    from .. import (
        daemon,  # the logger's modules: not loaded by the reading commands
        notifying,
    )
    from ..pidfile import AlreadyRunning, PidFileError
    from ..progress import Bar

    stop_memory_statistics()  # first: before any connection (see sqlite_process)
    settings = options.settings_from(params)
    _checked("check_paths", settings)
    rules = common.notify_rules()
    diagnostics.configure(params["log_level"], stream=sys.stderr)
    ship = common.ship_config(click.get_current_context(), params)
    follower = runner(settings)
    follower.install_signal_handlers()
    bar = Bar("importing history")
    if settings.import_historical and bar.enabled and isinstance(follower, Follower):
        follower.import_progress = bar  # one database, one bar (not for rooms)
    held: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if params["pid_file"] is not None:
        pid_path = Path(params["pid_file"]).expanduser()
        given = _given(click.get_current_context(), params)
        held = daemon.held_pid_file(settings, pid_path, params["log_level"], given)
    from ..indexer import keeping_index

    try:
        with held, keeping_index(settings.log_dir):
            shipping = common.start_shipping(ship, settings.log_dir)
            notifier = notifying.start(rules, settings.log_dir)  # [[notify]]: beside it
            try:
                follower.run()
            finally:
                if notifier is not None:
                    notifier.stop()
                if shipping is not None:
                    shipping.stop()
        bar.close()
    except (AlreadyRunning, PidFileError, LogDirError) as exc:
        common.fail(str(exc))
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        common.fail(f"unexpected {type(exc).__name__}: {exc}")


def _checked(check: str, settings: config.Settings) -> None:
    """Run a :mod:`.preflight` check (by name: the logger's modules it loads are not
    loaded by the reading commands): a refusal is one line and its exit code."""
    from .. import preflight

    try:
        getattr(preflight, check)(settings)
    except preflight.CannotStart as exc:
        common.fail(str(exc), exc.code)


class _NotStarted(Exception):
    """The daemon could not start; ``str()`` is the one line saying why."""


def _launch(
    settings: config.Settings,
    pid_file: Path,
    log_level: str,
    given: set[str] | list[str],
    ship: Any = None,
) -> int:
    from ... import config
    from .. import daemon, notifying
    from ..pidfile import AlreadyRunning, PidFileError

    try:
        return daemon.start(
            settings,
            pid_path=pid_file,
            log_file=config.DEFAULT_DAEMON_LOG,
            log_level=log_level,
            given=given,
            ship=ship,
            notify_rules=notifying.rules(),
        )
    except (AlreadyRunning, daemon.DaemonError, PidFileError) as exc:
        raise _NotStarted(str(exc)) from None
    except OSError as exc:
        raise _NotStarted(f"cannot start: {exc.strerror} ({exc.filename or pid_file})") from None


def _started(pid: int) -> None:
    from ... import config

    click.echo(f"dead-drop-logger started (pid {pid}); its own log: {config.DEFAULT_DAEMON_LOG}")


def _start(params: dict[str, Any], settings: config.Settings, given: set[str]) -> None:
    pid_file = Path(params["pid_file"]).expanduser()
    ship = common.ship_config(click.get_current_context(), params)
    try:
        pid = _launch(settings, pid_file, params["log_level"], given, ship)
    except _NotStarted as exc:
        common.fail(str(exc))
    _started(pid)


def _stop(params: dict[str, Any]) -> None:
    from .. import daemon

    try:
        done = daemon.stop(Path(params["pid_file"]).expanduser(), timeout=params["stop_timeout"])
    except daemon.DaemonError as exc:
        common.fail(str(exc))
    except OSError as exc:
        common.fail(f"cannot stop: {exc.strerror} ({exc.filename or params['pid_file']})")
    click.echo(f"dead-drop-logger {done.message}")


@click.command()
@options.follow_options
@options.pid_file
def start(**params: Any) -> None:
    """Start the logger in the background.

    Returns once the daemon runs, printing its pid; refuses when one already runs.
    Its own log goes to ~/.dead-drop/logger.log.

    \b
    Examples:
      dead-drop-logger start
      dead-drop-logger start --retention-days 0 --poll-interval 0.2
    """
    settings = options.settings_from(params)
    _checked("check_paths", settings)
    common.notify_rules()
    _start(params, settings, _given(click.get_current_context(), params))


@click.command()
@options.config_file
@options.pid_file
@options.stop_timeout
def stop(**params: Any) -> None:
    """Stop the background logger.

    Sends SIGTERM to the pid the locked PID file names, waits for it to exit and
    removes the PID file. Exits 0 also when it was not running.

    \b
    Examples:
      dead-drop-logger stop --timeout 60
    """
    _stop(params)


@click.command()
@options.follow_options
@options.pid_file
@options.stop_timeout
@click.pass_context
def restart(ctx: click.Context, /, **params: Any) -> None:
    """Stop the background logger, then start it again.

    The new logger runs with the options the stopped one was given (on the command
    line or in their environment variables), changed by the options given here, and
    the settings file as it is now. Nothing is stopped when those cannot start (the
    paths, the log directory and whose messages it holds are checked first); if the
    new logger still fails to start, the old one is started again as it ran, and the
    exit code is 1.

    \b
    Examples:
      dead-drop-logger restart --max-bytes 100MB
    """
    from .. import daemon

    given = _given(ctx, params)
    recorded = _replaced(
        daemon.running_options(Path(params["pid_file"]).expanduser()), params, given
    )
    kept = []
    for name, value in recorded.items():
        if name in params and name not in given:
            if value != params[name]:
                flag = f"--{name.replace('_', '-')}"
                values = value if isinstance(value, tuple) else (value,)
                kept += [flag if v is True else f"{flag} {v}" for v in values]
            params[name] = value
            given.add(name)
    settings = options.settings_from(params)  # refused here, with the daemon still running
    _checked("check_all", settings)  # and here
    common.notify_rules()  # and here
    if kept:
        click.echo(f"dead-drop-logger keeps the running daemon's {' '.join(kept)}")
    pid_file = Path(params["pid_file"]).expanduser()
    old = daemon.recorded(pid_file)
    ship = common.ship_config(ctx, params)
    _stop(params)
    try:
        pid = _launch(settings, pid_file, params["log_level"], given, ship)
    except _NotStarted as exc:
        _start_again(old, pid_file, str(exc))
    _started(pid)


def _start_again(
    old: tuple[dict[str, Any], list[str], str] | None, pid_file: Path, why: str
) -> None:
    """A restart whose new daemon did not start: the old one is started again with its
    old options (the settings file left out: they are all recorded), and it says so."""
    if old is None:
        common.fail(f"{why}; nothing was running before")
    recorded, given, log_level = old
    try:
        settings = options.settings_from({**recorded, "db": tuple(recorded.get("db") or ())})
        pid = _launch(settings, pid_file, log_level, given)
    except (click.ClickException, KeyError, TypeError, ValueError) as exc:
        common.fail(f"{why}; the old daemon's options cannot start it again ({exc}): nothing runs")
    except _NotStarted as again:
        common.fail(f"{why}; the old daemon did not start again either ({again}): nothing runs")
    common.fail(f"{why}; started the old daemon again with its old options (pid {pid})")


def _replaced(recorded: dict[str, Any], params: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The recorded options a restart keeps: what it follows, given anew, replaces what it
    followed (a bare --db replaces a recorded --rooms-dir; --rooms-dir a recorded bare
    --db), rather than conflicting with it."""
    from ...rooms_spec import RoomNameError, split_db

    def bare(value: str) -> bool:
        try:
            return split_db(value)[0] is None
        except RoomNameError:
            return False

    kept = dict(recorded)
    if "db" in given and any(bare(v) for v in params["db"]):
        kept.pop("rooms_dir", None)
    if "rooms_dir" in given and "db" in kept:
        rooms = tuple(v for v in kept.pop("db") if not bare(v))
        if rooms:
            kept["db"] = rooms
    return kept


@click.command()
@options.config_file
@options.status_pid_file
@options.json_object
def status(pid_file: Path, as_json: bool) -> None:
    """Is the background logger running, and how far has it got?

    Exit codes (LSB): 0 running, 1 dead but its PID file was left behind, 3 not
    running, 4 the PID file cannot be read, 150 running but with a problem (a
    database that cannot be read: missing, not a database, permission denied).

    \b
    Examples:
      dead-drop-logger status
      dead-drop-logger status --json
    """
    from .. import notifying
    from .. import status as status_report  # reads the database: not for other commands
    from ..pidfile import PidFileError

    try:
        report = status_report.gather(pid_file.expanduser())
    except PidFileError as exc:
        common.fail(str(exc), code=4)
    except OSError as exc:
        common.fail(f"cannot read {exc.filename or pid_file}: {exc.strerror}", code=4)
    rules = notifying.rules()  # [[notify]] rules: each one's figures below
    if not rules:
        click.echo(report.to_json() if as_json else report.to_text())
    else:
        log_dir = Path(report.log_dir) if report.log_dir else notifying.log_dir_of_config()
        if as_json:
            click.echo(notifying.status_json(report.to_json(), rules, log_dir))
        else:
            click.echo("\n".join([report.to_text(), *notifying.status_text(rules, log_dir)]))
    sys.exit(report.exit_code)


@click.command("config", short_help="Print the settings `run` would use, and where from.")
@options.follow_options
@options.run_pid_file
@options.json_object
@click.option("--example", is_flag=True, help="Print a commented example settings file instead.")
def show_config(as_json: bool, example: bool, **params: Any) -> None:
    """Print the settings `run` would use, and where each came from.

    Sources: default, config.toml:LINE (the settings file), env DEAD_DROP_... or
    command line. Takes the same options as run, so a trial option shows its effect.

    \b
    Examples:
      dead-drop-logger config
      dead-drop-logger config --json --rooms-dir /var/lib/dead-drop/rooms
    """
    from .. import configfile

    if example:
        click.echo(configfile.EXAMPLE, nl=False)
        return
    ctx = click.get_current_context()
    options.settings_from(params)  # the same refusals as run
    effective = options.effective(ctx, params)
    click.echo(effective.to_json() if as_json else effective.to_text())
