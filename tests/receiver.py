"""A real HTTP receiver on loopback for the notify tests and benchmarks: it records every
request and answers as told (ok, an error code, 429 with Retry-After, 410, a stall), and
can go down (connection refused) and come back on the same port."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived
    mono: float = 0.0  # time.monotonic() then (benchmarks compare it with commits)
    status: int = 200  # what it was answered

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    retry_after: str | None = None
    stall: float = 0.0  # seconds to wait before answering
    body: bytes = b"ok"


OK = Answer()


class Receiver:
    """``answers`` are used one per request, then ``default``."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Request] = []
        self.answers: deque[Answer] = deque()
        self.default = OK
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()  # kept-alive connections, closed by down()
        self.port = port
        self.server: http.server.ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # the answer in one write (flushed after each request)
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver.sockets.add(self.connection)

            def finish(self) -> None:
                with receiver.lock:
                    receiver.sockets.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    answer = receiver.answers.popleft() if receiver.answers else receiver.default
                if answer.stall:
                    time.sleep(answer.stall)
                with receiver.lock:
                    receiver.requests.append(
                        Request(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                            time.monotonic(),
                            answer.status,
                        )
                    )
                self.send_response(answer.status)
                if answer.retry_after is not None:
                    self.send_header("Retry-After", answer.retry_after)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        # A sender killed mid-request (the kill -9 tests) breaks the pipe: not an error.
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.server is not None:
            self.down()

    def plan(self, *answers: Answer) -> None:
        with self.lock:
            self.answers.extend(answers)

    def received(self) -> list[Request]:
        """The requests answered 2xx... and the others: every request, in order."""
        with self.lock:
            return list(self.requests)

    def ids(self) -> list[str]:
        return [r.headers.get("webhook-id", "") for r in self.received()]

    def delivered(self) -> list[Request]:
        """The requests answered 2xx."""
        return [r for r in self.received() if 200 <= r.status < 300]
