"""The page at ``/`` in headless Chromium (tests/browser.py), served by a real ``serve``
over the logs of a real logger following a server-like database.

It must show the agents and the feed, show a message committed to the database
without a reload, never run a message's ``<script>`` or ``<img onerror>``, make no
request to anything but this server, log no console error, and fit 390 px."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serverdb
from browser import Browser, chromium
from conftest import DEADLINE, LoggerProcess, logged_ids, wait_until
from serving import ServeProcess

pytestmark = [
    pytest.mark.skipif(
        chromium() is None, reason="chromium is not installed (.ci/run installs it)"
    ),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

HOSTILE = [
    "<script>window.__pwned = 'script'</script> done",
    '<img src="x" onerror="window.__pwned = \'img\'"> look',
    "two\nlines </li><li>fake",
]
AGENTS = ("juno", "vega", "atlas")


def wait_in_page(browser: Browser, expression: str, what: str) -> object:
    """Until ``expression`` is truthy in the page (polled; the page is never reloaded)."""
    end = time.monotonic() + DEADLINE
    while True:
        value = browser.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def team(server_db: Path, log_dir: Path) -> Iterator[tuple[Path, Path, LoggerProcess]]:
    conn = serverdb.connect(server_db)
    for name in (*AGENTS, "lead"):
        serverdb.register(conn, name)
        serverdb.ping(conn, name)
    serverdb.set_status(conn, "juno", "working on <b>the</b> page")
    serverdb.create_task(conn, "lead", "Build the dashboard", assign_to="juno")
    conn.close()
    logger = LoggerProcess(server_db, log_dir, "--import-historical").start()
    logger.wait_ready()
    conn = serverdb.connect(server_db)
    serverdb.send(conn, "vega", "juno", "plain hello")
    for text in HOSTILE:
        serverdb.send(conn, "atlas", "juno", text)
    conn.close()
    wait_until(lambda: logged_ids(log_dir) == serverdb.all_ids(server_db), what="logged")
    yield server_db, log_dir, logger
    assert logger.stop() == 0


def test_the_page_live_safe_local_and_narrow(team: tuple[Path, Path, LoggerProcess]) -> None:
    db, log_dir, _logger = team
    with ServeProcess(log_dir, "--db", str(db)) as serve, Browser(1280, 900) as browser:
        origin = serve.url.rstrip("/")
        log = browser.navigate(serve.url)
        wait_in_page(browser, "document.body.dataset.ready === '1'", "the page to load")

        # the agents, with their health from the heartbeat and the status as text
        cards = browser.evaluate(
            "[...document.querySelectorAll('#agents .card')].map(c => c.textContent)"
        )
        for name in (*AGENTS, "lead"):
            assert any(text.startswith(name) for text in cards), cards
        assert any("healthy" in text for text in cards), cards
        assert any("working on <b>the</b> page" in text for text in cards), cards
        # the feed, hostile contents shown as they are, as text
        contents = browser.evaluate(
            "[...document.querySelectorAll('#feed .content')].map(c => c.textContent)"
        )
        for text in HOSTILE:
            assert text in contents
        assert browser.evaluate("document.querySelectorAll('#feed img, #feed script').length") == 0
        # the task board
        wait_in_page(browser, "document.querySelectorAll('#board .task').length > 0", "tasks")

        # a message committed to the database appears without a reload
        conn = serverdb.connect(db)
        new_ids = serverdb.send(conn, "juno", "vega", "<script>window.__pwned='live'</script>")
        new_id = new_ids[0]
        conn.close()
        wait_in_page(
            browser, f"!!document.querySelector('#feed li[data-key=\":{new_id}\"]')", "the live one"
        )
        first = browser.evaluate("document.querySelector('#feed li').dataset.key")
        assert first == f":{new_ids[-1]}"  # newest at the top (the lead's CC copy)
        assert browser.evaluate("window.__pwned === undefined")
        assert browser.evaluate("document.querySelectorAll('#feed img, #feed script').length") == 0

        # a thread: click a message
        browser.evaluate(f"document.querySelector('#feed li[data-key=\":{new_id}\"]').click()")
        wait_in_page(browser, "document.querySelectorAll('#thread.open details').length", "thread")

        # the filter box: the search syntax, served by the same filters
        browser.evaluate(
            "document.getElementById('q').value = '--from vega';"
            "document.getElementById('filter').requestSubmit()"
        )
        wait_in_page(
            browser,
            "[...document.querySelectorAll('#feed li')].length > 0 && [...document."
            "querySelectorAll('#feed .who')].every(w => w.textContent.startsWith('vega'))",
            "the filtered feed",
        )

        # dark mode: the page follows the system's colours
        light = browser.evaluate("getComputedStyle(document.body).backgroundColor")
        browser.call(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
            session=True,
        )
        dark = browser.evaluate("getComputedStyle(document.body).backgroundColor")
        assert light != dark and dark == "rgb(13, 17, 23)"

        # 390 px: nothing wider than the screen
        browser.set_width(390, 844, mobile=True)
        browser.navigate(serve.url)
        wait_in_page(browser, "document.body.dataset.ready === '1'", "the page at 390 px")
        widest = browser.evaluate(
            "Math.max(document.documentElement.scrollWidth, ...[...document.querySelectorAll"
            "('body *')].filter(e => e.getClientRects().length)"
            ".map(e => Math.ceil(e.getBoundingClientRect().right)))"
        )
        assert widest <= 390

        assert browser.evaluate("window.__pwned === undefined")
        everything = [*log.requests, *browser.log.requests]
        assert everything, "no request seen"
        outside = [u for u in everything if not u.startswith((origin + "/", "data:"))]
        assert outside == []
        assert log.errors == [] and browser.log.errors == []


def test_the_page_asks_for_the_token_off_127_0_0_1(
    team: tuple[Path, Path, LoggerProcess], tmp_path: Path
) -> None:
    db, log_dir, _logger = team
    token_file = tmp_path / "token"
    args = ("--db", str(db), "--host", "127.0.0.2", "--token-file", str(token_file))
    with ServeProcess(log_dir, *args) as serve, Browser(1280, 900) as browser:
        browser.navigate(serve.url)
        wait_in_page(
            browser, "document.getElementById('token').classList.contains('open')", "the ask"
        )
        token = token_file.read_text().strip()
        browser.evaluate(
            f"document.getElementById('token-input').value = {json.dumps(token)};"
            "document.getElementById('token-form').requestSubmit()"
        )
        wait_in_page(browser, "document.body.dataset.ready === '1'", "the page with the token")
        wait_in_page(browser, "document.querySelectorAll('#feed li').length > 0", "the feed")
        assert browser.evaluate("sessionStorage.getItem('ddl-token')") == token
        conn = serverdb.connect(db)
        new_id = serverdb.send(conn, "juno", "vega", "over the token")[0]
        conn.close()
        wait_in_page(
            browser, f"!!document.querySelector('#feed li[data-key=\":{new_id}\"]')", "live"
        )
