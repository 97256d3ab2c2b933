"""Log side: writes that fail, files that vanish, a lost state, an impossible log dir."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest
import serverdb
from conftest import age_decrypt, age_identity, day_files, logged_ids, logger_command, wait_until
from encryptvariants import is_sealed
from faultkit import (
    assert_clean,
    assert_exactly_once,
    count,
    injected,
    needs_strace,
    paused_outside,
    reaped,
    retries,
    state,
    strace_wrapper,
    traced_pid,
    wait_all_logged,
    wait_stderr,
)
from procs import process_alive

from dead_drop_logger.logdir.state import StateStore

pytestmark = pytest.mark.both_ways  # with change notifications and --no-watch


def noon(day: dt.date) -> str:
    """A timestamp on ``day``. Sends stamped with it go to ``day_file(day)`` whenever they
    are logged; the server's own "now" stamps would move on to the next file at midnight.
    """
    return f"{day.isoformat()}T12:00:00"


def day_file(log_dir: Path, day: dt.date) -> Path:
    return log_dir / f"messages-{day.isoformat()}.json"


def deleted(path: Path) -> bool:
    """One attempt at ``rm -r path``; whether it is gone."""
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
    return not path.exists()


def ids_in(path: Path) -> list[int]:
    """Ids of the whole lines of one file (a line being appended is not one yet); of
    a sealed segment (``.age``, or renamed from one), its lines decrypted."""
    raw = path.read_bytes() if path.exists() else b""
    if raw.startswith(b"age-encryption.org/"):
        raw = age_decrypt(path)
    return [json.loads(line)["id"] for line in raw.split(b"\n")[:-1]]


@needs_strace
@pytest.mark.parametrize(
    ("target", "rule", "says"),
    [
        ("day", "inject=write:error=ENOSPC", "disk full"),
        ("day", "inject=fsync:error=ENOSPC", "disk full"),  # the data is in: cut it back
        ("day", "inject=write:error=EFBIG", "file too large"),
        ("day", "inject=openat:error=EACCES", "Permission denied"),
        # the batch's lines are appended, then saving the new position fails
        # (state writes: 1 at start, 2 before the batch, 3 after it)
        ("state", "inject=write:error=ENOSPC:when=3+", "No space left on device"),
    ],
    ids=["write-ENOSPC", "fsync-ENOSPC", "write-EFBIG", "open-EACCES", "state-ENOSPC"],
)
def test_failed_writes_hold_the_position_and_catch_up_when_cleared(
    server_db: Path,
    log_dir: Path,
    logger,
    tmp_path: Path,
    target: str,
    rule: str,
    says: str,
    encryption: str,
) -> None:
    """Sealed (docs/encryption.md), the day's file is its first segment's temporary
    file (the ciphertext: no plaintext is ever written), and a state save that fails
    has the segment removed (its lines are read again)."""
    today = dt.date.today()  # the day of the messages, and so of their file
    day = day_file(log_dir, today)
    if is_sealed(encryption):
        day = log_dir / f".messages-{today.isoformat()}.000001.json.age.tmp"
    faulty = day if target == "day" else log_dir / ".dead-drop-logger.state.tmp"
    trace = tmp_path / "strace.log"
    with reaped() as pids:
        proc = logger("--log-level", "debug", wrapper=strace_wrapper(trace, rule, path=faulty))
        proc.start()
        pids.add(pid := traced_pid(proc))
        proc.wait_ready()
        serverdb.send_many(server_db, 20, timestamp=noon(today))
        wait_until(
            lambda: retries(proc.stderr()) >= 3 and injected(trace) >= 3,
            what="several failed attempts",
        )
        assert state(log_dir)["position"] == 0  # nothing committed, nothing skipped
        wait_until(
            lambda: not uncommitted(log_dir, day, is_sealed(encryption)), what="no partial line"
        )

        proc.stop()  # strace detaches: the disk has room again
        wait_all_logged(log_dir, server_db)
        # said just after the batch's position is saved, a moment after its lines land
        wait_stderr(proc, "recovered; logging again")
        assert process_alive(pid)
        stderr = proc.stderr()
        # once by the writer; the rotator (today's file, the symlink) may say it once too
        assert count(stderr, says) - count(stderr, f"rotation: {says}") == 1, stderr
        assert count(stderr, f"rotation: {says}") <= 1, stderr
        assert count(stderr, "recovered; logging again") == 1, stderr
        if target == "state":  # the appended batch was cut back off the day file
            cut = "removing uncommitted segment" if is_sealed(encryption) else "uncommitted bytes"
            assert count(stderr, cut) == 1, stderr
        # recorded at once, or (a transaction held for the next batch: see groupcommit)
        # at the release a gap later
        last = serverdb.all_ids(server_db)[-1]
        wait_until(lambda: state(log_dir)["position"] == last, what="the position saved")
    assert_exactly_once(log_dir, server_db)
    assert not list(log_dir.glob(".*.tmp"))  # no temporary file left behind


def uncommitted(log_dir: Path, day: Path, sealed: bool) -> bool:
    """Whether anything uncommitted is on disk: plain, bytes in the day file; sealed, a
    segment or a segment's temporary file."""
    if sealed:
        return bool(list(log_dir.glob("*.age")) or list(log_dir.glob(".*.age.tmp")))
    return day.exists() and day.stat().st_size > 0


def test_file_size_limit_short_write_is_cut_back_and_caught_up(
    server_db: Path, log_dir: Path, logger, encryption: str
) -> None:
    """RLIMIT_FSIZE: the kernel writes up to the limit (a real short write), then EFBIG.

    The logger must not die of SIGXFSZ, must cut the torn line off (sealed: remove the
    torn temporary segment, so that no segment is ever half an age file), and must log
    all once the limit is lifted.
    """
    limit = 64 * 1024  # above the 32 KB the database's -shm file needs

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    today = dt.date.today()
    day = day_file(log_dir, today)
    proc = logger(preexec=limited).start()
    proc.wait_ready()
    serverdb.send_many(server_db, 400, timestamp=noon(today))  # about 170 KB of lines
    # and a line over the limit alone: sealed, each segment is a file of its own, and
    # the 400 may be sealed in segments each under it
    conn = serverdb.connect(server_db)
    serverdb.send(conn, "juno", "vega", "z" * limit, timestamp=noon(today))
    conn.close()
    wait_stderr(proc, "file too large")

    def whole_lines_up_to_position() -> bool:
        if is_sealed(encryption):  # whole segments only (each decrypts), none torn
            ids = logged_ids(log_dir)
            whole = not list(log_dir.glob(".*.age.tmp"))
        else:
            raw = day.read_bytes()
            ids = ids_in(day)
            # Empty is whole too: the first batch alone may be over the limit.
            whole = raw == b"" or raw.endswith(b"\n")
        return whole and ids == list(range(1, state(log_dir)["position"] + 1))

    wait_until(whole_lines_up_to_position, what="only whole, committed lines in the file")
    assert all(path.stat().st_size <= limit for path in log_files(log_dir))
    assert proc.proc is not None and proc.proc.poll() is None  # SIGXFSZ did not kill it

    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    stderr = proc.stderr()
    assert count(stderr, "file too large") == 1, stderr
    assert_clean(stderr)
    assert_exactly_once(log_dir, server_db)


def log_files(log_dir: Path) -> list[Path]:
    """The message files: plain day files or sealed segments."""
    return day_files(log_dir, "messages-*.json*")


@pytest.mark.parametrize("how", ["deleted", "renamed"])
def test_day_file_deleted_or_renamed_is_created_afresh(
    server_db: Path, log_dir: Path, logger, how: str, encryption: str
) -> None:
    """Sealed, today's segments are what is deleted or renamed: the next are new files
    as ever, the lines of the renamed ones are neither lost nor logged again."""
    today = dt.date.today()
    proc = logger().start()
    proc.wait_ready()
    first = serverdb.send_many(server_db, 5, prefix="before", timestamp=noon(today))
    wait_until(lambda: logged_ids(log_dir) == first, what="the first messages")
    if is_sealed(encryption):
        pattern = f"messages-{today.isoformat()}.*.json.age"
        days = day_files(log_dir, pattern)  # the segments of the first messages
    else:
        pattern = day_file(log_dir, today).name
        days = [day_file(log_dir, today)]
    rotated = [day.with_name(day.name + ".1") for day in days]
    for day, moved in zip(days, rotated, strict=True):
        if how == "deleted":
            day.unlink()
        else:
            day.rename(moved)

    second = serverdb.send_many(server_db, 5, prefix="after", timestamp=noon(today))

    def ids_now() -> list[int]:
        return sorted(i for path in day_files(log_dir, pattern) for i in ids_in(path))

    wait_until(lambda: ids_now() == second, what="a fresh file with the new messages")
    assert proc.stop() == 0
    assert ids_now() == second
    assert sorted(i for moved in rotated for i in ids_in(moved)) == (
        [] if how == "deleted" else first
    )
    for path in day_files(log_dir, pattern):
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert_clean(proc.stderr())


@pytest.mark.parametrize("damage", ["missing", "empty", "corrupt", "truncated"])
def test_lost_or_corrupt_state_is_rebuilt_from_the_log_files(
    server_db: Path, log_dir: Path, logger, damage: str
) -> None:
    proc = logger().start()
    proc.wait_ready()
    serverdb.send_many(server_db, 10, prefix="before")
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0

    path = log_dir / ".dead-drop-logger.state"
    good = path.read_bytes()
    {
        "missing": path.unlink,
        "empty": lambda: path.write_bytes(b""),
        "corrupt": lambda: path.write_bytes(b"\x00\xffnot json at all"),
        "truncated": lambda: path.write_bytes(good[: len(good) // 2]),
    }[damage]()
    serverdb.send_many(server_db, 10, prefix="while stopped")

    again = logger().start()
    wait_all_logged(log_dir, server_db)
    serverdb.send_many(server_db, 5, prefix="after")
    wait_all_logged(log_dir, server_db)
    assert again.stop() == 0
    stderr = again.stderr()
    assert count(stderr, "rebuilt from 20 lines") == 1, stderr
    if damage != "missing":
        assert (log_dir / ".dead-drop-logger.state.corrupt").exists()
    assert_clean(stderr)
    assert_exactly_once(log_dir, server_db)


def test_state_gone_before_anything_was_logged_loses_nothing(
    server_db: Path, log_dir: Path, logger
) -> None:
    """No state and no log lines, but a logger started here: not a first start. It
    resumes where that first start began (the lock file keeps it), losing nothing and
    logging none of the history the first start left out."""
    history = serverdb.send_many(server_db, 3, prefix="history")
    proc = logger().start()
    proc.wait_ready()
    assert proc.stop() == 0
    (log_dir / ".dead-drop-logger.state").unlink()
    serverdb.send_many(server_db, 4, prefix="while stopped")

    again = logger().start()
    wait_all_logged(log_dir, server_db, after=history[-1])
    assert again.stop() == 0
    assert count(again.stderr(), f"resuming after id {history[-1]}, where it first started") == 1
    assert_exactly_once(log_dir, server_db, after=history[-1])


def test_recovery_counts_compressed_log_files(
    server_db: Path, log_dir: Path, logger, encryption: str
) -> None:
    """Sealed, the compressed files are ``.json.gz.age`` segments (gzipped, then sealed
    by Debian's age, as the logger seals a day old enough to compress): the state is
    rebuilt from them, decrypted with the logger's --identity."""
    today = dt.date.today()
    proc = logger().start()
    proc.wait_ready()
    first = serverdb.send_many(server_db, 5, timestamp=noon(today))
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    if is_sealed(encryption):
        for segment in day_files(log_dir, "messages-*.json.age"):
            packed = gzip.compress(age_decrypt(segment))
            target = segment.with_name(segment.name.replace(".json.age", ".json.gz.age"))
            recipient = age_identity()[1]
            subprocess.run(["age", "-r", recipient, "-o", str(target)], input=packed, check=True)
            segment.unlink()
        assert day_files(log_dir, "messages-*.json.gz.age")
    else:
        day = day_file(log_dir, today)
        day.with_name(day.name + ".gz").write_bytes(gzip.compress(day.read_bytes()))
        day.unlink()
    (log_dir / ".dead-drop-logger.state").unlink()
    serverdb.send_many(server_db, 5, prefix="later")

    again = logger().start()
    wait_all_logged(log_dir, server_db)
    assert again.stop() == 0
    assert count(again.stderr(), f"rebuilt from {len(first)} lines") == 1, again.stderr()
    assert_exactly_once(log_dir, server_db)


@pytest.mark.plain_only("the logger exits before a log is written: a sealed run is the same")
def test_impossible_log_dir_is_one_line_and_non_zero(server_db: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    if os.geteuid() == 0:  # root ignores permission bits; sysfs refuses even root
        unwritable = Path("/sys/dead-drop-logger-test/logs")
    else:
        (tmp_path / "locked").mkdir(mode=0o500)
        unwritable = tmp_path / "locked" / "logs"
    for what, path in [("through a regular file", blocker / "logs"), ("unwritable", unwritable)]:
        result = subprocess.run(
            [*logger_command(), "run", "--db", str(server_db), "--log-dir", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, (what, result.stderr)
        assert len(lines) == 1, (what, lines)
        assert lines[0].startswith("dead-drop-logger: error:") and str(path) in lines[0], lines
        assert_clean(result.stderr)

    # A regular file given as the log dir is a usage error, caught by click.
    result = subprocess.run(
        [*logger_command(), "run", "--db", str(server_db), "--log-dir", str(blocker)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (
        2,
        f"dead-drop-logger: error: invalid value for --log-dir: directory '{blocker}' is a file\n",
    )
    assert_clean(result.stderr)


def test_recovery_skips_hostile_lines_in_the_log_files(
    server_db: Path, log_dir: Path, logger, encryption: str
) -> None:
    """Sealed, the hostile lines are a segment's (sealed by Debian's age), which the
    rebuild skips as it skips a plain file's; a segment is never cut (written once)."""
    today = dt.date.today()
    proc = logger().start()
    proc.wait_ready()
    serverdb.send_many(server_db, 5, timestamp=noon(today))
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    lines = b'{"id": 1e999}\nnot json\n{"id": "x"}\n[1, 2]\n\xff\xfe\n{"id": 3'
    yesterday = today - dt.timedelta(days=1)  # within retention
    if is_sealed(encryption):
        hostile = log_dir / f"messages-{yesterday.isoformat()}.000001.json.age"
        subprocess.run(
            ["age", "-r", age_identity()[1], "-o", str(hostile)], input=lines, check=True
        )
        today_files = f"messages-{today.isoformat()}.*.json.age"
    else:
        hostile = day_file(log_dir, yesterday)
        hostile.write_bytes(lines)
        today_files = day_file(log_dir, today).name
    sealed_bytes = hostile.read_bytes()
    (log_dir / ".dead-drop-logger.state").unlink()
    serverdb.send_many(server_db, 5, prefix="later", timestamp=noon(today))

    def ids_today() -> list[int]:
        return sorted(i for path in day_files(log_dir, today_files) for i in ids_in(path))

    again = logger().start()
    want = serverdb.all_ids(server_db)
    wait_until(lambda: ids_today() == want, what="the later messages")
    assert again.stop() == 0
    if is_sealed(encryption):
        assert hostile.read_bytes() == sealed_bytes  # as it was
    else:
        assert hostile.read_bytes().endswith(b"[1, 2]\n\xff\xfe\n")  # the torn line is cut
    assert_clean(again.stderr())


def test_log_dir_deleted_while_running_waits_then_logs_everything_once(
    server_db: Path, log_dir: Path, logger
) -> None:
    proc = logger().start()
    proc.wait_ready()
    before = serverdb.send_many(server_db, 3, prefix="before")
    wait_all_logged(log_dir, server_db)

    def committed() -> bool:  # the lines land before the batch's closing state save
        saved = StateStore(log_dir).load()
        return saved is not None and saved.position == before[-1] and not saved.pending

    wait_until(committed, what="the last batch's position to be saved")
    # Deleted between two batches, all at once, as a user's rm -r is: a batch (even one
    # that finds nothing new) caught halfway would fail at another step than the next
    # one does, with another message, and could put a file back that rm -r then trips
    # over. Retried all the same: a directory is never promised to go in one attempt.
    with paused_outside(proc.pid, log_dir):
        wait_until(lambda: deleted(log_dir), what="the log dir to be deleted")
    serverdb.send_many(server_db, 2, prefix="while gone")
    gone = "No such file or directory"

    def said_gone(stderr: str) -> int:  # the rotator's own line (at a midnight) apart
        return count(stderr, gone) - count(stderr, f"rotation: {gone}")

    wait_until(lambda: said_gone(proc.stderr()), what="the logger to say the dir is gone")
    assert not log_dir.exists()  # not recreated behind the user's back

    log_dir.mkdir(mode=0o700)
    wait_all_logged(log_dir, server_db)  # the logs were deleted: all of it, once
    assert proc.stop() == 0
    stderr = proc.stderr()
    # One line for the whole outage however often it retried (the rotator, should
    # midnight fall in it, says its own once)
    assert said_gone(stderr) == 1, stderr
    assert count(stderr, f"rotation: {gone}") <= 1, stderr
    assert count(stderr, "logging the database from its first row") == 1, stderr
    assert_clean(stderr)
    assert_exactly_once(log_dir, server_db)
