"""Run a scenario against a fresh database through the real HTTP API, with a frozen clock.

Every run starts from a migrated SQLite file (copied from a template migrated once per
process), creates a tenant and an admin key, applies the program definition in force from the
scenario's ``start``, creates the accounts (with users and enrolments), then plays the steps in
order, moving the clock to each step's ``at``. Actions call the same endpoints integrators call;
expectations read them back and are reported as pass or fail.

An action that fails is kept as "the last error": the very next step may be
``expect: {error: {code: ...}}``; otherwise the failure itself is reported as a failed step.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from allegiance import jobs, ledger, operators, tenants
from allegiance.api.app import create_app
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.migrate import upgrade
from allegiance.scenarios.schema import RUN_JOBS, Scenario, ScenarioError, Step, load

_TEMPLATE: Path | None = None
REF_KEYS = {"account": "account_id", "user": "user_id", "reporter": "reporter_account_id"}


@dataclass(frozen=True)
class Outcome:
    step: int  # index in steps; -1 for the set-up
    kind: str  # balance, tier, error, entries, enrolment, response, or the failed action
    description: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "kind": self.kind, "description": self.description,
                "passed": self.passed, "detail": self.detail}


@dataclass
class Report:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed,
                "expectations": len(self.outcomes), "failed": len(self.failures),
                "outcomes": [o.to_dict() for o in self.outcomes]}


class SetupFailed(Exception):
    pass


def _scratch() -> str | None:
    """A memory-backed folder when the system has one (commits need no disk sync there)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _template() -> Path:
    global _TEMPLATE
    if _TEMPLATE is None or not _TEMPLATE.exists():
        folder = Path(tempfile.mkdtemp(prefix="allegiance-scenario-template-",
                                       dir=_scratch()))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "template.db"
        upgrade(f"sqlite:///{path}")
        _TEMPLATE = path
    return _TEMPLATE


@contextmanager
def fresh_database() -> Iterator[Database]:
    """A migrated SQLite database in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="allegiance-scenario-", dir=_scratch()) as folder:
        path = Path(folder) / "scenario.db"
        shutil.copyfile(_template(), path)
        db = Database(f"sqlite:///{path}")
        try:
            yield db
        finally:
            db.dispose()


@dataclass
class Result:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def error(self) -> dict[str, Any]:
        if isinstance(self.body, Mapping) and isinstance(self.body.get("error"), Mapping):
            return dict(self.body["error"])
        return {"code": f"http_{self.status}", "message": str(self.body)}


def _lookup(data: Any, path: str) -> Any:
    """``awards[0].amount`` in a JSON value (None when absent)."""
    current = data
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            index = int(part.strip("[]"))
            if not isinstance(current, list) or index >= len(current):
                return None
            current = current[index]
        elif isinstance(current, Mapping):
            current = current.get(part)
        else:
            return None
    return current


class Run:
    """One run of one scenario (state: the client, the ids of refs, the last result)."""

    def __init__(self, scenario: Scenario, db: Database, client: TestClient) -> None:
        self.scenario = scenario
        self.db = db
        self.client = client
        self.headers: dict[str, str] = {}
        self.program_id = ""
        self.accounts: dict[str, str] = {}
        self.users: dict[str, str] = {}
        self.operators: dict[str, str] = {}
        self.last: Result | None = None
        self.saved: dict[str, Any] = {}
        self.units: dict[str, str] = {}
        self.pending: tuple[Step, Result] | None = None
        self.report = Report(scenario.name)

    # -- HTTP --------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None,
             params: Mapping[str, Any] | None = None) -> Result:
        response = self.client.request(method, "/v1" + path, json=body, params=params,
                                       headers=self.headers)
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        return Result(response.status_code, payload)

    def must(self, method: str, path: str, body: Any = None, what: str = "") -> Any:
        result = self.call(method, path, body)
        if not result.ok:
            error = result.error
            raise SetupFailed(f"{what or path}: {error.get('code')}: {error.get('message')}"
                              + (f" ({error['field']})" if error.get("field") else ""))
        return result.body

    # -- set-up ------------------------------------------------------------------------------

    def setup(self) -> None:
        with self.db.transaction() as session:
            tenant = tenants.create_tenant(session, f"scenario {self.scenario.name}")
            secret = tenants.create_api_key(session, tenant.id, name="scenario",
                                            scopes=["admin"]).secret
            for spec in self.scenario.operators:  # staff users (no API creates them)
                ref = str(spec["ref"])
                self.operators[ref] = operators.create_operator(
                    session, tenant.id, email=str(spec.get("email") or f"{ref}@example.com"),
                    name=str(spec.get("name") or ref), role=str(spec.get("role") or "support"),
                    password=secrets.token_urlsafe(24), actor="scenario").id
        self.headers = {"Authorization": f"Bearer {secret}"}
        version = self.must("POST", "/definitions/apply", {
            "document": self.scenario.program,
            "effective_from": self.scenario.start.isoformat(),
        }, "applying the program")
        self.program_id = version["program_id"]
        self.document: dict[str, Any] = dict(self.scenario.program)
        mode = self.scenario.program.get("program", {}).get("enrolment_mode", "open")
        for account in self.scenario.accounts:
            self._account(account, mode)

    def _account(self, spec: Mapping[str, Any], mode: str) -> None:
        ref = spec["ref"]
        body: dict[str, Any] = {"name": spec.get("name", ref)}
        for key in ("region", "email", "attributes", "member_number", "tax_id", "external_ids"):
            if spec.get(key) is not None:
                body[key] = spec[key]
        if spec.get("parent") is not None:
            body["parent_id"] = self.accounts[spec["parent"]]
        account_id = self.must("POST", "/accounts", body, f"account {ref}")["id"]
        self.accounts[ref] = account_id
        for user in spec.get("users") or []:
            user_body = {"name": user.get("name", user["ref"]), "role": user.get("role", "rep")}
            if user.get("email"):
                user_body["email"] = user["email"]
            made = self.must("POST", f"/accounts/{account_id}/users", user_body,
                             f"user {user['ref']}")
            self.users[user["ref"]] = made["id"]
        if spec.get("enrol", True) is False:
            return
        pid = self.program_id
        if mode == "invitation":
            issued = self.must("POST", f"/programs/{pid}/invitations", {
                "email": spec.get("email") or f"{ref}@example.test", "account_id": account_id,
            }, f"inviting {ref}")
            self.must("POST", "/invitations/accept",
                      {"token": issued["token"], "account_id": account_id}, f"enrolling {ref}")
        elif mode == "application":
            enrolment = self.must("POST", f"/programs/{pid}/enrolments", {
                "account_id": account_id, "application": spec.get("application") or {},
            }, f"application of {ref}")
            if enrolment["status"] == "applied":
                self.must("POST", f"/enrolments/{enrolment['id']}/approve", {},
                          f"approving {ref}")
        else:
            self.must("POST", f"/programs/{pid}/enrolments", {"account_id": account_id},
                      f"enrolling {ref}")

    # -- steps -------------------------------------------------------------------------------

    def resolve(self, body: Mapping[str, Any], path: str) -> dict[str, Any]:
        out = dict(body)
        for key, target in REF_KEYS.items():
            if key in out:
                ref = out.pop(key)
                table = self.users if key == "user" else self.accounts
                if ref not in table:
                    raise ScenarioError(f"{path}.{key}", f"unknown {key} {ref!r}")
                out[target] = table[ref]
        return out

    def owner(self, body: Mapping[str, Any], path: str) -> tuple[str, str]:
        if "user" in body:
            if body["user"] not in self.users:
                raise ScenarioError(f"{path}.user", f"unknown user {body['user']!r}")
            return "user", self.users[body["user"]]
        if body.get("account") not in self.accounts:
            raise ScenarioError(f"{path}.account", f"unknown account {body.get('account')!r}")
        return "account", self.accounts[body["account"]]

    def act(self, step: Step) -> Result:
        path = f"steps[{step.index}].{step.kind}"
        pid = self.program_id
        body: dict[str, Any] = dict(step.body) if isinstance(step.body, Mapping) else {}
        if step.kind in ("event", "activity"):
            data = self.resolve(body, path)
            data.setdefault("external_id", f"step-{step.index}")
            data.setdefault("occurred_at", clock.now().isoformat())
            if step.kind == "activity":
                data["kind"] = "activity"
                if "type" in data:
                    data["activity_type"] = data.pop("type")
            return self.call("POST", f"/programs/{pid}/events", data)
        if step.kind == "return":
            data = self.resolve(body, path)
            data.setdefault("external_id", f"return-{step.index}")
            if "original" in data:
                data["original_external_id"] = data.pop("original")
            data.setdefault("occurred_at", clock.now().isoformat())
            return self.call("POST", f"/programs/{pid}/returns", data)
        if step.kind in ("redeem", "earn"):
            owner_type, owner_id = self.owner(body, path)
            wallet = self.call("POST", "/wallets", {
                "program_id": pid, "unit_code": body.get("unit", "points"),
                "owner_type": owner_type, "owner_id": owner_id})
            if not wallet.ok:
                return wallet
            return self.call("POST", f"/programs/{pid}/points", {
                "wallet_id": wallet.body["id"], "kind": step.kind, "amount": body.get("amount"),
                **({"memo": body["memo"]} if body.get("memo") else {})})
        if step.kind == "define":
            self.document = {**self.document, **body}
            return self.call("POST", "/definitions/apply", {
                "document": self.document, "effective_from": clock.now().isoformat()})
        if step.kind == "report":
            data = self.resolve(body, path)
            return self.call("POST", f"/programs/{pid}/metrics", data)
        if step.kind in ("certify", "place"):
            data = self.resolve(body, path)
            account_id = data.pop("account_id", None)
            if step.kind == "place":
                data.setdefault("reason", "scenario")
            suffix = "certifications" if step.kind == "certify" else "tier-placement"
            return self.call("POST", f"/programs/{pid}/accounts/{account_id}/{suffix}", data)
        if step.kind == "run":
            return self.run_job(str(step.body))
        # api: {method, path, body}; {program}, {account:ref}, {user:ref}, {operator:ref},
        # {unit:code} and
        # {saved:name.path} are replaced in the path and in the body's strings
        target = self.fill(str(body.get("path", "")), f"{path}.path")
        payload = body.get("body")
        if isinstance(payload, Mapping):
            payload = self.fill(self.resolve(payload, f"{path}.body"), f"{path}.body")
        result = self.call(str(body.get("method", "POST")).upper(), target, payload)
        if step.save and result.ok:
            self.saved[step.save] = result.body
        return result

    def fill(self, value: Any, path: str) -> Any:
        """Replace the placeholders of an api step (recursively in mappings and lists)."""
        if isinstance(value, Mapping):
            return {k: self.fill(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "{" not in value:
            return value
        text = value.replace("{program}", self.program_id)
        for ref, account_id in self.accounts.items():
            text = text.replace(f"{{account:{ref}}}", account_id)
        for ref, user_id in self.users.items():
            text = text.replace(f"{{user:{ref}}}", user_id)
        for ref, operator_id in self.operators.items():
            text = text.replace(f"{{operator:{ref}}}", operator_id)
        for name in re.findall(r"\{unit:([^}]+)\}", text):
            text = text.replace(f"{{unit:{name}}}", self.unit_id(name, path))
        for name in re.findall(r"\{saved:([^}]+)\}", text):
            ref, _, inner = name.partition(".")
            if ref not in self.saved:
                raise ScenarioError(path, f"nothing saved as {ref!r}")
            text = text.replace(f"{{saved:{name}}}",
                                str(_lookup(self.saved[ref], inner) if inner else self.saved[ref]))
        return text

    def unit_id(self, code: str, path: str) -> str:
        if not self.units:
            page = self.must("GET", f"/programs/{self.program_id}/units?limit=200",
                             what="reading units")
            self.units = {u["code"]: u["id"] for u in page["items"]}
        if code not in self.units:
            raise ScenarioError(path, f"unknown unit {code!r}")
        return self.units[code]

    def run_job(self, name: str) -> Result:
        if name in ("tiers", "tiers-recalculate"):
            return self.call("POST", f"/programs/{self.program_id}/tiers/recalculate", {})
        if name == "tiers-settle":
            return self.call("POST", f"/programs/{self.program_id}/tiers/recalculate",
                             {"period_end": True})
        if name == "release" and "release" not in jobs.JOBS:
            return Result(200, {"holds_released": self.release_due()})
        try:
            job = jobs.get(RUN_JOBS[name])
        except KeyError as exc:
            return Result(422, {"error": {"code": "unknown_job", "message": str(exc)}})
        summary = job.run(self.db, 1000, lambda _step, _count: None)
        return Result(200, summary)

    def release_due(self) -> int:
        """Post the pending awards whose release time has come (batches of 1,000)."""
        total = 0
        while True:
            with self.db.transaction() as session:
                done = ledger.release_due_holds(session, limit=1000)
            total += done
            if done < 1000:
                return total

    # -- expectations ------------------------------------------------------------------------

    def wallet(self, owner_type: str, owner_id: str, unit: str) -> dict[str, Any] | None:
        found = self.call("GET", "/wallets", params={
            "owner_type": owner_type, "owner_id": owner_id, "program_id": self.program_id,
            "limit": 500})
        if not found.ok:
            raise SetupFailed(f"reading wallets: {found.error}")
        for item in found.body["items"]:
            if item["unit_code"] == unit and item["purpose"] == "wallet":
                return dict(item)
        return None

    def expect(self, step: Step) -> Outcome:
        kind, spec = next(iter(step.body.items()))
        path = f"steps[{step.index}].expect.{kind}"
        text = f"{kind} " + ", ".join(f"{k}={v}" for k, v in spec.items())
        check = getattr(self, f"_expect_{kind}")
        passed, detail = check(spec, path)
        return Outcome(step.index, kind, step.label or text, passed, detail)

    def _compare(self, spec: Mapping[str, Any], actual: Mapping[str, Any],
                 keys: tuple[str, ...]) -> tuple[bool, str]:
        wrong = [f"{k}: expected {spec[k]!r}, got {actual.get(k)!r}"
                 for k in keys if k in spec and spec[k] != actual.get(k)]
        if wrong:
            return False, "; ".join(wrong)
        return True, ", ".join(f"{k}={actual.get(k)!r}" for k in keys if k in spec)

    def _expect_balance(self, spec: Mapping[str, Any], path: str) -> tuple[bool, str]:
        owner_type, owner_id = self.owner(spec, path)
        wallet = self.wallet(owner_type, owner_id, str(spec.get("unit", "points")))
        balance = dict(wallet["balance"]) if wallet else {}
        actual = {"posted": balance.get("posted", 0), "available": balance.get("available", 0),
                  "pending": balance.get("pending_in", 0),
                  "pending_out": balance.get("pending_out", 0)}
        return self._compare(spec, actual, ("posted", "available", "pending", "pending_out"))

    def _expect_entries(self, spec: Mapping[str, Any], path: str) -> tuple[bool, str]:
        owner_type, owner_id = self.owner(spec, path)
        wallet = self.wallet(owner_type, owner_id, str(spec.get("unit", "points")))
        count = 0
        if wallet is not None:
            params: dict[str, Any] = {"limit": 500}
            if spec.get("kind"):
                params["kind"] = spec["kind"]
            while True:
                page = self.call("GET", f"/wallets/{wallet['id']}/entries", params=params)
                if not page.ok:
                    return False, f"reading entries: {page.error}"
                count += len(page.body["items"])
                if not page.body.get("next_cursor"):
                    break
                params["cursor"] = page.body["next_cursor"]
        return self._compare(spec, {"count": count}, ("count",))

    def _expect_tier(self, spec: Mapping[str, Any], path: str) -> tuple[bool, str]:
        _, account_id = self.owner(spec, path)
        found = self.call("GET", f"/programs/{self.program_id}/accounts/{account_id}/tiers")
        if not found.ok:
            return False, f"reading tiers: {found.error}"
        states = found.body.get("tiers", [])
        if spec.get("ladder"):
            states = [s for s in states if s["ladder_code"] == spec["ladder"]]
        if not states:
            return False, "the program has no such ladder"
        state = states[0]
        return self._compare(spec, state, tuple(k for k in ("level", "value", "locked")))

    def _expect_enrolment(self, spec: Mapping[str, Any], path: str) -> tuple[bool, str]:
        _, account_id = self.owner(spec, path)
        found = self.call("GET", f"/programs/{self.program_id}/enrolments",
                          params={"account_id": account_id})
        if not found.ok:
            return False, f"reading enrolments: {found.error}"
        items = found.body.get("items", [])
        actual = dict(items[0]) if items else {"status": None, "tier": None}
        return self._compare(spec, actual, ("status", "tier"))

    def _expect_error(self, spec: Mapping[str, Any], path: str) -> tuple[bool, str]:
        if self.last is None:
            return False, "no action ran before this expectation"
        if self.last.ok:
            return False, f"expected error {spec.get('code')!r}, but the action succeeded"
        self.pending = None
        error = self.last.error
        actual = {**error, "status": self.last.status}
        passed, detail = self._compare(spec, actual, ("code", "field", "status"))
        return passed, detail if not passed else f"{detail} ({error.get('message')})"

    def _expect_response(self, spec: Mapping[str, Any], path: str) -> tuple[bool, str]:
        if self.last is None:
            return False, "no action ran before this expectation"
        if "path" not in spec:
            raise ScenarioError(f"{path}.path", "is required (e.g. awards[0].amount)")
        value = _lookup(self.last.body, str(spec["path"]))
        if "equals" in spec and value != spec["equals"]:
            return False, f"{spec['path']}: expected {spec['equals']!r}, got {value!r}"
        return True, f"{spec['path']}={value!r}"

    # -- the run -----------------------------------------------------------------------------

    def flush_pending(self) -> None:
        if self.pending is not None:
            step, result = self.pending
            error = result.error
            self.report.outcomes.append(Outcome(
                step.index, step.kind, step.label or f"{step.kind} succeeds", False,
                f"{error.get('code')}: {error.get('message')}"
                + (f" ({error['field']})" if error.get("field") else ""),
            ))
            self.pending = None

    def play(self, frozen: clock.FrozenClock) -> None:
        for step in self.scenario.steps:
            if step.at is not None:
                frozen.set(step.at)
            if step.kind == "expect":
                if "error" not in step.body:
                    self.flush_pending()
                self.report.outcomes.append(self.expect(step))
                continue
            self.flush_pending()
            self.last = self.act(step)
            if not self.last.ok:
                self.pending = (step, self.last)
        self.flush_pending()


def run(scenario: Scenario) -> Report:
    """Play ``scenario`` on a fresh database; the report lists every expectation."""
    with fresh_database() as db, clock.frozen(scenario.start) as frozen:
        app = create_app(db, rate_limit_per_minute=0)
        with TestClient(app, raise_server_exceptions=False) as client:
            state = Run(scenario, db, client)
            try:
                state.setup()
                state.play(frozen)
            except SetupFailed as exc:
                state.report.outcomes.append(Outcome(-1, "setup", "set-up", False, str(exc)))
            except ScenarioError as exc:
                state.report.outcomes.append(Outcome(-1, "scenario", "scenario is valid", False,
                                                     str(exc)))
            return state.report


def run_file(path: Path) -> Report:
    try:
        scenario = load(path)
    except (ScenarioError, yaml.YAMLError) as exc:
        report = Report(path.stem)
        report.outcomes.append(Outcome(-1, "scenario", "scenario is valid", False, str(exc)))
        return report
    return run(scenario)


def dumps(reports: list[Report]) -> str:
    return json.dumps({"passed": all(r.passed for r in reports),
                       "scenarios": [r.to_dict() for r in reports]}, indent=2)
