"""The index beside the logs: every answer through it is the scan's, byte for byte.

Logs written by the real export (size parts, two rooms, non-ASCII, case-folding traps),
filters cut at random from their contents (hypothesis), every output form compared with
the scan (``use_index=False``); then the files' life (a file replaced under the index,
compression, prune, a replaced log directory, lines not yet indexed), and an index that
is missing, damaged, half written or in a read-only directory.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import random
import re
import shutil
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import UNPRIVILEGED, run_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dead_drop_logger.index.store import INDEX_NAME
from dead_drop_logger.read import indexquery
from dead_drop_logger.read.indexed import build
from dead_drop_logger.read.indexquery import DENSE_BYTES
from dead_drop_logger.read.logread import EVERYTHING, LogDir, Reader, Window, parse_line
from dead_drop_logger.read.reading import make_filters, make_reader
from dead_drop_logger.read.search import Filters, Search, TimedOut

WORDS = [
    "deploy", "merge", "Deploy", "redeployed", "MERGE", "café", "Straße", "ﬁle", "file",
    "\u212aelvin", "kelvin", "naïve", "日本語", "a\"quote\"", "tab\there", "line\nbreak",
    "🚀", "review", "PR#42", "x", "staging",
]  # fmt: skip
AGENTS = ["juno", "vega", "orion", "jünö", "lead"]
TASKS = [None, "T-1", "T-2", "tâche"]


def fill(db: Path, seed: int, sends: int = 150) -> None:
    rng = random.Random(seed)
    serverdb.create(db)
    conn = serverdb.connect(db)
    start = dt.datetime(2026, 3, 1, 8, 0)
    ids: list[int] = []
    for i in range(sends):
        sender = rng.choice(AGENTS)
        to = rng.choice([a for a in AGENTS if a != sender] + ["all"])
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
        stamp = (start + dt.timedelta(minutes=37 * i)).isoformat()
        reply = rng.choice(ids) if ids and rng.random() < 0.4 else None
        ids += serverdb.send(
            conn, sender, to, text, timestamp=stamp, task_id=rng.choice(TASKS), reply_to=reply
        )
    conn.close()


def export(db_args: list[str], log_dir: Path, env: dict[str, str], *extra: str) -> None:
    done = run_command(
        "export", *db_args, "--log-dir", str(log_dir), "--retention-days", "0", *extra, env=env
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log directory (size parts) with two rooms, exported once; tests copy it."""
    root = tmp_path_factory.mktemp("indexed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    env["HOME"] = str(root)
    main, ops, dev = root / "main.db", root / "ops.db", root / "dev.db"
    fill(main, 1)
    fill(ops, 2, 80)
    fill(dev, 3, 80)
    export(["--db", str(main)], root / "logs", env, "--max-bytes", "20KB")
    export(["--db", f"ops={ops}", "--db", f"dev={dev}"], root / "logs", env)
    return root / "logs"


@pytest.fixture
def copy(logs: Path, tmp_path: Path) -> Path:
    target = tmp_path / "logs"
    shutil.copytree(logs, target, symlinks=True)
    for where in [target, target / "ops", target / "dev"]:
        (where / INDEX_NAME).unlink(missing_ok=True)
        build(where)
    return target


def search(log_dir: Path, filters: Filters, window: Window, rooms: Any, index: bool) -> Search:
    return Search(make_reader(log_dir, window, False, rooms), filters, use_index=index)


def answers(
    log_dir: Path, filters: Filters, window: Window = EVERYTHING, rooms: Any = ()
) -> tuple[list[Any], bool]:
    """Every output form through the index and by the scan, asserted equal; returns
    the answers and whether the index covered any file."""
    found = []
    used = False
    # The index path twice: its planner forced to read every candidate (DENSE_BYTES 0),
    # then to scan a file as soon as it has one (the fallback for common words).
    try:
        for index, dense_bytes in ((True, 0), (True, 1 << 62), (False, 0)):
            indexquery.DENSE_BYTES = dense_bytes
            s = search(log_dir, filters, window, rooms, index)
            forward = [e.line.raw for e in s.run()]
            texts = [repr(sorted(e.message.items())) for e in search(
                log_dir, filters, window, rooms, index).run()]  # fmt: skip
            count = search(log_dir, filters, window, rooms, index).count()
            newest = [e.line.raw for e in search(log_dir, filters, window, rooms, index)
                      .newest_first(None)]  # fmt: skip
            last3 = [e.line.raw for e in search(log_dir, filters, window, rooms, index)
                     .newest_first(3)]  # fmt: skip
            if index:
                used = bool(s.covered())
            found.append((forward, texts, count, newest, last3))
    finally:
        indexquery.DENSE_BYTES = DENSE_BYTES
    assert found[0] == found[2]
    assert found[1] == found[2]
    forward, _texts, count, newest, last3 = found[0]
    assert count == len(forward)
    assert sorted(newest) == sorted(forward)
    return list(found[0]), used


def messages(log_dir: Path) -> list[dict[str, Any]]:
    reader = make_reader(log_dir, Window(), False, ())
    return [e.message for e in reader.messages()]


def cut(rng: random.Random, text: str) -> str:
    start = rng.randrange(len(text) + 1)
    return text[start : start + rng.randint(0, 12)]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_filters_cut_from_the_contents_answer_as_the_scan(copy: Path, data: Any) -> None:
    every = messages(copy)
    rng = random.Random(data.draw(st.integers(0, 10**9)))
    m = rng.choice(every)
    pick = data.draw(st.sets(st.sampled_from(
        ["from", "to", "agent", "task", "contains", "regex", "no_cc", "since", "until", "icase"]
    ), max_size=4))  # fmt: skip
    needle = cut(rng, m["content"])
    if "icase" in pick:
        needle = "".join(c.upper() if rng.random() < 0.5 else c for c in needle)
    filters = make_filters(
        senders=[m["from_agent"]] if "from" in pick else [],
        recipients=[m["to_agent"], rng.choice(AGENTS)] if "to" in pick else [],
        agents=[rng.choice(AGENTS)] if "agent" in pick else [],
        task=m["task_id"] if "task" in pick and m["task_id"] else None,
        contains=[needle] if "contains" in pick or "icase" in pick else [],
        ignore_case="icase" in pick,
        regex=re.escape(cut(rng, m["content"])) if "regex" in pick else None,
        no_cc="no_cc" in pick,
    )
    when = dt.datetime.fromisoformat(m["timestamp"])
    window = Window(
        when - dt.timedelta(hours=rng.randint(0, 30)) if "since" in pick else None,
        when + dt.timedelta(hours=rng.randint(1, 30)) if "until" in pick else None,
    )
    rooms = data.draw(st.sampled_from([(), None, ("ops",), ("ops", "dev")]))
    _found, used = answers(copy, filters, window, rooms)
    assert used or not make_reader(copy, window, False, rooms).files()


def test_the_answers_are_not_vacuous(copy: Path) -> None:
    """The cases the random test draws from do match, and through the index."""
    for filters, at_least in [
        (make_filters(), 300),
        (make_filters(contains=["deploy"]), 50),
        (make_filters(contains=["FILE"], ignore_case=True), 20),  # ﬁle and file
        (make_filters(contains=["kelvin"], ignore_case=True), 20),  # and the Kelvin sign
        (make_filters(senders=["jünö"], task="tâche"), 3),
        (make_filters(agents=["vega"], no_cc=True, contains=["merge"]), 5),
    ]:
        found, used = answers(copy, filters)
        assert used and found[2] >= at_least, (filters, found[2])
    covered = search(copy, make_filters(), Window(), (), True).covered()
    assert len(covered) == len(list(copy.glob("**/messages-*.json")))


def rows_of(log_dir: Path) -> dict[str, tuple[int, int]]:
    conn = sqlite3.connect(log_dir / INDEX_NAME)
    try:
        return {name: (end, lines) for name, end, lines in conn.execute(
            'SELECT name, "end", lines FROM files')}  # fmt: skip
    finally:
        conn.close()


FORMS = [
    make_filters(),
    make_filters(contains=["deploy merge"]),
    make_filters(senders=["juno"], contains=["café"], ignore_case=True),
    make_filters(task="T-1", no_cc=True),
]


def agree(log_dir: Path) -> None:
    """Search, thread and agents through the index answer as the scan."""
    from dead_drop_logger.read.agents import tally

    for filters in FORMS:
        for rooms in ((), None):
            answers(log_dir, filters, Window(), rooms)
    for rooms in ((), None):
        for target in (1, 5, 17, 40, 120):
            assert posts(log_dir, target, rooms, True) == posts(log_dir, target, rooms, False)
        ours = [r.to_json(True) for r in tally(make_reader(log_dir, EVERYTHING, False, rooms))]
        scan = make_reader(log_dir, EVERYTHING, False, rooms)
        assert ours == [r.to_json(True) for r in tally(scan, use_index=False)]


def test_a_file_replaced_under_the_index_is_read_as_it_is_now(copy: Path) -> None:
    """A day file cut back and written again with other lines (a restored backup, a
    crash's cut-back and what was logged after it): its rows are not trusted."""
    newest = sorted(copy.glob("messages-*.json"))[-1]
    other = sorted(copy.glob("messages-*.json"))[0].read_bytes()
    raw = newest.read_bytes()
    keep = raw[: raw.index(b"\n", len(raw) // 2) + 1]
    newest.write_bytes(keep + other[: other.index(b"\n", 500) + 1])
    from dead_drop_logger.read.indexed import covers

    reader = make_reader(copy, Window(), False, None)
    assert newest not in covers(reader, catch_up=None)  # not trusted: scanned
    assert sorted(copy.glob("messages-*.json"))[0] in covers(reader, catch_up=None)
    agree(copy)  # (which indexes it anew: a reader catches up)
    assert rows_of(copy)[newest.name][0] == newest.stat().st_size  # indexed anew
    agree(copy)


def test_lines_not_yet_indexed_are_scanned(copy: Path) -> None:
    newest = sorted(copy.glob("messages-*.json"))[-1]
    first = newest.read_bytes().split(b"\n")[0] + b"\n"
    with open(newest, "ab") as out:
        out.write(first.replace(b'"from_agent":"', b'"from_agent":"late'))
    assert search(copy, make_filters(), Window(), None, True).covered()
    found, _used = answers(copy, make_filters(), Window(), None)
    assert found[0][-1].startswith(first.split(b",")[0])


def test_compression_prune_and_a_gone_file(copy: Path, home_env: dict[str, str]) -> None:
    done = run_command("prune", "--log-dir", str(copy), "--compress-after", "1",
                       "--retention-days", "0", env=home_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(copy.glob("messages-*.json.gz"))
    agree(copy)
    build(copy)
    packed = {name for name in rows_of(copy) if name.endswith(".gz")}
    assert packed == {p.name for p in copy.glob("messages-*.json.gz")}
    assert search(copy, make_filters(), Window(), None, True).covered()
    agree(copy)
    gone = sorted(copy.glob("messages-*"))[0]
    gone.unlink()
    agree(copy)
    done = run_command("prune", "--log-dir", str(copy), "--keep-files", "2", env=home_env)
    assert done.returncode == 0, done.stderr
    build(copy)
    assert set(rows_of(copy)) == {p.name for p in copy.glob("messages-*") if not p.is_symlink()}
    agree(copy)


def test_a_replaced_log_directory(copy: Path, tmp_path: Path) -> None:
    """Another log directory put in place of the first, its old index with it: no row
    of it matches the new files, which are read as they are."""
    other = tmp_path / "other"
    shutil.copytree(copy / "ops", other)
    index = (copy / INDEX_NAME).read_bytes()
    shutil.rmtree(copy)
    shutil.copytree(other, copy)
    (copy / INDEX_NAME).write_bytes(index)
    agree(copy)
    build(copy)
    agree(copy)


def cli_search(log_dir: Path, env: dict[str, str], *args: str, wrapper: Any = ()) -> Any:
    return run_command("search", "--log-dir", str(log_dir), *args, env=env, wrapper=wrapper)


FORMS_CLI = [["--count"], ["--json"], ["deploy", "--json", "--reverse", "-n", "5"],
             ["--from", "juno", "--oneline"], ["-i", "CAFÉ", "-c"]]  # fmt: skip


def test_missing_damaged_and_half_written_indexes(copy: Path, home_env: dict[str, str]) -> None:
    index = copy / INDEX_NAME
    good = {tuple(a): cli_search(copy, home_env, *a).stdout for a in FORMS_CLI}
    assert good[("--count",)].strip() != "0"
    whole = index.read_bytes()
    for damage in (b"not a database at all" * 100, whole[: len(whole) // 2], b""):
        index.write_bytes(damage)
        for args in FORMS_CLI:
            done = cli_search(copy, home_env, *args)
            assert done.returncode == 0 and done.stdout == good[tuple(args)]
            if damage:  # (an empty file is an empty database: made anew)
                assert len(done.stderr.splitlines()) <= 1
                assert done.stderr in (
                    "",
                    f"dead-drop-logger: warning: the index {index}"
                    f" cannot be used ({done.stderr.split('(')[1]}"
                    "(`dead-drop-logger index --rebuild` makes a new one)\n",
                )
    index.unlink()
    for args in FORMS_CLI:  # (the first makes it anew: a small directory)
        assert cli_search(copy, home_env, *args).stdout == good[tuple(args)]
    index.unlink()
    done = run_command("index", "--log-dir", str(copy), env=home_env)
    assert done.returncode == 0 and "rebuilt (there was none)" in done.stdout
    assert stat.S_IMODE(index.stat().st_mode) == 0o600


def test_a_read_only_log_directory(copy: Path, home_env: dict[str, str]) -> None:
    """Behind (a line appended since), in a directory the reader cannot write: the
    index answers what it covers, the rest is scanned, nothing is written."""
    good = {tuple(a): cli_search(copy, home_env, *a).stdout for a in FORMS_CLI}
    newest = sorted(copy.glob("messages-*.json"))[-1]
    line = newest.read_bytes().split(b"\n")[0] + b"\n"
    with open(newest, "ab") as out:
        out.write(line)
    before = (copy / INDEX_NAME).read_bytes()
    for where in [copy, *[p for p in copy.iterdir() if p.is_dir()]]:
        os.chmod(where, 0o500)
    try:
        for args in FORMS_CLI:
            done = cli_search(copy, home_env, *args, wrapper=UNPRIVILEGED)
            assert done.returncode == 0 and done.stderr == ""
            if args == ["--count"]:
                assert int(done.stdout) == int(good[("--count",)]) + 1
        assert (copy / INDEX_NAME).read_bytes() == before
    finally:
        for where in [copy, *[p for p in copy.iterdir() if p.is_dir()]]:
            os.chmod(where, 0o700)
    os.unlink(copy / INDEX_NAME)
    os.chmod(copy, 0o500)
    try:
        done = cli_search(copy, home_env, "--count", wrapper=UNPRIVILEGED)
        assert done.returncode == 0 and done.stderr == ""
        assert not (copy / INDEX_NAME).exists()
    finally:
        os.chmod(copy, 0o700)


def test_the_index_holds_no_content_when_told(copy: Path) -> None:
    """For an encrypted log directory: no full-text table, no word list; contains is
    answered from the candidate lines, the same."""
    from dead_drop_logger.read.indexed import create

    os.unlink(copy / INDEX_NAME)
    create(copy, content=False).close()
    conn = sqlite3.connect(copy / INDEX_NAME)
    try:
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
        assert not any(n.startswith("fts_") for n in tables)
        assert conn.execute("SELECT count(*) FROM terms").fetchone() == (0,)
    finally:
        conn.close()
    blob = (copy / INDEX_NAME).read_bytes()
    assert b"deploy" not in blob and b"staging" not in blob
    agree(copy)


def test_odd_lines_leave_their_file_to_the_scan(copy: Path) -> None:
    newest = sorted(copy.glob("messages-*.json"))[0]
    with open(newest, "ab") as out:
        out.write(b'{"id":"seven","from_agent":1,"content":null}\nnot json\n')
    (copy / ".dead-drop-logger.state").unlink()  # (a copy's state caps its files' ends)
    build(copy)
    assert rows_of(copy)[newest.name][0] == newest.stat().st_size
    s = search(copy, make_filters(), Window(), None, True)
    assert newest not in s.covered() and s.covered()
    agree(copy)
    reader = Reader([LogDir(copy)])
    assert sum(1 for e in Search(reader, make_filters(), use_index=True).run()) == sum(
        1 for line in reader.lines() if parse_line(line.raw) is not None
    )
    assert gzip  # (the module's compressed days come from prune above)


def posts(log_dir: Path, target: int, rooms: Any, index: bool) -> Any:
    from dead_drop_logger.read.thread import AmbiguousId, thread

    try:
        found = thread(make_reader(log_dir, EVERYTHING, False, rooms), target, use_index=index)
    except AmbiguousId as exc:
        return ("ambiguous", exc.rooms)
    if found is None:
        return None
    return [(p.entry.line.raw, p.depth, p.note) for p in found]


def test_thread_through_the_index_is_the_scans(copy: Path) -> None:
    from dead_drop_logger.read.indexgraph import index_graph

    assert index_graph(make_reader(copy, EVERYTHING, False, ())) is not None
    shown = 0
    for rooms in ((), None, ("ops",)):
        for target in [*range(1, 60), 200, 233, 234, 400, 10**6]:
            found = posts(copy, target, rooms, True)
            assert found == posts(copy, target, rooms, False), (rooms, target)
            shown += isinstance(found, list) and len(found) > 2
    assert shown > 20


def test_agents_through_the_index_are_the_scans(copy: Path) -> None:
    from dead_drop_logger.read.agents import tally

    every = messages(copy)
    rng = random.Random(7)
    windows = [EVERYTHING]
    for _ in range(6):
        when = dt.datetime.fromisoformat(rng.choice(every)["timestamp"])
        windows.append(Window(when - dt.timedelta(hours=rng.randint(0, 40)), None))
        windows.append(Window(None, when + dt.timedelta(minutes=rng.randint(1, 900))))
        windows.append(Window(when, when + dt.timedelta(hours=rng.randint(1, 30))))
    newest = sorted(copy.glob("messages-*.json"))[-1]
    with open(newest, "ab") as out:  # (a copy: past the committed end, scanned)
        out.write(newest.read_bytes().split(b"\n")[0] + b"\n")
    for rooms in ((), None, ("dev",)):
        for window in windows:
            reader = make_reader(copy, window, False, rooms)
            assert search(copy, make_filters(), window, rooms, True).covered()
            ours = [r.to_json(True) for r in tally(reader)]
            scan = [
                r.to_json(True)
                for r in tally(make_reader(copy, window, False, rooms), use_index=False)
            ]
            assert ours == scan


def test_an_index_built_line_by_line_answers_as_one_built_at_once(copy: Path) -> None:
    """As the logger's thread builds it: a few lines at a time."""
    from dead_drop_logger.read.agents import tally

    (copy / ".dead-drop-logger.state").unlink()  # every line committed
    newest = max(copy.glob("messages-*.json"), key=lambda p: p.stat().st_size)
    lines = newest.read_bytes().splitlines(keepends=True)
    newest.write_bytes(b"")
    build(copy, rebuild=True)
    for at in range(0, len(lines), 3):
        with open(newest, "ab") as out:
            out.write(b"".join(lines[at : at + 3]))
        build(copy)
    assert rows_of(copy)[newest.name] == (newest.stat().st_size, len(lines))
    for window in (EVERYTHING, Window(None, dt.datetime(2026, 3, 4, 12))):
        reader = make_reader(copy, window, False, None)
        assert [r.to_json() for r in tally(reader)] == [
            r.to_json() for r in tally(make_reader(copy, window, False, None), use_index=False)
        ]
    agree(copy)


def test_an_update_while_a_reader_answers(copy: Path) -> None:
    """Rows the logger indexes while a reader answers are past the ends the reader
    read: it scans those bytes, so nothing is shown twice or missed."""
    from dead_drop_logger.index.store import Store
    from dead_drop_logger.read.indexed import update
    from dead_drop_logger.read.indexquery import groups

    (copy / ".dead-drop-logger.state").unlink()  # every line committed
    newest = max(copy.glob("messages-*.json"), key=lambda p: p.stat().st_size)
    s = search(copy, make_filters(), EVERYTHING, None, True)
    counting = search(copy, make_filters(), EVERYTHING, None, True)
    record = s.covered()[newest].record
    assert counting.covered()[newest].record == record
    with open(newest, "ab") as out:
        out.write(b"".join(newest.read_bytes().splitlines(keepends=True)[:5]))
    writer = Store.open(copy, write=True)
    assert writer is not None and update(writer, copy)
    assert rows_of(copy)[newest.name][0] == newest.stat().st_size > record.end
    scan = [e.line.raw for e in search(copy, make_filters(), EVERYTHING, None, False).run()]
    assert [e.line.raw for e in s.run()] == scan
    assert counting.count() == len(scan)
    found = groups(writer, record, EVERYTHING)
    assert sum(count for _key, count, _first, _last in found) == record.lines
    writer.close()


def test_the_logger_keeps_it_current_through_kill_9s(server_db: Path, log_dir: Path) -> None:
    """The real logger under a writer, killed with SIGKILL at random moments and
    restarted (each restart cuts back what the crash left uncommitted): its indexer
    indexes only committed lines, so the index never holds a line cut back, and at the
    end it covers every file whole and answers as the scan."""
    from conftest import LoggerProcess, logged_ids, start_writer, wait_until

    rng = random.Random(20)
    writer = start_writer(server_db, 600, interval=0.01)
    try:
        for _ in range(4):
            proc = LoggerProcess(server_db, log_dir, "--import-historical").start()
            proc.wait_ready()
            time.sleep(rng.uniform(0.5, 3.0))
            proc.kill()
    finally:
        assert writer.wait(timeout=120) == 0
    want = serverdb.all_ids(server_db)
    proc = LoggerProcess(server_db, log_dir, "--import-historical").start()
    proc.wait_ready()
    try:
        wait_until(lambda: logged_ids(log_dir) == want, what="every message logged")
        files = [p for p in log_dir.glob("messages-*.json") if not p.is_symlink()]
        wait_until(
            lambda: (log_dir / INDEX_NAME).exists()
            and rows_of(log_dir) == {p.name: (p.stat().st_size, len(p.read_bytes().splitlines()))
                                     for p in files},
            what="the logger's indexer to cover every line",
        )  # fmt: skip
    finally:
        assert proc.stop() == 0, proc.stderr()
    assert "index" not in proc.stderr()  # no warning from the indexer
    reader = make_reader(log_dir, EVERYTHING, False, None)
    assert len(Search(reader, make_filters()).covered()) == len(files)
    agree(log_dir)


def test_a_deadline_stops_the_index_path_and_the_scan(copy: Path) -> None:
    """serve's request time limit (Search.deadline): past it, reading stops with
    TimedOut through the index's rows, the scan and the newest-first paths alike."""
    sender = messages(copy)[0]["from_agent"]
    narrowed = make_filters(senders=[sender])
    for index in (True, False):
        for filters in (narrowed, Filters()):
            whole = search(copy, filters, EVERYTHING, (), index)
            assert list(whole.run()), "nothing to stop"
            if index and filters is narrowed:
                assert whole.covered() and whole._indexed(whole.reader.files()[0][1])
            for rooms in ((), ("ops",)):
                for way in ("run", "newest", "end"):
                    late = Search(
                        make_reader(copy, EVERYTHING, False, rooms),
                        filters,
                        use_index=index,
                        deadline=time.monotonic() - 1,
                    )
                    with pytest.raises(TimedOut):
                        if way == "run":
                            list(late.run())
                        elif way == "newest":
                            list(late.newest_first(None))
                        else:
                            list(late.from_the_end(None))


def test_an_encrypted_directory_is_answered_through_its_index(tmp_path: Path) -> None:
    """Sealed segments are indexed whole (no content), trusted by their stamp (a segment
    re-sealed under the same name is not, until indexed anew), their lines read back
    decrypted in memory: every output form as the scan's, through the index."""
    from conftest import age_identity

    from dead_drop_logger.crypt import keys, segments
    from dead_drop_logger.read.indexed import covers

    key, recipient = age_identity()
    db, log_dir = tmp_path / "m.db", tmp_path / "logs"
    fill(db, 4, 120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    env["HOME"] = str(tmp_path)
    export(["--db", str(db)], log_dir, env, "--encrypt-to", recipient)
    sealed = sorted(log_dir.glob("messages-*.json.age"))
    assert len(sealed) >= 3
    keys.use_identity(key)
    try:
        built = build(log_dir)
        assert built.lines == len(serverdb.all_ids(db)) and built.files == len(sealed)
        reader = make_reader(log_dir, Window(), False, ())
        assert set(covers(reader, catch_up=None)) == set(sealed)
        for filters in FORMS:
            _found, used = answers(log_dir, filters, Window())
            assert used
        before = rows_of(log_dir)
        build(log_dir)  # up to date: nothing indexed again
        assert rows_of(log_dir) == before
        segments.reencrypt(sealed[1], [recipient])  # rekey: a new file, the same name
        assert sealed[1] not in covers(make_reader(log_dir, Window(), False, ()), catch_up=None)
        for filters in FORMS:
            answers(log_dir, filters, Window())
        build(log_dir)
        assert set(covers(make_reader(log_dir, Window(), False, ()), catch_up=None)) == set(sealed)
        assert rows_of(log_dir) == before
        blob = (log_dir / INDEX_NAME).read_bytes()
        assert b"deploy" not in blob and b"staging" not in blob
    finally:
        keys.use_identity(None)


def test_the_planner_scans_a_file_where_a_common_word_makes_too_many_candidates(
    tmp_path: Path,
) -> None:
    """A word in every line leaves every line a candidate: the byte scan of the file is
    faster than reading them one by one, so the planner says so (and a rare word's few
    candidates are read through the index). The answers are the same either way: the
    random test above runs both."""
    from dead_drop_logger.index.store import Store

    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    lines = [
        f'{{"id":{i},"from_agent":"juno","to_agent":"vega","content":"common words'
        f'{" and a rare one" if i == 50 else ""} {"x" * 200}","timestamp":'
        f'"2026-03-01T08:{i % 60:02d}:00","read_flag":0,"is_cc":0,"cc_original_to":null,'
        f'"task_id":null,"reply_to":null}}\n'
        for i in range(1, 401)
    ]
    (log_dir / "messages-2026-03-01.json").write_text("".join(lines))
    build(log_dir)
    store = Store.open(log_dir)
    assert store is not None and store.content
    try:
        (record,) = store.records().values()
        for needle, many in (("common", True), ("rare", False)):
            filters = make_filters(senders=["juno"], contains=[needle])
            query = indexquery.plan(store, filters, EVERYTHING)
            assert query.verify and query.words is not None
            assert indexquery.dense(store, record, query) is many, needle
            found, used = answers(log_dir, filters)
            assert used and found[2] == (400 if many else 1)
    finally:
        store.close()


def dump(log_dir: Path) -> list[Any]:
    """Every row of an index, and the rows each word of the full-text index finds."""
    conn = sqlite3.connect(f"file:{log_dir / INDEX_NAME}?mode=ro", uri=True)
    try:
        found: list[Any] = [
            sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("files", "names", "terms", "lines", "pairs", "meta")
        ]
        terms = [t for (t,) in conn.execute("SELECT term FROM terms ORDER BY 1")]
        for (fid,) in conn.execute("SELECT fid FROM files ORDER BY 1").fetchall():
            for term in terms:
                found.append(
                    conn.execute(
                        f"SELECT rowid FROM fts_{fid} WHERE fts_{fid} MATCH ? ORDER BY 1",
                        (f'"{term}"',),
                    ).fetchall()
                )
    finally:
        conn.close()
    return found


def test_a_build_parsed_by_worker_processes_is_the_same_index(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`index` parses a big build in worker processes: the index is the one a single
    process makes, row for row and word for word."""
    from dead_drop_logger.read import indexed

    assert build(copy, rebuild=True).rebuilt
    alone = dump(copy)
    monkeypatch.setattr(indexed, "PARALLEL", 0)
    monkeypatch.setattr(indexed, "PARALLEL_AHEAD", 1)
    assert build(copy, rebuild=True, workers=2).rebuilt
    assert dump(copy) == alone
    found, used = answers(copy, make_filters(contains=["deploy"]))
    assert used and found[2] > 0
