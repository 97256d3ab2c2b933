"""``stats`` through the index's partials is the scan's ``stats``, number for number.

Logs written by the real export from a real server database (tests/serverdb.py): size
parts (so threads and waiting messages cross files), two rooms, answers within and past
a day, replies of replies, undated-free server times. Every comparison is of the whole
``Stats`` (what ``--json``, the text and the report are made from) through the index
and by the scan (``use_index=False``), and says whether the index answered (a test
where it never did would prove nothing). Then the files' life: a crash cut-back, ``.gz``
compression, prune, a replaced directory, lines not yet indexed, an index missing,
damaged or unwritable, and the command's output byte for byte.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import UNPRIVILEGED, run_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_index import export  # (the same export of the index's own tests)

from dead_drop_logger.index.store import INDEX_NAME
from dead_drop_logger.read import statfile, statlines, statparts
from dead_drop_logger.read.indexed import build
from dead_drop_logger.read.logread import EVERYTHING, Window
from dead_drop_logger.read.reading import make_reader

AGENTS = ["juno", "vega", "orion", "jünö", "lead"]
TASKS = [None, "T-1", "T-2", "tâche"]


def fill(db: Path, seed: int, sends: int) -> None:
    """A team talking: answers back within minutes or hours (some past a day), replies
    to recent messages and to replies, broadcasts, tasks."""
    rng = random.Random(seed)
    serverdb.create(db)
    conn = serverdb.connect(db)
    when = dt.datetime(2026, 3, 1, 8, 0)
    sent: list[tuple[int, str, str]] = []
    for _ in range(sends):
        pause = rng.choice([0, 7, 59, 60, 61, 300, 900, 3600])
        if rng.random() < 0.1:  # overnight: answers the next day, or past a day
            pause = rng.choice([20_000, 50_000, 86_399, 86_400, 86_401, 90_000])
        when += dt.timedelta(seconds=pause)
        asked = [m for m in sent[-30:] if m[2] != "all"]
        if asked and rng.random() < 0.5:  # an answer back, or a reply
            msg_id, asker, responder = rng.choice(asked)
            sender, to = responder, rng.choice([asker, "all", asker])
            reply = msg_id if rng.random() < 0.6 else None
        else:
            sender = rng.choice(AGENTS)
            to = rng.choice([a for a in AGENTS if a != sender] + ["all"])
            reply = rng.choice(sent)[0] if sent and rng.random() < 0.2 else None
        text = f"message {len(sent)}"
        ids = serverdb.send(
            conn, sender, to, text, timestamp=when.isoformat(), task_id=rng.choice(TASKS),
            reply_to=reply,
        )  # fmt: skip
        sent.append((ids[0], sender, to))
    conn.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("statsindex")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    env["HOME"] = str(root)
    main, ops, dev = root / "main.db", root / "ops.db", root / "dev.db"
    fill(main, 1, 700)
    fill(ops, 2, 250)
    fill(dev, 3, 250)
    export(["--db", str(main)], root / "logs", env, "--max-bytes", "8KB")
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


def both(log_dir: Path, window: Window = EVERYTHING, rooms: Any = ()) -> bool:
    """Stats through the index and by the scan, asserted equal; whether the index
    answered."""
    reader = make_reader(log_dir, window, False, rooms)
    through = statparts.read(reader)
    scan_reader = make_reader(log_dir, window, False, rooms)
    scanned = statlines.read(scan_reader, use_index=False)
    if through is not None:
        assert through == scanned
        assert reader.corrupt_in == scan_reader.corrupt_in
    assert statlines.read(make_reader(log_dir, window, False, rooms)) == scanned
    return through is not None


def times(log_dir: Path) -> list[dt.datetime]:
    found = []
    for path in sorted(log_dir.glob("messages-*.json")):
        for line in path.read_bytes().splitlines():
            at = line.find(b'"timestamp":"') + 13
            found.append(dt.datetime.fromisoformat(line[at : at + 19].decode()))
    return found


@settings(max_examples=300, deadline=None)
@given(when=st.datetimes(min_value=dt.datetime(1970, 1, 1)))
def test_times_are_the_trackers_to_the_last_bit(when: dt.datetime) -> None:
    """The merge's seconds from the index's microseconds are the tracker's float."""
    from dead_drop_logger.index.store import micros

    assert statfile.seconds(micros(when)) == (when - dt.datetime(1970, 1, 1)).total_seconds()


def test_the_logs_cross_files_with_answers_and_threads(copy: Path) -> None:
    """Not vacuous: many files, answers and threads that cross them."""
    assert len(list(copy.glob("messages-*.json"))) > 10
    numbers = statlines.read(make_reader(copy, EVERYTHING, False, ()), use_index=False)
    assert sum(r.count for r in numbers.responses) > 100
    assert numbers.threads.count > 50 and numbers.threads.longest is not None
    assert numbers.threads.longest.length > 3
    assert both(copy)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_windows_and_rooms(copy: Path, data: Any) -> None:
    every = times(copy)
    rooms = data.draw(st.sampled_from([(), None, ("ops",), ("dev", "ops")]))
    since = data.draw(st.none() | st.sampled_from(every))
    until = data.draw(st.none() | st.sampled_from(every))
    if since is not None and data.draw(st.booleans()):
        since -= dt.timedelta(seconds=data.draw(st.integers(0, 200_000)))
    window = Window(since, until)
    used = both(copy, window, rooms)
    if rooms == () and window == EVERYTHING:
        assert used


def test_every_room_through_its_own_index(copy: Path) -> None:
    for rooms in (("ops",), ("dev",)):
        assert both(copy, EVERYTHING, rooms)
    both(copy, EVERYTHING, None)


def test_a_crash_cut_back_and_lines_not_yet_indexed(copy: Path) -> None:
    newest = sorted(copy.glob("messages-*.json"))[-1]
    data = newest.read_bytes()
    lines = data.splitlines(keepends=True)
    newest.write_bytes(b"".join(lines[: len(lines) // 2]))  # cut back under the index
    assert both(copy)
    (copy / ".dead-drop-logger.state").unlink()  # every line committed
    newest.write_bytes(b"".join(lines[: len(lines) // 2]) + b"".join(lines[len(lines) // 2 :]))
    assert both(copy)  # the new half is past the index: read from the file
    build(copy)
    assert both(copy)


def test_compression_prune_and_a_replaced_directory(
    copy: Path, tmp_path: Path, home_env: dict[str, str]
) -> None:
    first = sorted(copy.glob("messages-*.json"))[0]
    with open(first, "rb") as raw, gzip.open(f"{first}.gz", "wb") as packed:
        shutil.copyfileobj(raw, packed)
    first.unlink()
    assert both(copy)
    build(copy)
    assert both(copy)
    second = sorted(copy.glob("messages-*.json"))[1]
    second.unlink()  # gone (prune, retention)
    assert both(copy)
    build(copy)
    assert both(copy)
    other = tmp_path / "other"
    fill(tmp_path / "other.db", 9, 300)
    export(["--db", str(tmp_path / "other.db")], other, home_env, "--max-bytes", "8KB")
    for path in copy.glob("messages-*"):
        path.unlink()
    for path in other.glob("messages-*"):
        shutil.copy2(path, copy / path.name)
    both(copy)  # the old rows do not hold: read from the files
    build(copy)
    assert both(copy)


def test_an_index_built_a_few_lines_at_a_time(copy: Path) -> None:
    """As the logger's thread builds it, its partials kept in memory between updates."""
    from dead_drop_logger.index.store import Store
    from dead_drop_logger.read.indexed import update

    (copy / ".dead-drop-logger.state").unlink()
    newest = max(copy.glob("messages-*.json"), key=lambda p: p.stat().st_size)
    for later in copy.glob("messages-*"):  # the biggest file the newest, as the logger
        day_part = later.name.startswith(newest.name[:-4])  # writes one (DAY.N.json: a part)
        if later != newest and (later.name > newest.name or day_part):
            later.unlink()
    lines = newest.read_bytes().splitlines(keepends=True)
    assert len(lines) > 30
    newest.write_bytes(b"")
    build(copy, rebuild=True)
    store = Store.open(copy, write=True)
    assert store is not None
    store.partials_cache = {}
    saved = statfile.SAVE_EVERY
    try:
        statfile.SAVE_EVERY = 2000  # some saves, some lines read past the kept partial
        for at in range(0, len(lines), 5):
            with open(newest, "ab") as out:
                out.write(b"".join(lines[at : at + 5]))
            if at % 15 == 0:  # a reader catches the index up first (its partial behind)
                assert both(copy)
            assert update(store, copy)
            if at % 20 == 0:
                assert both(copy)
        statfile.SAVE_EVERY = 1 << 30  # (the last lines not saved yet: read past it)
        with open(newest, "ab") as out:
            out.write(lines[-1].replace(b'"id":', b'"id":9', 1))
        assert update(store, copy)
        assert both(copy)
        first = json.loads(lines[0])["timestamp"]
        cut = dt.datetime.fromisoformat(json.loads(lines[len(lines) // 2])["timestamp"])
        for window in (
            Window(dt.datetime.fromisoformat(first[:10]), None),  # the newest day inside
            Window(None, dt.datetime.fromisoformat(first[:10])),  # outside: its new lines
            Window(cut, None),  # cut
        ):
            assert both(copy, window)
        record = store.records()[newest.name[9:19], 0]
        kept = store.partial(record.fid)
        assert kept is not None and kept[0] < record.end
        later = copy / "messages-2099-01-01.json"  # a new day: the written one saved whole
        later.write_bytes(lines[-2].replace(b'"id":', b'"id":9', 1))
        assert update(store, copy)
        kept = store.partial(record.fid)
        assert kept is not None and kept[0] == record.end == newest.stat().st_size
        assert both(copy)
    finally:
        statfile.SAVE_EVERY = saved
        store.close()
    assert both(copy)


def test_the_command_prints_the_scans_bytes(copy: Path, home_env: dict[str, str]) -> None:
    for args in (["--json"], [], ["--json", "--since", "2026-03-03"], ["--room", "ops"]):
        through = run_command("stats", "--log-dir", str(copy), *args, env=home_env)
        # every index (the rooms' too) damaged, so that the second run scans: one moved
        # aside would be made anew by the reader (a small directory) and answer again
        indexes = [copy / INDEX_NAME, *copy.glob(f"*/{INDEX_NAME}")]
        assert len(indexes) > 1  # (the rooms')
        for n, index in enumerate(indexes):
            index.rename(copy.parent / f"aside-{n}")
            index.write_bytes(b"not an index")
        try:
            scanned = run_command("stats", "--log-dir", str(copy), *args, env=home_env)
        finally:
            for n, index in enumerate(indexes):
                (copy.parent / f"aside-{n}").replace(index)
        assert through.returncode == scanned.returncode == 0, through.stderr
        assert through.stdout == scanned.stdout
        assert through.stderr == "" and "cannot be used" in scanned.stderr, scanned.stderr


def test_missing_damaged_and_unwritable_indexes(copy: Path, home_env: dict[str, str]) -> None:
    want = run_command("stats", "--json", "--log-dir", str(copy), env=home_env).stdout
    index = copy / INDEX_NAME
    index.write_bytes(b"not a database" * 100)
    done = run_command("stats", "--json", "--log-dir", str(copy), env=home_env)
    assert done.stdout == want
    assert done.stderr.count("\n") == 1 and "cannot be used" in done.stderr
    index.unlink()
    build(copy)
    before = index.read_bytes()
    for where in [copy, *[p for p in copy.iterdir() if p.is_dir()]]:
        os.chmod(where, 0o500)
    try:
        done = run_command(
            "stats", "--json", "--log-dir", str(copy), env=home_env, wrapper=UNPRIVILEGED
        )
        assert done.stdout == want and done.stderr == ""
        assert index.read_bytes() == before
    finally:
        for where in [copy, *[p for p in copy.iterdir() if p.is_dir()]]:
            os.chmod(where, 0o700)


@pytest.fixture
def tracker(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The response tracker's sweep and cap made small, in the scan and the merge alike
    (the scan's tracker reads them from its module; its cap is a default argument)."""
    from dead_drop_logger.read import responses

    def tune(sweep: int, cap: int) -> None:
        for module in (responses, statparts):
            monkeypatch.setattr(module, "SWEEP_EVERY", sweep)
            monkeypatch.setattr(module, "MAX_PENDING", cap)
        monkeypatch.setattr(responses.ResponseTracker.__init__, "__defaults__", (cap,))

    return tune


def test_the_trackers_sweeps_across_rooms(copy: Path, tracker: Any) -> None:
    """Rooms are read day by day, so one room's sweep drops another's waiting messages
    by its own time: the merge drops them at the same sweeps."""
    default = statlines.read(make_reader(copy, EVERYTHING, False, ()), use_index=False)
    changed = False
    for sweep in (1, 2, 3, 17):
        tracker(sweep, 250_000)
        assert both(copy)
        numbers = statlines.read(make_reader(copy, EVERYTHING, False, ()), use_index=False)
        changed |= numbers.responses != default.responses
    assert changed  # (the sweeps mattered: a merge without them would differ)


def test_the_trackers_cap(copy: Path, tracker: Any) -> None:
    """Where the waiting list could reach its cap, the scan answers (evicting as ever)."""
    tracker(50, 8)
    assert not both(copy)
    numbers = statlines.read(make_reader(copy, EVERYTHING, False, ()))
    assert numbers.pending_evicted > 0
    tracker(5, 400)
    assert both(copy)


def rewrite(path: Path, change: Any) -> None:
    """Each line of ``path`` as ``change`` makes it (a list of messages for one), in the
    logger's form."""
    out = []
    for line in path.read_bytes().splitlines():
        for message in change(json.loads(line)):
            out.append(json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n")
    path.write_text("".join(out), encoding="utf-8")


def test_undated_lines_times_that_go_back_and_ids_logged_twice(copy: Path) -> None:
    """Undated messages are counted through the index; times that go back, or an id
    logged twice, leave the numbers to the scan (the tracker's order would matter)."""
    (copy / ".dead-drop-logger.state").unlink()  # every line committed
    files = sorted(copy.glob("messages-*.json"))
    count = iter(range(10**6))

    def undate(message: dict[str, Any]) -> list[dict[str, Any]]:
        if next(count) % 3 == 0:
            message["timestamp"] = [None, "yesterday", "2026-13-01T00:00:00"][next(count) % 3]
        return [message]

    rewrite(files[3], undate)
    build(copy)
    assert both(copy)
    assert both(copy, Window(dt.datetime(2026, 3, 2), None))
    numbers = statlines.read(make_reader(copy, EVERYTHING, False, ()))
    assert numbers.totals.undated > 0
    saved = files[5].read_bytes()
    rewrite(files[5], lambda m: [m] if m["is_cc"] else [m, m])  # (each message twice)
    build(copy)
    assert not both(copy)
    files[5].write_bytes(saved)
    build(copy, rebuild=True)
    assert both(copy)
    busy = max(files[6:-1], key=lambda p: p.stat().st_size)
    lines = busy.read_bytes().splitlines(keepends=True)
    busy.write_bytes(b"".join(reversed(lines)))  # history filled in out of order
    build(copy)
    assert not both(copy)
    busy.write_bytes(b"".join(lines))
    build(copy)
    assert both(copy)
    with open(files[-1], "ab") as out:  # a copy past the index: an id twice
        out.write(files[-1].read_bytes().split(b"\n")[0] + b"\n")
    assert not both(copy)


def test_an_encrypted_directory(tmp_path: Path) -> None:
    """Sealed segments: their partials made as they are indexed (decrypted in memory),
    the numbers the scan's, and no content in the index (the partials hold names, ids
    and times, as its rows do)."""
    from conftest import age_identity

    from dead_drop_logger.crypt import keys, segments

    key, recipient = age_identity()
    db, log_dir = tmp_path / "m.db", tmp_path / "logs"
    fill(db, 4, 300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    env["HOME"] = str(tmp_path)
    export(["--db", str(db)], log_dir, env, "--encrypt-to", recipient)
    sealed = sorted(log_dir.glob("messages-*.json.age"))
    assert len(sealed) >= 3
    keys.use_identity(key)
    try:
        build(log_dir)
        assert both(log_dir)
        assert both(log_dir, Window(dt.datetime(2026, 3, 2, 12), None))
        segments.reencrypt(sealed[1], [recipient])  # rekey: a new file, the same name
        assert both(log_dir)  # (read whole from the segment)
        build(log_dir)
        assert both(log_dir)
        blob = (log_dir / INDEX_NAME).read_bytes()
        assert b"message " not in blob  # (every content is "message N")
    finally:
        keys.use_identity(None)
