"""Encryption at rest (docs/encryption.md), with the real logger, the real readers and
Debian's ``age`` command (not the library the code uses) reading what they wrote.

- the sealed segments decrypt, with ``age -d -i KEY``, to exactly the lines a plaintext
  run of the same database writes (messages, tasks, agents);
- a unique marker in the messages' content and a task's title is found nowhere on disk
  (log directory, temporary directory, home) after the logger and every reader ran,
  while the unsealed tail is held and after the stop; found in the plaintext run;
- the readers without an identity, or with the wrong one: one line, exit 2;
- ``keys new`` and ``rekey``; pyrage is not imported by a logger without encryption.
(Killed at every write/fsync/link/rename with encryption on: tests/faults/test_crash_points.py.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import serverdb
from conftest import (
    LoggerProcess,
    age_decrypt,
    age_identity,
    encrypted_args,
    logged_ids,
    logger_command,
    wait_until,
)

from dead_drop_logger.crypt import keys as crypt

MARKER = "zq-secret-marker-7f3c1e"


def fill(db: Path, prefix: str) -> None:
    """Messages (hostile ones too), a task whose title and result hold the marker, an
    agent whose status text does."""
    conn = serverdb.connect(db)
    serverdb.register(conn, "juno")
    serverdb.register(conn, "vega")
    serverdb.send(conn, "juno", "vega", f"{prefix} {MARKER} the deploy key")
    serverdb.send(conn, "vega", "juno", f'quote "{MARKER}" \\ and\u2028sep')
    serverdb.send(conn, "juno", "vega", b"blob " + MARKER.encode())
    task = serverdb.create_task(conn, "juno", f"rotate {MARKER}", assign_to="vega")
    serverdb.update_task(conn, "vega", task, "in_progress")
    serverdb.update_task(conn, "vega", task, "failed", result=f"result {MARKER}")
    serverdb.set_status(conn, "vega", f"status {MARKER}")
    conn.close()
    serverdb.send_many(db, 20, prefix=f"{prefix} {MARKER}")


def run_until_logged(proc: LoggerProcess, db: Path, log_dir: Path) -> None:
    proc.start()
    proc.wait_ready()
    want = serverdb.all_ids(db)
    wait_until(lambda: logged_ids(log_dir) == want, what="every id logged")
    assert proc.stop() == 0, proc.stderr()


def files_by_kind(log_dir: Path) -> dict[str, bytes]:
    """Each kind's lines (messages, tasks, agents), every file in name order, read as a
    user would: plain, gunzipped, or by ``age -d``."""
    found: dict[str, list[bytes]] = {}
    for path in sorted(log_dir.iterdir()):
        kind = path.name.split("-", 1)[0]
        if kind not in ("messages", "tasks", "agents") or path.is_symlink():
            continue
        raw = age_decrypt(path) if path.suffix == ".age" else path.read_bytes()
        if ".gz" in path.suffixes:
            raw = gzip.decompress(raw)
        found.setdefault(kind, []).append(raw)
    return {kind: b"".join(parts) for kind, parts in found.items()}


def test_age_decrypts_the_segments_to_exactly_the_plaintext_lines(
    server_db: Path, tmp_path: Path
) -> None:
    fill(server_db, "history")
    plain_dir, sealed_dir = tmp_path / "plain", tmp_path / "sealed"
    plain = LoggerProcess(server_db, plain_dir, "--import-historical")
    run_until_logged(plain, server_db, plain_dir)
    sealed = LoggerProcess(server_db, sealed_dir, "--import-historical", *encrypted_args())
    run_until_logged(sealed, server_db, sealed_dir)
    # and live: both follow the same new sends (sealed by the interval, then at stop)
    plain.start()
    sealed.start()
    plain.wait_ready()
    sealed.wait_ready()
    serverdb.send_many(server_db, 30, prefix="live")
    want = serverdb.all_ids(server_db)
    for directory in (plain_dir, sealed_dir):
        wait_until(lambda d=directory: logged_ids(d) == want, what=f"{directory} to catch up")
    assert plain.stop() == 0 and sealed.stop() == 0

    assert not [p for p in sealed_dir.glob("*-*.json*") if p.suffix != ".age"]
    assert all(
        p.read_bytes().startswith(b"age-encryption.org/v1\n") for p in sealed_dir.glob("*.age")
    )
    got, expected = files_by_kind(sealed_dir), files_by_kind(plain_dir)
    assert set(got) == {"messages", "tasks", "agents"}
    assert got == expected
    for path in sealed_dir.glob("*.age"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def scan(roots: list[Path], needle: bytes) -> list[Path]:
    """Every file under ``roots`` that holds ``needle`` (gzips unpacked too)."""
    found = []
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                if data[:2] == b"\x1f\x8b":
                    with contextlib.suppress(OSError, EOFError):
                        data = gzip.decompress(data)
                if needle in data:
                    found.append(path)
    return found


def readers(log_dir: Path, env: dict[str, str], identity: Path) -> None:
    """Every reading command over the encrypted logs, with the identity."""
    base = [*logger_command()]
    ident = ["--log-dir", str(log_dir), "--identity", str(identity)]
    for args in (
        ["search", MARKER, "-c"],
        ["search", "--json", MARKER],
        ["thread", "1"],
        ["agents"],
        ["stats"],
        ["report", "-o", "-"],
        ["tasks"],
    ):
        if args[0] == "report":
            pytest.importorskip("plotly")
        done = subprocess.run([*base, *args, *ident], env=env, capture_output=True)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout, args


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_no_byte_of_content_on_disk(server_db: Path, tmp_path: Path, encrypted: bool) -> None:
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    fill(server_db, "history")
    log_dir = tmp_path / "logs"
    env = {"TMPDIR": str(temp), "HOME": str(home)}
    # a long seal interval: the live sends stay in the unsealed tail while it is scanned
    args = ["--encrypt-to", age_identity()[1], "--seal-interval", "3600"] if encrypted else []
    proc = LoggerProcess(
        server_db, log_dir, "--import-historical", "--log-level", "debug", *args, env=env
    )
    proc.start()
    proc.wait_ready()
    history = serverdb.all_ids(server_db)
    wait_until(lambda: logged_ids(log_dir) == history, what="the history logged")
    conn = serverdb.connect(server_db)
    serverdb.set_status(conn, "juno", f"live status {MARKER}")  # the record's journal
    serverdb.create_task(conn, "vega", f"unsealed {MARKER}", assign_to="juno")
    conn.close()
    serverdb.send_many(server_db, 5, prefix=f"live {MARKER}")
    last = serverdb.all_ids(server_db)[-1]
    wait_until(lambda: f"up to id {last}" in proc.stderr(), what="the live sends read")
    key, _recipient = age_identity()
    roots = [log_dir, temp, home]
    if encrypted:  # read, held in memory, not logged yet: nowhere on disk
        assert logged_ids(log_dir) == history
        assert scan(roots, MARKER.encode()) == []
        readers(log_dir, {**os.environ, **env}, key)
    assert proc.stop() == 0, proc.stderr()
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)  # sealed at the stop
    if encrypted:
        readers(log_dir, {**os.environ, **env}, key)
    found = scan(roots, MARKER.encode())
    if encrypted:
        assert found == []
    else:  # the scan finds it where it is in plaintext: it would find a leak
        assert any(p.name.startswith("messages-") for p in found), found
        assert any(p.name.startswith("tasks-") for p in found), found
        assert any(p.name.startswith("agents-") for p in found), found
        # the table record holds agents' status texts in plaintext without encryption
        assert any(p.name.startswith(".dead-drop-logger.tables") for p in found), found


def test_readers_without_the_identity_say_so_in_one_line(server_db: Path, tmp_path: Path) -> None:
    fill(server_db, "history")
    log_dir = tmp_path / "logs"
    run_until_logged(
        LoggerProcess(server_db, log_dir, "--import-historical", *encrypted_args()),
        server_db,
        log_dir,
    )
    other = tmp_path / "other.txt"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    for command in (["search", "x"], ["stats"], ["tasks"], ["agents"], ["thread", "1"]):
        for extra, why in (
            ([], "no identity is set"),
            (["--identity", str(other)], "cannot decrypt"),
        ):
            done = subprocess.run(
                [*logger_command(), *command, "--log-dir", str(log_dir), *extra],
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 2, (command, extra, done.stderr)
            lines = done.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("dead-drop-logger: error:"), lines
            assert why in lines[0]
    # the key itself in DEAD_DROP_IDENTITY reads them
    key = age_identity()[0].read_text().splitlines()[-1]
    done = subprocess.run(
        [*logger_command(), "search", "-c", MARKER, "--log-dir", str(log_dir)],
        env={**env, "DEAD_DROP_IDENTITY": key},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0


def test_keys_new_and_rekey(server_db: Path, tmp_path: Path) -> None:
    fill(server_db, "history")
    log_dir = tmp_path / "logs"
    run_until_logged(
        LoggerProcess(server_db, log_dir, "--import-historical", *encrypted_args()),
        server_db,
        log_dir,
    )
    before = files_by_kind(log_dir)
    new_key = tmp_path / "keys" / "new.txt"
    made = subprocess.run(
        [*logger_command(), "keys", "new", str(new_key)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    recipient = made.stdout.strip()
    assert recipient.startswith("age1")
    assert stat.S_IMODE(new_key.stat().st_mode) == 0o600
    # the stock age-keygen agrees on the recipient of the identity written
    assert (
        subprocess.run(
            ["age-keygen", "-y", str(new_key)], capture_output=True, text=True, check=True
        ).stdout.strip()
        == recipient
    )
    again = subprocess.run(
        [*logger_command(), "keys", "new", str(new_key)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "not overwriting" in again.stderr

    old_key = age_identity()[0]
    done = subprocess.run(
        [*logger_command(), "rekey", "--log-dir", str(log_dir), "--to", recipient,
         "--identity", str(old_key)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    segments = sorted(log_dir.glob("*.age"))
    assert segments and len(done.stdout.splitlines()) == len(segments)
    for path in segments:  # the old key reads none of them, the new one all
        failed = subprocess.run(["age", "-d", "-i", str(old_key), str(path)], capture_output=True)
        assert failed.returncode != 0
    assert not list(log_dir.glob(".*.tmp"))
    after = {}
    for path in sorted(log_dir.glob("*.age")):
        kind = path.name.split("-", 1)[0]
        after[kind] = after.get(kind, b"") + age_decrypt(path, new_key)
    assert after == before


def test_a_logger_without_encryption_never_imports_pyrage(server_db: Path, tmp_path: Path) -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['dead-drop-logger', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('dead_drop_logger', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'pyrage' not in sys.modules, 'pyrage imported'\n"
        "print('ok')\n"
    )
    for args in (["run", "--help"], ["search", "--help"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.endswith("ok\n"), done.stderr
    # a real run (stopped by SIGTERM after its first batches) reports what it loaded
    log_dir = tmp_path / "logs"
    serverdb.send_many(server_db, 3)
    probe = (
        "import atexit, sys, runpy\n"
        f"atexit.register(lambda: open({str(tmp_path / 'mods')!r}, 'w').write("
        "'pyrage' if 'pyrage' in sys.modules else 'none'))\n"
        "sys.argv = ['dead-drop-logger', *sys.argv[1:]]\n"
        "runpy.run_module('dead_drop_logger', run_name='__main__')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", probe, "run", "--db", str(server_db), "--log-dir", str(log_dir),
         "--import-historical", "--poll-interval", "0.05"],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_until(lambda: len(logged_ids(log_dir)) == len(serverdb.all_ids(server_db)), what="logged")
    proc.terminate()
    proc.wait(timeout=60)
    assert (tmp_path / "mods").read_text() == "none"


def test_is_encrypted_says_what_the_index_must_not_store(server_db: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    assert not crypt.is_encrypted(log_dir)
    proc = LoggerProcess(server_db, log_dir, *encrypted_args())
    proc.start()
    proc.wait_ready()
    assert crypt.is_encrypted(log_dir)  # before any segment: the logger marked it
    assert proc.stop() == 0
    plain = tmp_path / "plain"
    run_until_logged(LoggerProcess(server_db, plain), server_db, plain)
    assert not crypt.is_encrypted(plain)


def test_a_segment_is_sealed_at_its_size(server_db: Path, tmp_path: Path) -> None:
    """1 MiB of history: more than one segment, each at most about 1 MiB of lines."""
    conn = serverdb.connect(server_db)
    day = dt.datetime(2026, 3, 1, 12, 0).isoformat()
    for i in range(1500):
        serverdb.send(conn, "juno", "vega", f"{i} " + "x" * 1000, timestamp=day, leads=())
    conn.close()
    log_dir = tmp_path / "logs"
    run_until_logged(
        LoggerProcess(server_db, log_dir, "--import-historical", "--retention-days", "0",
                      *encrypted_args()),
        server_db,
        log_dir,
    )  # fmt: skip
    segments = sorted(log_dir.glob("messages-2026-03-01.*.json.age"))
    sizes = [len(age_decrypt(p)) for p in segments]
    assert len(segments) >= 2, sizes
    assert max(sizes) <= (1 << 20) + 2000, sizes
    assert [p.name for p in segments] == sorted(p.name for p in segments)


def test_export_and_the_plain_writer_in_an_encrypted_directory(
    server_db: Path, tmp_path: Path
) -> None:
    """``export --encrypt-to`` seals what it writes; a writer without recipients never
    writes plaintext into a directory a logger writes encrypted (one line, not a file)."""
    log_dir = tmp_path / "logs"
    proc = LoggerProcess(server_db, log_dir, *encrypted_args())
    serverdb.send_many(server_db, 10, prefix=f"old {MARKER}")
    proc.start()
    proc.wait_ready()
    assert proc.stop() == 0  # a first start: the history is not logged
    plain = subprocess.run(
        [*logger_command(), "export", "--db", str(server_db), "--log-dir", str(log_dir)],
        capture_output=True,
        text=True,
    )
    assert plain.returncode != 0
    assert "is written encrypted" in plain.stderr
    assert scan([log_dir], MARKER.encode()) == []
    sealed = subprocess.run(
        [*logger_command(), "export", "--db", str(server_db), "--log-dir", str(log_dir),
         "--encrypt-to", age_identity()[1]],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert sealed.returncode == 0, sealed.stderr
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)
    assert scan([log_dir], MARKER.encode()) == []


def test_a_lost_state_is_rebuilt_from_sealed_files_only_with_the_identity(
    server_db: Path, tmp_path: Path
) -> None:
    fill(server_db, "history")
    log_dir = tmp_path / "logs"
    key, recipient = age_identity()
    writing = ["--import-historical", "--encrypt-to", recipient, "--seal-interval", "0.2"]
    run_until_logged(LoggerProcess(server_db, log_dir, *writing), server_db, log_dir)
    (log_dir / ".dead-drop-logger.state").unlink()
    blind = LoggerProcess(server_db, log_dir, *writing)
    blind.start()
    wait_until(lambda: "they are encrypted" in blind.stderr(), what="the logger to say why")
    assert blind.stop() == 0
    assert "no identity is set" in blind.stderr()
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)  # nothing written meanwhile
    serverdb.send_many(server_db, 3, prefix="after")
    seeing = LoggerProcess(server_db, log_dir, *writing, "--identity", str(key))
    run_until_logged(seeing, server_db, log_dir)
    assert "rebuilt from" in seeing.stderr()


def test_newest_first_from_the_end_reads_sealed_segments(server_db: Path, tmp_path: Path) -> None:
    """serve's newest page (``from_the_end``) over encrypted days: the lines, decrypted,
    never the ciphertext read backwards."""
    from dead_drop_logger.read.logread import Reader
    from dead_drop_logger.read.search import Filters, Search

    fill(server_db, "history")
    log_dir = tmp_path / "logs"
    run_until_logged(
        LoggerProcess(server_db, log_dir, "--import-historical", *encrypted_args()),
        server_db,
        log_dir,
    )
    crypt.use_identity(age_identity()[0])
    try:
        for limit in (None, 1, 5):
            ends = Search(Reader.of(log_dir), Filters()).from_the_end(limit)
            newest = Search(Reader.of(log_dir), Filters()).newest_first(limit)
            assert [e.line.raw for e in ends] == [e.line.raw for e in newest], limit
        first = next(iter(Search(Reader.of(log_dir), Filters()).from_the_end(1)))
        assert first.message["id"] == serverdb.all_ids(server_db)[-1]
    finally:
        crypt.use_identity(None)


def test_a_feed_over_sealed_segments_starts_at_the_end_and_reads_on(
    server_db: Path, tmp_path: Path
) -> None:
    """The consumers' feed (serve's events, notify, ship) over encrypted days: a start
    at the end skips the sealed segments there are (by name, never their ciphertext as
    lines), and what is sealed later is read decrypted, once."""
    from dead_drop_logger.read.feed import Feed, at_end

    fill(server_db, "before")
    log_dir = tmp_path / "logs"
    proc = LoggerProcess(server_db, log_dir, "--import-historical", *encrypted_args())
    run_until_logged(proc, server_db, log_dir)
    crypt.use_identity(age_identity()[0])
    try:
        position = at_end(log_dir)
        before = serverdb.all_ids(server_db)
        after = serverdb.send_many(server_db, 5, prefix="after")
        run_until_logged(proc, server_db, log_dir)  # (a stop seals the tail)
        feed = Feed(log_dir, position)
        got = list(feed.poll())
        assert [line.id for line in got] == after
        assert all(line.raw.startswith(b'{"id":') for line in got)
        assert list(feed.poll()) == []
        assert sorted(line.id or 0 for line in Feed(log_dir).poll()) == sorted(before + after)
    finally:
        crypt.use_identity(None)


def agent_events(log_dir: Path) -> list[dict[str, object]]:
    raw = files_by_kind(log_dir).get("agents", b"")
    return [json.loads(line) for line in raw.splitlines()]


def test_the_table_record_keeps_agents_status_as_digests_and_tells_a_change_once(
    server_db: Path, tmp_path: Path
) -> None:
    """Encrypted, ``.dead-drop-logger.tables`` keeps agents' rows and status texts only
    as digests; across a restart an unchanged status is no event, one changed while the
    logger was down is one (its ``from`` unknown: null), one changed while it runs is one
    with its ``from``; and no status text is on disk in plaintext."""
    fill(server_db, "history")
    log_dir = tmp_path / "logs"
    _key, recipient = age_identity()
    writing = ["--import-historical", "--encrypt-to", recipient, "--seal-interval", "0.2"]
    run_until_logged(LoggerProcess(server_db, log_dir, *writing), server_db, log_dir)
    record = (log_dir / ".dead-drop-logger.tables").read_bytes()
    assert b'"vega":["b2:' in record and MARKER.encode() not in record
    before = agent_events(log_dir)
    assert [e["status"] for e in before if e["agent"] == "vega"][-1] == f"status {MARKER}"

    conn = serverdb.connect(server_db)
    serverdb.set_status(conn, "vega", "reviewing-q7x1")  # while the logger is down
    again = LoggerProcess(server_db, log_dir, *writing)
    again.start()
    again.wait_ready()
    wait_until(
        lambda: any(e.get("status") == "reviewing-q7x1" for e in agent_events(log_dir)),
        what="vega's status changed meanwhile logged",
    )
    serverdb.set_status(conn, "vega", "testing-q7x2")  # while it runs
    conn.close()
    wait_until(
        lambda: any(e.get("status") == "testing-q7x2" for e in agent_events(log_dir)),
        what="vega's new status logged",
    )
    assert again.stop() == 0, again.stderr()
    new = agent_events(log_dir)[len(before) :]
    assert [(e["agent"], e["from"], e["status"]) for e in new if e["event"] == "status"] == [
        ("vega", None, "reviewing-q7x1"),
        ("vega", "reviewing-q7x1", "testing-q7x2"),
    ]
    for text in (MARKER, "reviewing-q7x1", "testing-q7x2"):
        assert scan([log_dir], text.encode()) == []
