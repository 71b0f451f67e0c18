"""The developer entry points keep their promises: the Makefile's targets, the CI script, and
README and docs that only name commands and routes that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allegiance.api.app import create_app
from allegiance.cli import app as cli_app
from allegiance.kit.db import Database

ROOT = Path(__file__).resolve().parents[2]
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=True,
    )
    return done.stdout


@needs_make
def test_help_lists_every_target_with_a_description() -> None:
    out = make("-s", "help")
    listed = dict(re.findall(r"^  (\S+)\s+(.+)$", out, re.M))
    for target in ("install", "run", "test", "lint", "bench", "db-upgrade", "install-browser"):
        assert listed.get(target), f"`make help` does not describe {target}"


@needs_make
def test_test_target_runs_lint_types_import_rules_then_the_suite() -> None:
    # Dry run: print the commands without running them (the stamp keeps install out).
    # Without ALLEGIANCE_REQUIRE_BROWSER (CI sets it; the variable on the command line wins).
    commands = [line for line in make("-n", "test", "WORKERS=2", "ALLEGIANCE_REQUIRE_BROWSER=")
                .splitlines() if line.strip()]
    tools = ["ruff check .", "mypy", "lint-imports", "pytest -n 2"]
    positions = []
    for tool in tools:
        found = [i for i, line in enumerate(commands) if tool in line]
        assert found, f"`make test` does not run {tool}: {commands}"
        positions.append(found[0])
    assert positions == sorted(positions)
    assert not any("apt-get" in line for line in commands)
    # With it (as in CI), Chromium is installed first.
    required = make("-n", "test", "WORKERS=2", "ALLEGIANCE_REQUIRE_BROWSER=1").splitlines()
    assert any("apt-get" in line and "chromium" in line for line in required), required


@needs_make
def test_run_migrates_loads_the_demo_then_serves() -> None:
    commands = make("-n", "run").splitlines()
    steps = ["allegiance db upgrade", "allegiance demo", "allegiance serve --host 127.0.0.1 --port 8000"]
    positions = [next(i for i, c in enumerate(commands) if step in c) for step in steps]
    assert positions == sorted(positions)


def test_ci_script_requires_postgres_and_a_browser_then_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "ALLEGIANCE_REQUIRE_POSTGRES=1" in text and "ALLEGIANCE_REQUIRE_BROWSER=1" in text
    assert "pg_isready" in text
    assert text.rstrip().endswith("make test")


def test_readme_set_up_is_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]


def test_every_cli_command_in_the_readme_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`allegiance ((?:[a-z-]+ ?)+)", readme))
    assert named
    runner = CliRunner()
    for command in named:
        words: list[str] = []
        for word in command.split():
            if word.startswith("-"):
                break  # options and their values follow the command's name
            words.append(word)
        # Arguments (job names) are not sub-commands.
        if words[:2] == ["jobs", "run"]:
            words = words[:2]
        # --help first: nothing runs, whatever the words are.
        result = runner.invoke(cli_app, ["--help"] if not words else [*words, "--help"])
        assert result.exit_code == 0, f"`allegiance {command}` is not a command: {result.output}"


def _normalise(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/.,")
    return re.sub(r"\{[^}]*\}|\$[A-Z_]+", "{}", path)


def test_every_route_in_the_docs_exists() -> None:
    db = Database("sqlite://")
    try:
        spec = create_app(db).openapi()
    finally:
        db.dispose()
    served = {_normalise(path) for path in spec["paths"]}
    for doc in ("README.md", "docs/api.md"):
        text = (ROOT / doc).read_text()
        documented = {_normalise(p) for p in re.findall(r"/v1/[A-Za-z0-9_{}$/.-]*", text)}
        documented.discard("/v1/")
        missing = sorted(documented - served)
        assert not missing, f"{doc} names routes the API does not serve: {missing}"
