"""Applying program definitions: versions, tier ladders, refusals, export and diff."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from allegiance import definitions, members, tenants, tiers
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.support.invariants import assert_ledger_invariants

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def document() -> dict[str, Any]:
    return {
        "program": {"code": "acme-rewards", "name": "Acme Rewards", "base_currency": "USD",
                    "time_zone": "America/New_York"},
        "units": [{"code": "points", "kind": "points", "expiry": {"kind": "after_months",
                                                                   "months": 24}}],
        "rules": [{"code": "base", "effects": [{"type": "points_per_amount", "unit": "points",
                                                "rate": "0.01"}],
                   "budget": 100000}],
        "tiers": [{"code": "status", "metric": "points_earned",
                   "levels": [{"code": "silver", "threshold": 0},
                              {"code": "gold", "threshold": 1000}]}],
    }


@pytest.fixture
def tenant_id(db: Database) -> str:
    with db.transaction() as s:
        return tenants.create_tenant(s, "Definitions").id


def test_apply_creates_the_program_units_ladders_and_version_1(db: Database,
                                                               tenant_id: str) -> None:
    with clock.frozen(T0), db.transaction() as s:
        version = definitions.apply(s, tenant_id, document(), actor="test")
    assert version.number == 1
    with db.read() as s:
        program = tenants.get_program(s, tenant_id, version.program_id)
        assert (program.code, program.time_zone) == ("acme-rewards", "America/New_York")
        unit = tenants.unit_by_code(s, tenant_id, program.id, "points")
        assert unit.expiry_policy == {"kind": "after_months", "months": 24}
        ladders = tiers.list_ladders(s, tenant_id, program.id)
        assert [(row.code, row.metric) for row in ladders] == [("status", "points_earned")]
        assert definitions.latest(s, tenant_id, program.id) is not None
    assert_ledger_invariants(db)


def test_each_apply_is_a_new_version_in_force_from_its_time(db: Database,
                                                            tenant_id: str) -> None:
    later = datetime(2026, 3, 1, tzinfo=UTC)
    changed = document()
    changed["rules"][0]["effects"][0]["rate"] = "0.02"
    changed["tiers"][0]["levels"][1]["threshold"] = 2000
    with clock.frozen(T0):
        with db.transaction() as s:
            first = definitions.apply(s, tenant_id, document(), actor="test")
        with db.transaction() as s:
            second = definitions.apply(s, tenant_id, changed, actor="test",
                                       effective_from=later)
    assert (first.number, second.number) == (1, 2)
    with db.read() as s:
        pid = first.program_id
        before = definitions.version_at(s, tenant_id, pid, datetime(2026, 2, 1, tzinfo=UTC))
        after = definitions.version_at(s, tenant_id, pid, datetime(2026, 3, 2, tzinfo=UTC))
        assert before is not None and after is not None
        assert (before.number, after.number) == (1, 2)
        assert str(after.compiled.rules[0].effects[0].rate) != str(
            before.compiled.rules[0].effects[0].rate)
        ladder = tiers.list_ladders(s, tenant_id, pid)[0]
        assert ladder.definition["levels"][1]["threshold"] == 2000
        assert [v.version for v in definitions.list_versions(s, tenant_id, pid)] == [1, 2]
        assert definitions.export(s, tenant_id, pid, 1).document == document()
        assert definitions.export(s, tenant_id, pid).number == 2
        _, changes = definitions.diff_draft(s, tenant_id, pid, document(), against=2)
        assert {c.path for c in changes} == {"rules[code=base].effects[0].rate",
                                             "tiers[code=status].levels[code=gold].threshold"}


def test_an_invalid_document_is_refused_with_every_problem(db: Database,
                                                           tenant_id: str) -> None:
    bad = document()
    bad["units"][0]["expiry"] = {"kind": "sometimes"}
    bad["tiers"][0]["levels"][1]["threshold"] = 0
    with pytest.raises(definitions.InvalidDefinition) as caught, db.transaction() as s:
        definitions.apply(s, tenant_id, bad, actor="test")
    error = caught.value
    assert error.field == "units[0].expiry"
    assert [p["path"] for p in error.details["problems"]] == [
        "units[0].expiry", "tiers[0].levels[1].threshold"]
    with db.read() as s:
        assert tenants.list_programs(s, tenant_id) == []


def test_a_unit_kind_cannot_change_and_nothing_is_written(db: Database,
                                                          tenant_id: str) -> None:
    with db.transaction() as s:
        definitions.apply(s, tenant_id, document(), actor="test")
    changed = copy.deepcopy(document())
    changed["units"][0] = {"code": "points", "kind": "money", "currency": "USD"}
    changed["rules"][0]["effects"][0] = {"type": "percent", "unit": "points", "percent": "1"}
    del changed["rules"][0]["budget"], changed["tiers"]
    with pytest.raises(definitions.InvalidDefinition) as caught, db.transaction() as s:
        definitions.apply(s, tenant_id, changed, actor="test")
    assert caught.value.field == "units[0].kind"
    with db.read() as s:
        program = tenants.list_programs(s, tenant_id)[0]
        assert len(definitions.list_versions(s, tenant_id, program.id)) == 1


def test_export_of_a_missing_version_is_not_found(db: Database, tenant_id: str) -> None:
    with db.transaction() as s:
        version = definitions.apply(s, tenant_id, document(), actor="test")
    with db.read() as s, pytest.raises(Exception) as caught:
        definitions.export(s, tenant_id, version.program_id, 7)
    assert getattr(caught.value, "code", None) == "not_found"


def test_a_level_members_hold_cannot_be_removed_by_a_new_version(db: Database,
                                                                 tenant_id: str) -> None:
    with db.transaction() as s:
        version = definitions.apply(s, tenant_id, document(), actor="test")
        account = members.create_account(s, tenant_id, name="Holder")
        tiers.place(s, tenant_id, version.program_id, account.id, level="gold", reason="test",
                    actor="test")
    smaller = document()
    smaller["tiers"][0]["levels"] = [{"code": "silver", "threshold": 0}]
    with pytest.raises(Exception) as caught, db.transaction() as s:
        definitions.apply(s, tenant_id, smaller, actor="test")
    error = caught.value
    assert getattr(error, "code", None) == "tier_level_in_use"
    assert getattr(error, "field", None) == "tiers[0].levels"
    with db.read() as s:
        assert len(definitions.list_versions(s, tenant_id, version.program_id)) == 1


def test_units_are_updated_in_place_but_their_currency_is_fixed(db: Database,
                                                                tenant_id: str) -> None:
    doc = document()
    doc["units"].append({"code": "cash", "kind": "money", "currency": "USD"})
    with db.transaction() as s:
        version = definitions.apply(s, tenant_id, doc, actor="test")
    doc["units"][1]["name"] = "Store dollars"
    doc["units"][1]["negative_floor"] = -500
    with db.transaction() as s:
        definitions.apply(s, tenant_id, doc, actor="test")
    with db.read() as s:
        unit = tenants.unit_by_code(s, tenant_id, version.program_id, "cash")
        assert (unit.name, unit.negative_floor) == ("Store dollars", -500)
    doc["units"][1]["currency"] = "EUR"
    with pytest.raises(definitions.InvalidDefinition) as caught, db.transaction() as s:
        definitions.apply(s, tenant_id, doc, actor="test")
    assert caught.value.field == "units[1].currency"
