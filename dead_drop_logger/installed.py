"""How this copy of dead-drop-logger was installed, so that a hint names a command that
works for it (``pip install 'dead-drop-logger[report]'`` names a package no index has
when it came from a checkout, and a bare ``pip`` may be the system's, which Debian
refuses with ``externally-managed-environment``).

- ``install.sh`` leaves a marker in its virtual environment naming the checkout it ran
  from: running it again installs every extra (and upgrades in place).
- From a checkout (``pip install .`` or ``-e .``), pip records the directory (PEP 610,
  ``direct_url.json``): that directory with the extra, by this environment's Python.
- Otherwise it came from an index: the package's name with the extra.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "dead-drop-logger"
MARKER = "dead-drop-logger-install.sh"
"""install.sh writes this file into its virtual environment: the checkout's path."""


def _checkout() -> Path | None:
    """The directory this copy was installed from, if pip recorded one."""
    url = None
    # The first copy with a record: a build's .egg-info in the current directory (on
    # sys.path when run from the checkout) has none.
    for found in metadata.distributions(name=DISTRIBUTION):
        try:
            url = json.loads(found.read_text("direct_url.json") or "null")
        except (ValueError, OSError):
            continue
        if url is not None:
            break
    if not isinstance(url, dict) or "dir_info" not in url:
        return None
    parsed = urllib.parse.urlparse(str(url.get("url", "")))
    if parsed.scheme != "file":
        return None
    return Path(urllib.request.url2pathname(parsed.path))


def install_extra(extra: str, *, prefix: Path | None = None) -> str:
    """The command that adds ``extra`` to this installation."""
    marker = (prefix or Path(sys.prefix)) / MARKER
    try:
        checkout = marker.read_text(encoding="utf-8").strip()
    except OSError:
        checkout = ""
    if checkout:
        return f"{Path(checkout) / 'install.sh'} (run again: it installs the {extra} extra)"
    where = _checkout()
    target = f"{where}[{extra}]" if where else f"{DISTRIBUTION}[{extra}]"
    return f"{sys.executable} -m pip install '{target}'"
