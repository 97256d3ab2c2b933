"""Retention (--retention-days, --keep-files) and the ``prune`` command: what goes, what
stays, and that nothing but the logger's own old files is ever touched."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from conftest import FakeClock, logger_command, run_command

from dead_drop_logger.keep import housekeeping, retention
from dead_drop_logger.keep.prune import prune_log_dir
from dead_drop_logger.logdir import layout
from dead_drop_logger.logdir.state import State, StateStore

TODAY = dt.date(2026, 3, 31)


def make(log_dir: Path, *names: str) -> None:
    log_dir.mkdir(exist_ok=True)
    for name in names:
        (log_dir / name).write_bytes(b'{"id":1}\n')


def names(log_dir: Path) -> set[str]:
    return {p.name for p in log_dir.iterdir()}


FOREIGN = ("notes.txt", "messages-backup.json", "messages-2026-13-01.json", "other-2020-01-01.json")


def test_age_keeps_exactly_the_window_and_every_foreign_file(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    make(
        log_dir,
        "messages-2026-02-28.json",  # 31 days old: goes
        "messages-2026-02-28.1.json",  # its part: goes
        "messages-2026-02-27.json.gz",  # compressed: goes
        "messages-2026-03-01.json",  # 30 days old: stays
        "messages-2026-03-31.json",  # today
        "messages-2026-04-02.json",  # a future day (server clock ahead): stays
        *FOREIGN,
    )
    (log_dir / "old-dir").mkdir()
    os.symlink("messages-2026-02-28.json", log_dir / "messages-current.json")
    doomed = retention.select(log_dir, TODAY, retention_days=30)
    removed = retention.delete(log_dir, doomed)
    assert sorted(p.name for p in removed) == [
        "messages-2026-02-27.json.gz",
        "messages-2026-02-28.1.json",
        "messages-2026-02-28.json",
    ]
    assert names(log_dir) == {
        "messages-2026-03-01.json",
        "messages-2026-03-31.json",
        "messages-2026-04-02.json",
        "messages-current.json",
        "old-dir",
        *FOREIGN,
    }


def test_zero_keeps_everything_and_one_keeps_yesterday(tmp_path: Path) -> None:
    make(
        tmp_path, "messages-2000-01-01.json", "messages-2026-03-30.json", "messages-2026-03-29.json"
    )
    assert retention.select(tmp_path, TODAY, retention_days=0) == []
    assert [f.path.name for f in retention.select(tmp_path, TODAY, retention_days=1)] == [
        "messages-2000-01-01.json",
        "messages-2026-03-29.json",
    ]


def test_keep_files_keeps_the_newest_parts(tmp_path: Path) -> None:
    make(
        tmp_path,
        "messages-2026-03-29.json",
        "messages-2026-03-30.json",
        "messages-2026-03-31.json",
        "messages-2026-03-31.1.json",
        "messages-2026-03-31.2.json",
    )
    doomed = retention.select(tmp_path, TODAY, retention_days=0, keep_files=2)
    assert [f.path.name for f in doomed] == [
        "messages-2026-03-29.json",
        "messages-2026-03-30.json",
        "messages-2026-03-31.json",
    ]


def test_keep_files_counts_an_encrypted_days_segments_as_one(tmp_path: Path) -> None:
    """Sealed segments (one a minute or MiB) count by day: keep 2 keeps two days."""
    make(
        tmp_path,
        "messages-2026-03-29.000001.json.gz.age",
        "messages-2026-03-29.000002.json.gz.age",
        "messages-2026-03-30.000001.json.age",
        "messages-2026-03-30.000002.json.age",
        "messages-2026-03-30.000003.json.age",
        "messages-2026-03-31.000001.json.age",
        "messages-2026-03-31.000002.json.age",
        "tasks-2026-03-29.000001.json.age",
        "tasks-2026-03-31.000001.json.age",
        "tasks-2026-03-31.000002.json.age",
    )
    doomed = retention.select(tmp_path, TODAY, retention_days=0, keep_files=2)
    assert [f.path.name for f in doomed] == [
        "messages-2026-03-29.000001.json.gz.age",
        "messages-2026-03-29.000002.json.gz.age",
    ]
    doomed = retention.select(tmp_path, TODAY, retention_days=0, keep_files=1)
    assert sorted(f.path.name for f in doomed) == [
        "messages-2026-03-29.000001.json.gz.age",
        "messages-2026-03-29.000002.json.gz.age",
        "messages-2026-03-30.000001.json.age",
        "messages-2026-03-30.000002.json.age",
        "messages-2026-03-30.000003.json.age",
        "tasks-2026-03-29.000001.json.age",
    ]


def test_keep_files_never_takes_the_live_file_for_an_old_one(tmp_path: Path) -> None:
    # A message from a client whose clock is far ahead files itself under 2099.
    make(
        tmp_path,
        "messages-2026-03-30.json",
        "messages-2026-03-31.json",
        "messages-2026-03-31.1.json",
        "messages-2099-01-01.json",
    )
    doomed = retention.select(tmp_path, TODAY, retention_days=0, keep_files=1)
    assert [f.path.name for f in doomed] == [
        "messages-2026-03-30.json",
        "messages-2026-03-31.json",
    ]


def test_housekeeping_spares_a_file_a_crashed_batch_must_cut_back(tmp_path: Path) -> None:
    make(tmp_path, "messages-2026-01-01.json", "messages-2026-01-02.json")
    StateStore(tmp_path).save(State(pending={"messages-2026-01-01.json": (0, 0)}))
    outcome = housekeeping.run(tmp_path, TODAY, housekeeping.Policy(retention_days=30))
    assert [p.name for p in outcome.deleted] == ["messages-2026-01-02.json"]
    assert (tmp_path / "messages-2026-01-01.json").exists()


def prune_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*logger_command(), "prune", *args], capture_output=True, text=True, timeout=60
    )


def test_prune_command_lists_then_deletes(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    old = dt.date.today() - dt.timedelta(days=40)
    recent = dt.date.today() - dt.timedelta(days=3)
    make(
        log_dir,
        f"messages-{old}.json",
        f"messages-{old}.1.json.gz",
        f"messages-{recent}.json",
        *FOREIGN,
    )
    before = names(log_dir)

    dry = prune_cli("--log-dir", str(log_dir), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"would delete {log_dir / f'messages-{old}.json'}",
        f"would delete {log_dir / f'messages-{old}.1.json.gz'}",
    ]
    assert names(log_dir) == before  # a dry run changes nothing, not even a lock file

    kept_all = prune_cli("--log-dir", str(log_dir), "--retention-days", "0")
    assert kept_all.returncode == 0 and kept_all.stdout == ""

    real = prune_cli("--log-dir", str(log_dir))
    assert real.returncode == 0, real.stderr
    assert len(real.stdout.splitlines()) == 2 and "deleted 2 files" in real.stderr
    assert not (log_dir / f"messages-{old}.json").exists()
    assert (log_dir / f"messages-{recent}.json").exists()
    assert all((log_dir / name).exists() for name in FOREIGN)

    narrower = prune_cli("--log-dir", str(log_dir), "--retention-days", "2")
    assert narrower.stdout.strip() == f"deleted {log_dir / f'messages-{recent}.json'}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log-dir", "/nonexistent/logs"], "log directory /nonexistent/logs does not exist"),
        (["--retention-days", "-1"], "invalid value for --retention-days: -1 is not in the range"),
    ],
)
def test_prune_user_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = prune_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_prune_uses_injected_clock_and_utc(tmp_path: Path) -> None:
    make(tmp_path, "messages-2026-03-01.json")
    # 2026-03-31 23:30 at -05:00 is already 2026-04-01 in UTC: the file is 31 days old there
    late = FakeClock("2026-03-31T23:30:00", tz=dt.timezone(dt.timedelta(hours=-5)))
    thirty = housekeeping.Policy(retention_days=30)
    assert prune_log_dir(tmp_path, thirty, dry_run=True, clock=late).deleted == []
    assert prune_log_dir(tmp_path, thirty, utc=True, clock=late).deleted == [
        tmp_path / "messages-2026-03-01.json"
    ]
    assert layout.log_files(tmp_path) == []


def test_prune_covers_every_room(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    old = dt.date.today() - dt.timedelta(days=40)
    recent = dt.date.today() - dt.timedelta(days=3)
    for room in ("a", "b"):
        make(log_dir / room, f"messages-{old}.json", f"messages-{recent}.json")
        StateStore(log_dir / room).save(State())
        (log_dir / room / ".dead-drop-logger.lock").touch()
    make(log_dir / "not-a-room", f"messages-{old}.json")  # no logger ever wrote there
    real = prune_cli("--log-dir", str(log_dir))
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines() == [
        f"deleted {log_dir / 'a' / f'messages-{old}.json'}",
        f"deleted {log_dir / 'b' / f'messages-{old}.json'}",
    ]
    assert (log_dir / "not-a-room" / f"messages-{old}.json").exists()


def test_keep_files_counts_only_files_that_hold_messages(tmp_path: Path) -> None:
    """Today's empty file (made at start or midnight) is not one of the N: three days
    just imported under --keep-files 3 all stay."""
    make(
        tmp_path,
        "messages-2026-03-28.json",
        "messages-2026-03-29.json",
        "messages-2026-03-30.json",
    )
    (tmp_path / "messages-2026-03-31.json").touch()  # today's, no message yet
    assert retention.select(tmp_path, TODAY, retention_days=0, keep_files=3) == []
    doomed = retention.select(tmp_path, TODAY, retention_days=0, keep_files=2)
    assert [f.path.name for f in doomed] == ["messages-2026-03-28.json"]


def test_prune_reads_keep_files_and_compress_after_from_the_settings_file(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    """prune applies what run's housekeeping would: the settings file's keep_files and
    compress_after too, not only retention_days."""
    log_dir = tmp_path / "logs"
    days = [dt.date.today() - dt.timedelta(days=n) for n in (5, 4, 3, 2)]
    make(log_dir, *(f"messages-{day}.json" for day in days))
    settings = tmp_path / "config.toml"
    settings.write_text(f'log_dir = "{log_dir}"\nkeep_files = 3\ncompress_after = 3\n')
    env = {**home_env, "DEAD_DROP_CONFIG": str(settings)}

    dry = run_command("prune", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"would delete {log_dir / f'messages-{days[0]}.json'}",
        f"would compress {log_dir / f'messages-{days[1]}.json'}",
    ]
    real = run_command("prune", env=env)
    assert real.returncode == 0, real.stderr
    assert real.stderr == "deleted 1 files, compressed 1\n"
    assert sorted(p.name for p in log_dir.iterdir() if p.name.startswith("messages-")) == [
        f"messages-{days[1]}.json.gz",
        f"messages-{days[2]}.json",
        f"messages-{days[3]}.json",
    ]
