"""A log directory copied at any moment (``cp -a`` while a busy logger writes, during a
hold, a checkpoint, after ``kill -9``) and restored, in a fresh place or under the
running logger, loses nothing and doubles nothing: a day file is known by what it
holds, not by its inode (see dead_drop_logger/record/copies.py)."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import (
    LoggerProcess,
    log_lines,
    logged_ids,
    logger_command,
    start_writer,
    stop_writer,
    wait_until,
)
from test_position import MARCH_1, make_pipeline

from dead_drop_logger.logdir.state import STATE_NAME, FilesChanged

COPIES = 24
SENDS = 100_000  # a flat-out writer, stopped once the copies are taken


def cp_a(source: Path | str, target: Path) -> None:
    """``cp -a``, as a user backs up a directory (one file after another). A file that
    goes between its listing and its copy (the state's temporary), or is renamed over
    while being copied (the state: then the copy has none), is only a complaint."""
    done = subprocess.run(["cp", "-a", str(source), str(target)], capture_output=True, text=True)
    complaints = done.stderr.splitlines()
    expected = ("No such file", "replaced while being copied")
    assert done.returncode == 0 or all(
        any(why in line for why in expected) for line in complaints
    ), complaints


def doubled(ids: list[int]) -> list[int]:
    """The ids found more than once, sorted (counted once each: ``ids.count`` for each
    id is quadratic, hours over the 100,000 ids a flat-out writer may send here)."""
    return sorted(i for i, n in Counter(ids).items() if n > 1)


def had_pending(log_dir: Path) -> bool:
    """Whether the state holds a pending record of a file that held lines already."""
    try:
        pending = json.loads((log_dir / STATE_NAME).read_bytes())["pending"]
    except (OSError, ValueError, KeyError):
        return False
    return any(size > 0 for size, *_ in pending.values())


def backed_up_pending(log_dir: Path, backup: Path) -> bool:
    """Take a backup; True if its state holds a pending record (else it is thrown away)."""
    cp_a(log_dir, backup)
    if had_pending(backup):
        return True
    shutil.rmtree(backup)
    return False


def test_copies_taken_at_random_moments_under_a_busy_logger_are_each_logged_exactly_once(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    writer = start_writer(server_db, SENDS)
    backups = tmp_path / "backups"
    backups.mkdir()
    rng = random.Random(18)
    taken: list[Path] = []
    try:
        wait_until(lambda: logged_ids(log_dir), what="the first lines")
        for number in range(COPIES):
            if number == COPIES // 2:  # a crash mid-batch or mid-hold, copied before a restart
                live.kill()
                for _ in range(2):
                    taken.append(backups / f"copy-{len(taken)}")
                    cp_a(log_dir, taken[-1])
                live.start()
            time.sleep(rng.uniform(0, 0.15))
            taken.append(backups / f"copy-{len(taken)}")
            cp_a(log_dir, taken[-1])
        assert writer.poll() is None  # every copy was taken under the writer
        stop_writer(writer)
        want = serverdb.all_ids(server_db)
        wait_until(lambda: len(logged_ids(log_dir)) >= len(want), what="the live logger done")
    finally:
        if writer.poll() is None:
            writer.kill()
        live.stop()
    assert logged_ids(log_dir) == want
    # a busy logger's copies hold a pending record (the inodes in it all wrong)
    assert sum(had_pending(copy) for copy in taken) >= 2
    restored = [tmp_path / "restored" / copy.name for copy in taken]
    (tmp_path / "restored").mkdir()
    for copy, place in zip(taken, restored, strict=True):
        cp_a(copy, place)  # the restore: a fresh place, new inodes again
    for group in range(0, len(restored), 4):  # followed to the end, a few at a time
        loggers = [
            LoggerProcess(server_db, place, "--retention-days", "0").start()
            for place in restored[group : group + 4]
        ]
        try:
            for proc in loggers:
                proc.wait_ready()
                try:
                    wait_until(
                        lambda proc=proc: len(logged_ids(proc.log_dir)) >= len(want),
                        what=f"{proc.log_dir} followed to the end",
                    )
                except AssertionError as exc:
                    got = logged_ids(proc.log_dir)
                    lost = sorted(set(want) - set(got))
                    raise AssertionError(
                        f"{exc}: {len(lost)} lost {lost[:9]}; {proc.stderr()}"
                    ) from None
        finally:
            stopped = [proc.stop() for proc in loggers]
        for proc, status in zip(loggers, stopped, strict=True):
            assert status == 0, proc.stderr()
            got = logged_ids(proc.log_dir)
            twice = doubled(got)
            assert got == want, (twice, sorted(set(want) - set(got))[:20], proc.stderr())


@pytest.mark.parametrize("how", ["in its place", "over it"])
def test_a_backup_restored_under_the_running_logger_loses_and_doubles_nothing(
    server_db: Path, log_dir: Path, tmp_path: Path, how: str
) -> None:
    """Restored under a busy logger: the directory renamed away and the backup copied
    in its place (new inodes everywhere), or the backup copied over it (``cp -a
    backup/. logs/``: the same inodes, older contents, the hold's state file included)."""
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    writer = start_writer(server_db, SENDS)
    backup = tmp_path / "backup"
    try:
        wait_until(
            lambda: backed_up_pending(log_dir, backup), what="a backup with a pending record"
        )
        time.sleep(0.5)
        if how == "in its place":
            log_dir.rename(tmp_path / "broken")
            cp_a(backup, log_dir)
        else:
            cp_a(f"{backup}/.", log_dir)  # (a Path would drop the "/.")
        time.sleep(0.5)
        stop_writer(writer)
        want = serverdb.all_ids(server_db)
        try:
            wait_until(lambda: len(logged_ids(log_dir)) >= len(want), what="all of it logged")
        except AssertionError as exc:
            lost = sorted(set(want) - set(logged_ids(log_dir)))
            raise AssertionError(f"{exc}: {len(lost)} lost {lost[:9]}; {live.stderr()}") from None
    finally:
        if writer.poll() is None:
            writer.kill()
        assert live.stop() == 0, live.stderr()
    assert logged_ids(log_dir) == want, live.stderr()


def copy_slowly(source: Path, target: Path, *, state_first: bool, pause: float = 0.1) -> None:
    """A restore that takes its time (rsync, a network file system, a large backup): the
    directory is made (unless it is there: then each file is written over, in place, as
    ``cp`` does), then its files copied one after another with a pause between them; the
    state before the day files, or after them."""
    if not target.exists():
        target.mkdir(mode=0o700)
    names = sorted(entry.name for entry in source.iterdir())
    names.sort(key=lambda name: name.startswith("messages-") == state_first)
    for name in names:
        time.sleep(pause)
        if (source / name).is_symlink():  # (messages-current.json: replaced, as cp does)
            (target / name).unlink(missing_ok=True)
        try:
            shutil.copy2(source / name, target / name, follow_symlinks=False)
        except FileNotFoundError:
            # The logger replaced the file (renamed a new one over it) between the copy
            # and its times being set: the copy's bytes are there, its times are not,
            # which is all ``cp -a`` would have left too (with a warning). The same
            # for the state's temporary the backup holds (the logger's next save makes
            # its own and renames it away), and for the state read half written and
            # set aside as corrupt (then rebuilt from the files): ``cp`` too says only
            # "No such file".
            gone = name.endswith(".tmp") or (target / f"{name}.corrupt").exists()
            if not (target / name).exists() and not gone:
                raise


@pytest.mark.parametrize("pause", [0.1, 1.5], ids=["pauses 0.1s", "pauses 1.5s"])
@pytest.mark.parametrize("how", ["in its place", "over it"])
@pytest.mark.parametrize("state_first", [True, False], ids=["state first", "day files first"])
def test_a_slow_restore_under_a_busy_logger_loses_and_doubles_nothing(
    server_db: Path, log_dir: Path, tmp_path: Path, state_first: bool, how: str, pause: float
) -> None:
    """A backup restored file by file while the logger writes flat out, to the path of
    the directory renamed away, or over it: the logger finds the restore half made (a
    state without its day files, day files without their state, or its own state beside
    a day file with the backup's older lines). Reading it then, it rebuilt a state from
    half a copy, or wrote lines the rest of the copy then replaced, or went on after its
    own position in a file that no longer held what it had logged."""
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    writer = start_writer(server_db, SENDS)
    backup = tmp_path / "backup"
    try:
        wait_until(
            lambda: backed_up_pending(log_dir, backup), what="a backup with a pending record"
        )
        time.sleep(0.3)
        if how == "in its place":
            log_dir.rename(tmp_path / "broken")
        copy_slowly(backup, log_dir, state_first=state_first, pause=pause)
        time.sleep(0.3)
        assert writer.poll() is None  # the restore was made under the writer
        stop_writer(writer)
        want = serverdb.all_ids(server_db)
        try:
            wait_until(lambda: len(logged_ids(log_dir)) >= len(want), what="all of it logged")
        except AssertionError as exc:
            lost = sorted(set(want) - set(logged_ids(log_dir)))
            raise AssertionError(f"{exc}: {len(lost)} lost {lost[:9]}; {live.stderr()}") from None
    finally:
        if writer.poll() is None:
            writer.kill()
        assert live.stop() == 0, live.stderr()
    got = logged_ids(log_dir)
    assert got == want, (doubled(got)[:20], live.stderr())


def test_a_backup_restored_in_place_again_and_again_under_a_busy_logger(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    """The directory renamed away and the backup copied to its path, six times, while the
    logger writes flat out: each restore is being written by ``cp`` while the logger
    finds it (no state yet, or no day file yet, or half of one). Lines the logger wrote
    into it then, or a state it rebuilt from half a copy, were lost or doubled (seen: 592
    ids lost, or ids 1..744 logged twice)."""
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    writer = start_writer(server_db, SENDS)
    backup = tmp_path / "backup"
    try:
        wait_until(
            lambda: backed_up_pending(log_dir, backup), what="a backup with a pending record"
        )
        for number in range(6):
            time.sleep(0.3)
            log_dir.rename(tmp_path / f"broken-{number}")
            cp_a(backup, log_dir)
        time.sleep(0.3)
        assert writer.poll() is None  # every restore was made under the writer
        stop_writer(writer)
        want = serverdb.all_ids(server_db)
        try:
            wait_until(lambda: len(logged_ids(log_dir)) >= len(want), what="all of it logged")
        except AssertionError as exc:
            lost = sorted(set(want) - set(logged_ids(log_dir)))
            raise AssertionError(f"{exc}: {len(lost)} lost {lost[:9]}; {live.stderr()}") from None
    finally:
        if writer.poll() is None:
            writer.kill()
        assert live.stop() == 0, live.stderr()
    got = logged_ids(log_dir)
    assert got == want, (doubled(got)[:20], live.stderr())


def test_search_follow_on_a_copy_shows_only_what_its_state_records(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    """A copy whose state was copied before its day file grew: the file holds a line
    past what the state records, which the next logger there cuts back and logs again
    (here: not at all, the server deleted that newest row meanwhile). ``search
    --follow`` showed it, being out of ``pending``, as committed (the reviewer's case)."""
    conn = serverdb.connect(server_db)
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    for number in range(5):
        serverdb.send(conn, "alice", "bob", f"early {number}", leads=())
    wait_until(lambda: logged_ids(log_dir) == [1, 2, 3, 4, 5], what="ids 1..5 logged")
    assert live.stop() == 0, live.stderr()
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    for name in (STATE_NAME, ".dead-drop-logger.lock"):  # the state first
        shutil.copy2(log_dir / name, copy / name)
    serverdb.send(conn, "alice", "bob", "LATE", leads=())  # id 6, logged after it
    live.start()
    live.wait_ready()
    wait_until(lambda: logged_ids(log_dir) == [1, 2, 3, 4, 5, 6], what="id 6 logged")
    assert live.stop() == 0, live.stderr()
    for day_file in log_dir.glob("messages-2*.json"):  # then the day files
        shutil.copy2(day_file, copy / day_file.name)
    assert logged_ids(copy) == [1, 2, 3, 4, 5, 6]
    shown = tmp_path / "shown.json"
    with shown.open("wb") as out:
        search = subprocess.Popen(
            [*logger_command(), "search", "--log-dir", str(copy), "-f", "--json"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            ids = lambda: [json.loads(line)["id"] for line in shown.read_text().splitlines()]  # noqa: E731
            wait_until(lambda: 5 in ids(), what="search --follow showing ids 1..5")
            conn.execute("DELETE FROM messages WHERE id = 6")  # the server's newest row
            conn.commit()
            copied = LoggerProcess(server_db, copy, "--retention-days", "0").start()
            copied.wait_ready()
            wait_until(lambda: copied.stderr().count("removing") == 1, what="the cut back")
            assert copied.stop() == 0, copied.stderr()
            assert logged_ids(copy) == [1, 2, 3, 4, 5]
        finally:
            search.terminate()
            search.wait(timeout=60)
    assert ids() == [1, 2, 3, 4, 5], shown.read_text()


def follow(server_db: Path, log_dir: Path, want: list[int]) -> str:
    """Run the real logger on ``log_dir`` until it holds every id of ``want``; its stderr."""
    proc = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    try:
        proc.wait_ready()
        wait_until(lambda: set(want) <= set(logged_ids(log_dir)), what=f"{want} logged")
    finally:
        assert proc.stop() == 0, proc.stderr()
    return proc.stderr()


def days(conn: object, first: int, last: int, per_day: int, hour: int) -> None:
    for day in range(first, last + 1):
        for number in range(per_day):
            serverdb.send(
                conn,  # type: ignore[arg-type]
                "alice",
                "bob",
                f"m {day} {number}",
                leads=(),
                timestamp=f"2026-11-{day:02d}T{hour:02d}:{number:02d}:00",
            )


def export(server_db: Path, log_dir: Path) -> None:
    command = ["export", "--db", str(server_db), "--log-dir", str(log_dir)]
    done = subprocess.run(
        [*logger_command(), *command, "--retention-days", "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_a_copy_lacking_the_days_an_export_made_meanwhile_logs_them_again(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    """cp -a lists the directory, an export then logs the history into new (older) day
    files, and the state is copied after it: the copy's state records ids 1..6 in files
    the copy lacks. They were kept as logged ("days since pruned", below the files'
    first id) and never logged again, by the follower nor by another export."""
    conn = serverdb.connect(server_db)
    days(conn, 1, 2, 3, 9)  # history: ids 1..6, left out by the first start
    follow(server_db, log_dir, [])
    days(conn, 3, 4, 3, 9)  # ids 7..12
    follow(server_db, log_dir, list(range(7, 13)))
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    listing = sorted(log_dir.glob("messages-2*.json"))
    for day_file in listing:  # the day files listed, copied
        shutil.copy2(day_file, copy / day_file.name)
    export(server_db, log_dir)  # ids 1..6 into two new files
    for name in (STATE_NAME, ".dead-drop-logger.lock"):  # the state, copied last
        shutil.copy2(log_dir / name, copy / name)
    assert sorted(logged_ids(log_dir)) == list(range(1, 13))
    follow(server_db, copy, list(range(1, 13)))
    export(server_db, copy)
    assert sorted(logged_ids(copy)) == list(range(1, 13))


def test_a_copy_whose_yesterday_lacks_a_late_row_logs_it_again(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    """Copied across midnight: yesterday's file copied before a late row of yesterday
    was appended to it, today's file and the state after. The rebuilt state took the
    files' last id as its position, and the late row below it was never logged again."""
    conn = serverdb.connect(server_db)
    follow(server_db, log_dir, [])
    for number in range(3):
        serverdb.send(
            conn, "a", "b", f"y{number}", leads=(), timestamp=f"2026-11-01T23:59:5{number}"
        )
    follow(server_db, log_dir, [1, 2, 3])
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    yesterday = "messages-2026-11-01.json"
    shutil.copy2(log_dir / yesterday, copy / yesterday)  # cp reaches it first
    serverdb.send(conn, "a", "b", "late", leads=(), timestamp="2026-11-01T23:59:59.9")  # 4
    serverdb.send(conn, "a", "b", "N", leads=(), timestamp="2026-11-02T00:00:00.1")  # 5
    follow(server_db, log_dir, [1, 2, 3, 4, 5])
    for path in log_dir.iterdir():  # then the rest
        if path.name != yesterday and path.is_file() and not path.is_symlink():
            shutil.copy2(path, copy / path.name)
    follow(server_db, copy, [1, 2, 3, 4, 5])
    assert sorted(logged_ids(copy)) == [1, 2, 3, 4, 5]


def test_a_consistent_looking_copy_of_an_old_day_an_export_grew_writes_nothing_twice(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    """The state copied first; an export then appends the history to an old day file
    that has fallen out of the state's ``ends`` (8 files written since); the rest copied
    after. Each file the state records matches, so the copy passed as consistent, and an
    export there wrote the ids the old file already held again."""
    conn = serverdb.connect(server_db)
    days(conn, 1, 3, 3, 9)  # history: ids 1..9
    follow(server_db, log_dir, [])
    days(conn, 3, 12, 3, 15)  # afternoons of the 3rd..12th: ids 10..39, ten files
    follow(server_db, log_dir, list(range(10, 40)))
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    listing = [path for path in log_dir.iterdir() if path.name != STATE_NAME]
    shutil.copy2(log_dir / STATE_NAME, copy / STATE_NAME)  # the state first
    export(server_db, log_dir)  # ids 7..9 appended to the 3rd's file (1..6: new files)
    for path in listing:
        if not path.is_dir():
            shutil.copy2(path, copy / path.name, follow_symlinks=False)
    export(server_db, copy)
    follow(server_db, copy, list(range(1, 40)))
    got = logged_ids(copy)
    assert sorted(got) == list(range(1, 40)), doubled(got)


def test_a_copy_of_a_log_directory_pruned_since_does_not_log_the_pruned_days_again(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    """``prune`` (and the logger's own retention) deleted day files the state's ``ends``
    still named: a copy of the directory then looked like one that had missed those
    files, and its logger logged every pruned message again (back into the old days,
    for the next prune to delete again)."""
    conn = serverdb.connect(server_db)
    start = dt.date.today() - dt.timedelta(days=30)
    follow(server_db, log_dir, [])
    for offset in range(12):  # twelve days a month ago, three messages each: ids 1..36
        day = start + dt.timedelta(days=offset)
        for number in range(3):
            serverdb.send(
                conn,
                "alice",
                "bob",
                f"m {offset} {number}",
                leads=(),
                timestamp=f"{day.isoformat()}T12:0{number}:00",
            )
    follow(server_db, log_dir, list(range(1, 37)))
    pruned = subprocess.run(
        [*logger_command(), "prune", "--log-dir", str(log_dir), "--retention-days", "22"],
        capture_output=True,
        text=True,
    )
    assert pruned.returncode == 0, pruned.stderr
    kept = logged_ids(log_dir)
    assert kept and kept[0] > 1  # the oldest days are gone
    recorded = json.loads((log_dir / STATE_NAME).read_bytes())["ends"]
    assert all((log_dir / name).exists() for name in recorded), recorded
    copy = tmp_path / "copy"
    cp_a(log_dir, copy)
    stderr = follow(server_db, copy, kept)
    assert logged_ids(copy) == kept, stderr


def test_a_catch_up_that_logs_again_what_a_copy_lacks_goes_on_to_what_is_new(
    server_db: Path, log_dir: Path
) -> None:
    """A catch-up whose first page was a refill (ids a copy, or a file shortened in
    place, lacks) stopped there, that page being short, as if the backlog were drained:
    the newer messages waited for the server's next change (watching, forever if it
    was the last)."""
    first = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    (day,) = [path for path in log_dir.glob("messages-2*.json")]
    lines = day.read_bytes().splitlines(keepends=True)
    with open(day, "r+b") as fh:  # its last two lines cut off in place
        fh.truncate(sum(len(line) for line in lines[:-2]))
    more = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    again = make_pipeline(server_db, log_dir)
    with pytest.raises(FilesChanged):  # (the batch finds the file changed: ends unsaved)
        again.catch_up()
    again.catch_up()  # the retry: what the file lacks, then what is new
    assert logged_ids(log_dir) == first + more


class Killed(BaseException):
    """A stand-in for ``kill -9`` in the middle of a batch: nothing more runs."""


def test_a_refill_killed_between_its_two_saves_logs_its_page_again(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refill page (ids a copy lacks) took its ids out of ``refill`` before its
    pending save: killed after that save and before its lines were appended, the next
    start cut the (nothing) back and found them neither in ``refill`` nor logged, below
    the position: lost for good."""
    first = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    (day,) = [path for path in log_dir.glob("messages-2*.json")]
    lines = day.read_bytes().splitlines(keepends=True)
    with open(day, "r+b") as fh:  # its last two lines cut off in place
        fh.truncate(sum(len(line) for line in lines[:-2]))
    more = serverdb.send_many(server_db, 1, timestamp=MARCH_1)
    again = make_pipeline(server_db, log_dir)
    with pytest.raises(FilesChanged):  # the batch finds the file changed: checked as a copy
        again.catch_up()

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(again.writer, "append", killed)
    with pytest.raises(Killed):
        again.follow_once()
    monkeypatch.undo()
    assert json.loads((log_dir / STATE_NAME).read_bytes())["pending"]  # (mid-batch)
    make_pipeline(server_db, log_dir).catch_up()  # the next start
    assert logged_ids(log_dir) == first + more


@pytest.mark.parametrize("restarted", [False, True], ids=["", "after a restart"])
def test_a_day_file_restored_after_the_last_batch_is_checked_without_a_new_message(
    server_db: Path, log_dir: Path, tmp_path: Path, restarted: bool
) -> None:
    """A slow restore's last file written after the logger's last batch (the server
    quiet): an older copy of the day file over the live one, its state left alone. The
    messages it took away were missing until the server's next message, or for good
    when the day changed first (only a file appended to was checked)."""
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    first = serverdb.send_many(server_db, 5)
    wait_until(lambda: logged_ids(log_dir) == first, what="the first messages logged")
    backup = tmp_path / "backup"
    cp_a(log_dir, backup)
    more = serverdb.send_many(server_db, 5)
    wait_until(lambda: logged_ids(log_dir) == first + more, what="the next messages logged")
    if restarted:  # (a logger that has saved nothing yet: nothing new since it started)
        assert live.stop() == 0, live.stderr()
        live.start()
        live.wait_ready()
    (day,) = [path.name for path in backup.glob("messages-2*.json") if path.stat().st_size]
    time.sleep(1)  # (a while after the last batch)
    shutil.copy2(backup / day, log_dir / day)  # the restore's last file, over the live one
    try:
        wait_until(lambda: logged_ids(log_dir) == first + more, what="the lost ids logged again")
    finally:
        assert live.stop() == 0, live.stderr()
    assert "by nobody who recorded it" in live.stderr()


def test_a_copy_whose_state_and_one_file_predate_a_batch_into_a_new_file_loses_nothing(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    """The state and yesterday's file copied before a batch that appended late rows of
    yesterday and began today's file; today's file copied after it. The copy's newer
    file holds lines its state does not record, so its state was rebuilt from the
    files, at the files' last id: yesterday's late rows, below it and in no file, were
    lost for good (the same with ``--max-bytes``, a batch filling one part and
    beginning the next)."""
    conn = serverdb.connect(server_db)
    follow(server_db, log_dir, [])
    for number in range(3):  # ids 1..3, yesterday
        serverdb.send(
            conn, "a", "b", f"y{number}", leads=(), timestamp=f"2026-11-01T23:59:5{number}"
        )
    follow(server_db, log_dir, [1, 2, 3])
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    for path in log_dir.iterdir():  # cp reaches the state and yesterday's file first
        if path.is_file() and not path.is_symlink():
            shutil.copy2(path, copy / path.name)
    serverdb.send(conn, "a", "b", "late", leads=(), timestamp="2026-11-01T23:59:59.5")  # 4
    serverdb.send(conn, "a", "b", "late", leads=(), timestamp="2026-11-01T23:59:59.9")  # 5
    serverdb.send(conn, "a", "b", "N", leads=(), timestamp="2026-11-02T00:00:00.1")  # 6
    serverdb.send(conn, "a", "b", "N", leads=(), timestamp="2026-11-02T00:00:00.2")  # 7
    follow(server_db, log_dir, [1, 2, 3, 4, 5, 6, 7])  # one batch: both files
    today = "messages-2026-11-02.json"
    shutil.copy2(log_dir / today, copy / today)  # then today's, made since
    follow(server_db, copy, [1, 2, 3, 4, 5, 6, 7])
    assert logged_ids(copy) == [1, 2, 3, 4, 5, 6, 7]


def test_a_copy_holding_a_new_line_in_an_old_day_file_writes_it_once(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    """The state copied before a batch that appended a message dated long ago (a
    client's clock behind) to an old day file its ``ends`` no longer names (8 files
    written since); that file copied after. Every file ``ends`` names matched, so the
    copy passed as its state's, and the follower logged the message again after the
    position: twice."""
    conn = serverdb.connect(server_db)
    follow(server_db, log_dir, [])
    days(conn, 1, 10, 3, 15)  # ids 1..30, ten files
    follow(server_db, log_dir, list(range(1, 31)))
    copy = tmp_path / "copy"
    cp_a(log_dir, copy)  # the state and every file, before the batch
    serverdb.send(conn, "a", "b", "old", leads=(), timestamp="2026-11-01T16:00:00")  # 31
    follow(server_db, log_dir, list(range(1, 32)))
    old = "messages-2026-11-01.json"
    shutil.copy2(log_dir / old, copy / old)  # that file copied after it
    follow(server_db, copy, list(range(1, 32)))
    got = logged_ids(copy)
    assert got == list(range(1, 32)), doubled(got)


def test_ids_a_copy_lacks_are_not_taken_from_a_database_replaced_since(
    server_db: Path, log_dir: Path
) -> None:
    """A copy with ids to log again (``refill``) whose database was replaced (a server
    reset: ids from 1 again) before they were: the refill read the new database's rows
    under those ids, and the reset then logged the new database from its first row:
    those rows twice."""
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)  # ids 1..6
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    (day,) = [path for path in log_dir.glob("messages-2*.json")]
    lines = day.read_bytes().splitlines(keepends=True)
    with open(day, "r+b") as fh:  # its last two lines cut off in place
        fh.truncate(sum(len(line) for line in lines[:-2]))
    serverdb.send_many(server_db, 1, timestamp=MARCH_1)  # ids 7..8
    again = make_pipeline(server_db, log_dir)
    with pytest.raises(FilesChanged):  # checked as a copy at the next transaction
        again.catch_up()
    again.source.close()  # (reopened at its next read)
    for suffix in ("", "-wal", "-shm"):  # the server reset
        Path(f"{server_db}{suffix}").unlink(missing_ok=True)
    serverdb.create(server_db)
    serverdb.send_many(server_db, 5, prefix="reset", timestamp="2026-03-01T13:00:00")  # 1..10
    again.catch_up()
    new = sorted(line["id"] for line in log_lines(log_dir) if "reset" in str(line["content"]))
    assert new == list(range(1, 11))


def test_an_export_beside_the_follower_is_not_taken_for_a_restore(
    server_db: Path, log_dir: Path
) -> None:
    """An export appends history to old day files and saves the state; the follower's
    next save noted only the files it wrote itself, so a look a second later found the
    export's file changed since, with the state the follower's own: a restore, said in
    a warning, and the whole directory read as a copy's."""
    conn = serverdb.connect(server_db)
    days(conn, 1, 2, 3, 9)  # history: ids 1..6, left out by the first start
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    try:
        days(conn, 3, 3, 3, 9)  # ids 7..9: an old day's file (the 1st's made by the export)
        wait_until(lambda: logged_ids(log_dir) == [7, 8, 9], what="ids 7..9 logged")
        days(conn, 1, 1, 1, 23)  # id 10, late on the 1st: the export's file, appended to
        wait_until(lambda: logged_ids(log_dir) == [7, 8, 9, 10], what="id 10 logged")
        export(server_db, log_dir)  # ids 1..6 into the 1st's and 2nd's files
        serverdb.send(conn, "a", "b", "now", leads=())  # id 11: the follower saves
        wait_until(lambda: len(logged_ids(log_dir)) == 11, what="id 11 logged")
        time.sleep(2.5)  # (a quiet follower's looks, once a second)
        serverdb.send(conn, "a", "b", "now", leads=())  # id 12
        wait_until(lambda: len(logged_ids(log_dir)) == 12, what="id 12 logged")
        time.sleep(1.5)
    finally:
        assert live.stop() == 0, live.stderr()
    assert logged_ids(log_dir) == list(range(1, 13))
    assert "by nobody who recorded it" not in live.stderr(), live.stderr()
    assert "is a copy" not in live.stderr(), live.stderr()


@pytest.mark.parametrize("hold", [False, True], ids=["own transactions", "held"])
@pytest.mark.parametrize("when", ["before", "during", "after"])
def test_a_day_file_restored_over_the_live_one_during_an_append_loses_nothing(
    server_db: Path,
    log_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
    hold: bool,
) -> None:
    """A restore copied over the directory (``cp``, rsync: each file truncated and
    written again in place) writes the day file at the moment the logger appends to
    it: after the check of what the file holds and before the lines go in, or after
    they went in and before the state records them, or between two of the restore's
    writes (the batch's first line then torn by the restore's last). Before: the
    batch's lines landed after the backup's older lines, so the file ended with the
    line the state then recorded, and every later check passed; the lines the logger
    had written since the backup (recorded as logged) were gone for good. During: the
    same, and a fragment of a line left in the file. After, with no next batch: the
    state's save noted the restored file as its own, and nothing looked at it again
    (seen in 1 run in 5 of the slow restore over a busy logger, a faster write path)."""
    ticks = [0.0]
    pipeline = make_pipeline(server_db, log_dir, ticks=lambda: ticks[0])
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up(hold=hold)
    pipeline.commits.release()
    (day,) = log_dir.glob("messages-2*.json")
    backup = tmp_path / day.name
    shutil.copy2(day, backup)  # the backup: the day file as it was then
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)  # logged since: the backup lacks them
    pipeline.catch_up(hold=hold)
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    real = pipeline.writer.append

    def restored_meanwhile(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(pipeline.writer, "append", real)  # (once)
        if when == "before":
            shutil.copy2(backup, day)  # truncated and written again, in place
        if when == "during":  # the append between two writes of the restore's
            older = backup.read_bytes()
            with open(day, "r+b", buffering=0) as restore:
                restore.truncate(0)
                restore.write(older[:-10])
                real(*args, **kwargs)  # (at the end: after the restore's first write)
                restore.write(older[-10:])  # at its own offset: over the batch's first line
            return
        real(*args, **kwargs)
        if when == "after":
            shutil.copy2(backup, day)

    monkeypatch.setattr(pipeline.writer, "append", restored_meanwhile)
    for _ in range(5):  # (a batch that finds the file changed ends there, unsaved)
        try:
            pipeline.catch_up(hold=hold)
            pipeline.commits.release()
        except FilesChanged:
            continue
        ticks[0] += 10  # (a quiet follower's look, a while later)
        if not pipeline.written_by_another():
            break
    want = serverdb.all_ids(server_db)
    got = logged_ids(log_dir)
    assert got == want, (sorted(set(want) - set(got)), doubled(got))


def test_a_day_file_emptied_just_before_an_append_is_a_rotation_not_a_restore(
    server_db: Path,
    log_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """logrotate's ``copytruncate`` between the check of the file's end and the append:
    the batch's lines land at byte 0, not where the file ended. That is not a restore
    (nobody writes over them): its lines stay logged where the rotation put them, and
    are not logged again."""
    pipeline = make_pipeline(server_db, log_dir)
    first = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up(hold=True)
    more = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    (day,) = log_dir.glob("messages-2*.json")
    real = pipeline.writer.append

    def copytruncate(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(pipeline.writer, "append", real)
        shutil.copy2(day, tmp_path / f"{day.name}.1")
        with open(day, "r+b") as fh:
            fh.truncate(0)
        real(*args, **kwargs)

    monkeypatch.setattr(pipeline.writer, "append", copytruncate)
    pipeline.catch_up(hold=True)
    pipeline.commits.release()
    newer = serverdb.send_many(server_db, 1, timestamp=MARCH_1)
    pipeline.catch_up()
    assert logged_ids(log_dir) == more + newer
    rotated = [
        json.loads(line)["id"] for line in (tmp_path / f"{day.name}.1").read_text().splitlines()
    ]
    assert rotated == first
    assert "emptied or made anew while a batch was appended" in caplog.text
