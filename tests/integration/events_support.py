"""A program definition and short-hands shared by the events tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from allegiance import definitions, events, ledger, members, tenants
from allegiance.kit.db import Database
from tests.conftest import build_world

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

DEFINITION: dict[str, Any] = {
    "program": {"code": "main", "name": "Main", "base_currency": "USD"},
    "units": [{"code": "points", "name": "Points", "kind": "points", "value_in_base": "0.01"}],
    "product_lists": {"genuine": ["SKU-1", "SKU-2"]},
    "activity_types": {
        "course_completed": {"attributes": {"course_id": "str", "mandatory": "bool",
                                            "score": "float"}},
        "newsletter_opt_in": {"attributes": {}},
    },
    "counters": {"mandatory_courses": {"trigger": "activity:course_completed",
                                       "condition": "event.attributes.mandatory"}},
    "rules": [
        # 1 point per dollar (amounts are in cents)
        {"code": "base", "trigger": "purchase",
         "effects": [{"type": "points_per_amount", "unit": "points", "rate": "0.01"}]},
        # 5 points per genuine item
        {"code": "genuine", "trigger": "purchase", "condition": 'in_list(line.sku, "genuine")',
         "effects": [{"type": "points_per_item", "unit": "points", "points": 5}]},
        {"code": "course", "trigger": "activity:course_completed",
         "effects": [{"type": "fixed", "unit": "points", "points": 50}]},
        {"code": "two-mandatory", "trigger": "activity:course_completed",
         "condition": "member.counters.mandatory_courses >= 2",
         "effects": [{"type": "fixed", "unit": "points", "points": 100}],
         "limits": [{"per": "member", "period": "lifetime", "times": 1}]},
    ],
}


def definition(*extra_rules: dict[str, Any], replace: bool = False, **program: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DEFINITION)
    if replace:
        doc["rules"] = []
    doc["rules"].extend(copy.deepcopy(list(extra_rules)))
    doc["program"].update(program)
    return doc


class Shop:
    """A tenant, a program with a definition, and short-hands for events."""

    def __init__(self, db: Database, document: dict[str, Any] | None = None,
                 negative_floor: int = 0) -> None:
        world = build_world(db, negative_floor=negative_floor)
        self.db, self.world = db, world
        self.tenant_id, self.program_id, self.unit_id = (world.tenant_id, world.program_id,
                                                         world.unit_id)
        self.apply(document or definition())

    def apply(self, document: dict[str, Any]) -> None:
        with self.db.transaction() as s:
            definitions.apply(s, self.tenant_id, document, actor="test", effective_from=EPOCH)

    def account(self, **kw: Any) -> str:
        with self.db.transaction() as s:
            return members.create_account(s, self.tenant_id, name=kw.pop("name", "Shop"),
                                          **kw).id

    def user(self, account_id: str, role: str = "owner") -> str:
        with self.db.transaction() as s:
            return members.add_user(s, self.tenant_id, account_id, name="Seller", role=role,
                                    email=None).id

    def event(self, **kw: Any) -> events.Outcome:
        lines = tuple(events.LineIn(x.get("sku"), x.get("name"), x.get("category"),
                                    x.get("brand"), tuple(x.get("labels", ())),
                                    x.get("quantity", 1), x.get("unit_price"), x.get("amount"))
                      for x in kw.pop("lines", ()))
        kw.setdefault("occurred_at", NOW)
        with self.db.transaction() as s:
            return events.ingest(s, self.tenant_id, self.program_id,
                                 events.EventData(lines=lines, **kw), actor="test")

    def ret(self, **kw: Any) -> events.Outcome:
        if "lines" in kw and kw["lines"] is not None:
            kw["lines"] = tuple(events.ReturnLine(**x) for x in kw["lines"])
        kw.setdefault("occurred_at", NOW)
        with self.db.transaction() as s:
            return events.record_return(s, self.tenant_id, self.program_id,
                                        events.ReturnData(**kw), actor="test")

    def wallet(self, owner_id: str, owner_type: str = "account") -> ledger.Balance:
        with self.db.transaction() as s:
            w = ledger.wallet(s, self.tenant_id, self.program_id, self.unit_id, owner_type,
                              owner_id)
            return ledger.balance_of(w)

    def owed(self, owner_id: str) -> int:
        with self.db.transaction() as s:
            r = ledger.receivable(s, self.tenant_id, self.program_id, self.unit_id, "account",
                                  owner_id)
            return r.debits_posted - r.credits_posted

    def count(self, table: str) -> int:
        with self.db.read() as s:
            return int(s.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())

    def spend(self, account_id: str, amount: int) -> None:
        with self.db.transaction() as s:
            w = ledger.wallet(s, self.tenant_id, self.program_id, self.unit_id, "account",
                              account_id)
            ledger.post_entry(s, self.tenant_id, ledger.EntryRequest(
                program_id=self.program_id, kind="redeem",
                lines=(ledger.Line(w.id, self.unit_id, ledger.Side.DEBIT, amount),
                       ledger.Line(self.world.redeemed_id, self.unit_id, ledger.Side.CREDIT,
                                   amount))))

    def program(self) -> tenants.Program:
        with self.db.read() as s:
            return tenants.get_program(s, self.tenant_id, self.program_id)


def points_by_rule(outcome: events.Outcome) -> dict[str, int]:
    """The units an event's awards gave, summed per rule."""
    out: dict[str, int] = {}
    for a in outcome.awards:
        if a.unit_code is not None:
            out[a.rule_code] = out.get(a.rule_code, 0) + a.amount
    return out
