"""Upkeep of a log directory on demand: ``prune`` (retention, keep-files and
compression now) and ``index`` (the index beside the logs brought up to date)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import options
from . import common


@click.command(short_help="Apply retention, keep-files and compression now.")
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
    from ...files import LogDirError
    from ...keep.housekeeping import Policy
    from ...keep.prune import prune_all
    from ...logdir.state import StateError

    policy = Policy(retention_days, keep_files, compress_after)
    try:
        done = prune_all(log_dir.expanduser(), policy, utc=utc, dry_run=dry_run)
    except LogDirError as exc:
        common.fail(str(exc))
    except (OSError, StateError) as exc:
        common.fail(f"cannot prune {log_dir}: {exc}")
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


@click.command(short_help="Bring the index beside the logs up to date (or rebuild it).")
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

    from ...logdir.layout import room_dirs
    from ...read.indexed import build

    path = log_dir.expanduser()
    if not path.is_dir():
        common.fail(f"log directory {path} does not exist", code=2)
    for where in [path, *room_dirs(path)]:
        try:
            done = build(where, rebuild=rebuild, workers=os.cpu_count() or 1)
        except OSError as exc:
            common.fail(f"cannot index {where}: {exc.strerror or exc}")
        how = f"rebuilt ({done.why})" if done.rebuilt else "up to date"
        click.echo(
            f"{where}: {how}: {done.lines} lines in {done.files} files,"
            f" index {done.size / 1e6:.1f} MB"
        )
