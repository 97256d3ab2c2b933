"""``ship`` to HTTP: Loki's push API, Elasticsearch's ``_bulk``, and plain NDJSON, each
contract-tested on a loopback receiver against recorded requests
(``tests/data/ship/``, quoted in docs/ship.md), the receiver down at first (503s: the
batch is retried, nothing skipped), and Elasticsearch answering 409 for a line it holds
(delivered, not retried forever)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import serverdb
from conftest import LoggerProcess, logger_command, wait_until

DATA = Path(__file__).parent / "data" / "ship"
DOC = Path(__file__).parent.parent / "docs" / "ship.md"
STAMP = "2026-03-01T09:30:00.123456"


class Receiver:
    """Records every POST; answers 503 to the first ``down`` of each path."""

    def __init__(self, down: int = 2) -> None:
        self.down = down
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.failed: dict[str, int] = {}
        self.es_ids: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    if receiver.failed.get(self.path, 0) < receiver.down:
                        receiver.failed[self.path] = receiver.failed.get(self.path, 0) + 1
                        self.send_response(503)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    receiver.requests.append((self.path, dict(self.headers), body))
                    answer = receiver.answer(self.path, body)
                self.send_response(204 if answer is None else 200)
                data = b"" if answer is None else answer
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, body: bytes) -> bytes | None:
        if not path.endswith("/_bulk"):
            return None
        lines = body.split(b"\n")[:-1]
        items = []
        for action in lines[::2]:
            key = json.loads(action)["create"]["_id"]
            status = 409 if key in self.es_ids else 201
            self.es_ids.add(key)
            items.append({"create": {"_id": key, "status": status}})
        errors = any(i["create"]["status"] != 201 for i in items)
        return json.dumps({"errors": errors, "items": items}).encode()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def of(self, path: str) -> list[tuple[str, dict[str, str], bytes]]:
        with self.lock:
            return [r for r in self.requests if r[0] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def logs(tmp_path: Path) -> Path:
    """Two rooms' logs, fixed timestamps, logged by the real logger."""
    log_dir = tmp_path / "logs"
    target = []
    for name in ("ops", "dev"):
        db = tmp_path / name / "messages.db"
        db.parent.mkdir()
        serverdb.create(db)
        serverdb.send_many(db, 2, prefix=name, timestamp=STAMP)
        target += ["--db", f"{name}={db}"]
    logger = LoggerProcess(
        tmp_path / "ops" / "messages.db",
        log_dir,
        "--import-historical",
        "--retention-days",
        "0",
        target=[*target, "--log-dir", str(log_dir)],
    )
    logger.start()
    try:
        wait_until(
            lambda: all(
                len(list((log_dir / r).glob("messages-2026-03-01.json"))) == 1
                and (log_dir / r / "messages-2026-03-01.json").read_bytes().count(b"\n") == 4
                for r in ("ops", "dev")
            ),
            what="logged",
        )
    finally:
        logger.stop()
    return log_dir


def test_loki_elasticsearch_and_ndjson_requests_are_the_recorded_ones(
    tmp_path: Path, receiver: Receiver
) -> None:
    log_dir = logs(tmp_path)
    paths = {"loki": "/loki/api/v1/push", "elasticsearch": "/dead-drop/_bulk", "ndjson": "/ingest"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    env["TZ"] = "UTC"  # Loki's nanoseconds come from the naive local timestamps
    env["SHIP_TOKEN"] = "s3cret-token"
    args = [a for p in paths.values() for a in ("--to", receiver.url + p)]
    proc = subprocess.Popen(
        [
            *logger_command(),
            "ship",
            "--log-dir",
            str(log_dir),
            *args,
            "--token-env",
            "SHIP_TOKEN",
            "--batch-ms",
            "300",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: all(receiver.of(p) for p in paths.values()), what="every sink")
        wait_until(
            lambda: sum(len(receiver.of(p)) for p in paths.values()) >= 4, what="the ndjson rooms"
        )
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"s3cret" not in err
    assert all(receiver.failed[p] == 2 for p in paths.values())  # retried after 503s
    for name, path in paths.items():
        requests = receiver.of(path)
        for _path, headers, _body in requests:
            assert headers["Authorization"] == "Bearer s3cret-token"
        recorded = (
            json.loads((DATA / f"{name}.json").read_text())
            if not os.environ.get("SHIP_RECORD")
            else None
        )
        got = [
            {
                "path": p,
                "content_type": h["Content-Type"],
                "idempotency_key": h["Idempotency-Key"],
                "room": h.get("Dead-Drop-Room"),
                "body": b.decode(),
            }
            for p, h, b in requests
        ]
        if os.environ.get("SHIP_RECORD"):  # re-record: SHIP_RECORD=1 pytest -k recorded
            (DATA / f"{name}.json").write_text(json.dumps(got, indent=2) + "\n")
            continue
        assert got == recorded, name
    # the documented examples are these requests
    doc = DOC.read_text()
    loki = json.loads(receiver.of(paths["loki"])[0][2])
    assert json.dumps(loki["streams"][0]["stream"]) in doc
    assert json.dumps(loki["streams"][0]["values"][0]) in doc
    es = receiver.of(paths["elasticsearch"])[0][2].decode()
    assert es.split("\n")[0] in doc and es.split("\n")[1] in doc
    # Loki's contract: streams of labels and [nanoseconds, line, metadata] values
    for stream in loki["streams"]:
        assert all(isinstance(v, str) for v in stream["stream"].values())
        for ns, line, meta in stream["values"]:
            assert ns.isdigit() and int(ns) == 1772357400123456000
            assert json.loads(line)["timestamp"] == STAMP and set(meta) == {"key"}


def test_elasticsearch_409_is_delivered(tmp_path: Path, receiver: Receiver) -> None:
    """A line the index already holds (409: a repeat after a crash) counts as delivered:
    the shipper moves on, it does not retry the batch forever."""
    log_dir = logs(tmp_path)
    receiver.down = 0
    receiver.es_ids = {"ops:1", "dev:2"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    proc = subprocess.Popen(
        [*logger_command(), "ship", "--log-dir", str(log_dir), "--to", receiver.url + "/idx/_bulk"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: len(receiver.es_ids) == 8, what="every line")

        def shipped() -> object:
            for status in (log_dir / ".ship").glob("*.status.json"):  # written after the ack
                return json.loads(status.read_bytes()).get("shipped")
            return None

        wait_until(lambda: shipped() == 8, what="all 8 counted as delivered")
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert len(receiver.of("/idx/_bulk")) == 1
