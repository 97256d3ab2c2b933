"""SQLite's process-wide settings, made before the first connection: its memory
statistics off.

Why: SQLite counts every allocation under one process-wide mutex (its memory
statistics, on by default). A backfill builds each page on two connections at once
(see :mod:`.prefetch`), and the two threads then fought over that mutex on each row's
allocations: of a 1,000,000-message export's 5.8 s of CPU, 1.2 s went to the lock and
its futex calls, and without it the export took 3.29 s where it took 3.74 (median of
seven). Nothing here reads those statistics, and no soft heap limit (which needs them)
is set.

The setting can only change while SQLite is not initialised, so SQLite is shut down
and initialised again, which is allowed only when nothing of it is alive. This acts
only when the calling thread is the process's one thread, no connection or statement
holds SQLite memory, and one shared SQLite library is mapped in the process (read from
``/proc/self/maps``: the one Python's ``sqlite3`` module links to, unless another module
brought its own); otherwise (a statically linked SQLite, no ``/proc``, a connection
open) it does nothing: the logs are the same either way.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

SQLITE_CONFIG_MEMSTATUS = 9  # sqlite3.h

_stopped = False  # once off, the count reads 0 with connections open: never again


def stop_memory_statistics(maps: Path = Path("/proc/self/maps")) -> bool:
    """Turn SQLite's memory statistics off for this process, when it is safe to (see
    the module's docstring); True when they are off."""
    global _stopped
    if _stopped:
        return True
    if threading.active_count() != 1:
        return False
    import sqlite3  # loads the library, if it is a shared one  # noqa: F401

    library = _loaded_library(maps)
    if library is None:
        return False
    import ctypes  # only here: nothing else in the logger needs it at import

    try:
        lib = ctypes.CDLL(str(library))  # the same handle: dlopen of a loaded path
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        lib.sqlite3_malloc.restype = ctypes.c_void_p
        lib.sqlite3_free.argtypes = [ctypes.c_void_p]
        if lib.sqlite3_memory_used() != 0:  # a connection or statement is alive
            return False
        probe = lib.sqlite3_malloc(64)  # 0 above tells "nothing alive" only if counted
        counted = lib.sqlite3_memory_used() != 0
        lib.sqlite3_free(probe)
        if not counted:  # off already (a build without them): nothing to do
            _stopped = True
            return True
        if lib.sqlite3_shutdown() != 0:
            return False
        changed = bool(lib.sqlite3_config(SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0)
        if lib.sqlite3_initialize() != 0:  # (the next connection would retry it)
            return False
    except (OSError, AttributeError):
        return False
    _stopped = changed
    return changed


def _loaded_library(maps: Path) -> Path | None:
    """The one shared SQLite library mapped into this process, or None."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for line in maps.read_text().splitlines():
            path = line.split(maxsplit=5)[5:]
            if path and Path(path[0]).name.startswith("libsqlite3.so"):
                found.add(path[0])
    return Path(found.pop()) if len(found) == 1 else None
