"""``stats`` and ``report`` on bad input: one line on stderr, exit codes as ``search``
(1: no message in range, 2: an error), never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_command

from dead_drop_logger.control.cli import cli

WHEN_EXAMPLES = "2026-02-20, 2026-02-20T10:30, '2026-02-20 10:30:15', 90s, 15m, 2h, 3d, 1w, today"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def one_message(tmp_path: Path) -> Path:
    """A log directory holding one message (as the logger writes it)."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "messages-2026-02-20.json").write_text(
        '{"id":1,"from_agent":"juno","to_agent":"vega","content":"hi",'
        '"timestamp":"2026-02-20T10:00:00","read_flag":0,"is_cc":0,"cc_original_to":null,'
        '"task_id":null,"reply_to":null}\n'
    )
    return log_dir


@pytest.mark.parametrize("command", ["stats", "report"])
def test_empty_directory_is_no_messages_exit_1(command: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    extra = ["-o", str(out)] if command == "report" else []
    code, stdout, stderr = invoke(command, "--log-dir", str(tmp_path), *extra)
    assert (code, stdout) == (1, "")
    assert stderr == f"dead-drop-logger: no messages in {tmp_path}\n"
    assert not out.exists()


def test_no_message_in_range_exit_1(one_message: Path) -> None:
    code, stdout, stderr = invoke("stats", "--log-dir", str(one_message), "--since", "2026-02-21")
    assert (code, stdout) == (1, "")
    assert stderr == f"dead-drop-logger: no messages in {one_message} in that range\n"


def test_missing_directory_exit_2(tmp_path: Path) -> None:
    code, _, stderr = invoke("stats", "--log-dir", str(tmp_path / "nope"))
    assert code == 2
    assert stderr == f"dead-drop-logger: error: log directory {tmp_path / 'nope'} does not exist\n"


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_bad_date_exit_2(one_message: Path, option: str) -> None:
    code, stdout, stderr = invoke("stats", "--log-dir", str(one_message), option, "2026-13-01")
    assert (code, stdout) == (2, "")
    assert stderr == (
        f"dead-drop-logger: error: {option}: '2026-13-01' is not a date or time"
        f" (examples: {WHEN_EXAMPLES})\n"
    )


@pytest.mark.parametrize("target", ["missing/r.html", "a-directory"])
def test_unwritable_output_exit_2(one_message: Path, tmp_path: Path, target: str) -> None:
    (tmp_path / "a-directory").mkdir()
    out = tmp_path / target
    code, stdout, stderr = invoke("report", "--log-dir", str(one_message), "-o", str(out))
    assert (code, stdout) == (2, "")
    reason = "Is a directory" if target == "a-directory" else "No such file or directory"
    assert stderr == f"dead-drop-logger: error: cannot write {out}: {reason}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-directory", "logs"]  # no temp


def test_real_process_bad_input_has_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    for args in (
        ["stats", "--log-dir", str(tmp_path), "--since", "soon"],
        ["stats", "--log-dir", str(tmp_path)],
        ["report", "--log-dir", str(tmp_path), "-o", str(tmp_path / "x" / "r.html")],
    ):
        done = run_command(*args, env=env)
        assert done.returncode in (1, 2), (args, done)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


def test_help_defines_response_time_with_an_example() -> None:
    for command in ("stats", "report"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        text = " ".join(result.output.split())
        assert "B's next direct message to A" in text
        assert "B answered #1 in 7m 00s and #2 in 15m 00s" in text
    assert (
        "  dead-drop-logger stats --since 1w\n" in CliRunner().invoke(cli, ["stats", "-h"]).output
    )
