"""``search`` on logs the real logger wrote (gzipped days, size parts, hostile content):
the fast path against the exact one, every filter and output form through the real
command line (click's runner), and exit codes."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import HostileLogs, log_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dead_drop_logger.control.cli import cli
from dead_drop_logger.read.logread import EVERYTHING, Reader, Window
from dead_drop_logger.read.search import Filters, Search

JQ = shutil.which("jq")


def ids(entries: Any) -> list[int]:
    return [entry.message["id"] for entry in entries]


def both_paths(log_dir: Path, filters: Filters, window: Window = EVERYTHING) -> list[int]:
    """The fast path's ids, after checking the exact path gives the very same lines."""
    fast = list(Search(Reader.of(log_dir, window), filters).run())
    exact = list(Search(Reader.of(log_dir, window), filters, exact=True).run())
    assert [e.line.raw for e in fast] == [e.line.raw for e in exact]
    return ids(fast)


def reference(log_dir: Path, keep: Any) -> list[int]:
    """Ids of the messages ``keep`` accepts, from the files read the plain way."""
    return sorted(m["id"] for m in log_lines(log_dir) if keep(m))


def content(m: dict[str, Any]) -> str:
    value = m.get("content")
    return value if isinstance(value, str) else ""


CASES = [
    (Filters(senders=("juno",)), lambda m: m["from_agent"] == "juno"),
    (Filters(senders=("juno", "vega")), lambda m: m["from_agent"] in ("juno", "vega")),
    (Filters(recipients=("juno",)), lambda m: m["to_agent"] == "juno"),
    (Filters(agents=("jünö",)), lambda m: "jünö" in (m["from_agent"], m["to_agent"])),
    (Filters(agents=("名前",)), lambda m: "名前" in (m["from_agent"], m["to_agent"])),
    (Filters(recipients=("all",)), lambda m: m["to_agent"] == "all"),
    (Filters(task="juno"), lambda m: m["task_id"] == "juno"),
    (Filters(task="T-1"), lambda m: m["task_id"] == "T-1"),
    (Filters(no_cc=True), lambda m: m["is_cc"] == 0),
    (
        Filters(senders=("juno",), contains=("deploy merge",)),
        lambda m: m["from_agent"] == "juno" and "deploy merge" in content(m),
    ),
    (Filters(contains=('"deploy merge"',)), lambda m: '"deploy merge"' in content(m)),
    (Filters(contains=("\\ back / slash",)), lambda m: "\\ back / slash" in content(m)),
    (Filters(contains=('"from_agent":"juno"',)), lambda m: '"from_agent":"juno"' in content(m)),
    (Filters(contains=("sep\u2028and\u2029",)), lambda m: "sep\u2028and\u2029" in content(m)),
    (Filters(contains=("merge\ufffd",)), lambda m: "merge\ufffd" in content(m)),
    (Filters(contains=("line1\nline2\t",)), lambda m: "line1\nline2\t" in content(m)),
    (Filters(contains=("\x01",)), lambda m: "\x01" in content(m)),
    (Filters(contains=("\\u2028",)), lambda m: "\\u2028" in content(m)),
    (Filters(contains=("ZGVwbG95",)), lambda m: False),  # the BLOB's base64 is not text
    (Filters(contains=("café", "ünï")), lambda m: "café" in content(m) and "ünï" in content(m)),
    (
        Filters(contains=("deploy merge",), ignore_case=True),
        lambda m: "deploy merge" in content(m).casefold(),
    ),
    (
        Filters(regex=re.compile(r"^deploy merge\b")),
        lambda m: re.search(r"^deploy merge\b", content(m)) is not None,
    ),
    (Filters(senders=("\ud800",)), lambda m: False),  # cannot be encoded, cannot match
]


@pytest.mark.parametrize(("filters", "keep"), CASES)
def test_fast_and_exact_paths_agree_with_the_reference(
    hostile_logs: HostileLogs, filters: Filters, keep: Any
) -> None:
    found = both_paths(hostile_logs.log_dir, filters)
    assert sorted(found) == reference(hostile_logs.log_dir, keep)


def test_the_cases_are_not_vacuous(hostile_logs: HostileLogs) -> None:
    empty = [f for f, keep in CASES if not reference(hostile_logs.log_dir, keep)]
    assert len(empty) == 2  # only the two that can never match


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_piece_of_any_field_is_found_alike(hostile_logs: HostileLogs, data: Any) -> None:
    """Needles cut from the real contents and names, so they carry every escape."""
    messages = [m for m in log_lines(hostile_logs.log_dir) if content(m)]
    message = data.draw(st.sampled_from(messages))
    text = content(message)
    start = data.draw(st.integers(0, len(text) - 1))
    needle = text[start : data.draw(st.integers(start + 1, len(text)))]
    name = message[data.draw(st.sampled_from(["from_agent", "to_agent"]))]
    filters = Filters(contains=(needle,), agents=(name,) if data.draw(st.booleans()) else ())
    found = both_paths(hostile_logs.log_dir, filters)
    assert sorted(found) == reference(
        hostile_logs.log_dir,
        lambda m: (
            needle in content(m)
            and (not filters.agents or name in (m["from_agent"], m["to_agent"]))
        ),
    )
    assert found


def test_a_window_compares_each_timestamp(hostile_logs: HostileLogs) -> None:
    window = Window(dt.datetime(2026, 2, 17, 23, 59, 59), dt.datetime(2026, 2, 20, 0, 0))
    found = both_paths(hostile_logs.log_dir, Filters(contains=("deploy merge",)), window)
    assert sorted(found) == reference(
        hostile_logs.log_dir,
        lambda m: (
            "deploy merge" in content(m) and "2026-02-17T23:59:59" <= m["timestamp"] < "2026-02-20"
        ),
    )


# -- the command line ------------------------------------------------------------------


def run(log_dir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    runner = CliRunner()
    return runner.invoke(cli, ["search", "--log-dir", str(log_dir), *args], env=env)


def stored(log_dir: Path, wanted: list[int]) -> bytes:
    """The stored lines of ``wanted`` ids, in that order, byte for byte."""
    by_id = {}
    for path in sorted(log_dir.glob("messages-*.json*")):
        if path.is_symlink():
            continue

        raw = path.read_bytes()
        for line in (gzip.decompress(raw) if path.suffix == ".gz" else raw).splitlines(True):
            by_id[json.loads(line)["id"]] = line
    return b"".join(by_id[i] for i in wanted)


def test_text_format(hostile_logs: HostileLogs) -> None:
    result = run(hostile_logs.log_dir, "--agent", "jünö", "--no-cc")
    assert result.exit_code == 0, result.output
    ident = hostile_logs.ids["unicode"]
    assert result.output == (
        f"2026-02-18 12:00:00  jünö → 名前  #{ident}\n    café deploy merge ünïcödé\n\n"
    )
    result = run(hostile_logs.log_dir, "--task", "T-1", "--to", "lead")
    root, done = hostile_logs.ids["root"], hostile_logs.ids["done"]
    assert result.output == (
        f"2026-02-17 09:00:00  juno → lead  #{root + 1}  task T-1  cc of → vega\n"
        "    deploy merge started\n\n"
        f"2026-02-20 00:00:00  juno → lead  #{done + 1}  task T-1  re #{root}  cc of → vega\n"
        "    deploy merge done\n\n"
    )
    result = run(hostile_logs.log_dir, "--from", "juno", "--to", "orion", "--contains", "line1")
    assert result.output.splitlines()[1:4] == [
        "    line1",
        "    line2\ttab \\u0001 ctrl",
        "",
    ]
    result = run(hostile_logs.log_dir, "--to", "vega", "--contains", "ZGVw", "--no-cc")
    assert result.exit_code == 1 and result.output == ""


def test_binary_content_is_described_not_dumped(hostile_logs: HostileLogs) -> None:
    result = run(hostile_logs.log_dir, "--regex", "", "--from", "juno", "--since", "2026-02-19")
    assert "[binary content" not in result.output  # --regex needs text content
    result = run(
        hostile_logs.log_dir, "--from", "juno", "--since", "2026-02-19T08:00", "--limit", "1"
    )
    assert result.output.splitlines()[1] == "    [binary content, 12 bytes]"


def test_json_prints_the_stored_lines(hostile_logs: HostileLogs) -> None:
    result = run(hostile_logs.log_dir, "--contains", "deploy merge", "--json")
    expected = reference(hostile_logs.log_dir, lambda m: "deploy merge" in content(m))
    assert result.stdout_bytes == stored(hostile_logs.log_dir, expected)


def test_count_limit_and_reverse(hostile_logs: HostileLogs) -> None:
    log_dir = hostile_logs.log_dir
    everything = sorted(m["id"] for m in log_lines(log_dir))
    result = run(log_dir, "--count")
    assert result.output == f"{len(everything)}\n"
    juno = reference(log_dir, lambda m: m["from_agent"] == "juno")
    assert run(log_dir, "--from", "juno", "--count").output == f"{len(juno)}\n"
    assert run(log_dir, "--from", "juno", "--count", "--limit", "3").output == "3\n"
    first = run(log_dir, "--from", "juno", "--json", "--limit", "3")
    assert first.stdout_bytes == stored(log_dir, juno[:3])
    newest = run(log_dir, "--from", "juno", "--json", "--reverse", "--limit", "3")
    assert newest.stdout_bytes == stored(log_dir, juno[::-1][:3])
    backwards = run(log_dir, "--from", "juno", "--json", "--reverse")
    assert backwards.stdout_bytes == stored(log_dir, juno[::-1])
    assert run(log_dir, "--count", "--reverse", "--from", "juno").output == f"{len(juno)}\n"


def test_since_and_until_forms(hostile_logs: HostileLogs) -> None:
    log_dir = hostile_logs.log_dir
    one_day = reference(log_dir, lambda m: m["timestamp"].startswith("2026-02-18"))
    for since, until in [
        ("2026-02-18", "2026-02-19"),
        ("2026-02-18T00:00", "2026-02-19 00:00:00"),
    ]:
        result = run(log_dir, "--since", since, "--until", until, "--json")
        assert result.stdout_bytes == stored(log_dir, one_day)
    late = run(log_dir, "--since", "2026-02-20 23:30:00", "--json")
    assert late.stdout_bytes == stored(
        log_dir, reference(log_dir, lambda m: m["timestamp"] == "2026-02-20 23:30:00")
    )
    # the undated message is in today's file; "1w" reaches it by file name, not by time
    assert run(log_dir, "--since", "1w", "--count").output == "0\n"
    assert run(log_dir, "--until", "2026-02-17", "--count").exit_code == 1


def test_utc_files_are_read_a_day_either_side(hostile_logs: HostileLogs) -> None:
    result = run(hostile_logs.log_dir, "--since", "2026-02-19", "--until", "2026-02-20", "--utc")
    plain = run(hostile_logs.log_dir, "--since", "2026-02-19", "--until", "2026-02-20")
    assert result.output == plain.output and result.exit_code == 0


def test_exit_codes_and_errors(hostile_logs: HostileLogs, tmp_path: Path) -> None:
    log_dir = hostile_logs.log_dir
    assert run(log_dir, "--from", "nobody").exit_code == 1
    for args, message in [
        (["--since", "soon"], "--since: 'soon' is not a date or time"),
        (["--until", "soon"], "--until: 'soon' is not a date or time"),
        (
            ["--since", "2026-02-20", "--until", "2026-02-10"],
            "--since 2026-02-20 is not before --until 2026-02-10: no message can be in that"
            " range\n",
        ),
        (["--count", "--json"], "--count cannot be combined with --json (it prints one number)\n"),
        (["--regex", "("], "--regex '(': missing ), unterminated subpattern"),
        (["--follow", "--count"], "--follow cannot be combined with --reverse or --count"),
    ]:
        result = run(log_dir, *args)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"dead-drop-logger: error: {message}")
        assert len(result.stderr.splitlines()) == 1
    missing = run(tmp_path / "nowhere")
    assert missing.exit_code == 2
    assert (
        missing.stderr == f"dead-drop-logger: error: log directory {tmp_path / 'nowhere'}"
        " does not exist\n"
    )


def test_corrupt_lines_are_one_warning(hostile_logs: HostileLogs, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    shutil.copytree(hostile_logs.log_dir, log_dir, symlinks=True)
    with open(log_dir / "messages-2026-02-20.json", "ab") as out:
        out.write(b'{"id": 5000, "from_agent": "juno", "content": "deploy mer\n\x00junk\n')
    day = log_dir / "messages-2026-02-20.json"
    result = run(log_dir, "--contains", "deploy mer", "--count")
    assert result.exit_code == 0
    assert result.stderr == f"dead-drop-logger: warning: skipped 1 corrupt lines: 1 in {day}\n"
    result = run(log_dir, "--count")
    assert result.stderr == f"dead-drop-logger: warning: skipped 2 corrupt lines: 2 in {day}\n"


def test_a_damaged_gzip_is_read_up_to_the_damage(hostile_logs: HostileLogs, tmp_path: Path) -> None:
    """A .json.gz cut short: its whole lines before the cut and every other file are
    still read, and one warning names the file; stats and agents too."""
    log_dir = tmp_path / "logs"
    shutil.copytree(hostile_logs.log_dir, log_dir, symlinks=True)
    packed = sorted(log_dir.glob("messages-*.json.gz"))[0]
    raw = packed.read_bytes()
    inside = gzip.decompress(raw)
    packed.write_bytes(raw[: len(raw) * 2 // 3])
    every = int(run(hostile_logs.log_dir, "--count").output)
    result = run(log_dir, "--count")
    assert result.exit_code == 0
    kept = every - int(result.stdout)
    assert 0 < kept < inside.count(b"\n")  # only the damaged file's tail is lost
    assert result.stderr.startswith(f"dead-drop-logger: warning: {packed} is damaged (")
    assert result.stderr.endswith("): read up to the damage\n")
    assert len(result.stderr.splitlines()) == 1
    for command in (["stats", "--json"], ["agents"], ["search", "--reverse"], ["thread", "1"]):
        done = CliRunner().invoke(cli, [*command, "--log-dir", str(log_dir)])
        assert done.exit_code == 0, (command, done.stderr)
        assert f"{packed} is damaged" in done.stderr


def test_colour_only_on_a_terminal_and_never_with_no_color(hostile_logs: HostileLogs) -> None:
    from dead_drop_logger.read import reading

    class Tty:
        def isatty(self) -> bool:
            return True

    tty: Any = Tty()
    assert reading.wants_colour(tty)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NO_COLOR", "")
        assert not reading.wants_colour(tty)
    result = run(hostile_logs.log_dir, "--agent", "jünö", "--no-cc")
    assert "\x1b[" not in result.output  # CliRunner's output is not a terminal


@pytest.mark.skipif(JQ is None, reason="jq is not installed (.ci/run installs it)")
def test_same_lines_as_jq(hostile_logs: HostileLogs) -> None:
    files = sorted(p for p in hostile_logs.log_dir.glob("messages-*.json*") if not p.is_symlink())
    plain = []
    for path in files:
        raw = path.read_bytes()
        plain.append(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    query = (
        'select(.from_agent=="juno" and (.content|type=="string")'
        ' and (.content|contains("deploy merge")))'
    )
    jq = subprocess.run(
        [str(JQ), "-c", query], input=b"".join(plain), capture_output=True, check=True
    )
    result = run(hostile_logs.log_dir, "--from", "juno", "--contains", "deploy merge", "--json")
    ours = sorted(json.loads(line)["id"] for line in result.stdout_bytes.splitlines())
    theirs = sorted(json.loads(line)["id"] for line in jq.stdout.splitlines())
    assert ours == theirs and len(ours) >= 6
