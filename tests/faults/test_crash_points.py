"""Crash points: SIGKILL at each of the logger's first write/fsync/rename/ftruncate calls.

strace kills the logger on entry to its K-th call of one system call, for each K in
turn, while a server-like writer keeps sending; every run restarts from what the
previous one left on disk. In the end every id is logged exactly once. Encrypted, the
same, then at each step of one sealed segment by itself, and of ``rekey``'s sealing
them again.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import signal
import subprocess
from pathlib import Path

import pytest
import serverdb
from conftest import (
    LoggerProcess,
    age_identity,
    agent_identity,
    agent_key_args,
    encrypted_args,
    log_lines,
    logger_command,
    start_writer,
    wait_until,
)
from faultkit import (
    assert_clean,
    assert_exactly_once,
    kill_pid,
    needs_strace,
    reaped,
    state,
    strace_wrapper,
    traced_pid,
    wait_all_logged,
)

from dead_drop_logger.keep.rekey import JOURNAL as REKEY_JOURNAL
from dead_drop_logger.logdir import layout
from dead_drop_logger.logdir.state import StateStore

# How many of each call to kill at: one batch makes 3 state writes + 1 data write,
# 7 fsyncs (file and directory), 2 renames; ftruncate runs when a batch is undone.
CRASH_POINTS = {"write": 7, "fsync": 9, "rename": 4, "ftruncate": 2}
# Encrypted, a batch's lines are one sealed segment: written to a temporary name,
# fsynced, linked into place, the temporary unlinked, the directory fsynced; a batch
# undone removes its segment (unlink) instead of cutting a file back.
SEALED_POINTS = {"write": 7, "fsync": 9, "rename": 4, "link": 3, "unlink": 4}


def position(log_dir: Path) -> int:
    try:
        return int(state(log_dir)["position"])
    except (FileNotFoundError, ValueError):
        return -1


def crashed_or_caught_up(proc: LoggerProcess, log_dir: Path, db: Path, where: str) -> bool:
    """Wait until the logger was killed (True) or has logged a few batches more (False)."""
    target = serverdb.all_ids(db)[-1] + 40  # the writer adds these while it runs
    assert proc.proc is not None
    popen = proc.proc
    wait_until(
        lambda: popen.poll() is not None or position(log_dir) >= target,
        what=f"the logger to die at {where} or to catch up",
    )
    return popen.poll() is not None


def said_pid_or_died(proc: LoggerProcess) -> bool:
    """Wait until the logger has said its pid (False) or has died (True)."""
    assert proc.proc is not None
    popen = proc.proc
    wait_until(
        lambda: popen.poll() is not None or "dead-drop-logger[" in proc.stderr(),
        what="the logger to say its pid or to die",
    )
    return popen.poll() is not None


@needs_strace
@pytest.mark.own_encryption("its 'encrypted' case is the sealed one, with its own points")
@pytest.mark.parametrize(
    "args",
    [[], ["--max-bytes", "4KB"], ["encrypted"], ["agent-keys"], ["encrypted", "agent-keys"]],
    ids=["plain-one-file", "plain-parts", "sealed", "plain-agent-keys", "sealed-agent-keys"],
)
def test_killed_at_every_early_write_fsync_rename_truncate(
    server_db: Path, log_dir: Path, logger, tmp_path: Path, args: list[str]
) -> None:
    points = CRASH_POINTS
    options = []
    if "encrypted" in args:  # sealed age segments, each line read back by Debian's age
        options, points = encrypted_args(), SEALED_POINTS
    if "agent-keys" in args:  # each content sealed to its agents (in plain day files, or
        options += agent_key_args()  # in sealed segments too)
    args = options or args
    serverdb.send_many(server_db, 2)  # so that there is a first id to aim for
    writer = start_writer(server_db, 100_000, interval=0.01)
    hit: set[tuple[str, int]] = set()  # the crash points the logger was killed at
    runs = 0
    try:
        with reaped() as pids:
            for call, most in points.items():
                for k in range(1, most + 1):
                    rule = f"inject={call}:signal=SIGKILL:when={k}"
                    wrapper = strace_wrapper(Path("/dev/null"), rule)
                    proc = logger(*args, wrapper=wrapper).start()
                    died = crashed_or_caught_up(proc, log_dir, server_db, f"{call} #{k}")
                    if not died:
                        # A first start's position is the database's end then, past the
                        # target when start-up is slow: killed right after saving it, the
                        # logger never says its pid. Alive, it has said it.
                        died = said_pid_or_died(proc)
                    if not died:
                        pids.add(pid := traced_pid(proc))
                        kill_pid(pid)  # never reached call #k: a plain kill -9 instead
                    else:
                        hit.add((call, k))
                    assert proc.proc is not None
                    proc.proc.wait(timeout=60)
                    runs += 1
                    assert_clean(proc.stderr())
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=60)

    print(f"{len(hit)} of {runs} runs killed by injection: {sorted(hit)}")
    # How many later calls a run reaches before it catches up depends on the machine (a
    # slow one logs the backlog in fewer, bigger batches). But the position on disk can
    # only pass the target through a state save (write, fsync, rename of .state.tmp), so
    # every run reaches its first write, fsync and rename: those kills must have hit.
    assert {("write", 1), ("fsync", 1), ("rename", 1)} <= hit, sorted(hit)
    if points is SEALED_POINTS:  # and, sealed, only a commit after a segment's link (and
        # the unlink of its temporary name) does: those kills must have hit too
        assert {("link", 1), ("unlink", 1)} <= hit, sorted(hit)
    last = logger(*args).start()
    last.wait_ready()
    # The first start that got as far as recording its position fixed where logging
    # begins (a run killed before that was no start at all); from there, every id once.
    first = StateStore(log_dir).first_start()
    assert first is not None
    wait_all_logged(log_dir, server_db, after=first)
    assert last.stop() == 0
    assert_clean(last.stderr())
    assert_exactly_once(log_dir, server_db, after=first)
    if "--encrypt-content-to-agents" in args:  # every content sealed, the escrow opens it
        lines = log_lines(log_dir)
        assert all(line["content_enc"] == "age" for line in lines)
        sealed = base64.b64decode(lines[-1]["content"])
        escrow = agent_identity("escrow")[0]
        done = subprocess.run(["age", "-d", "-i", str(escrow)], input=sealed, capture_output=True)
        assert done.returncode == 0 and done.stdout, done.stderr


# Each step of one sealed segment (crypt/segments.write_segment, record/sealed.py) with
# what a kill on entry to it leaves on disk: (call, the temporary name there, the
# segment there). The temporary file is made (openat), written, fsynced, linked into
# place, unlinked; the directory fsync after it leaves what the commit's state write
# does, which the early-call rounds above kill (SEALED_POINTS). The last step is the
# recovery of the start after: the killed batch's segment removed (unlink).
SEGMENT_STEPS = [
    ("write", True, False),  # the temporary file made, empty: no ciphertext yet
    ("fsync", True, False),  # written, not synced
    ("link", True, False),  # synced, not in place
    ("unlink", True, True),  # in place, the temporary name still there
    ("unlink", True, True),  # the next start removing that uncommitted segment
]


def next_segment(log_dir: Path, day: str) -> Path:
    """The name the next sealed segment of ``day`` gets (past the day's highest part)."""
    parts = [f.part for f in layout.log_files(log_dir) if f.day.isoformat() == day]
    return layout.segment_path(log_dir, day, max(parts, default=0) + 1)


@needs_strace
@pytest.mark.own_encryption("sealed by itself: each step of one segment")
def test_killed_at_each_step_of_a_sealed_segment(server_db: Path, log_dir: Path, logger) -> None:
    """SIGKILL on entry to each system call that writes a sealed segment, confined by
    strace to that segment's two names, while a writer keeps sending; after each kill
    the disk holds what that step leaves, and a plain restart logs on from it. In the
    end every id is logged exactly once."""
    serverdb.send_many(server_db, 2)
    day = dt.date.today().isoformat()  # the server stamps local time: today's segments
    writer = start_writer(server_db, 100_000, interval=0.01)

    def run_until_sealed() -> None:  # a plain run: starts, logs a segment more, stops
        segment = next_segment(log_dir, day)
        proc = logger(*encrypted_args()).start()
        proc.wait_ready()
        wait_until(segment.exists, what=f"{segment.name} to be sealed")
        assert proc.stop() == 0, proc.stderr()
        assert_clean(proc.stderr())

    try:
        run_until_sealed()  # the first start: where logging begins
        with reaped() as pids:
            segment = next_segment(log_dir, day)
            for call, temp_left, segment_left in SEGMENT_STEPS:
                temp = layout.segment_temp_path(segment)
                wrapper = strace_wrapper(Path("/dev/null"), f"inject={call}:signal=SIGKILL")
                wrapper[-1:-1] = ["-P", str(segment), "-P", str(temp)]
                proc = logger(*encrypted_args(), wrapper=wrapper).start()
                pids.add(traced_pid(proc))  # (killed on the way out if it outlives strace)
                assert proc.proc is not None
                died = proc.proc.wait(timeout=60)  # (strace dies of its tracee's signal)
                assert died == -signal.SIGKILL, (call, proc.stderr())
                assert_clean(proc.stderr())
                assert (temp.exists(), segment.exists()) == (temp_left, segment_left), call
                if not segment_left:  # (one left in place is the next round's to remove)
                    run_until_sealed()
                    segment = next_segment(log_dir, day)
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=60)

    last = logger(*encrypted_args()).start()
    last.wait_ready()
    first = StateStore(log_dir).first_start()
    assert first is not None
    wait_all_logged(log_dir, server_db, after=first)
    assert last.stop() == 0
    stderr = last.stderr()
    assert_clean(stderr)
    assert "removing uncommitted segment" in stderr, stderr  # the one left by the last kill
    assert_exactly_once(log_dir, server_db, after=first)
    assert not list(log_dir.glob(".*.tmp"))


def ids_sealed(log_dir: Path, *keys: Path) -> list[int]:
    """The ids of every segment, each decrypted by Debian's age with any of ``keys``
    (fails on a segment none of them opens: a torn or half-made file)."""
    found: list[int] = []
    for path in sorted(log_dir.glob("messages-*.json.age")):
        done = subprocess.run(
            ["age", "-d", *(arg for key in keys for arg in ("-i", str(key))), str(path)],
            capture_output=True,
        )
        assert done.returncode == 0, (path, done.stderr)
        found += [json.loads(line)["id"] for line in done.stdout.splitlines()]
    return sorted(found)


@needs_strace
@pytest.mark.own_encryption("sealed by itself: rekey's steps (crypt/segments.reencrypt)")
def test_killed_at_each_step_of_a_rekey(
    server_db: Path, log_dir: Path, logger, tmp_path: Path
) -> None:
    """``rekey`` seals each segment again (the new age file written beside it, fsynced,
    named in its journal, renamed over it, the directory fsynced): SIGKILL on entry to
    each of those calls leaves every segment whole, opened by the old key or the new
    one, every id once; run again with the same identity, it finishes the job (the
    journal says which segments it sealed already), and leaves no journal behind."""
    old_key = age_identity()[0]
    proc = logger(*encrypted_args()).start()
    proc.wait_ready()
    for batch in range(3):  # a segment each (at least)
        serverdb.send_many(server_db, 3, prefix=f"batch {batch}")
        wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    want = serverdb.all_ids(server_db)
    assert len(list(log_dir.glob("messages-*.json.age"))) >= 3
    new_key = tmp_path / "new-key.txt"
    subprocess.run(["age-keygen", "-o", str(new_key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(new_key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    rekey = [*logger_command(), "rekey", "--log-dir", str(log_dir), "--to", recipient]
    rekey_old = [*rekey, "--identity", str(old_key)]  # what was given first
    segments = sorted(log_dir.glob("messages-*.json.age"))
    confined = ["-P", str(log_dir)]  # (its fsync: the rename made durable)
    for path in segments:
        confined += ["-P", str(path), "-P", str(layout.segment_temp_path(path))]
    # Each round runs on what the last left (the journal kept): the new journal's
    # directory fsync; the first file's new age file written, then fsynced (the journal
    # there now: no fsync of its own), renamed over it (named in the journal, not in
    # place), the directory fsynced (the first done); then the second's rename, the
    # first skipped as the journal's: the old key alone could not open it.
    rounds = [("fsync", 1), ("write", 1), ("fsync", 1), ("rename", 1), ("fsync", 2),
              ("rename", 1)]  # fmt: skip
    for call, k in rounds:
        wrapper = strace_wrapper(Path("/dev/null"), f"inject={call}:signal=SIGKILL:when={k}")
        wrapper[-1:-1] = confined
        done = subprocess.run(wrapper + rekey_old, capture_output=True, text=True, timeout=60)
        assert done.returncode == -signal.SIGKILL, (call, k, done.stderr)
        assert_clean(done.stderr)
        assert ids_sealed(log_dir, old_key, new_key) == want, (call, k)
        assert (log_dir / REKEY_JOURNAL).exists()
    done = subprocess.run(rekey_old, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ids_sealed(log_dir, new_key) == want  # every segment: the new key's only
    assert not list(log_dir.glob(".*.tmp")) and not (log_dir / REKEY_JOURNAL).exists()
    # a rekey to yet other recipients cannot open what the first sealed: it says what to do
    other = [*logger_command(), "rekey", "--log-dir", str(log_dir), "--to", age_identity()[1]]
    stuck = subprocess.run([*other, "--identity", str(old_key)], capture_output=True, text=True)
    assert stuck.returncode != 0 and "holds their identity too" in stuck.stderr, stuck.stderr
    assert_clean(stuck.stderr)
