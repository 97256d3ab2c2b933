"""Running ``serve``: the socket, uvicorn, the events' hub and the team, started and
stopped together.

Why the socket is bound here and not by uvicorn: a port in use (or an address this
machine does not have) must be one line and exit 2 before anything starts, not a
server's log of a failed start; and ``--port 0`` (a free port, for tests) needs the
port actually bound to be printed. uvicorn then serves that socket, with its access
log off (a URL can carry the token) and its own limits on header size, keep-alive
and concurrent connections; it stops on SIGINT and SIGTERM.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .api import Logs, report_html
from .security import Guard

if TYPE_CHECKING:
    from ..read.teamview import Frame
    from ..record.team import Team

log = logging.getLogger(__name__)

TEAM_EVERY = 1.0  # the team's rows are looked at (data_version) at most this often
MAX_CONNECTIONS = 200  # uvicorn answers 503 beyond
KEEP_ALIVE = 5  # seconds an idle keep-alive connection is kept
HEADER_LIMIT = 16 * 1024  # bytes of request line and headers (h11)
READY_WAIT = 10.0  # a request waits this long at most for the team's first read


class ServeError(Exception):
    """``serve`` cannot start (the message is fit for the user): exit 2."""


@dataclass
class Options:
    log_dir: Path
    host: str = "127.0.0.1"
    port: int = 8787
    token: str | None = None
    utc: bool = False
    cors: tuple[str, ...] = ()
    team: Team | None = None
    request_timeout: float = 30.0
    announce: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ServeError when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} on {host} is in use (another serve? choose one with --port)"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class TeamWatch:
    """The team now (the databases' agents and open tasks): read only by the hub's
    thread (a SQLite connection belongs to the thread that made it), at most every
    ``TEAM_EVERY`` seconds, into a frame the requests take as it is; a ``team`` event
    when it changed."""

    def __init__(self, team: Team) -> None:
        self.team = team
        self.last = 0.0
        self.ready = threading.Event()
        self.latest: Frame | None = None
        self.signature: object = None

    def tick(self) -> bytes | None:
        now = time.monotonic()
        if now - self.last < TEAM_EVERY and self.ready.is_set():
            return None
        self.last = now
        self.team.refresh()
        readable = any(r.problem is None for r in self.team.rows.values())
        self.latest = self.team.frame() if readable else None  # else: the logs' rows alone
        before, self.signature = self.signature, signature(self.latest)
        first = not self.ready.is_set()
        self.ready.set()
        changed = before != self.signature
        return b"event: team\ndata: {}\n\n" if changed and not first else None

    def frame(self) -> Frame | None:
        self.ready.wait(READY_WAIT)
        return self.latest

    def close(self) -> None:
        self.team.close()


def signature(frame: Frame | None) -> object:
    """What a team event is for: the frame without its ages, which move with the clock
    alone (the page ages them itself); health is in, so a flip to stale is an event."""
    if frame is None:
        return None
    agents = tuple(
        (a.room, a.agent, a.health, a.status, a.task, a.task_status, a.last_message_to,
         a.unanswered)
        for a in frame.agents
    )  # fmt: skip
    tasks = tuple((t.room, t.task, t.status, t.assigned_to, t.title) for t in frame.tasks or ())
    return agents, tasks


def _server_class(uvicorn: Any) -> Any:
    """uvicorn's server, stopping on SIGINT/SIGTERM with exit 0 (uvicorn raises the
    signal again once it has shut down, which would end the process *by* the signal)."""

    class Server(uvicorn.Server):  # type: ignore[misc]
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:  # type: ignore[has-type]
                self.force_exit = True  # a second Ctrl-C: at once
            else:
                self.should_exit = True

    return Server


def run(options: Options) -> int:
    """Serve until SIGINT or SIGTERM; 0."""
    import uvicorn

    from .app import Served, build
    from .events import Hub

    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    hub = Hub(options.log_dir)
    watch = TeamWatch(options.team) if options.team is not None else None
    served = Served(
        Logs(options.log_dir, options.utc),
        hub,
        Guard(options.token, port),
        frame=watch.frame if watch is not None else (lambda: None),
        cors=options.cors,
        report=lambda: report_html(served.logs),
        timeout=options.request_timeout,
    )
    if watch is not None:
        hub.on_tick.append(watch.tick)
        hub.on_stop.append(watch.close)
    config = uvicorn.Config(
        build(served),
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=1,
        limit_concurrency=MAX_CONNECTIONS,
        h11_max_incomplete_event_size=HEADER_LIMIT,
        http="h11",
        loop="asyncio",
        lifespan="off",
        server_header=False,
    )
    server = _server_class(uvicorn)(config)
    hub.start()
    shown = f"[{host}]" if ":" in host else host
    token_note = "" if options.token is None else " (a bearer token is required)"
    options.announce(
        f"dead-drop-logger: serving {options.log_dir} on http://{shown}:{port}/{token_note}"
    )
    try:
        server.run(sockets=[sock])
    finally:
        hub.stop()
        with contextlib.suppress(OSError):
            sock.close()
    return 0
