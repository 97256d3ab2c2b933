"""Encrypted logs handed on (docs/encryption.md, "What a reader sees"): ``ship`` and
``serve`` read sealed segments with ``--identity`` as every reader does, and hand on
exactly the lines a plaintext logger writes of the same database; without an identity
they deliver nothing of them.

Real processes throughout: the logger sealing to the suite's age key, ``ship`` to a
loopback HTTP receiver (NDJSON), ``serve`` on a loopback port read by httpx."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import serverdb
from conftest import (
    DEADLINE,
    LoggerProcess,
    age_identity,
    encrypted_args,
    logger_command,
    wait_until,
)
from serving import ServeProcess
from test_encryption import run_until_logged
from test_ship_http import Receiver

MARKER = "onward-8c1f0e"  # in every content: what must arrive decrypted


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(down=0)
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def plain_and_sealed(db: Path, tmp_path: Path) -> tuple[bytes, Path]:
    """The lines a plaintext logger writes of ``db``, and a directory sealed to the key."""
    serverdb.send_many(db, 40, prefix=f"{MARKER} history")
    plain_dir, sealed_dir = tmp_path / "plain", tmp_path / "sealed"
    run_until_logged(LoggerProcess(db, plain_dir, "--import-historical"), db, plain_dir)
    run_until_logged(
        LoggerProcess(db, sealed_dir, "--import-historical", *encrypted_args()), db, sealed_dir
    )
    assert list(sealed_dir.glob("messages-*.json.age"))
    assert not [p for p in sealed_dir.glob("messages-*.json") if not p.is_symlink()]
    lines = b"".join(
        p.read_bytes() for p in sorted(plain_dir.glob("messages-*.json")) if not p.is_symlink()
    )
    return lines, sealed_dir


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}


def received(receiver: Receiver) -> list[bytes]:
    return [line for _p, _h, body in receiver.of("/ingest") for line in body.splitlines()]


def ship(log_dir: Path, receiver: Receiver, *extra: str) -> list[str]:
    """``ship`` from ``log_dir`` to the receiver's NDJSON path."""
    to = receiver.url + "/ingest"
    return [*logger_command(), "ship", "--log-dir", str(log_dir), "--to", to, *extra]


def test_ship_delivers_the_sealed_lines_decrypted(
    server_db: Path, tmp_path: Path, receiver: Receiver
) -> None:
    lines, sealed_dir = plain_and_sealed(server_db, tmp_path)
    key, _recipient = age_identity()
    want = sorted(lines.splitlines())
    proc = subprocess.Popen(
        ship(sealed_dir, receiver, "--identity", str(key), "--batch-ms", "200"),
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: len(received(receiver)) >= len(want), what="every line shipped")
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    assert sorted(received(receiver)) == want  # each once, byte for byte as plaintext
    assert all(MARKER.encode() in line for line in want)


def test_serve_answers_from_sealed_segments_with_the_identity(
    server_db: Path, tmp_path: Path
) -> None:
    lines, sealed_dir = plain_and_sealed(server_db, tmp_path)
    key, _recipient = age_identity()
    want = [json.loads(line) for line in lines.splitlines()]
    with ServeProcess(sealed_dir, "--identity", str(key), "--db", str(server_db)) as served:
        page = httpx.get(served.url + "v1/messages", params={"limit": 1000}, timeout=DEADLINE)
        assert page.status_code == 200, page.text
        got = page.json()["messages"]
        assert sorted(m["id"] for m in got) == sorted(m["id"] for m in want)
        assert all(MARKER in m["content"] for m in got)
        one = httpx.get(served.url + f"v1/messages/{want[0]['id']}", timeout=DEADLINE)
        assert one.status_code == 200 and MARKER in one.text


def test_ship_without_an_identity_says_so_and_delivers_nothing(
    server_db: Path, tmp_path: Path, receiver: Receiver
) -> None:
    _lines, sealed_dir = plain_and_sealed(server_db, tmp_path)
    err_path = tmp_path / "ship-stderr.txt"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            ship(sealed_dir, receiver, "--batch-ms", "200"),
            env=env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_until(lambda: "no identity is set" in err_path.read_text(), what="the warning")
    finally:
        proc.terminate()
        proc.wait(timeout=DEADLINE)
    assert proc.returncode == 0
    text = err_path.read_text()
    assert "give --identity PATH" in text and "Traceback" not in text
    assert received(receiver) == []
