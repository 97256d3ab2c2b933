"""The sealed segment: one standard age file, written once, whole, durably.

Why segments: the age format cannot be appended to (its payload is authenticated in
64 KiB chunks up to a final one), and two age files concatenated do not decrypt. So an
encrypted log is a series of whole age files, each decryptable alone by ``age -d -i KEY``
to exactly its NDJSON lines. A segment is written to a hidden temporary name (the
ciphertext only: the plaintext never touches the disk), fsynced, linked into place
(a link never replaces an existing file), the temporary name removed and the directory
fsynced: a crash leaves either no segment or a whole one, never a torn age file, and the
writer's pending record (see record/sealed.py) says whether a whole one is committed.

A segment of a day old enough to be compressed is gzipped *before* it is encrypted
(``.json.gz.age``): encrypted bytes do not compress.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..files import fsync_dir, write_synced
from . import keys

GZ_AGE = ".gz.age"


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def write_segment(
    path: Path, plaintext: bytes, recipients: Sequence[str], *, sync_dir: bool = True
) -> int:
    """Write ``plaintext`` as the sealed segment ``path`` (gzipped first when its name
    ends ``.gz.age``); returns its size. Raises OSError (nothing left at ``path``),
    FileExistsError when a file is already there, CryptError. ``sync_dir=False``: the
    caller fsyncs the directory (once for several segments) before it records them."""
    data = gzip.compress(plaintext, mtime=0) if path.name.endswith(GZ_AGE) else plaintext
    sealed = keys.encrypt(data, recipients)
    temp = temp_path(path)
    try:
        write_synced(temp, sealed)  # (one left by a crash, only ever ciphertext, unlinked)
        os.link(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    if sync_dir:
        fsync_dir(path.parent)
    return len(sealed)


def remove_segment(path: Path) -> bool:
    """Remove a segment (and a temporary one left beside it), durably; True if one was."""
    removed = False
    for name in (path, temp_path(path)):
        try:
            os.unlink(name)
            removed = True
        except FileNotFoundError:
            pass
    if removed:
        fsync_dir(path.parent)
    return removed


def read_segment(path: Path) -> bytes:
    """The plaintext of a segment, in memory (never written anywhere). Raises OSError,
    MissingIdentity, CryptError."""
    with open(path, "rb", buffering=0) as fh:
        sealed = fh.read()
    data = keys.decrypt(sealed, path)
    if path.name.endswith(GZ_AGE):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise keys.CryptError(f"{path}: its gzip is damaged ({exc})") from None
    return data


def reencrypt(
    path: Path,
    recipients: Sequence[str],
    before_rename: Callable[[Path, os.stat_result], None] = lambda path, new: None,
) -> None:
    """Replace the segment ``path`` by the same plaintext sealed to ``recipients``,
    atomically (rename over it after an fsync): at every instant ``path`` is a whole
    age file, the old one or the new one, never plaintext. ``before_rename`` is told
    the new file's stat once it is durable, before it takes ``path``'s place."""
    with open(path, "rb", buffering=0) as fh:
        sealed = fh.read()
    data = keys.decrypt(sealed, path)  # (still gzipped for .gz.age: kept as it is)
    resealed = keys.encrypt(data, recipients)
    tmp = temp_path(path)
    write_synced(tmp, resealed)
    before_rename(path, os.stat(tmp))
    os.replace(tmp, path)
    fsync_dir(path.parent)
