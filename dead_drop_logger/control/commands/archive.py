"""``import-archive``: an archived room's database logged into its room's
directory, exactly once."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import options
from . import common


@click.command("import-archive", short_help="Log an archived room's database, exactly once.")
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

    from ... import diagnostics
    from ...files import LogDirError
    from ...logdir.state import StateError
    from ...record import archive as archive_import
    from ...record.sqlite_process import stop_memory_statistics
    from ...record.writer import WriteError
    from ...signals import StopEvent, stop_on_signals
    from ..progress import Bar

    stop_memory_statistics()  # first: before any connection (see sqlite_process)
    if not archive.expanduser().exists():  # a mistyped path, as search's missing dir
        common.fail(f"{archive} does not exist", code=2)
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
        common.fail(str(exc))
    except LogDirError as exc:
        common.fail(str(exc))
    except (OSError, StateError, WriteError) as exc:
        common.fail(f"{exc}; run it again to resume (nothing is written twice)")
    if done.interrupted:
        common.fail(
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


def _checked_recipients(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--encrypt-to``'s recipients, checked (a bad one: one line, exit 2)."""
    from ...crypt import keys as crypt

    try:
        return crypt.load_recipients(values) if values else ()
    except crypt.CryptError as exc:
        common.fail(str(exc), code=2)
