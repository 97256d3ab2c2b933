"""The helpers several commands share: one-line failures, the reader of a log
directory and how a reading command exits, the team of databases, the [ship] and
[[notify]] settings checked.

Like every module of this package it imports only click and the options at its top: the
library modules are imported in the functions' bodies, so a command loads only what it
uses (tests/test_startup.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .. import options

if TYPE_CHECKING:
    import threading

    from ...read.logread import Reader
    from ...read.reading import Printer


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr and a meaningful exit code: no traceback."""
    click.echo(f"dead-drop-logger: error: {message}", err=True)
    sys.exit(code)


def reader(
    log_dir: Path,
    since: str | None,
    until: str | None,
    utc: bool,
    rooms: tuple[str, ...] | None = None,
) -> Reader:
    from ...read import reading

    try:
        return reading.make_reader(log_dir, reading.make_window(since, until), utc, rooms)
    except reading.RequestError as exc:
        fail(str(exc), code=2)
        raise  # not reached: fail() exits


def stop_on_signals() -> threading.Event:
    """SIGINT and SIGTERM end a --follow cleanly (exit 0) instead of a traceback."""
    import logging

    from ... import signals

    stop = signals.StopEvent()  # a plain Event set from a handler can deadlock its own wait()
    signals.stop_on_signals(stop, logging.getLogger("dead_drop_logger.read.search"))
    return stop


def warn(reader: Reader) -> None:
    from ...read import reading

    for line in reading.warnings(reader):
        click.echo(f"dead-drop-logger: warning: {line}", err=True)


def nothing(reader: Reader, log_dir: Path) -> None:
    """One line for "no messages": where was read, and the range when one was given."""
    from ...read import reading

    in_range = " in that range" if reader.window.bounded else ""
    where, hint = reading.read_where(reader, log_dir)
    click.echo(f"dead-drop-logger: no messages in {where}{in_range}{hint}", err=True)


def finish(reader: Reader, found: bool) -> None:
    """Exit as grep does: 2 when a file could not be read (what the others gave has been
    printed), else 0 when something was found, 1 when nothing was."""
    warn(reader)
    sys.exit(2 if reader.unreadable else 0 if found else 1)


def printer(as_json: bool, oneline: bool = False, full: bool = False) -> Printer:
    from ...read import reading

    out = sys.stdout.buffer
    return reading.Printer(
        out,
        as_json=as_json,
        colour=not as_json and reading.wants_colour(out),
        oneline=oneline,
        full=full,
        width=reading.line_width(out),
    )


def guarded(action: Any) -> Any:
    """Run ``action``: a user's mistake is one line and exit 2 (a closed pipe or a full
    disk on stdout: :mod:`.cli_errors`, for every command)."""
    from ...read import reading

    try:
        return action()
    except reading.RequestError as exc:
        fail(str(exc), code=2)


def team(
    db: tuple[str, ...],
    rooms_dir: Path | None,
    log_dir: Path,
    utc: bool,
    only: tuple[str, ...] = (),
) -> Any:
    """The databases of ``top`` (and ``agents --json``) with their logs: ``--db`` and
    ``--rooms-dir`` as ``run`` takes them (the default database when neither is
    given); ``only``: just these rooms."""
    from ... import config
    from ...clock import from_environment
    from ...record.team import Team, databases
    from ...rooms_spec import parse_dbs

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


def ship_config(ctx: click.Context, params: dict[str, Any]) -> Any:
    """The ``[ship]`` table's targets, checked (a bad one: one line, exit 2); None
    without the table (then nothing of the ship package is imported)."""
    ship = options.ship_config_from(ctx, params)
    if ship is not None:
        from ...ship.target import TargetError
        from .. import shipping

        try:
            shipping.check(ship)
        except TargetError as exc:
            fail(str(exc), code=2)
    return ship


def start_shipping(ship: Any, log_dir: Path) -> Any:
    if ship is None:
        return None
    from .. import shipping

    return shipping.start(ship, log_dir)


def notify_rules() -> list[Any]:
    """The settings file's [[notify]] rules, their secrets there (exit 2 if not)."""
    from .. import notifying

    rules = notifying.rules()
    problem = notifying.check_secrets(rules) or notifying.check_sealed(rules)
    if problem is not None:
        fail(problem, 2)
    return rules
