"""Simulation: a draft replayed over the events tables gives the figures the rules imply, the
baseline replay matches what was recorded, and nothing is ever written (capability 16)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from allegiance import events, simulation
from allegiance.cli import app
from allegiance.kit.db import Database
from allegiance.registry import metadata
from tests.integration.events_support import Shop, definition
from tests.support.invariants import assert_ledger_invariants

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)
LADDER = {"code": "status", "name": "Status", "metric": "points_earned",
          "levels": [{"code": "silver", "name": "Silver", "threshold": 300},
                     {"code": "gold", "name": "Gold", "threshold": 1500}]}


def base_document() -> dict[str, Any]:
    doc = definition()
    doc.pop("counters")
    doc["rules"] = [r for r in doc["rules"] if r["code"] != "two-mandatory"]
    doc["tiers"] = [copy.deepcopy(LADDER)]
    return doc


def draft_document() -> dict[str, Any]:
    doc = base_document()
    doc["rules"][0]["effects"][0]["rate"] = "0.02"  # base: 2 points per dollar
    doc["rules"].append({"code": "big", "trigger": "purchase",
                         "condition": "event.amount >= 10000",
                         "effects": [{"type": "fixed", "unit": "points", "points": 40}]})
    return doc


def populate(db: Database) -> tuple[Shop, dict[str, str]]:
    shop = Shop(db, base_document())
    accounts = {n: shop.account(name=n, member_number=n) for n in ("A", "B", "C")}
    amounts = {"A": [5_000, 12_000, 30_000, 9_000], "B": [2_000, 15_000], "C": [700]}
    n = 0
    for member, values in amounts.items():
        for value in values:
            n += 1
            shop.event(external_id=f"p{n}", member_number=member,
                       occurred_at=START + timedelta(days=n, hours=3),
                       lines=[{"sku": "SKU-1" if n % 2 else "SKU-7", "quantity": 2,
                               "unit_price": value // 2}])
    shop.event(external_id="course-1", kind="activity", activity_type="course_completed",
               member_number="C", occurred_at=START + timedelta(days=20),
               attributes={"course_id": "x"})
    # outside the period, and an unmatched event: neither is replayed
    shop.event(external_id="late", member_number="A", occurred_at=END + timedelta(days=2),
               lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": 50_000}])
    shop.event(external_id="nobody", member_number="ZZZ", occurred_at=START + timedelta(days=3),
               amount=99_000)
    return shop, accounts


def counts(db: Database) -> dict[str, int]:
    with db.read() as s:
        return {t.name: int(s.execute(text(f"SELECT COUNT(*) FROM {t.name}")).scalar_one())
                for t in metadata.sorted_tables}


def recorded(db: Database, tenant_id: str) -> dict[str, int]:
    with db.read() as s:
        rows = s.execute(select(events.EventAward.rule_code, func.sum(events.EventAward.amount))
                         .join(events.Event, events.Event.id == events.EventAward.event_id)
                         .where(events.EventAward.tenant_id == tenant_id,
                                events.Event.occurred_at < END,
                                events.EventAward.unit_code.is_not(None))
                         .group_by(events.EventAward.rule_code)).all()
    return {r: int(v) for r, v in rows}


def test_draft_figures_baseline_equals_recorded_and_nothing_is_written(db: Database) -> None:
    shop, accounts = populate(db)
    before = counts(db)
    with db.read() as s:
        result = simulation.simulate(s, shop.tenant_id, shop.program_id, draft_document(),
                                     START, END, top=5).to_dict()
    assert counts(db) == before  # nothing written, not even an audit row
    assert_ledger_invariants(db)

    assert result["events"] == 8 and result["members"] == 3
    by_rule = {r["rule"]: r for r in result["rules"]}
    # the replay under the version in force gives exactly what the API recorded
    assert {k: v["baseline"] for k, v in by_rule.items() if v["baseline"]} == recorded(
        db, shop.tenant_id)
    amounts = [5_000, 12_000, 30_000, 9_000, 2_000, 15_000, 700]
    assert by_rule["base"]["baseline"] == sum(a // 100 for a in amounts)
    assert by_rule["base"]["draft"] == sum(a * 2 // 100 for a in amounts)
    assert by_rule["big"]["baseline"] == 0
    assert by_rule["big"]["draft"] == 40 * sum(1 for a in amounts if a >= 10_000)
    assert by_rule["course"]["baseline"] == by_rule["course"]["draft"] == 50
    issued_base = result["baseline"]["issued"]["points"]
    issued_draft = result["draft"]["issued"]["points"]
    assert issued_draft - issued_base == sum(r["change"] for r in result["rules"])
    # cost: points are worth 0.01 of the base currency
    assert result["draft"]["cost"] == f"{issued_draft / 100:.2f}"
    # liability at the end: the wallets (the late event is after the end), the period's
    # recorded issue replaced by the simulated one
    wallets = sum(shop.wallet(a).posted for a in accounts.values())
    late = 500 + 5 * 1  # base + genuine of the late purchase
    assert result["baseline"]["liability_end"]["points"] == wallets - late
    assert result["draft"]["liability_end"]["points"] == wallets - late + issued_draft \
        - issued_base
    # tiers: the draft's doubled base moves members up
    ladder = result["tiers"][0]
    assert ladder["ladder"] == "status"
    assert sum(ladder["baseline"].values()) == sum(ladder["draft"].values()) == 3
    assert ladder["up"] >= 1 and ladder["down"] == 0
    assert {c["label"] for c in result["tier_changes"]} and all(
        c["baseline"] != c["draft"] for c in result["tier_changes"])
    # top earners, most expensive first
    costs = [t["draft_cost"] for t in result["top_earners"]]
    assert costs == sorted(costs, reverse=True) and result["top_earners"][0]["label"] == "A"
    assert len(result["daily"]["day"]) == 8


def test_same_draft_changes_nothing_and_rules_are_shared(db: Database) -> None:
    shop, _ = populate(db)
    with db.read() as s:
        result = simulation.simulate(s, shop.tenant_id, shop.program_id, base_document(),
                                     START, END).to_dict()
    assert result["baseline"] == result["draft"]
    assert all(r["change"] == 0 for r in result["rules"])
    assert result["tiers"][0]["up"] == result["tiers"][0]["down"] == 0
    assert result["tier_changes"] == []


def test_api_endpoint_and_errors(db: Database, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from allegiance import tenants
    from allegiance.api.app import create_app

    shop, _ = populate(db)
    with db.transaction() as s:
        secret = tenants.create_api_key(s, shop.tenant_id, name="r", scopes=["read"]).secret
    before = counts(db)
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"definition": draft_document(), "from": START.isoformat(), "to": END.isoformat(),
            "charts": True}
    with TestClient(create_app(db, rate_limit_per_minute=0)) as client:
        url = f"/v1/programs/{shop.program_id}/simulations"
        answer = client.post(url, json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["draft"]["issued"]["points"] > data["baseline"]["issued"]["points"]
        assert set(data["charts"]) == {"daily-cost.svg", "rules.svg", "tiers-status.svg"}
        assert all(svg.startswith("<svg") for svg in data["charts"].values())
        bad = copy.deepcopy(body)
        bad["definition"]["rules"][0]["condition"] = "event.nothing > 1"
        assert client.post(url, json=bad, headers=headers).status_code == 422
        backwards = {**body, "from": END.isoformat(), "to": START.isoformat()}
        refused = client.post(url, json=backwards, headers=headers)
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_period"
        other = copy.deepcopy(body)
        other["definition"]["program"]["code"] = "other"
        assert client.post(url, json=other, headers=headers).json()["error"]["code"] == \
            "draft_of_another_program"
    # the API key's last use may be recorded; nothing else changes
    after = counts(db)
    assert {k: v for k, v in after.items() if k != "audit_log"} == \
        {k: v for k, v in before.items() if k != "audit_log"}


def test_cli_table_csv_json_and_charts(db: Database, tmp_path: Path) -> None:
    shop, _ = populate(db)
    draft = tmp_path / "draft.yaml"
    draft.write_text(yaml.safe_dump(draft_document()))
    url = db.url
    runner = CliRunner()
    common = ["simulate", "--program", str(draft), "--from", "2026-01-01", "--to",
              "2026-01-31", "--tenant", shop.tenant_id, "--database-url", url]
    table = runner.invoke(app, common)
    assert table.exit_code == 0, table.output
    assert "Contribution per rule" in table.output
    as_json = runner.invoke(app, [*common, "--format", "json", "--charts",
                                  str(tmp_path / "charts")])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout[as_json.stdout.index("{"):])
    assert data["events"] == 8
    assert (tmp_path / "charts" / "rules.svg").read_text().startswith("<svg")
    out = tmp_path / "sim.csv"
    as_csv = runner.invoke(app, [*common, "--format", "csv", "--out", str(out)])
    assert as_csv.exit_code == 0, as_csv.output
    lines = out.read_text().splitlines()
    assert lines[0] == "section,item,unit,baseline,draft,change"
    assert any(line.startswith("rule,big,points,0,") for line in lines)


def test_draft_with_a_counter_rule_shows_the_set_bonus(db: Database) -> None:
    """A draft adds Lenovo's set bonus (a counter of mandatory courses, 100 points at the
    second): the simulation counts the courses from the replayed events, per member in order,
    a repeated course once unless the counter is not distinct."""
    shop = Shop(db, base_document())
    for name in ("A", "B"):
        shop.account(name=name, member_number=name)
    plan = [("A", "M1"), ("B", "M1"), ("A", "M1"), ("B", "M1"), ("A", "M2"), ("A", "M3")]
    for n, (member, course) in enumerate(plan):
        shop.event(external_id=f"c{n}", kind="activity", activity_type="course_completed",
                   member_number=member, occurred_at=START + timedelta(days=n + 1),
                   attributes={"course_id": course, "mandatory": True})
    draft = definition()  # base_document's rules plus the counter and "two-mandatory"
    draft["counters"]["mandatory_courses"]["distinct"] = "event.attributes.course_id"

    def bonus(document: dict[str, Any]) -> tuple[int, int, list[str]]:
        with db.read() as s:
            result = simulation.simulate(s, shop.tenant_id, shop.program_id, document,
                                         START, END).to_dict()
        rule = {r["rule"]: r for r in result["rules"]}["two-mandatory"]
        return rule["baseline"], rule["draft"], result["notes"]

    base, drafted, notes = bonus(draft)
    assert (base, drafted) == (0, 100)  # A's second course (M2), once; B did M1 twice
    assert any("counted from the period's events" in n for n in notes)
    del draft["counters"]["mandatory_courses"]["distinct"]
    assert bonus(draft)[:2] == (0, 200)  # counting events: B's repeat of M1 pays too


def test_counters_replayed_as_the_earning_path_counted_them(db: Database) -> None:
    """The program in force has distinct and amount counters: its replay equals what the API
    recorded event by event (purchases with several lines, repeated and elective courses)."""
    doc = definition(
        {"code": "big-spender", "trigger": "purchase",
         "condition": "member.counters.spent >= 20000",
         "effects": [{"type": "fixed", "unit": "points", "points": 7}]})
    doc["counters"]["mandatory_courses"]["distinct"] = "event.attributes.course_id"
    doc["counters"]["spent"] = {"trigger": "purchase", "measure": "amount"}
    shop = Shop(db, doc)
    for name in ("A", "B"):
        shop.account(name=name, member_number=name)
    plan = [("A", "M1", True), ("A", "M1", True), ("B", "M1", True), ("A", "E1", False),
            ("B", "M2", True), ("A", "M2", True)]
    for day, (member, course, mandatory) in enumerate(plan, start=1):
        shop.event(external_id=f"c{day}", kind="activity", activity_type="course_completed",
                   member_number=member, occurred_at=START + timedelta(days=day),
                   attributes={"course_id": course, "mandatory": mandatory})
        shop.event(external_id=f"p{day}", member_number=member,
                   occurred_at=START + timedelta(days=day, hours=1),
                   lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": 4_000},
                          {"sku": "SKU-9", "quantity": 2, "unit_price": 1_500}])
    with db.read() as s:
        result = simulation.simulate(s, shop.tenant_id, shop.program_id, doc, START,
                                     END).to_dict()
    by_rule = {r["rule"]: r["baseline"] for r in result["rules"] if r["baseline"]}
    assert by_rule == recorded(db, shop.tenant_id)
    # A reaches $200 spent at its third purchase (3 × $70) and earns at its fourth too
    assert by_rule["two-mandatory"] == 200 and by_rule["big-spender"] == 7 * 2
