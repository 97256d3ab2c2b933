"""The page at ``/``: one self-contained HTML document and the headers that lock it down.

Why it looks like this: the page must work with no network but this server's, so its
script and style are inlined (``page.js``, ``page.css`` beside this module, read once),
and its Content-Security-Policy allows exactly those two by their SHA-256 hashes and
connections to this server only: even a message that got into the DOM as HTML could
run nothing and send nothing anywhere. It never does get in as HTML: the script
puts every text from the logs in with ``textContent``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>dead-drop-logger</title>
<link rel="icon" href="data:,">
<style>{css}</style>
</head>
<body>
<header>
  <h1>dead-drop-logger</h1>
  <span class="status"><span id="live">connecting…</span> · <span id="count">0</span> new</span>
  <a id="report" href="/report" target="_blank" rel="noopener">full report</a>
  <a href="/v1/openapi.json">API</a>
</header>
<div id="token">
  <form id="token-form">
    <label for="token-input">This server needs its token
      (<code>dead-drop-logger serve --show-token</code>):</label>
    <input id="token-input" type="password" autocomplete="off">
    <button type="submit">Use it for this tab</button>
  </form>
</div>
<main>
  <section id="agents-section"><h2>Agents</h2><div id="agents"></div></section>
  <section id="feed-section">
    <h2>Live feed</h2>
    <form id="filter" role="search">
      <input id="q" name="q" placeholder="--from juno deploy   (search's options)"
        autocomplete="off" spellcheck="false">
      <button type="submit">Filter</button>
    </form>
    <div id="filter-error"></div>
    <ol id="feed" class="feed"></ol>
  </section>
  <section id="tasks-section" hidden><h2>Tasks</h2><div id="board"></div></section>
</main>
<div id="thread" role="dialog" aria-label="Thread">
  <div class="panel">
    <div class="bar"><h2>Thread</h2><button id="thread-close" type="button">Close</button></div>
    <div id="thread-body"></div>
  </div>
</div>
<script>{js}</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@functools.cache
def _built() -> tuple[bytes, str]:
    css, js = _asset("page.css"), _asset("page.js")
    page = TEMPLATE.replace("{css}", css).replace("{js}", js)
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hash(js)}",
            f"style-src {_hash(css)}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return page.encode("utf-8"), policy


def html() -> bytes:
    return _built()[0]


def headers() -> dict[str, str]:
    """The page's security headers."""
    return {
        "Content-Security-Policy": _built()[1],
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def report_headers() -> dict[str, str]:
    """The report's (Plotly inline, as the report file has it): still nothing fetched."""
    return {
        "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline' "
        "'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
