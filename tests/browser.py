"""Headless Chromium driven over the DevTools protocol on a pipe: open a page, watch.

Why this shape: the report test must see what a person's browser does with the file:
every network request the page makes, every console message and script error, and the
DOM after the scripts ran. ``--remote-debugging-pipe`` gives the full DevTools protocol
over two file descriptors (3: commands in, 4: events out, NUL-separated JSON) with no
port, no websocket library and nothing but the standard library here.

Also a script, for the README's screenshot (the same path the test takes):
``python tests/browser.py REPORT.html --screenshot docs/report.png [--width 1280]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-pipe",
]
DEADLINE = 60.0


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLog:
    """What a page did while it loaded."""

    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    exceptions: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.exceptions + [text for level, text in self.console if level == "error"]


class Browser:
    """One headless Chromium with one page, closed by :meth:`close` (or ``with``)."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        binary = chromium()
        if binary is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        self.profile = tempfile.TemporaryDirectory(prefix="ddl-chromium-")
        # fd 3 and 4 of the browser are this end's pipes: the shell puts them in place.
        self.proc = subprocess.Popen(
            [
                "sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', "sh", binary,
                *FLAGS, f"--user-data-dir={self.profile.name}",
                f"--window-size={width},{height}", "about:blank",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._buffer = b""
        self._next_id = 0
        self.log = PageLog()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.set_width(width, height)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            self.proc.kill()
        try:
            self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.profile.cleanup()

    # -- the protocol ----------------------------------------------------------------

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: bool = False,
        timeout: float = DEADLINE,
    ) -> dict[str, Any]:
        """Send one command and wait for its result (events seen meanwhile are logged)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        message["params"] = params or {}
        if session:
            message["sessionId"] = self.session
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\0")
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        while True:
            reply = self._receive(end)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def wait_event(self, method: str, timeout: float = DEADLINE) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            event = self._receive(end)
            if event.get("method") == method:
                return event

    def _receive(self, end: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\0" not in self._buffer:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    raise RuntimeError("chromium closed its pipe")
                self._buffer += data
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        self._note(message)
        return message

    def _note(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.log.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.log.console.append((params["type"], text))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.log.exceptions.append(
                details.get("exception", {}).get("description", details.get("text", "?"))
            )
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.log.console.append((entry["level"], entry["text"]))

    # -- what a test does ----------------------------------------------------------------

    def set_width(self, width: int, height: int = 900, mobile: bool = False) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
            session=True,
        )

    def open(self, path: Path, settle: float = 1.0) -> PageLog:
        """Load a file and let its scripts run; what it did."""
        self.log = PageLog()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        self.wait_event("Page.loadEventFired")
        self.evaluate(f"new Promise(r => setTimeout(r, {int(settle * 1000)}))")
        return self.log

    def navigate(self, url: str, settle: float = 0.5) -> PageLog:
        """Load a URL (a served page) and let its scripts run; what it did."""
        self.log = PageLog()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_event("Page.loadEventFired")
        self.evaluate(f"new Promise(r => setTimeout(r, {int(settle * 1000)}))")
        return self.log

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, out: Path) -> None:
        data = self.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
            session=True,
        )["data"]  # fmt: skip
        out.write_bytes(base64.b64decode(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path, required=True)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)
    with Browser(args.width) as browser:
        log = browser.open(args.page)
        browser.screenshot(args.screenshot)
    if log.errors or [u for u in log.requests if not u.startswith(("file:", "data:"))]:
        print(f"page problems: {log}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
