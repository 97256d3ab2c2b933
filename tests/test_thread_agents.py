"""``thread`` and ``agents`` on logs the real logger wrote (gzipped days, size parts,
hostile content), through the command line; agents' fast path held to its exact one
and to a plain reference computed here from the parsed lines."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import serverdb
from click.testing import CliRunner
from conftest import HostileLogs, log_lines, log_with_real_logger, logger_command

from dead_drop_logger.control.cli import cli
from dead_drop_logger.read import agents
from dead_drop_logger.read.logread import Reader, timestamp_of


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_thread_from_a_nested_reply(hostile_logs: HostileLogs) -> None:
    ids = hostile_logs.ids
    root, ack, nested, done = ids["root"], ids["ack"], ids["nested"], ids["done"]
    result = invoke("thread", str(nested), "--log-dir", str(hostile_logs.log_dir))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"2026-02-17 09:00:00  juno → vega  #{root}  task T-1\n"
        "    deploy merge started\n\n"
        f"2026-02-17 09:00:00  juno → lead  #{root + 1}  task T-1  cc of → vega\n"
        "    deploy merge started\n\n"
        f"    2026-02-17 09:05:00  vega → juno  #{ack}  re #{root}\n"
        "        ack: deploy merge\n\n"
        f"    2026-02-17 09:05:00  vega → lead  #{ack + 1}  re #{root}  cc of → juno\n"
        "        ack: deploy merge\n\n"
        f"        2026-02-19 09:10:00  orion → vega  #{nested}  re #{ack}\n"
        "            and a reply to the ack\n\n"
        f"        2026-02-19 09:10:00  orion → lead  #{nested + 1}  re #{ack}  cc of → vega\n"
        "            and a reply to the ack\n\n"
        f"    2026-02-20 00:00:00  juno → vega  #{done}  task T-1  re #{root}\n"
        "        deploy merge done\n\n"
        f"    2026-02-20 00:00:00  juno → lead  #{done + 1}  task T-1  re #{root}  cc of → vega\n"
        "        deploy merge done\n\n"
    )
    from_root = invoke("thread", str(root), "--log-dir", str(hostile_logs.log_dir))
    assert from_root.output == result.output
    # the root's CC copy (it replies to nothing) belongs to its original's conversation
    from_copy = invoke("thread", str(root + 1), "--log-dir", str(hostile_logs.log_dir))
    assert from_copy.output == result.output


def test_thread_takes_the_id_as_the_output_shows_it(hostile_logs: HostileLogs) -> None:
    """``#2362``, as every header prints an id, is the same as ``2362`` (the real
    command, as a user pastes it from the output)."""
    nested = hostile_logs.ids["nested"]
    plain = thread_process(str(nested), hostile_logs.log_dir)
    assert plain.returncode == 0 and f"#{nested}" in plain.stdout
    assert thread_process(f"#{nested}", hostile_logs.log_dir).stdout == plain.stdout
    for bad in ("#", "#x", "12a", "##3"):
        done = thread_process(bad, hostile_logs.log_dir)
        assert done.returncode == 2, bad
        assert done.stderr == (
            f"dead-drop-logger: error: invalid value for ID: {bad!r} is not a message id"
            " (a number, as 2362 or #2362)\n"
        )


def thread_process(ident: str, log_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*logger_command(), "thread", ident, "--log-dir", str(log_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_thread_json_is_the_stored_lines_in_id_order(hostile_logs: HostileLogs) -> None:
    ids = hostile_logs.ids
    result = invoke("thread", str(ids["done"]), "--json", "--log-dir", str(hostile_logs.log_dir))
    got = [json.loads(line)["id"] for line in result.stdout_bytes.splitlines()]
    root, ack, nested, done = ids["root"], ids["ack"], ids["nested"], ids["done"]
    assert got == [root, root + 1, ack, ack + 1, nested, nested + 1, done, done + 1]
    stored = {m["id"]: m for m in log_lines(hostile_logs.log_dir)}
    assert [json.loads(line) for line in result.stdout_bytes.splitlines()] == [
        stored[i] for i in got
    ]


def test_a_reply_to_a_message_not_logged_has_a_note(hostile_logs: HostileLogs) -> None:
    orphan = hostile_logs.ids["orphan"]
    result = invoke("thread", str(orphan), "--log-dir", str(hostile_logs.log_dir))
    assert result.exit_code == 0
    assert result.output.splitlines()[:3] == [
        f"2026-02-20 08:00:00  vega → juno  #{orphan}  re #99999",
        "    (a reply to #99999, which is not in the logs)",
        "    reply to a message never logged",
    ]


def test_an_id_not_logged_is_exit_1(hostile_logs: HostileLogs) -> None:
    result = invoke("thread", "123456", "--log-dir", str(hostile_logs.log_dir))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"dead-drop-logger: message 123456 is not in the logs of {hostile_logs.log_dir}\n"
    )


def test_agents_with_nothing_in_range_says_so(hostile_logs: HostileLogs) -> None:
    result = invoke("agents", "--since", "2030-01-01", "--log-dir", str(hostile_logs.log_dir))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"dead-drop-logger: no messages in {hostile_logs.log_dir} in that range\n"
    )


def test_agents_table(hostile_logs: HostileLogs) -> None:
    result = invoke(
        "agents",
        "--since",
        "2026-02-18",
        "--until",
        "2026-02-19",
        "--log-dir",
        str(hostile_logs.log_dir),
    )
    assert result.exit_code == 0
    assert result.output == (
        "agent  sent  direct recv  bcast recv  CC recv  first seen           last seen\n"
        "juno      2            1           0        0  2026-02-18 09:00:00  2026-02-18 14:00:00\n"
        "lead      0            0           0        5  2026-02-18 08:00:00  2026-02-18 14:00:00\n"
        "vega      1            1           0        0  2026-02-18 08:00:00  2026-02-18 14:00:00\n"
        "orion     0            1           0        0  2026-02-18 13:00:00  2026-02-18 13:00:00\n"
        "jünö      1            0           0        0  2026-02-18 12:00:00  2026-02-18 12:00:00\n"
        "名前      0            1           0        0  2026-02-18 12:00:00  2026-02-18 12:00:00\n"
        "atlas     1            1           0        0  2026-02-18 08:00:00  2026-02-18 09:00:00\n"
    )


def reference_rows(log_dir: Path) -> list[dict[str, Any]]:
    """The agents' rows computed the plain way from every parsed message."""
    messages = log_lines(log_dir)
    rows: dict[str, dict[str, Any]] = {}
    broadcasts = Counter(
        m["from_agent"] for m in messages if m["to_agent"] == "all" and not m["is_cc"]
    )
    for m in messages:
        for name in (m["from_agent"], m["to_agent"]):
            if name == "all":
                continue
            row = rows.setdefault(
                name, {"agent": name, "sent": 0, "direct": 0, "cc": 0, "seen": []}
            )
            stamp = timestamp_of(m)
            if stamp is not None:
                row["seen"].append(stamp)
        if not m["is_cc"]:
            rows[m["from_agent"]]["sent"] += 1
        if m["to_agent"] != "all":
            rows[m["to_agent"]]["cc" if m["is_cc"] else "direct"] += 1
    out = []
    for row in rows.values():
        out.append(
            {
                "agent": row["agent"],
                "sent": row["sent"],
                "received": {
                    "direct": row["direct"],
                    "broadcast": sum(broadcasts.values()) - broadcasts[row["agent"]],
                    "cc": row["cc"],
                },
                "first_seen": min(row["seen"]).isoformat(),
                "last_seen": max(row["seen"]).isoformat(),
            }
        )
    return sorted(out, key=lambda r: (r["last_seen"], [-ord(c) for c in r["agent"]]), reverse=True)


def test_agents_match_the_reference_and_the_exact_path(hostile_logs: HostileLogs) -> None:
    result = invoke("agents", "--json", "--log-dir", str(hostile_logs.log_dir))
    assert result.exit_code == 0
    got = [json.loads(line) for line in result.output.splitlines()]
    assert got == reference_rows(hostile_logs.log_dir)
    fast = agents.tally(Reader.of(hostile_logs.log_dir))
    exact = agents.tally(Reader.of(hostile_logs.log_dir), exact=True)
    assert fast == exact


def test_agents_in_an_empty_directory_is_exit_1(tmp_path: Path) -> None:
    result = invoke("agents", "--log-dir", str(tmp_path))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"dead-drop-logger: no messages in {tmp_path}\n"


def test_a_long_exchange_stays_on_the_screen(tmp_path: Path) -> None:
    """Eleven turns, each replying to the last, with two leads CC'd: the indentation
    stops at four levels and deeper turns say their depth; the root's copies for both
    leads are shown, and the thread of either copy is the same conversation."""
    db, log_dir = tmp_path / "messages.db", tmp_path / "logs"
    serverdb.create(db)
    conn = serverdb.connect(db)
    leads = ("lead", "boss")
    parent = None
    ids = []
    for turn in range(11):
        sender, to = ("juno", "vega") if turn % 2 == 0 else ("vega", "juno")
        sent = serverdb.send(
            conn, sender, to, f"turn {turn}", leads=leads,
            timestamp=f"2026-02-17T09:{turn:02d}:00", reply_to=parent,
        )  # fmt: skip
        parent = sent[0]
        ids.append(sent)
    conn.close()
    log_with_real_logger(db, log_dir)
    result = invoke("thread", str(ids[-1][0]), "--log-dir", str(log_dir))
    assert result.exit_code == 0, result.output
    headers = [line for line in result.output.splitlines() if " → " in line]
    assert len(headers) == 33  # 11 messages, 2 copies each
    deepest = headers[-3:]
    assert all(line.startswith(" " * 16 + "(depth 10) 2026-02-17 09:10:00") for line in deepest)
    assert max(len(line) - len(line.lstrip()) for line in result.output.splitlines()) == 20
    assert headers[:3] == [
        f"2026-02-17 09:00:00  juno → vega  #{ids[0][0]}",
        f"2026-02-17 09:00:00  juno → lead  #{ids[0][1]}  cc of → vega",
        f"2026-02-17 09:00:00  juno → boss  #{ids[0][2]}  cc of → vega",
    ]
    assert headers[12].startswith(" " * 16 + "2026-02-17 09:04:00")  # depth 4: indented
    assert headers[15].startswith(" " * 16 + "(depth 5) 2026-02-17 09:05:00")
    for copy in ids[0][1:]:
        assert invoke("thread", str(copy), "--log-dir", str(log_dir)).output == result.output
