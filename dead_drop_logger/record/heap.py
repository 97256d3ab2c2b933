"""Keep a batch's memory for the next batch, instead of handing it back to the kernel.

Why: a batch moves its page through a few buffers of some hundred KB (SQLite's
``group_concat``, the bytes Python copies out of it, the chunks the writer joins).
glibc gives the free top of its heap back to the kernel once it passes the trim
threshold, which it adapts to the largest block freed (about twice a page, here). A
follower woken on every change runs 20-50 small batches a second under a flat-out
writer, and each one found its buffers returned and faulted them in afresh: ~240 page
faults a batch (each a zeroed page), a quarter of the logger's CPU, where the 1 s timer's
back-to-back full pages kept theirs. Fixing both thresholds (which also ends glibc's
adapting) keeps up to ``TRIM_THRESHOLD`` of free heap mapped between batches; a block
above ``MMAP_THRESHOLD`` (a huge message) still gets a mapping of its own, returned
when freed. Peak memory is unchanged: only what was already used stays mapped.

Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import contextlib
import os

# mallopt(3) parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 8 << 20
MMAP_THRESHOLD = 4 << 20


def keep_batch_memory() -> bool:
    """Set glibc's thresholds for this process; True when they were set."""
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")  # elsewhere: None, ValueError or OSError
    except (ValueError, OSError):
        return False
    if not glibc:
        return False
    import ctypes  # only here: nothing else in the daemon needs it at import

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        return bool(
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    return False
