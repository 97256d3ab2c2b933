"""The ASGI application: routes, the guard, errors as JSON; nothing else.

Why Starlette (and uvicorn): a small, long-maintained ASGI toolkit (Encode's, under
FastAPI) with streamed responses for NDJSON and Server-Sent Events and nothing this
needs missing; it pulls in only ``anyio``; uvicorn with its pure-Python ``h11`` keeps
the extra small (no compiled event loop is needed at this scale). Both are in the
``[serve]`` extra and imported only by ``dead-drop-logger serve``.

This module stays thin: every answer is built by :mod:`.api`, :mod:`.events` and
:mod:`.page` (plain functions a unit test calls without a socket); here they are only
run in the thread pool (they read files) and their bytes sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..read.search import TimedOut
from ..read.teamview import Frame
from . import api, openapi, page
from .events import QUEUE_MAX, Hub, Subscriber, parse_id
from .query import BadRequest, message_id, message_query, only_keys
from .security import Guard

NDJSON = "application/x-ndjson"
JSON = "application/json"
MAX_QUERY = 8192  # bytes of query string (request limits; headers: uvicorn's 16 KB)
KEEPALIVE = 15.0  # an SSE comment this often: proxies keep the stream, a gone client is seen
RETRY_MS = 1000  # how soon a browser reconnects


@dataclass
class Served:
    """What the app serves from: the logs, the events' hub, the team now, the guard."""

    logs: api.Logs
    hub: Hub
    guard: Guard
    frame: Callable[[], Frame | None] = lambda: None
    cors: tuple[str, ...] = ()
    report: Callable[[], bytes] | None = None
    timeout: float = 30.0  # seconds a /v1/messages query may read (--request-timeout)
    extra: dict[str, Any] = field(default_factory=dict)


def _error(status: int, message: str) -> Response:
    return Response(api.error_line(status, message)[:-1], status, media_type=JSON)


def _wants_ndjson(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return NDJSON in accept or request.query_params.get("format") == "ndjson"


def _pairs(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def build(served: Served) -> Starlette:
    """The application over ``served``."""

    async def messages(request: Request) -> Response:
        pairs = _pairs(request)
        query = message_query(pairs, ndjson=_wants_ndjson(request))
        deadline = time.monotonic() + served.timeout
        if query.ndjson:
            pieces = api.ndjson(served.logs, query, deadline, served.timeout)
            first = await run_in_threadpool(next, pieces, b"")  # a 400 or 503 is still JSON
            return StreamingResponse(itertools.chain((first,), pieces), media_type=NDJSON)
        body = await run_in_threadpool(
            api.page, served.logs, query, pairs, "/v1/messages", deadline
        )
        return Response(body, media_type=JSON)

    async def one_message(request: Request) -> Response:
        only_keys(_pairs(request), ())
        room = request.path_params.get("room")
        ident = message_id(request.path_params["id"])
        body = await run_in_threadpool(api.one_message, served.logs, room, ident)
        return Response(body, media_type=JSON)

    async def threads(request: Request) -> Response:
        pairs = _pairs(request)
        ident = message_id(request.path_params["id"])
        posts = await run_in_threadpool(api.thread_posts, served.logs, ident, pairs)
        if _wants_ndjson(request):
            return Response(api.thread_ndjson(posts), media_type=NDJSON)
        return Response(api.thread_json(posts, ident), media_type=JSON)

    async def agents(request: Request) -> Response:
        pairs = _pairs(request)
        frame = await run_in_threadpool(served.frame)
        lines = await run_in_threadpool(api.agents_lines, served.logs, pairs, frame)
        return _lines(request, lines)

    async def tasks(request: Request) -> Response:
        pairs = _pairs(request)
        task = request.path_params.get("task")
        lines = await run_in_threadpool(api.task_lines, served.logs, pairs, task)
        if task is not None:
            return Response(lines[0], media_type=JSON)
        return _lines(request, lines)

    async def stats(request: Request) -> Response:
        body = await run_in_threadpool(api.stats_json, served.logs, _pairs(request))
        return Response(body, media_type=JSON)

    async def spec(request: Request) -> Response:
        return Response(json.dumps(openapi.document()), media_type=JSON)

    async def home(request: Request) -> Response:
        return Response(page.html(), media_type="text/html; charset=utf-8", headers=page.headers())

    async def report(request: Request) -> Response:
        if served.report is None:
            raise api.NotFound("the report needs Plotly: pip install 'dead-drop-logger[report]'")
        body = await run_in_threadpool(served.report)
        return Response(body, media_type="text/html; charset=utf-8", headers=page.report_headers())

    async def events(request: Request) -> Response:
        query = message_query(_pairs(request), paged=False)
        given = request.headers.get("last-event-id")
        last = parse_id(given) if given else None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def send(data: bytes) -> bool:
            if queue.qsize() >= QUEUE_MAX:
                return False  # too slow: it is dropped, and resumes by its Last-Event-ID
            loop.call_soon_threadsafe(queue.put_nowait, data)
            return True

        def close() -> None:
            loop.call_soon_threadsafe(queue.put_nowait, b"")  # the end of its stream

        client = Subscriber(
            query.filters, query.window, frozenset(query.rooms), send=send, close=close
        )
        first = await run_in_threadpool(served.hub.subscribe, client, last)
        return StreamingResponse(
            _stream(served.hub, client, queue, first),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    routes = [
        Route("/", home),
        Route("/report", report),
        Route("/v1/messages", messages),
        Route("/v1/messages/{id}", one_message),
        Route("/v1/messages/{room}/{id}", one_message),
        Route("/v1/threads/{id}", threads),
        Route("/v1/agents", agents),
        Route("/v1/tasks", tasks),
        Route("/v1/tasks/{task}", tasks),
        Route("/v1/stats", stats),
        Route("/v1/events", events),
        Route("/v1/openapi.json", spec),
    ]

    async def bad_request(request: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, str(exc))

    async def conflict(request: Request, exc: Exception) -> Response:
        return _error(409, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, exc.detail)

    async def too_slow(request: Request, exc: Exception) -> Response:
        return _error(503, api.too_slow(served.timeout))

    async def server_error(request: Request, exc: Exception) -> Response:
        return _error(500, f"internal error: {type(exc).__name__}")

    app = Starlette(
        routes=routes,
        exception_handlers={
            BadRequest: bad_request,
            api.NotFound: not_found,
            api.Conflict: conflict,
            HTTPException: http_error,
            TimedOut: too_slow,
            Exception: server_error,
        },
    )
    return _Guarded(app, served)  # type: ignore[return-value]


def _lines(request: Request, lines: list[str]) -> Response:
    if _wants_ndjson(request):
        return Response(api.ndjson_lines(lines), media_type=NDJSON)
    return Response(api.json_array(lines), media_type=JSON)


async def _stream(
    hub: Hub, client: Subscriber, queue: asyncio.Queue[bytes], first: bytes
) -> AsyncIterator[bytes]:
    try:
        yield b"retry: %d\n\n" % RETRY_MS + first
        while True:
            try:
                data = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if not data:
                return  # dropped as too slow: the client reconnects with its Last-Event-ID
            yield data
    finally:
        hub.unsubscribe(client)


class _Guarded:
    """The ASGI app behind the request limits, the token and CORS (outermost: a request
    refused here never reaches a route)."""

    def __init__(self, app: Starlette, served: Served) -> None:
        self.app = app
        self.served = served

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            with contextlib.suppress(Exception):
                await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self._refusal(scope, headers)
        if refused is not None:
            await refused(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is not None and origin in self.served.cors:

            async def with_cors(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"vary", b"Origin"),
                    ]
                await send(message)

            await self.app(scope, receive, with_cors)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict[str, Any], headers: dict[str, str]) -> Response | None:
        guard = self.served.guard
        if scope["method"] not in ("GET", "HEAD"):
            return _error(405, f"{scope['method']} is not allowed: this API only reads")
        if len(scope.get("query_string", b"")) > MAX_QUERY:
            return _error(414, f"the query string is longer than {MAX_QUERY} bytes")
        if headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers:
            return _error(413, "a request to this API has no body")
        if not guard.host_ok(headers.get("host")):
            return _error(
                421, "the Host header must be 127.0.0.1:PORT or localhost:PORT (no token set)"
            )
        path = scope["path"]
        if path == "/" or guard.token is None:
            return None  # the page itself holds no data: it asks for the token
        token = None
        for key, value in _query_pairs(scope):
            if key == "access_token":
                token = value
        if guard.allows(headers.get("authorization"), token):
            return None
        response = _error(401, "a bearer token is required (dead-drop-logger serve --show-token)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="dead-drop-logger"'
        return response


def _query_pairs(scope: dict[str, Any]) -> list[tuple[str, str]]:
    import urllib.parse

    raw = scope.get("query_string", b"").decode("latin-1")
    return urllib.parse.parse_qsl(raw, keep_blank_values=True)
