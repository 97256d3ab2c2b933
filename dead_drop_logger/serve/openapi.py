"""``/v1/openapi.json``: the API described for other tools (OpenAPI 3.1), as data.

Why it is written out and not generated: the answers are the logged lines' own bytes,
whose keys are the server's columns (docs/encoding.md), so there is no model class to
generate it from; the test of the API checks that every route the app serves is
described here and every parameter here is one the query reader knows.
"""

from __future__ import annotations

from typing import Any

from .query import FILTER_KEYS, PAGE_KEYS

_TEXT = {"type": "string"}
_MANY = {"type": "array", "items": _TEXT}
_FILTERS: dict[str, tuple[dict[str, Any], str]] = {
    "since": (_TEXT, "At or after WHEN: 2026-02-20, 2026-02-20T10:30, 90s, 15m, 2h, 3d, 1w"),
    "until": (_TEXT, "Before WHEN (same forms)"),
    "from": (_MANY, "Sent by AGENT (repeatable)"),
    "to": (_MANY, "Sent to AGENT (repeatable)"),
    "agent": (_MANY, "Sent by or to AGENT (repeatable)"),
    "task": (_TEXT, "With this exact task_id"),
    "contains": (_MANY, "Content holds TEXT (repeatable: all of them)"),
    "regex": (_TEXT, "Content matches this Python regular expression"),
    "ignore_case": ({"type": "boolean"}, "contains and regex ignore case"),
    "no_cc": ({"type": "boolean"}, "Leave out the CC copies made for the lead"),
    "room": (_MANY, "Only this room (repeatable); default: every room"),
    "q": (_TEXT, "The search command line's options, as the page's filter box takes them"),
}
_PAGE: dict[str, tuple[dict[str, Any], str]] = {
    "limit": ({"type": "integer", "minimum": 1}, "Page size (JSON: 1-10000, default 100)"),
    "order": ({"enum": ["newest", "oldest"]}, "JSON default newest; NDJSON default oldest"),
    "cursor": (_TEXT, "ROOM:ID of the last message of the previous page (from next)"),
    "format": ({"enum": ["json", "ndjson"]}, "As the Accept header: application/x-ndjson"),
}
assert set(_FILTERS) == FILTER_KEYS and set(_PAGE) == PAGE_KEYS


def _params(table: dict[str, tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "query", "schema": schema, "description": text}
        for name, (schema, text) in table.items()
    ]


def _path(name: str, text: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema or _TEXT,
        "description": text,
    }


_ERROR = {
    "description": 'An error: {"error": {"status": N, "message": TEXT}}',
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_LINES = "The logged lines, byte for byte (docs/encoding.md): one JSON object a line"


def _get(summary: str, params: list[dict[str, Any]], content: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": summary, "content": content},
                "400": _ERROR,
                "401": _ERROR,
                "404": _ERROR,
            },
        }
    }


def document() -> dict[str, Any]:
    json_any: dict[str, Any] = {"application/json": {"schema": {}}}
    ndjson = {"application/x-ndjson": {"schema": {"description": _LINES}}}
    window = _params({k: _FILTERS[k] for k in ("since", "until", "room")})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dead-drop-logger serve",
            "version": "1",
            "description": "The logged messages of a Dead Drop server, live. Every answer "
            "holding messages is made of the logged lines' own bytes (a content sealed "
            "per agent: opened with serve's identity, else search's placeholder, "
            "content_enc kept; docs/encryption.md); a bearer token is "
            "required when serve is bound to anything but 127.0.0.1 (docs/serve.md).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {"status": {"type": "integer"}, "message": _TEXT},
                        }
                    },
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/messages": _get(
                "The messages that match, as search --json: a JSON page "
                '{"order","messages":[...],"next"} or NDJSON (no cap, streamed). Past '
                "serve --request-timeout: a 503 Error, or, once a stream has started, "
                "the Error object as its last line",
                _params(_FILTERS) + _params(_PAGE),
                {**json_any, **ndjson},
            ),
            "/v1/messages/{id}": _get(
                "One message, wherever it is (409 when the id is in several rooms)",
                [_path("id", "The message id", {"type": "integer"})],
                json_any,
            ),
            "/v1/messages/{room}/{id}": _get(
                "One message of a room",
                [_path("room", "The room"), _path("id", "The message id", {"type": "integer"})],
                json_any,
            ),
            "/v1/threads/{id}": _get(
                'The thread of a message, as thread --json: {"id","posts":[{"depth",'
                '"note","key","message"}]} or NDJSON',
                [
                    _path("id", "Any message of the thread", {"type": "integer"}),
                    *_params({"room": _FILTERS["room"]}),
                ],
                {**json_any, **ndjson},
            ),
            "/v1/agents": _get(
                "One object per agent, as agents --json (with the live fields from the "
                "database when serve can read it)",
                window,
                {**json_any, **ndjson},
            ),
            "/v1/tasks": _get(
                "The recorded tasks, as tasks --json",
                window
                + _params(
                    {
                        "status": (_MANY, "In this status now"),
                        "agent": (_MANY, "Assigned to AGENT"),
                        "project": (_MANY, "Of project NAME"),
                        "stale": (_TEXT, "In the same status for longer than this"),
                    }
                ),
                {**json_any, **ndjson},
            ),
            "/v1/tasks/{task}": _get(
                "One task's history, as tasks TASK-ID --json",
                [_path("task", "The task id"), *_params({"room": _FILTERS["room"]})],
                json_any,
            ),
            "/v1/stats": _get("What stats --json says", window, json_any),
            "/v1/events": _get(
                "Server-Sent Events: each new committed message (id ROOM:ID[,ROOM:ID...]; "
                "send it back as Last-Event-ID to get exactly the missed ones), "
                "'position' events, and 'team' when agents or tasks changed",
                _params(_FILTERS),
                {"text/event-stream": {"schema": _TEXT}},
            ),
            "/v1/openapi.json": _get("This document", [], json_any),
        },
    }
