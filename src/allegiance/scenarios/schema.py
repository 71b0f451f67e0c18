"""The scenario document: a program, accounts, and timed steps with expectations.

    name: Celebrity Rewards, one agent
    program: ../programs/p9-celebrity-rewards.yaml   # a path (relative to this file) or inline
    start: 2026-01-01T00:00:00+00:00
    accounts:
      - {ref: agency, name: Sunset Travel, region: US-FL, users: [{ref: ann, role: member}]}
    steps:
      - at: 2026-01-05T10:00:00+00:00
        event: {account: agency, amount: 250000, attributes: {upsell: true}}
      - expect: {balance: {account: agency, unit: points, posted: 700}}

Problems are reported with their path (``steps[3].expect.balance.unit``) like program
definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from allegiance.definitions import normalise

# ``define`` applies the program again as a new version, with the sections it gives replacing
# the program's (e.g. an engagement section naming rewards created by earlier api steps).
ACTIONS = ("event", "return", "activity", "run", "redeem", "earn", "report", "certify", "place",
           "api", "define")
EXPECTATIONS = ("balance", "tier", "error", "entries", "enrolment", "response")
RUN_JOBS = {"expire": "expire", "release": "release", "tiers-recalculate": "tiers",
            "tiers": "tiers", "tiers-settle": "tiers-settle", "rebates": "rebates",
            "referrals": "referrals", "mdf": "mdf", "certifications": "certifications",
            "leavers-surveys": "leavers-surveys", "segments": "segments"}
# Operator users (staff of the tenant, e.g. account managers): {ref, name, email, role}.
OPERATOR_FIELDS = ("ref", "name", "email", "role")
ACCOUNT_FIELDS = ("ref", "name", "region", "parent", "external_ids", "users", "email",
                  "attributes", "member_number", "enrol", "application", "tax_id")


class ScenarioError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Step:
    index: int
    at: datetime | None
    kind: str  # one of ACTIONS, or "expect"
    body: Any
    label: str = ""
    # An ``api`` step's response body is kept under this name: later steps read it as
    # ``{saved:<name>.<path>}`` (e.g. the id of a claim to approve).
    save: str = ""


@dataclass(frozen=True)
class Scenario:
    name: str
    program: dict[str, Any]
    start: datetime
    accounts: list[dict[str, Any]]
    steps: list[Step]
    source: Path | None = None
    operators: list[dict[str, Any]] = field(default_factory=list)


def _when(value: Any, path: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise ScenarioError(path, f"{value!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise ScenarioError(path, "needs a time zone offset, e.g. 2026-01-01T00:00:00+00:00")
    return moment


def _program(value: Any, path: str, base: Path) -> dict[str, Any]:
    if isinstance(value, str):
        file = (base / value).resolve()
        if not file.is_file():
            raise ScenarioError(path, f"program file {value!r} not found (from {base})")
        value = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(value, Mapping):
        raise ScenarioError(path, "must be a program definition (mapping) or a path to one")
    return dict(normalise(value))


def _step(raw: Any, index: int) -> Step:
    path = f"steps[{index}]"
    if not isinstance(raw, Mapping):
        raise ScenarioError(path, "a step is a mapping: {at?, <action>: {...}} or {expect: {...}}")
    kinds = [k for k in raw if k in (*ACTIONS, "expect")]
    extra = sorted(set(raw) - {*ACTIONS, "expect", "at", "label", "save"})
    if extra:
        raise ScenarioError(f"{path}.{extra[0]}", "is not a known step key (actions: "
                                                  f"{', '.join(ACTIONS)}; or expect)")
    if len(kinds) != 1:
        raise ScenarioError(path, "needs exactly one action or expect")
    kind = kinds[0]
    body = raw[kind]
    at = _when(raw["at"], f"{path}.at") if raw.get("at") is not None else None
    if kind == "run":
        if body not in RUN_JOBS:
            raise ScenarioError(f"{path}.run", f"must be one of {', '.join(RUN_JOBS)}")
    elif kind == "expect":
        if not isinstance(body, Mapping) or len(body) != 1 or next(iter(body)) not in EXPECTATIONS:
            raise ScenarioError(f"{path}.expect",
                                f"must hold one of {', '.join(EXPECTATIONS)}")
        inner = next(iter(body.values()))
        if not isinstance(inner, Mapping):
            raise ScenarioError(f"{path}.expect.{next(iter(body))}", "must be a mapping")
    elif not isinstance(body, Mapping):
        raise ScenarioError(f"{path}.{kind}", "must be a mapping")
    if raw.get("save") is not None and kind != "api":
        raise ScenarioError(f"{path}.save", "only api steps save their response")
    return Step(index, at, kind, normalise(body), str(raw.get("label", "")),
                str(raw.get("save") or ""))


def parse(data: Any, base: Path, source: Path | None = None) -> Scenario:
    """A scenario from its document; ``base`` is where relative program paths start."""
    if not isinstance(data, Mapping):
        raise ScenarioError("$", "a scenario is a mapping with program, start, accounts, steps")
    extra = sorted(set(data) - {"name", "program", "start", "accounts", "steps",
                                "description", "operators"})
    if extra:
        raise ScenarioError(extra[0], "is not a known scenario key")
    if "program" not in data:
        raise ScenarioError("program", "is required")
    program = _program(data["program"], "program", base)
    start = _when(data.get("start", "2026-01-01T00:00:00+00:00"), "start")
    accounts = data.get("accounts") or []
    if not isinstance(accounts, list):
        raise ScenarioError("accounts", "must be a list")
    refs: set[str] = set()
    for index, account in enumerate(accounts):
        path = f"accounts[{index}]"
        if not isinstance(account, Mapping) or not isinstance(account.get("ref"), str):
            raise ScenarioError(f"{path}.ref", "is required")
        unknown = sorted(set(account) - set(ACCOUNT_FIELDS))
        if unknown:
            raise ScenarioError(f"{path}.{unknown[0]}", "is not a known account field")
        if account["ref"] in refs:
            raise ScenarioError(f"{path}.ref", f"{account['ref']!r} is used twice")
        if account.get("parent") is not None and account["parent"] not in refs:
            raise ScenarioError(f"{path}.parent", f"unknown account {account['parent']!r} "
                                                  "(list parents first)")
        refs.add(account["ref"])
    operators = data.get("operators") or []
    if not isinstance(operators, list):
        raise ScenarioError("operators", "must be a list")
    for index, operator in enumerate(operators):
        path = f"operators[{index}]"
        if not isinstance(operator, Mapping) or not isinstance(operator.get("ref"), str):
            raise ScenarioError(f"{path}.ref", "is required")
        unknown = sorted(set(operator) - set(OPERATOR_FIELDS))
        if unknown:
            raise ScenarioError(f"{path}.{unknown[0]}", "is not a known operator field")
    raw_steps = data.get("steps") or []
    if not isinstance(raw_steps, list):
        raise ScenarioError("steps", "must be a list")
    steps = [_step(raw, index) for index, raw in enumerate(raw_steps)]
    return Scenario(
        name=str(data.get("name") or (source.stem if source else "scenario")),
        program=program, start=start, accounts=[dict(normalise(a)) for a in accounts],
        steps=steps, source=source, operators=[dict(o) for o in operators],
    )


def load(path: Path) -> Scenario:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return parse(data, path.parent, path)
