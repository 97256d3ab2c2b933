"""The README and docs/ against the code they describe: what a newcomer reads must be what runs.

The README stays short (the two commands first, what ``run`` prints while it waits) and
links every page of ``docs/``. The one option table, in ``docs/options.md``, is checked
against every click command (``export_historical.py`` is ``export`` under its old
name): each option once, with its environment variable and the commands that take it,
and the sentence about environment variables names exactly the options that have none.
Links between the README and ``docs/`` must lead somewhere.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
from pathlib import Path

import click
from conftest import logger_command, wait_until

from dead_drop_logger.control.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
OPTIONS = ROOT / "docs" / "options.md"
"""The one option table's page."""
README_MAX_LINES = 250
READING = {"search", "thread", "agents", "tasks", "stats", "report"}
"""Commands that read the logs: their query options describe one invocation, no setting."""


def export_script() -> click.Command:
    spec = importlib.util.spec_from_file_location(
        "export_historical", ROOT / "export_historical.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    command = module.main
    assert isinstance(command, click.Command)
    return command


def commands() -> dict[str, click.Command]:
    """Every command a user runs, by the name the README's table uses."""
    return cli.every_command()


def test_export_historical_py_is_the_export_command() -> None:
    assert export_script().params == cli.every_command()["export"].params


def code_options() -> dict[str, tuple[str | None, set[str]]]:
    """option -> (its environment variable, the commands that take it)."""
    found: dict[str, tuple[str | None, set[str]]] = {}
    for name, command in commands().items():
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in ("help", "version"):
                continue
            option = max(param.opts, key=len)
            envvar = param.envvar if isinstance(param.envvar, str) else None
            known_env, used_by = found.get(option, (envvar, set()))
            assert known_env == envvar, f"{option} has two environment variables"
            found[option] = (envvar, used_by | {name})
    return found


def option_table() -> dict[str, tuple[str | None, set[str]]]:
    """The one option table (docs/options.md): option -> (environment, commands)."""
    text = OPTIONS.read_text(encoding="utf-8")
    section = text.split("## The option table\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `--")]
    table: dict[str, tuple[str | None, set[str]]] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        option = cells[0].strip("`").split()[0]
        env = cells[1].strip("`")
        used_by = {name.strip() for name in cells[-1].split(",")}
        assert option not in table, f"{option} is in the table twice"
        table[option] = (None if env == "none" else env, used_by)
    return table


def test_readme_opens_with_the_two_commands() -> None:
    opening = README.read_text(encoding="utf-8").splitlines()[:6]
    assert opening == [
        "# dead-drop-logger",
        "",
        "```sh",
        "pip install . && dead-drop-logger run",
        "pip install -e '.[test]' && python -m pytest",
        "```",
    ]


def test_readme_is_read_in_five_minutes() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, "move the details into docs/"


def test_readme_links_every_page_of_docs() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in re.findall(r"\]\(([^)\s#]+)[^)\s]*\)", README.read_text(encoding="utf-8"))
    }
    assert [path for path in DOCS if path.resolve() not in linked] == []


def test_what_run_prints_while_it_waits_for_a_database_is_what_the_readme_shows(
    home_env: dict[str, str], tmp_path: Path
) -> None:
    text = README.read_text(encoding="utf-8")
    shown = re.findall(r"^ {6}\S+ (dead-drop-logger\[\d+\] .*)$", text, flags=re.MULTILINE)
    assert len(shown) == 3
    home = home_env["HOME"]
    err = tmp_path / "stderr.txt"
    with err.open("wb") as sink:
        proc = subprocess.Popen(
            [*logger_command(), "run"], env=home_env, stdin=subprocess.DEVNULL, stderr=sink
        )
    try:
        wait_until(lambda: "waiting for it" in err.read_text(), what="the waiting line")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    printed = err.read_text().splitlines()[: len(shown)]
    expected = [
        re.sub(r"\[\d+\]", f"[{proc.pid}]", line).replace("/home/me", home) for line in shown
    ]
    assert [line.split(" ", 1)[1] for line in printed] == expected


def test_option_table_is_every_option_with_its_environment_variable() -> None:
    assert option_table() == code_options()


def test_the_environment_sentence_names_exactly_the_options_without_one() -> None:
    text = " ".join(OPTIONS.read_text(encoding="utf-8").split())
    match = re.search(r"can also be set by environment variable except (.*?): they", text)
    assert match, "docs/options.md's sentence about environment variables is gone"
    named = set(re.findall(r"`(--[a-z-]+)`", match.group(1)))
    without = {
        option
        for option, (env, used_by) in code_options().items()
        if env is None and not used_by <= READING
    }
    assert named == without
    assert "options only the reading commands take" in match.group(1)


def test_there_is_one_option_table() -> None:
    for path in [README, *DOCS]:
        rows = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `--poll-interval")
        ]
        assert len(rows) == (1 if path == OPTIONS else 0), path


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {slug(line.lstrip("#")) for line in lines if re.match(r"#{1,6} ", line)}


def test_links_between_readme_and_docs_lead_somewhere() -> None:
    checked = 0
    for path in [README, *DOCS]:
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            assert linked.exists(), f"{path.name}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked), f"{path.name}: {target}"
            checked += 1
    assert checked > 10
