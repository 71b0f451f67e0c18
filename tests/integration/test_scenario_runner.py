"""The scenario runner and the ``allegiance program`` / ``allegiance scenario`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from allegiance import scenarios, tenants
from allegiance.cli import app
from allegiance.kit.db import Database

cli = CliRunner()

PROGRAM: dict[str, Any] = {
    "program": {"code": "runner-demo", "name": "Runner demo", "base_currency": "USD"},
    "units": [{"code": "points", "kind": "points"}],
    "rules": [{"code": "base", "effects": [{"type": "points_per_amount", "unit": "points",
                                            "rate": "0.01"}]}],
    "tiers": [{"code": "status", "metric": "points_earned",
               "levels": [{"code": "member", "threshold": 0},
                          {"code": "gold", "threshold": 1000}]}],
}


def scenario(steps: list[dict[str, object]]) -> dict[str, object]:
    return {"name": "small", "program": PROGRAM, "start": "2026-01-01T00:00:00+00:00",
            "accounts": [{"ref": "acme", "name": "Acme", "region": "US-CA",
                          "users": [{"ref": "bob", "role": "rep"}]},
                         {"ref": "acme-east", "name": "Acme East", "parent": "acme"}],
            "steps": steps}


def write(tmp_path: Path, data: object, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


STEPS: list[dict[str, object]] = [
    {"at": "2026-01-05T10:00:00+00:00",
     "event": {"external_id": "o-1", "account": "acme", "amount": 120000}},
    {"expect": {"response": {"path": "awards[0].amount", "equals": 1200}}},
    {"expect": {"balance": {"account": "acme", "unit": "points", "posted": 1200,
                            "available": 1200}}},
    {"expect": {"tier": {"account": "acme", "level": "gold"}}},
    {"redeem": {"account": "acme", "unit": "points", "amount": 5000}},
    {"expect": {"error": {"code": "insufficient_funds"}}},
    {"return": {"original": "o-1", "amount": 20000}},
    {"expect": {"balance": {"account": "acme", "posted": 1000}}},
    {"expect": {"entries": {"account": "acme", "count": 2}}},
    {"expect": {"balance": {"account": "acme", "posted": 999}}, "label": "must fail"},
]


def test_a_scenario_reports_each_expectation_and_a_wrong_one_fails(tmp_path: Path) -> None:
    report = scenarios.run(scenarios.parse(scenario(STEPS), tmp_path))
    kinds = [(o.step, o.kind, o.passed) for o in report.outcomes]
    assert kinds == [(1, "response", True), (2, "balance", True), (3, "tier", True),
                     (5, "error", True), (7, "balance", True), (8, "entries", True),
                     (9, "balance", False)]
    assert not report.passed
    failed = report.failures[0]
    assert failed.description == "must fail"
    assert failed.detail == "posted: expected 999, got 1000"


def test_an_unexpected_error_fails_its_step(tmp_path: Path) -> None:
    steps: list[dict[str, object]] = [
        {"redeem": {"account": "acme", "amount": 10}},
        {"expect": {"balance": {"account": "acme", "posted": 0}}},
        {"event": {"account": "acme", "amount": 100}},
        {"expect": {"error": {"code": "not_enrolled"}}},
    ]
    report = scenarios.run(scenarios.parse(scenario(steps), tmp_path))
    assert [(o.step, o.kind, o.passed) for o in report.outcomes] == [
        (0, "redeem", False), (1, "balance", True), (3, "error", False)]
    assert report.outcomes[0].detail.startswith("insufficient_funds")
    assert "succeeded" in report.outcomes[2].detail


def test_users_and_program_files_relative_to_the_scenario(tmp_path: Path) -> None:
    program = {**PROGRAM, "rules": [{**PROGRAM["rules"][0], "recipient": "user"}]}
    (tmp_path / "programs").mkdir()
    write(tmp_path / "programs", program, "demo.yaml")
    data = scenario([
        {"event": {"account": "acme", "user": "bob", "amount": 50000}},
        {"expect": {"balance": {"user": "bob", "posted": 500}}},
        {"expect": {"balance": {"account": "acme", "posted": 0}}},
        {"expect": {"enrolment": {"account": "acme-east", "status": "active"}}},
    ])
    data["program"] = "programs/demo.yaml"
    report = scenarios.run_file(write(tmp_path, data))
    assert report.passed, report.to_dict()
    assert len(report.outcomes) == 3


def test_bad_scenarios_are_reported_with_a_path(tmp_path: Path) -> None:
    with pytest.raises(scenarios.ScenarioError) as caught:
        scenarios.parse(scenario([{"expect": {"balance": {}}}, {"jump": {}}]), tmp_path)
    assert caught.value.path == "steps[1].jump"
    with pytest.raises(scenarios.ScenarioError) as caught:
        scenarios.parse(scenario([{"run": "everything"}]), tmp_path)
    assert caught.value.path == "steps[0].run"
    broken = tmp_path / "broken.yaml"
    broken.write_text("program: [unclosed\n")
    report = scenarios.run_file(broken)
    assert not report.passed and report.outcomes[0].kind == "scenario"
    bad_program = scenario([])
    bad_program["program"] = {**PROGRAM, "units": [{"code": "points", "kind": "stars"}]}
    report = scenarios.run(scenarios.parse(bad_program, tmp_path))
    assert [o.kind for o in report.outcomes] == ["setup"]
    assert "units[0].kind" in report.outcomes[0].detail


def test_scenario_command_exit_status_and_json(tmp_path: Path) -> None:
    passing = write(tmp_path, scenario(STEPS[:4]), "ok.yaml")
    failing = write(tmp_path, scenario(STEPS), "bad.yaml")
    result = cli.invoke(app, ["scenario", "run", str(passing)])
    assert result.exit_code == 0, result.output
    assert "passed" in result.output
    result = cli.invoke(app, ["scenario", "run", str(passing), str(failing), "--json"])
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert [s["passed"] for s in body["scenarios"]] == [True, False]


def test_program_validate_command(tmp_path: Path) -> None:
    good = write(tmp_path, PROGRAM, "good.yaml")
    result = cli.invoke(app, ["program", "validate", str(good)])
    assert result.exit_code == 0 and "valid" in result.output
    bad = write(tmp_path, {**PROGRAM, "units": [{"code": "points", "kind": "money"}]}, "bad.yaml")
    result = cli.invoke(app, ["program", "validate", str(bad)])
    assert result.exit_code == 1
    assert "units[0].currency" in result.output
    result = cli.invoke(app, ["program", "validate", str(bad), "--json"])
    assert json.loads(result.output)["problems"][0]["path"] == "units[0].currency"
    result = cli.invoke(app, ["program", "validate", str(good), str(bad), "--json"])
    assert result.exit_code == 1
    assert [f["valid"] for f in json.loads(result.output)] == [True, False]


def test_program_apply_export_and_diff_commands(sqlite_db: Database, tmp_path: Path) -> None:
    with sqlite_db.transaction() as s:
        tenant_id = tenants.create_tenant(s, "CLI").id
    url = ["--database-url", sqlite_db.url]
    path = write(tmp_path, PROGRAM, "demo.yaml")
    result = cli.invoke(app, ["program", "apply", str(path), "--tenant", tenant_id, *url,
                              "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == 1
    result = cli.invoke(app, ["program", "export", "--tenant", tenant_id, "--program",
                              "runner-demo", "--format", "json", *url])
    assert json.loads(result.output) == PROGRAM
    result = cli.invoke(app, ["program", "export", "--tenant", tenant_id, "--program",
                              "runner-demo", *url])
    assert yaml.safe_load(result.output) == PROGRAM
    draft = json.loads(json.dumps(PROGRAM))
    draft["rules"][0]["effects"][0]["rate"] = "0.02"
    draft_path = write(tmp_path, draft, "draft.yaml")
    result = cli.invoke(app, ["program", "diff", str(draft_path), "--tenant", tenant_id, *url,
                              "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changes"] == [
        {"path": "rules[code=base].effects[0].rate", "kind": "changed", "old": "0.01",
         "new": "0.02"}]
    result = cli.invoke(app, ["program", "diff", str(draft_path), "--against", str(path)])
    assert "~ rules[code=base].effects[0].rate" in result.output


def test_pending_awards_are_released_by_the_release_run(tmp_path: Path) -> None:
    program = {**PROGRAM, "rules": [{**PROGRAM["rules"][0], "pending_days": 30}]}
    data = scenario([
        {"at": "2026-01-05T10:00:00+00:00", "event": {"account": "acme", "amount": 10000}},
        {"expect": {"balance": {"account": "acme", "posted": 0, "pending": 100,
                                "available": 0}}},
        {"at": "2026-01-20T10:00:00+00:00", "run": "release"},
        {"expect": {"balance": {"account": "acme", "pending": 100}}},
        {"at": "2026-02-05T10:00:00+00:00", "run": "release"},
        {"expect": {"balance": {"account": "acme", "posted": 100, "pending": 0,
                                "available": 100}}},
    ])
    data["program"] = program
    report = scenarios.run(scenarios.parse(data, tmp_path))
    assert report.passed, report.to_dict()
    assert len(report.outcomes) == 3


def test_operators_are_created_and_named_in_api_steps(tmp_path: Path) -> None:
    data = scenario([
        {"api": {"method": "PUT", "path": "/accounts/{account:acme}/manager",
                 "body": {"operator_id": "{operator:olga}"}}},
        {"api": {"method": "POST", "path": "/programs/{program}/custom-requests",
                 "body": {"account_id": "{account:acme}", "description": "A rack"}}},
        {"expect": {"response": {"path": "status", "equals": "requested"}}}])
    with pytest.raises(scenarios.ScenarioError) as caught:
        scenarios.parse({**data, "operators": [{"ref": "olga", "password": "x"}]}, tmp_path)
    assert caught.value.path == "operators[0].password"
    report = scenarios.run(scenarios.parse(
        {**data, "operators": [{"ref": "olga", "name": "Olga"}]}, tmp_path))
    assert report.passed and report.outcomes, [o.to_dict() for o in report.failures]
