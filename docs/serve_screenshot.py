"""Make docs/serve.png: the README's picture of ``serve``'s page, by the path the test takes.

    .venv/bin/python docs/serve_screenshot.py [--out docs/serve.png] [--width 1280]

A small team (agents with heartbeats and statuses, tasks, a morning's messages with
replies) is written like the server does (tests/serverdb.py), followed by the real
logger; ``dead-drop-logger serve`` serves it and headless Chromium (tests/browser.py)
opens the page, waits for a message sent after it loaded to appear, and takes the
picture. It fails if the page made a request elsewhere or logged an error.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import serverdb  # noqa: E402
from browser import Browser  # noqa: E402
from conftest import LoggerProcess, logged_ids, wait_until  # noqa: E402
from serving import ServeProcess  # noqa: E402

CHAT = [
    ("lead", "juno", "Can you take the dashboard? Agents, feed, tasks, on a phone too."),
    ("juno", "lead", "On it. Starting with the API: messages with search's filters."),
    ("vega", "juno", "The feed should keep line breaks:\n- one\n- two"),
    ("juno", "vega", "It does: pre-wrap, and every text goes in as text, never HTML."),
    ("atlas", "all", "standup in 5"),
    ("orion", "lead", "Review of TASK-002 done, two comments."),
    ("lead", "orion", "Thanks. <script>alert(1)</script> stays a string, right?"),
    ("orion", "lead", "Right: it shows as you see it."),
]


def build(db: Path) -> None:
    serverdb.create(db)
    conn = serverdb.connect(db)
    now = dt.datetime.now()
    ago = {"lead": 20, "juno": 35, "vega": 200, "atlas": 900, "orion": 50}
    for name, seconds in ago.items():
        serverdb.register(conn, name)
        serverdb.ping(conn, name, now=(now - dt.timedelta(seconds=seconds)).isoformat())
    serverdb.set_status(conn, "juno", "building the serve page")
    serverdb.set_status(conn, "orion", "reviewing TASK-002")
    serverdb.set_status(conn, "vega", "waiting for review")
    first = serverdb.create_task(conn, "lead", "Live dashboard", assign_to="juno")
    serverdb.update_task(conn, "juno", first, "in_progress")
    second = serverdb.create_task(conn, "lead", "Retention docs", assign_to="vega")
    serverdb.update_task(conn, "vega", second, "in_progress")
    serverdb.submit_for_review(conn, "vega", second, "ready")
    serverdb.create_task(conn, "lead", "Ship to Loki", assign_to="orion")
    serverdb.create_task(conn, "lead", "Notify on mentions")
    conn.close()


def chat(db: Path, start: dt.datetime) -> None:
    conn = serverdb.connect(db)
    previous: int | None = None
    for i, (sender, to, text) in enumerate(CHAT):
        when = (start + dt.timedelta(minutes=4 * i)).isoformat()
        previous = serverdb.send(
            conn, sender, to, text, timestamp=when, reply_to=previous if i % 3 else None
        )[0]
    conn.close()


def shoot(browser: Browser, out: Path) -> None:
    """The whole page, clipped to its own size (a desktop window's scrollbar would
    otherwise cut its right edge off the picture)."""
    browser.call("Emulation.setScrollbarsHidden", {"hidden": True}, session=True)
    size = browser.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
    width = browser.evaluate("document.documentElement.scrollWidth")
    clip = {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}
    data = browser.call(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
        session=True,
    )["data"]
    out.write_bytes(base64.b64decode(data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ddl-serve-shot-") as tmp:
        db, log_dir = Path(tmp, "messages.db"), Path(tmp, "logs")
        build(db)
        logger = LoggerProcess(db, log_dir, "--import-historical").start()
        logger.wait_ready()
        chat(db, dt.datetime.now() - dt.timedelta(minutes=40))
        wait_until(lambda: logged_ids(log_dir) == serverdb.all_ids(db), what="logged")
        try:
            with (
                ServeProcess(log_dir, "--db", str(db)) as serve,
                Browser(args.width, args.height) as browser,
            ):
                browser.set_width(args.width, args.height, mobile=True)  # overlay scrollbars
                log = browser.navigate(serve.url, settle=1.0)
                conn = serverdb.connect(db)
                serverdb.send(conn, "juno", "lead", "Dashboard is up: 127.0.0.1:8787")
                conn.close()
                end = time.monotonic() + 30
                while not browser.evaluate("document.querySelectorAll('#feed li.new').length"):
                    assert time.monotonic() < end, "the live message never came"
                    time.sleep(0.05)
                time.sleep(0.3)
                shoot(browser, args.out)
                origin = serve.url.rstrip("/")
                outside = [u for u in log.requests if not u.startswith((origin, "data:"))]
                if outside or log.errors or browser.log.errors:
                    print(f"page problems: {outside} {log.errors}", file=sys.stderr)
                    return 1
        finally:
            logger.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
