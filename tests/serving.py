"""``dead-drop-logger serve`` as a real process on a loopback port, and an SSE reader.

The tests start it with ``--port 0`` (a free port, which it prints) and stop it with
SIGTERM, checking it exits 0; clients are real HTTP clients (httpx) over the socket.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import DEADLINE, logger_command, wait_until

_SERVING = re.compile(r"serving .* on (http://\S+/)")


class ServeProcess:
    """One ``serve`` process; ``url`` once it listens."""

    def __init__(self, log_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.args = list(args)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
        self.env = {**inherited, **(env or {})}
        self.stderr_path = log_dir.parent / f"serve-stderr-{id(self)}.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> ServeProcess:
        cmd = [*logger_command(), "serve", "--log-dir", str(self.log_dir), "--port", "0"]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*cmd, *self.args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self.env,
            )
        found = wait_until(
            lambda: _SERVING.search(self.stderr()) or self.proc.poll() is not None,  # type: ignore[union-attr]
            what="serve to listen",
        )
        assert isinstance(found, re.Match), self.stderr()
        self.url = found.group(1)
        return self

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=DEADLINE)
        return code

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            code = self.stop()
            assert code == 0, self.stderr()


@dataclass
class Event:
    id: str | None
    type: str
    data: str


def sse_events(response: httpx.Response) -> Iterator[Event]:
    """The events of an open ``text/event-stream`` response, as a browser parses them."""
    ident: str | None = None
    kind, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(ident, kind, "\n".join(data))
            kind, data = "message", []
            continue
        if line.startswith(":"):
            yield Event(None, "comment", line)
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            ident = value
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)


def take(events: Iterator[Event], count: int, kinds: Sequence[str] = ("message",)) -> list[Event]:
    """The next ``count`` events of ``kinds`` (others skipped); fails past the deadline
    (the stream's keep-alive comments, every 15 s, let it look at the time)."""
    found: list[Event] = []
    end = time.monotonic() + DEADLINE
    for event in events:
        assert time.monotonic() < end, f"only {len(found)} of {count} events came: {found}"
        if event.type in kinds:
            found.append(event)
            if len(found) == count:
                break
    return found
