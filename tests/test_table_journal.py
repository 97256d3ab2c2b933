"""The record of what was seen of the tables is incremental: a batch saves only the rows
it changed (a journal line), not the whole record, and the record read back is the same
whatever point a save was stopped at (docs/tasks.md, "Exactly once")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import serverdb
import tasklines
from conftest import FakeClock

from dead_drop_logger.logdir import tablestate
from dead_drop_logger.logdir.tablestate import (
    JOURNAL_NAME,
    AgentSeen,
    TableState,
    TableStore,
    TaskSeen,
)
from dead_drop_logger.record.source import Source
from dead_drop_logger.record.tables import TableFollower


def many_tasks(db: Path, count: int) -> None:
    """``count`` tasks as ``create_task`` writes them, in one transaction (fast)."""
    conn = serverdb.connect(db)
    serverdb.register(conn, "lead", role="lead")
    serverdb.register(conn, "juno", role="builder")
    stamp = "2026-12-06T09:00:00"
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO tasks (id, project, title, description, assigned_to, created_by,"
        " status, created_at, updated_at, role_hat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (f"TASK-{n:05d}", "web", f"task {n}", "", "juno", "lead", "assigned", stamp, stamp,
             None)
            for n in range(1, count + 1)
        ],
    )  # fmt: skip
    conn.execute("COMMIT")
    conn.close()


def test_a_change_among_10000_tasks_saves_a_line_not_the_whole_record(
    server_db: Path, log_dir: Path
) -> None:
    many_tasks(server_db, 10_000)
    log_dir.mkdir(mode=0o700)
    tables = TableFollower(Source(server_db), log_dir, FakeClock("2026-12-06T10:00:00"))
    tables.begin(existed=True, importing=False)
    base = log_dir / tablestate.TABLES_NAME
    before = base.stat()
    assert before.st_size > 500_000  # every task's entry
    conn = serverdb.connect(server_db)
    for status in ("in_progress", "review"):
        serverdb.update_task(conn, "juno", "TASK-00042", status)
        assert tables.tick() == 1
    after = base.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )  # the base was not rewritten
    journal = (log_dir / JOURNAL_NAME).read_bytes()
    assert journal.count(b"\n") == 2 and len(journal) < 2000
    saved = TableStore(log_dir).load()  # a fresh reader: base + journal
    assert saved is not None and saved.tasks is not None
    assert saved.tasks["TASK-00042"].status == '"review"'
    assert saved.tasks["TASK-00041"].status == '"assigned"'
    assert len(saved.tasks) == 10_000 and saved.generation == tables.store.load().generation  # type: ignore[union-attr]
    assert [t["to"] for t in tasklines.lines(log_dir)] == ["in_progress", "review"]


def state(generation: int, tasks: dict[str, str], agents: dict[str, str]) -> TableState:
    return TableState(
        tasks={k: TaskSeen(f'"{v}"', "d" + v, "2026-12-06T10:00:00") for k, v in tasks.items()},
        agents={k: AgentSeen("{}", v, "healthy", None, None) for k, v in agents.items()},
        mark=generation * 10,
        generation=generation,
    )


def test_journal_lines_replay_and_a_torn_last_line_is_cut_before_the_next(
    tmp_path: Path,
) -> None:
    store = TableStore(tmp_path)
    store.save(state(1, {"A": "assigned", "B": "pending"}, {"juno": "idle"}))
    store.save(state(2, {"A": "in_progress", "B": "pending"}, {"juno": "busy"}))
    store.save(state(3, {"A": "in_progress"}, {}))  # B and juno gone
    assert TableStore(tmp_path).load() == state(3, {"A": "in_progress"}, {})
    journal = tmp_path / JOURNAL_NAME
    whole = journal.read_bytes()
    assert whole.count(b"\n") == 2
    with open(journal, "ab") as fh:  # a batch killed while its line was written
        fh.write(b'{"generation":4,"mark":40,"tasks":{"A":["\\"rev')
    reader = TableStore(tmp_path)
    assert reader.load() == state(3, {"A": "in_progress"}, {})  # the torn line: not committed
    reader.save(state(4, {"A": "review"}, {}))
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().count(b"\n") == 3
    assert TableStore(tmp_path).load() == state(4, {"A": "review"}, {})


def test_digested_agents_in_base_and_journal_and_a_plain_record_rewritten(
    tmp_path: Path,
) -> None:
    """Encrypted (``digest_agents``): agents' rows and status texts are digests in the
    base and the journal; a record written in plaintext before is rewritten at the next
    save; what is loaded tells a status changed from one unchanged."""
    plain = TableStore(tmp_path)
    plain.save(state(1, {"A": "assigned"}, {"juno": "idle-zq1"}))  # before encrypt_to
    assert b"idle-zq1" in (tmp_path / tablestate.TABLES_NAME).read_bytes()
    sealed = TableStore(tmp_path)
    sealed.digest_agents = True
    loaded = sealed.load()
    assert loaded is not None and loaded.agents is not None
    assert not loaded.agents["juno"].digested
    busy = state(2, {"A": "assigned"}, {"juno": "busy-zq2"})
    busy.agents["juno"] = AgentSeen('{"status":"busy-zq2"}', "busy-zq2", "healthy", None, None)
    sealed.save(busy)
    sealed.save(state(3, {"A": "in_progress"}, {"juno": "busy-zq2", "vega": "new-zq3"}))
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for text in (b"idle-zq1", b"busy-zq2", b"new-zq3"):
        assert text not in on_disk
    again = TableStore(tmp_path).load()
    assert again is not None and again.agents is not None
    juno = again.agents["juno"]
    assert juno.digested and juno.known_status is None and juno.known_row == "{}"
    assert juno.health == "healthy"
    assert not juno.status_differs("juno", "busy-zq2")
    assert juno.status_differs("juno", "idle-zq1")
    assert juno.status_differs("juno", None)
    assert not again.agents["vega"].status_differs("vega", "new-zq3")
    assert again.agents["vega"].status_differs("juno", "new-zq3")  # salted by the name


def test_a_damaged_line_before_the_last_is_an_unreadable_record(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    store.save(state(1, {"A": "assigned"}, {}))
    store.save(state(2, {"A": "in_progress"}, {}))
    store.save(state(3, {"A": "review"}, {}))
    journal = tmp_path / JOURNAL_NAME
    journal.write_bytes(b"garbage\n" + journal.read_bytes().split(b"\n", 1)[1])
    with pytest.raises(ValueError):
        TableStore(tmp_path).load()
    moved = TableStore(tmp_path).set_aside()
    assert moved.exists() and not journal.exists()


def test_the_journal_is_folded_into_the_base_once_it_outgrows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tablestate, "COMPACT_AFTER", 300)
    store = TableStore(tmp_path)
    journal = tmp_path / JOURNAL_NAME
    sizes = []
    for g in range(1, 30):
        store.save(state(g, {"A": f"s{g}", "B": "pending"}, {"juno": "idle"}))
        sizes.append(journal.stat().st_size if journal.exists() else 0)
        assert TableStore(tmp_path).load() == state(
            g, {"A": f"s{g}", "B": "pending"}, {"juno": "idle"}
        )
    assert 0 in sizes[1:] and max(sizes) < 600  # emptied whenever it outgrew the base


def test_killed_between_a_new_base_and_the_emptied_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base is written afresh, then the journal emptied: killed in between, the
    journal's lines are older than the new base and are skipped."""
    store = TableStore(tmp_path)
    for g in range(1, 5):
        store.save(state(g, {"A": f"s{g}"}, {}))
    journal = tmp_path / JOURNAL_NAME
    old_lines = journal.read_bytes()
    real = os.ftruncate

    def killed(fd: int, length: int) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(tablestate, "COMPACT_AFTER", 0)
    monkeypatch.setattr(os, "ftruncate", killed)
    with pytest.raises(SystemExit):
        store.save(state(5, {"A": "s5"}, {}))
    monkeypatch.setattr(os, "ftruncate", real)
    assert journal.read_bytes() == old_lines
    assert TableStore(tmp_path).load() == state(5, {"A": "s5"}, {})


def test_the_pending_record_is_the_last_whole_line_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pending record is appended (one fdatasync, no rename): the last whole line is
    the record, a save cut short is cut off before the next one, and past its size the
    file is replaced by the new record alone."""
    store = TableStore(tmp_path)
    path = tmp_path / tablestate.PENDING_NAME
    assert store.load_pending() is None
    store.save_pending(1, {"tasks-2026-12-06.json": (100, 7)})
    store.save_pending(2, {"tasks-2026-12-06.json": (250, 7)})
    assert store.load_pending() == (2, {"tasks-2026-12-06.json": (250, 7)})
    assert path.read_bytes().count(b"\n") == 2  # appended, not replaced
    whole = path.read_bytes()
    with open(path, "ab") as torn:  # a save killed halfway: no lines were appended
        torn.write(b'{"generation":3,"pend')
    assert store.load_pending() == (2, {"tasks-2026-12-06.json": (250, 7)})
    store.save_pending(3, {"agents-2026-12-06.json": (40, 9)})
    assert (
        path.read_bytes()
        == whole + b'{"generation":3,"pending":{"agents-2026-12-06.json":[40,9]}}\n'
    )
    assert tablestate.pending_names(tmp_path) == {"agents-2026-12-06.json"}
    monkeypatch.setattr(tablestate, "PENDING_COMPACT", len(path.read_bytes()) + 10)
    store.save_pending(4, {"tasks-2026-12-07.json": (0, 11)})
    assert path.read_bytes() == b'{"generation":4,"pending":{"tasks-2026-12-07.json":[0,11]}}\n'
    assert store.load_pending() == (4, {"tasks-2026-12-07.json": (0, 11)})
    assert os.stat(path).st_mode & 0o777 == 0o600
