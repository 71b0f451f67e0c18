"""Every example program validates, and every example scenario passes through the runner."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from allegiance import definitions, scenarios

ROOT = Path(__file__).resolve().parents[2] / "examples"
PROGRAMS = sorted((ROOT / "programs").glob("*.yaml"))
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_every_program_has_a_scenario() -> None:
    assert len(PROGRAMS) >= 17
    assert [p.name for p in PROGRAMS] == [s.name for s in SCENARIOS]


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_example_program_is_valid(path: Path) -> None:
    document = definitions.normalise(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert definitions.validate(document) == []


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_example_scenario_passes(path: Path) -> None:
    report = scenarios.run_file(path)
    assert report.outcomes, "a scenario must check something"
    failures = [o.to_dict() for o in report.failures]
    assert report.passed, failures
