"""Human-readable sizes for ``--max-bytes``: ``10MB``, ``512KB``, ``1048576``.

Units are binary (1KB = 1024 bytes), as ``ls -h`` and ``du -h`` count them.
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in ``text``; raises ValueError with a message fit for the user."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 10MB, 512KB, 1048576)")
    value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if value < 1:
        raise ValueError(f"{text!r} is too small: a size must be at least 1 byte")
    return int(value)
