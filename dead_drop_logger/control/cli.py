"""The ``dead-drop-logger`` command: a thin layer of click over the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.core import ParameterSource

# Only what defining the commands needs is imported here: each command imports the
# library modules it uses in its body, so `search --count` loads the reading modules
# and no others (tests/test_startup.py holds that).
from . import cli_errors, exporting, options

if TYPE_CHECKING:
    import threading

    from .. import config
    from ..read.logread import Reader
    from ..read.reading import Printer
    from ..read.stats import Stats


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr and a meaningful exit code: no traceback."""
    click.echo(f"dead-drop-logger: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=cli_errors.Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dead-drop-logger")
def cli() -> None:
    """Follow a Dead Drop messages database and append every message, exactly once,
    to daily NDJSON files (~/.dead-drop/logs/messages-YYYY-MM-DD.json)."""


def _given(ctx: click.Context, params: dict[str, Any]) -> set[str]:
    """The options given on the command line or through their environment variables."""
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {name for name in params if ctx.get_parameter_source(name) in given}


@cli.command(short_help="Follow the database in the foreground.")
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

    from .. import diagnostics
    from ..files import LogDirError
    from ..record.follow import Follower
    from ..record.rooms import runner
    from . import (
        daemon,  # the logger's modules: not loaded by the reading commands
        notifying,
    )
    from .pidfile import AlreadyRunning, PidFileError
    from .progress import Bar

    settings = options.settings_from(params)
    _checked("check_paths", settings)
    rules = _notify_rules()
    diagnostics.configure(params["log_level"], stream=sys.stderr)
    ship = _ship_config(click.get_current_context(), params)
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
    from .indexer import keeping_index

    try:
        with held, keeping_index(settings.log_dir):
            shipping = _start_shipping(ship, settings.log_dir)
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
        fail(str(exc))
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        fail(f"unexpected {type(exc).__name__}: {exc}")


@cli.command(short_help="Apply retention, keep-files and compression now.")
@options.config_file
@options.log_dir
@options.retention_days_now
@options.keep_files
@options.compress_after
@options.utc
@options.dry_run
def prune(
    log_dir: Path,
    retention_days: int,
    keep_files: int | None,
    compress_after: int | None,
    utc: bool,
    dry_run: bool,
) -> None:
    """Apply --retention-days, --keep-files and --compress-after now, from the same
    settings as run: delete and compress (or, with --dry-run, list) old log files, in
    the log directory and in every room's directory in it.

    \b
    Examples:
      dead-drop-logger prune --dry-run
      dead-drop-logger prune --retention-days 90 --dry-run
    """
    from ..files import LogDirError
    from ..keep.housekeeping import Policy
    from ..keep.prune import prune_all
    from ..logdir.state import StateError

    policy = Policy(retention_days, keep_files, compress_after)
    try:
        done = prune_all(log_dir.expanduser(), policy, utc=utc, dry_run=dry_run)
    except LogDirError as exc:
        fail(str(exc))
    except (OSError, StateError) as exc:
        fail(f"cannot prune {log_dir}: {exc}")
    deleted, compressed = (
        ("would delete", "would compress") if dry_run else ("deleted", "compressed")
    )
    for path in done.deleted:
        click.echo(f"{deleted} {path}")
    for path in done.compressed:
        click.echo(f"{compressed} {path}")
    summary = f"{deleted} {len(done.deleted)} files"
    if compress_after is not None:
        summary += f", {compressed} {len(done.compressed)}"
    click.echo(summary, err=True)


@cli.command(short_help="Bring the index beside the logs up to date (or rebuild it).")
@options.config_file
@options.log_dir
@options.rebuild_index
def index(log_dir: Path, rebuild: bool) -> None:
    """Bring the index of the log directory, and of every room's directory in it, up to
    date with the log files: the reading commands answer through it in milliseconds
    (the logger keeps it current; without it they scan the files). It is a cache:
    deleting it loses nothing; --rebuild makes it anew.

    \b
    Examples:
      dead-drop-logger index
      dead-drop-logger index --rebuild
    """
    import os

    from ..logdir.layout import room_dirs
    from ..read.indexed import build

    path = log_dir.expanduser()
    if not path.is_dir():
        fail(f"log directory {path} does not exist", code=2)
    for where in [path, *room_dirs(path)]:
        try:
            done = build(where, rebuild=rebuild, workers=os.cpu_count() or 1)
        except OSError as exc:
            fail(f"cannot index {where}: {exc.strerror or exc}")
        how = f"rebuilt ({done.why})" if done.rebuilt else "up to date"
        click.echo(
            f"{where}: {how}: {done.lines} lines in {done.files} files,"
            f" index {done.size / 1e6:.1f} MB"
        )


@cli.command("import-archive", short_help="Log an archived room's database, exactly once.")
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
@options.retention_days_now
@options.keep_files
@options.encrypt_to
def import_archive(
    archive: Path,
    room: str,
    log_dir: Path,
    utc: bool,
    retention_days: int,
    keep_files: int | None,
    encrypt_to: tuple[str, ...],
) -> None:
    """Log an archived room (the hub's NAME_YYYYMMDD-HHMMSS/messages.db.gz), exactly once.

    Writes only what the room's log lacks: nothing on a second run, and for a room
    that was followed, only the messages it had not logged yet. Messages older than
    --retention-days (from the settings, as run's) are left out, and said so before
    anything is written: the logger's retention would delete them.

    \b
    Examples:
      dead-drop-logger import-archive archive/ops_20261129-120000/messages.db.gz --room ops
    """
    import logging

    from .. import diagnostics
    from ..files import LogDirError
    from ..logdir.state import StateError
    from ..record import archive as archive_import
    from ..record.writer import WriteError
    from ..signals import StopEvent, stop_on_signals
    from .progress import Bar

    if not archive.expanduser().exists():  # a mistyped path, as search's missing dir
        fail(f"{archive} does not exist", code=2)
    diagnostics.configure("warning", stream=sys.stderr)
    stop = StopEvent()  # SIGTERM, SIGINT: stop after the page in hand, the copy removed
    stop_on_signals(stop, logging.getLogger("dead_drop_logger.record.archive"))

    def announce(note: str) -> None:
        click.echo(f"dead-drop-logger: {note}", err=True)

    bar = Bar("importing")
    try:
        done = archive_import.import_archive(
            archive.expanduser(),
            log_dir.expanduser(),
            room,
            utc=utc,
            should_stop=stop.is_set,
            retention_days=retention_days,
            keep_files=keep_files,
            recipients=_checked_recipients(encrypt_to),
            announce=announce,
            progress=bar if bar.enabled else None,
        )
        bar.close()
    except archive_import.ArchiveError as exc:
        fail(str(exc))
    except LogDirError as exc:
        fail(str(exc))
    except (OSError, StateError, WriteError) as exc:
        fail(f"{exc}; run it again to resume (nothing is written twice)")
    if done.interrupted:
        fail(
            f"interrupted after {done.written} messages; run it again to resume"
            " (nothing is written twice)"
        )
    click.echo(
        f"imported {done.written} messages from {archive} into {done.log_dir}"
        f" ({done.already} already there)"
    )
    if done.tasks:
        click.echo(f"recorded {done.tasks} task lines from its tasks table (docs/tasks.md)")
    if done.outside is not None and done.outside.messages:
        click.echo(
            f"{done.outside.messages} messages older than the {retention_days}-day retention"
            " were not written (retention would delete them); --retention-days 0 keeps them"
        )


cli.add_command(exporting.export)


def _checked(check: str, settings: config.Settings) -> None:
    """Run a :mod:`.preflight` check (by name: the logger's modules it loads are not
    loaded by the reading commands): a refusal is one line and its exit code."""
    from . import preflight

    try:
        getattr(preflight, check)(settings)
    except preflight.CannotStart as exc:
        fail(str(exc), exc.code)


class _NotStarted(Exception):
    """The daemon could not start; ``str()`` is the one line saying why."""


def _launch(
    settings: config.Settings,
    pid_file: Path,
    log_level: str,
    given: set[str] | list[str],
    ship: Any = None,
) -> int:
    from .. import config
    from . import daemon, notifying
    from .pidfile import AlreadyRunning, PidFileError

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
    from .. import config

    click.echo(f"dead-drop-logger started (pid {pid}); its own log: {config.DEFAULT_DAEMON_LOG}")


def _start(params: dict[str, Any], settings: config.Settings, given: set[str]) -> None:
    pid_file = Path(params["pid_file"]).expanduser()
    ship = _ship_config(click.get_current_context(), params)
    try:
        pid = _launch(settings, pid_file, params["log_level"], given, ship)
    except _NotStarted as exc:
        fail(str(exc))
    _started(pid)


def _stop(params: dict[str, Any]) -> None:
    from . import daemon

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
    Its own log goes to ~/.dead-drop/logger.log.

    \b
    Examples:
      dead-drop-logger start
      dead-drop-logger start --retention-days 0 --poll-interval 0.2
    """
    settings = options.settings_from(params)
    _checked("check_paths", settings)
    _notify_rules()
    _start(params, settings, _given(click.get_current_context(), params))


@cli.command()
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


@cli.command()
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
    from . import daemon

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
    _notify_rules()  # and here
    if kept:
        click.echo(f"dead-drop-logger keeps the running daemon's {' '.join(kept)}")
    pid_file = Path(params["pid_file"]).expanduser()
    old = daemon.recorded(pid_file)
    ship = _ship_config(ctx, params)
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
        fail(f"{why}; nothing was running before")
    recorded, given, log_level = old
    try:
        settings = options.settings_from({**recorded, "db": tuple(recorded.get("db") or ())})
        pid = _launch(settings, pid_file, log_level, given)
    except (click.ClickException, KeyError, TypeError, ValueError) as exc:
        fail(f"{why}; the old daemon's options cannot start it again ({exc}): nothing runs")
    except _NotStarted as again:
        fail(f"{why}; the old daemon did not start again either ({again}): nothing runs")
    fail(f"{why}; started the old daemon again with its old options (pid {pid})")


def _replaced(recorded: dict[str, Any], params: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The recorded options a restart keeps: what it follows, given anew, replaces what it
    followed (a bare --db replaces a recorded --rooms-dir; --rooms-dir a recorded bare
    --db), rather than conflicting with it."""
    from ..rooms_spec import RoomNameError, split_db

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


@cli.command()
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
    from . import notifying
    from . import status as status_report  # reads the database: not for other commands
    from .pidfile import PidFileError

    try:
        report = status_report.gather(pid_file.expanduser())
    except PidFileError as exc:
        fail(str(exc), code=4)
    except OSError as exc:
        fail(f"cannot read {exc.filename or pid_file}: {exc.strerror}", code=4)
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


@cli.command("config", short_help="Print the settings `run` would use, and where from.")
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
    from . import configfile

    if example:
        click.echo(configfile.EXAMPLE, nl=False)
        return
    ctx = click.get_current_context()
    options.settings_from(params)  # the same refusals as run
    effective = options.effective(ctx, params)
    click.echo(effective.to_json() if as_json else effective.to_text())


def _reading(
    log_dir: Path,
    since: str | None,
    until: str | None,
    utc: bool,
    rooms: tuple[str, ...] | None = None,
) -> Reader:
    from ..read import reading

    try:
        return reading.make_reader(log_dir, reading.make_window(since, until), utc, rooms)
    except reading.RequestError as exc:
        fail(str(exc), code=2)
        raise  # not reached: fail() exits


def _stop_on_signals() -> threading.Event:
    """SIGINT and SIGTERM end a --follow cleanly (exit 0) instead of a traceback."""
    import logging

    from ..signals import StopEvent, stop_on_signals

    stop = StopEvent()  # a plain Event set from a handler can deadlock its own wait()
    stop_on_signals(stop, logging.getLogger("dead_drop_logger.read.search"))
    return stop


def _warn(reader: Reader) -> None:
    from ..read import reading

    for line in reading.warnings(reader):
        click.echo(f"dead-drop-logger: warning: {line}", err=True)


def _nothing(reader: Reader, log_dir: Path) -> None:
    """One line for "no messages": where was read, and the range when one was given."""
    from ..read import reading

    in_range = " in that range" if reader.window.bounded else ""
    where, hint = reading.read_where(reader, log_dir)
    click.echo(f"dead-drop-logger: no messages in {where}{in_range}{hint}", err=True)


def _finish(reader: Reader, found: bool) -> None:
    """Exit as grep does: 2 when a file could not be read (what the others gave has been
    printed), else 0 when something was found, 1 when nothing was."""
    _warn(reader)
    sys.exit(2 if reader.unreadable else 0 if found else 1)


def _printer(as_json: bool, oneline: bool = False, full: bool = False) -> Printer:
    from ..read import reading

    out = sys.stdout.buffer
    return reading.Printer(
        out,
        as_json=as_json,
        colour=not as_json and reading.wants_colour(out),
        oneline=oneline,
        full=full,
        width=reading.line_width(out),
    )


def _guarded(action: Any) -> Any:
    """Run ``action``: a user's mistake is one line and exit 2 (a closed pipe or a full
    disk on stdout: :mod:`.cli_errors`, for every command)."""
    from ..read import reading

    try:
        return action()
    except reading.RequestError as exc:
        fail(str(exc), code=2)


@cli.command(short_help="Print the logged messages that match, as grep does.")
@options.log_source
@options.search_filters
@options.search_output
def search(log_dir: Path, utc: bool, pattern: str | None, **params: Any) -> None:
    """Print the logged messages that match every filter given; PATTERN, as grep's, is
    text the content holds (the same as --contains PATTERN; with --contains too, all
    must be there).

    Exit status as grep: 0 something matched, 1 nothing did, 2 an error (with an
    unreadable file: after printing what the others hold).

    \b
    Examples:
      dead-drop-logger search "deploy merge" --from juno
      dead-drop-logger search -i deploy -c                count the matches
      dead-drop-logger search -n 5 --task T-42            the first 5
      dead-drop-logger search -f --to lead                the last 10, then live
      dead-drop-logger search -f -n 50 deploy             the last 50, then live
      dead-drop-logger search --oneline --since 2h | grep -i error
      dead-drop-logger search --full --task T-42          long contents whole
      dead-drop-logger search --agent vega --since yesterday --json | jq .id
      dead-drop-logger search --task T-42 --no-cc --reverse -n 5
      dead-drop-logger search --room ops --room dev deploy
    """
    from ..read import reading
    from ..read.search import Search

    reader = _reading(log_dir, params["since"], params["until"], utc, params["rooms"])
    filters = _guarded(
        lambda: reading.make_filters(
            senders=params["senders"],
            recipients=params["recipients"],
            agents=params["agents"],
            task=params["task"],
            contains=(*(() if pattern is None else (pattern,)), *params["contains"]),
            ignore_case=params["ignore_case"],
            regex=params["regex"],
            no_cc=params["no_cc"],
        )
    )
    stop = _stop_on_signals() if params["follow"] else None
    matched = _guarded(
        lambda: reading.run_search(
            Search(reader, filters),
            _printer(params["as_json"], params["oneline"], params["full"]),
            count=params["count"],
            limit=params["limit"],
            reverse=params["reverse"],
            follow=params["follow"],
            interval=params["interval"],
            stop=stop,
        )
    )
    _finish(reader, matched > 0 or (stop is not None and stop.is_set()))


@cli.command(short_help="Print the conversation a message belongs to.")
@options.message_id
@options.log_source
@options.as_json
@options.text_view
def thread(
    message_id: int,
    log_dir: Path,
    rooms: tuple[str, ...],
    as_json: bool,
    oneline: bool,
    full: bool,
    utc: bool,
) -> None:
    """Print the conversation message ID belongs to: up to its root, then every reply
    below it, in id order, indented by depth. ID as printed (#1234) or the number alone.
    Exit status 1 when ID is not logged, 2 when it is logged in several rooms (choose
    one with --room).

    \b
    Examples:
      dead-drop-logger thread 1234
      dead-drop-logger thread '#1234' --oneline
      dead-drop-logger thread 1234 --room ops --json | jq -r .content
    """
    from ..read import reading

    reader = _reading(log_dir, None, None, utc, rooms)
    if oneline and as_json:
        fail("--oneline cannot be combined with --json", code=2)
    printer = _printer(as_json, oneline, full)
    found = _guarded(lambda: reading.run_thread(reader, message_id, printer))
    if not found:
        where, hint = reading.read_where(reader, log_dir)
        click.echo(
            f"dead-drop-logger: message {message_id} is not in the logs of {where}{hint}",
            err=True,
        )
    _finish(reader, found)


@cli.command(short_help="One row per agent: sent, received, first and last seen.")
@options.log_source
@options.team_databases
@options.window
@options.json_rows
def agents(
    log_dir: Path,
    rooms: tuple[str, ...],
    db: tuple[str, ...],
    rooms_dir: Path | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    utc: bool,
) -> None:
    """One row per agent: messages sent, received (direct, broadcast, CC copies), first
    and last seen; the most recently seen first. When rooms are read, an agent is a
    name in a room: one row per room it is in, with a ROOM column. With --json, when
    the database can be read, each row also has what `top` shows of the agent now
    (health, status, task, last message, unanswered messages; docs/top.md), and an
    agent registered there but silent in the logs has a row too.

    \b
    Examples:
      dead-drop-logger agents
      dead-drop-logger agents --since 1w --json | jq -r 'select(.sent == 0) | .agent'
      dead-drop-logger agents --room ops
    """
    from ..read import reading

    reader = _reading(log_dir, since, until, utc, rooms)
    now = None
    if as_json:
        team = _team(db, rooms_dir, log_dir, utc, rooms)
        team.refresh()
        if any(r.problem is None for r in team.rows.values()):
            now = team.frame()
        team.close()
    rows = _guarded(lambda: reading.run_agents(reader, _printer(as_json), now))
    if not rows:
        _nothing(reader, log_dir)
    _finish(reader, rows > 0)


def _team(
    db: tuple[str, ...],
    rooms_dir: Path | None,
    log_dir: Path,
    utc: bool,
    only: tuple[str, ...] = (),
) -> Any:
    """The databases of ``top`` (and ``agents --json``) with their logs: ``--db`` and
    ``--rooms-dir`` as ``run`` takes them (the default database when neither is
    given); ``only``: just these rooms."""
    from .. import config
    from ..clock import from_environment
    from ..record.team import Team, databases
    from ..rooms_spec import parse_dbs

    try:
        bare, named = parse_dbs(db)
        clock = from_environment()
    except ValueError as exc:
        fail(str(exc), code=2)
    if bare is None and not named and rooms_dir is None:
        bare = config.DEFAULT_DB
    base = Path(log_dir).expanduser()
    where = None if rooms_dir is None else Path(rooms_dir).expanduser()

    def listing() -> list[Any]:
        found = databases(bare, named, where, base)
        return [d for d in found if d.room in only] if only else found

    return Team(listing, clock, utc)


@cli.command(short_help="The team now, live: health, status, task, waiting messages.")
@options.config_file
@options.team_databases
@options.log_dir
@options.identity
@options.read_utc
@options.once
def top(db: tuple[str, ...], rooms_dir: Path | None, log_dir: Path, utc: bool, once: bool) -> None:
    """The team at a glance, redrawn as the database changes: one row per agent (per
    room with rooms) with its health from its heartbeat (healthy under 2 minutes,
    stale under 10, dead after; unknown without one), its status, its open task,
    its last message and the direct messages it has not answered; below, the open
    tasks by status. Quit with q or Ctrl-C. Details: docs/top.md.

    \b
    Examples:
      dead-drop-logger top
      dead-drop-logger top --rooms-dir ~/.dead-drop/rooms
      dead-drop-logger top --once | grep dead
    """
    from ..read import reading
    from . import top as live_top

    team = _team(db, rooms_dir, log_dir, utc)
    out = sys.stdout
    colour = reading.wants_colour(out.buffer)
    if once:
        sys.exit(live_top.once(team, out, reading.line_width(out.buffer), colour))
    if not out.isatty():
        fail("top redraws a terminal; use --once for one frame into a pipe or file", code=2)
    sys.exit(live_top.live(team, out, colour))


def _read_stats(
    log_dir: Path, rooms: tuple[str, ...], since: str | None, until: str | None, utc: bool
) -> tuple[Stats, Reader]:
    """The numbers of a log directory's window (and the reader that read them); no
    messages is one line and exit 1, an unreadable directory exit 2 (as search does).
    A file that cannot be read is a warning: the caller prints the numbers of the
    others, then exits 2."""
    from ..read import statlines, taskpending  # the statistics' modules: only for stats, report
    from ..read.logread import LogReadError
    from ..read.tasklog import merge_problems
    from ..read.when import local_now

    reader = _reading(log_dir, since, until, utc, rooms)
    try:
        pending = taskpending.Pending(reader, local_now())  # the task log, read meanwhile
        result = statlines.read(reader)
        result.task_figures, tasks = pending.result()
    except LogReadError as exc:
        fail(str(exc), code=2)
    merge_problems(reader, tasks)  # warned of, and exit 2, as for a message file
    _warn(reader)
    if result.totals.messages == 0 and result.task_figures is None:
        _nothing(reader, log_dir)
        sys.exit(2 if reader.unreadable else 1)
    return result, reader


@cli.command(short_help="The recorded tasks, or one task's history.")
@options.task_id
@options.log_source
@options.task_filters
@options.json_tasks
def tasks(
    task_id: str | None,
    log_dir: Path,
    rooms: tuple[str, ...],
    as_json: bool,
    utc: bool,
    **params: Any,
) -> None:
    """The tasks the logger recorded (tasks-*.json): status, assignee, how long in that
    status, reworks and the last transition; open tasks first, the longest in their
    status first. With
    TASK-ID: that task's whole history, every transition with its time and who made it,
    and its messages (task_id TASK-ID). --since/--until keep the tasks with a transition
    in that range. Exit 0, 1 when no task matches, 2 on an error.

    \b
    Examples:
      dead-drop-logger tasks
      dead-drop-logger tasks --status in_progress --stale 2d
      dead-drop-logger tasks --agent juno --project web --json | jq -r .task
      dead-drop-logger tasks TASK-004
    """
    from ..read import reading, taskcommand

    reader = _reading(log_dir, params["since"], params["until"], utc, rooms)
    chosen = taskcommand.TaskFilter(
        frozenset(params["statuses"]),
        frozenset(params["agents"]),
        frozenset(params["projects"]),
        reader.window,
        params["stale"],
    )
    found = _guarded(lambda: taskcommand.run(reader, task_id, chosen, as_json, click.echo))
    if not found:
        what = f"task {task_id}" if task_id else "tasks"
        where, hint = reading.read_where(reader, log_dir)
        click.echo(f"dead-drop-logger: no {what} recorded in {where}{hint}", err=True)
    _finish(reader, found)


RESPONSE_TIME_HELP = """
\b
Response time: for a direct message m from A to B, the time until the first of
  - B's next direct message to A, or
  - B's first message (direct or broadcast) whose reply_to is m's id,
if that comes within 24 hours of m. CC copies never count; one answer can
answer several messages. Example: A->B 10:00 (#1), A->B 10:05 (#2), B->C
10:07 replying to #1, B->A 10:20: B answered #1 in 7m 00s and #2 in 15m 00s
(median 11m 00s, p90 15m 00s).
"""


@cli.command(epilog=RESPONSE_TIME_HELP, short_help="What the agents did, in numbers.")
@options.log_source
@options.window
@options.json_object
def stats(
    log_dir: Path,
    rooms: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_json: bool,
    utc: bool,
) -> None:
    """What the agents did, in numbers: totals, agents, pairs, response times,
    activity, tasks and threads.

    CC copies the server makes for the lead (is_cc = 1) are counted apart, never
    as messages; broadcasts are messages to "all". When rooms are read, agents,
    pairs, responders, tasks and threads are each of one room (a room column).
    Exit 0, 1 when no message is in range, 2 on an error.

    \b
    Examples:
      dead-drop-logger stats --since 1w
      dead-drop-logger stats --json | jq '.response_times[] | [.responder, .median_seconds]'
    """
    from ..read import stats_format

    result, reader = _read_stats(log_dir, rooms, since, until, utc)
    if as_json:
        click.echo(stats_format.to_json(result))
    else:
        for line in stats_format.text_lines(result):
            click.echo(line)
    sys.exit(2 if reader.unreadable else 0)  # the numbers of what could be read


@cli.command(epilog=RESPONSE_TIME_HELP, short_help="Write the numbers of stats as one HTML page.")
@options.log_source
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    metavar="FILE.html",
    help="Where to write the report (replaced if it exists); - writes it to stdout.",
)
@options.window
@click.option("--title", default="What the agents did", show_default=True, help="The page's title.")
def report(
    log_dir: Path,
    rooms: tuple[str, ...],
    output: Path,
    since: str | None,
    until: str | None,
    title: str,
    utc: bool,
) -> None:
    """One self-contained HTML file with the numbers of stats and six charts
    (hover for values); it opens from disk with no network.

    Needs the report extra (install.sh installs it; from a checkout: pip install
    '.[report]'). Exit codes as stats.

    \b
    Examples:
      dead-drop-logger report -o team.html
      dead-drop-logger report --since 2026-02-01 --until 2026-03-01 -o february.html
    """
    from ..read import report as html_report
    from ..read import stats_format

    try:
        html_report.plotly_js()
    except html_report.ReportUnavailable as exc:
        fail(str(exc), code=2)
    result, reader = _read_stats(log_dir, rooms, since, until, utc)
    html_report.fill_previews(result, reader.sources, utc=utc)
    t = result.totals
    subtitle = (
        f"{t.messages:,} messages from {stats_format.when(t.first)} to "
        f"{stats_format.when(t.last)} in {log_dir}"
    )
    page = html_report.render(result, title, subtitle)
    if str(output) == "-":  # stdout, as for most tools: | gzip, | ssh host 'cat > r.html'
        _guarded(lambda: _write_stdout(page.encode("utf-8")))
        sys.exit(2 if reader.unreadable else 0)
    try:
        size = html_report.write(output.expanduser(), page)
    except html_report.ReportWriteError as exc:
        fail(str(exc), code=2)
    click.echo(f"wrote {output} ({size:,} bytes)", err=True)
    sys.exit(2 if reader.unreadable else 0)  # the numbers of what could be read


def _ship_config(ctx: click.Context, params: dict[str, Any]) -> Any:
    """The ``[ship]`` table's targets, checked (a bad one: one line, exit 2); None
    without the table (then nothing of the ship package is imported)."""
    ship = options.ship_config_from(ctx, params)
    if ship is not None:
        from ..ship.target import TargetError
        from . import shipping

        try:
            shipping.check(ship)
        except TargetError as exc:
            fail(str(exc), code=2)
    return ship


def _start_shipping(ship: Any, log_dir: Path) -> Any:
    if ship is None:
        return None
    from . import shipping

    return shipping.start(ship, log_dir)


@cli.command(short_help="Deliver the logged lines to NATS, PostgreSQL or HTTP.")
@options.config_file
@options.log_dir
@options.identity
@options.ship_options
@options.log_level
def ship(log_dir: Path, log_level: str, from_start: bool, **params: Any) -> None:
    """Deliver every committed line of the log directory (and its rooms) to each sink,
    exactly once at the sink by the line's ROOM:ID, until SIGTERM or Ctrl-C.

    Each sink keeps its own position (LOG_DIR/.ship/); `status` shows each one's lag
    and last error. See docs/ship.md.

    \b
    Examples:
      dead-drop-logger ship --to nats://127.0.0.1:4222
      dead-drop-logger ship --to postgresql://logger@db/hub --password-env DB_PW
      dead-drop-logger ship --to http://127.0.0.1:9200/dead-drop/_bulk --from-start
    """
    import logging

    from .. import diagnostics
    from ..signals import StopEvent, stop_on_signals
    from . import shipping

    ctx = click.get_current_context()
    config_ship = _ship_config(ctx, params)
    if config_ship is None:
        fail("nothing to ship to: give --to URL (or [ship] to = [...] in config.toml)", 2)
    diagnostics.configure(log_level, stream=sys.stderr)
    stop = StopEvent()
    stop_on_signals(stop, logging.getLogger(__name__))
    running = shipping.start(config_ship, log_dir.expanduser(), from_start=from_start, stop=stop)
    while not stop.wait(0.5):
        if not any(thread.is_alive() for thread in running.threads):
            break
    running.stop()


def _checked_recipients(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--encrypt-to``'s recipients, checked (a bad one: one line, exit 2)."""
    from ..crypt import keys as crypt

    try:
        return crypt.load_recipients(values) if values else ()
    except crypt.CryptError as exc:
        fail(str(exc), code=2)


@cli.group(short_help="Age keys for encrypted logs: keys new.")
def keys() -> None:
    """Age identities for encrypted logs (docs/encryption.md).

    \b
    Examples:
      dead-drop-logger keys new ~/.config/dead-drop-logger/identity.txt
    """


@keys.command("new", short_help="Write a new age identity; print its recipient.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def keys_new(path: Path) -> None:
    """Write a new age identity to PATH (0600; never over an existing file) and print
    its recipient (age1...), the key to give encrypt_to. Keep PATH (and a copy of it
    somewhere safe): without it the logs sealed to its recipient cannot be read.

    \b
    Examples:
      dead-drop-logger keys new ~/.config/dead-drop-logger/identity.txt
    """
    from ..crypt import keys as crypt

    try:
        recipient = crypt.new_identity(path.expanduser())
    except crypt.CryptError as exc:
        fail(str(exc), code=2)
    click.echo(f"wrote {path} (keep it safe: it reads the logs)", err=True)
    click.echo(recipient)


@cli.command(short_help="Seal the encrypted log files again to new recipients.")
@options.config_file
@options.log_dir
@options.identity
@click.option(
    "--to",
    "to",
    multiple=True,
    required=True,
    metavar="RECIPIENT",
    help="A recipient (age1...) or recipients file the files are sealed to from now on "
    "(repeat for more); the old recipients lose access to the files rekeyed.",
)
def rekey(log_dir: Path, to: tuple[str, ...]) -> None:
    """Seal every encrypted log file again to the recipients --to names, one file at
    a time, atomically (each file is at every instant a whole age file, the old or the
    new, never plaintext), in the log directory and every room's directory in it. It
    needs the identity that reads them. Then set encrypt_to to the same recipients and
    restart the logger, so new segments go to them too.

    \b
    Examples:
      dead-drop-logger rekey --to age1... --to ~/team-recipients.txt --identity old.txt
    """
    from ..crypt import keys as crypt
    from ..keep.rekey import rekey_all
    from ..logdir.dirlock import LockTimeout

    try:
        recipients = crypt.load_recipients(to)
    except crypt.CryptError as exc:
        fail(str(exc), code=2)
    try:
        count = rekey_all(log_dir.expanduser(), recipients, lambda p: click.echo(f"rekeyed {p}"))
    except (OSError, LockTimeout) as exc:
        fail(f"cannot rekey {log_dir}: {exc}")
    click.echo(f"rekeyed {count} files to {len(recipients)} recipients", err=True)


@cli.command(short_help="A live page and an HTTP API over the logs (the serve extra).")
@options.serve_options
def serve(
    log_dir: Path,
    utc: bool,
    db: tuple[str, ...],
    rooms_dir: Path | None,
    host: str,
    port: int,
    token_file: Path | None,
    show_token: bool,
    cors: tuple[str, ...],
    request_timeout: float,
) -> None:
    """Serve the logs over HTTP: the live page at / (agents, the feed as it is
    logged, threads, tasks) and the API under /v1 (messages with search's filters,
    threads, agents, tasks, stats, Server-Sent Events; /v1/openapi.json describes it).
    It reads the logs and, for the team now, the databases (read-only); it never
    writes either. Stops on Ctrl-C or SIGTERM.

    Bound to 127.0.0.1 unless --host says otherwise; any other address requires the
    bearer token, made the first time into a private file (--show-token prints it).
    Needs the serve extra (install.sh installs it; from a checkout:
    pip install '.[serve]'). Details: docs/serve.md.

    \b
    Examples:
      dead-drop-logger serve                      then open http://127.0.0.1:8787/
      dead-drop-logger serve --rooms-dir ~/.dead-drop/rooms --port 9000
      dead-drop-logger serve --host 0.0.0.0       (with the token)
      dead-drop-logger serve --show-token
      curl -s 'http://127.0.0.1:8787/v1/messages?from=juno&limit=5'
    """
    import importlib.util

    from ..serve import security

    path = (token_file or security.default_token_file()).expanduser()
    if show_token:
        try:
            click.echo(security.load_or_make_token(path))
        except security.TokenError as exc:
            fail(str(exc), code=2)
        return
    if not all(importlib.util.find_spec(name) for name in ("starlette", "uvicorn")):
        fail(
            "serve needs Starlette and uvicorn: pip install 'dead-drop-logger[serve]'"
            " (install.sh installs them)",
            code=2,
        )
    from ..serve import runner

    where = Path(log_dir).expanduser()
    _reading(where, None, None, utc)  # a missing or unreadable directory: one line, exit 2
    token = None
    if security.needs_token(host):
        try:
            token = security.load_or_make_token(path)
        except security.TokenError as exc:
            fail(str(exc), code=2)
    team = _team(db, rooms_dir, where, utc)
    try:
        opts = runner.Options(where, host, port, token, utc, cors, team, request_timeout)
        sys.exit(runner.run(opts))
    except runner.ServeError as exc:
        fail(str(exc), code=2)


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _notify_rules() -> list[Any]:
    """The settings file's [[notify]] rules, their secrets there (exit 2 if not)."""
    from . import notifying

    rules = notifying.rules()
    problem = notifying.check_secrets(rules) or notifying.check_sealed(rules)
    if problem is not None:
        fail(problem, 2)
    return rules


@cli.command(short_help="Deliver the [[notify]] rules of config.toml (without run).")
@options.config_file
@options.log_dir
@options.identity
@options.log_level
@options.notify_test
def notify(log_dir: Path, log_level: str, test_rule: str | None) -> None:
    """Run the notification rules of the settings file alone, reading the logs (run and
    start run them too, beside the follower). With --test NAME, send a sample event
    through rule NAME and print what the receiver answered.

    \b
    Examples:
      dead-drop-logger notify
      dead-drop-logger notify --test blocked
    """
    from .. import diagnostics
    from . import notifying

    rules = _notify_rules()
    if test_rule is not None:
        from ..notify.service import test

        chosen = [rule for rule in rules if rule.name == test_rule]
        if not chosen:
            known = ", ".join(rule.name for rule in rules) or "none"
            fail(f"no notify rule {test_rule!r} in the settings file (rules: {known})", 2)
        outcome = test(chosen[0])
        click.echo(f"{chosen[0].sink} {chosen[0].destination}: {outcome.detail}")
        sys.exit(0 if outcome.ok else 1)
    if not rules:
        fail("the settings file has no [[notify]] rules (see docs/notify.md)", 2)
    diagnostics.configure(log_level, stream=sys.stderr)
    stop = _stop_on_signals()
    notifier = notifying.start(rules, log_dir.expanduser())
    assert notifier is not None
    try:
        stop.wait()
    finally:
        notifier.stop()


def main() -> None:
    cli(prog_name="dead-drop-logger")
