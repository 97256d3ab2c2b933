"""``--compress-after DAYS``: gzip old day files into ``messages-DAY[.N].json.gz``.

Crash-safe by construction: the gzip is written under a hidden temporary name, fsynced,
linked into place (never over an existing ``.gz``), the directory fsynced, and only then
is the original unlinked. A crash therefore leaves either the original alone (plus
maybe a temp, deleted by :func:`recover`) or the complete ``.gz`` plus the original,
which :func:`recover` also resolves by removing the original once it has checked the
two hold the same bytes. No file is ever lost, and none stays doubled after the next
start. A plain file and a ``.gz`` that differ are both kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import logging
import os
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path

from ..clock import days_before
from ..files import create_private, fsync_dir
from ..logdir import layout
from ..logdir.layout import LogFile

log = logging.getLogger(__name__)

BLOCK = 1 << 20


def select(
    files: Sequence[LogFile], today: dt.date, after_days: int | None, protected: Collection[str]
) -> list[LogFile]:
    """Uncompressed files more than ``after_days`` days old (never today's or later).

    A file whose ``.gz`` already exists is left alone: :func:`recover` found the two
    different (or it would have removed the plain one), and compressing it would
    replace the ``.gz``, losing every line only the ``.gz`` holds. Both stay.
    """
    if after_days is None:
        return []
    oldest_plain = days_before(today, after_days)
    packed = {f.path.name for f in files if f.compressed}
    return [
        f
        for f in files
        if not f.sealed  # (an encrypted segment is gzipped, if at all, before it is sealed)
        and f.day < oldest_plain
        and f.day < today
        and f.path.name not in protected
        and layout.compressed_path(f.path).name not in packed
    ]


def compress(path: Path) -> Path:
    """Replace ``path`` by its gzip, durably; returns the ``.gz`` path.

    Never replaces an existing ``.gz`` (FileExistsError): it may hold lines ``path``
    does not. The temporary file is created afresh (a link planted under its name is
    removed, never written through).
    """
    target = layout.compressed_path(path)
    tmp = layout.compress_temp_path(path)
    st = path.stat()
    fd = create_private(tmp)
    try:
        with os.fdopen(fd, "wb") as raw, open(path, "rb") as src:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
                shutil.copyfileobj(src, packed, BLOCK)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # keep the day's last-write time
    try:
        os.link(tmp, target)  # unlike a rename, fails rather than replace a .gz
    finally:
        _unlink_quietly(tmp)
    fsync_dir(path.parent)
    os.unlink(path)
    fsync_dir(path.parent)
    log.info("compressed %s", target.name)
    return target


def recover(log_dir: Path) -> None:
    """Finish or undo a compression a crash interrupted."""
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return
    changed = False
    for name in names:
        if layout.is_compress_temp(name):
            _unlink_quietly(log_dir / name)
            log.warning("removed %s left by an interrupted compression", name)
            changed = True
    for entry in layout.log_files(log_dir, layout.KINDS):
        packed = layout.compressed_path(entry.path)
        if entry.compressed or not packed.exists():
            continue
        if _same_content(entry.path, packed):
            os.unlink(entry.path)
            log.warning("removed %s: its compressed copy was already complete", entry.path.name)
            changed = True
        else:
            log.warning(
                "%s and %s differ; keeping both (compare them, and delete the one you do not want)",
                entry.path.name,
                packed.name,
            )
    if changed:
        fsync_dir(log_dir)


def _same_content(plain: Path, packed: Path) -> bool:
    try:
        with open(plain, "rb") as a, gzip.open(packed, "rb") as b:
            while True:
                left, right = a.read(BLOCK), b.read(BLOCK)
                if left != right:
                    return False
                if not left:
                    return True
    except (OSError, EOFError):  # a damaged .gz is not a copy we may rely on
        return False


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
