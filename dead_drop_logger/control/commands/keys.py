"""Encryption at rest: ``keys new`` (an age identity) and ``rekey`` (the encrypted
files sealed again to new recipients)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import options
from . import common


@click.group(short_help="Age keys for encrypted logs: keys new.")
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
    from ...crypt import keys as crypt

    try:
        recipient = crypt.new_identity(path.expanduser())
    except crypt.CryptError as exc:
        common.fail(str(exc), code=2)
    click.echo(f"wrote {path} (keep it safe: it reads the logs)", err=True)
    click.echo(recipient)


@click.command(short_help="Seal the encrypted log files again to new recipients.")
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
    from ...crypt import keys as crypt
    from ...keep.rekey import rekey_all
    from ...logdir.dirlock import LockTimeout

    try:
        recipients = crypt.load_recipients(to)
    except crypt.CryptError as exc:
        common.fail(str(exc), code=2)
    try:
        count = rekey_all(log_dir.expanduser(), recipients, lambda p: click.echo(f"rekeyed {p}"))
    except (OSError, LockTimeout) as exc:
        common.fail(f"cannot rekey {log_dir}: {exc}")
    click.echo(f"rekeyed {count} files to {len(recipients)} recipients", err=True)
