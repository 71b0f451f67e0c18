"""Shared setup of the tiers integration tests: a tenant with a program and helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from allegiance import members, tenants, tiers
from allegiance.kit.db import Database
from tests.conftest import build_world

JAN = datetime(2026, 1, 15, 12, tzinfo=UTC)

SKINCEUTICALS: dict[str, Any] = {
    "code": "professional", "name": "Professional Rewards", "metric": "spend",
    "period": {"kind": "calendar_year"},
    "levels": [
        {"code": "titanium", "name": "Titanium", "threshold": 2_500_000},
        {"code": "gold", "name": "Gold", "threshold": 5_000_000,
         "benefits": {"earn_multiplier": "1.25"}},
        {"code": "platinum", "name": "Platinum", "threshold": 7_500_000},
        {"code": "diamond", "name": "Diamond", "threshold": 10_000_000},
        {"code": "black-diamond", "name": "Black Diamond", "threshold": 12_500_000,
         "benefits": {"earn_multiplier": "2", "perks": ["premium events"]}},
    ],
    "primary": True,
}


def at(year: int, month: int, day: int = 15) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


class Tiers:
    """A tenant and program with accounts, and short-hands for the tier services."""

    def __init__(self, db: Database, time_zone: str = "UTC") -> None:
        world = build_world(db)
        self.db, self.tenant_id = db, world.tenant_id
        with db.transaction() as s:
            if time_zone != "UTC":
                tenants.update_program(s, world.tenant_id, world.program_id,
                                       {"time_zone": time_zone})
        self.program_id = world.program_id

    def account(self, parent_id: str | None = None, enrol: bool = True,
                segment: str | None = None) -> str:
        with self.db.transaction() as s:
            acc = members.create_account(s, self.tenant_id, name="Spa", parent_id=parent_id,
                                         attributes={"segment": segment} if segment else None)
            if enrol:
                members.enrol(s, self.tenant_id, self.program_id, acc.id, actor="test")
            return acc.id

    def bulk_accounts(self, n: int) -> list[str]:
        now = datetime(2025, 1, 1, tzinfo=UTC)
        ids = [f"acc_bulk{i:022d}" for i in range(n)]
        with self.db.transaction() as s:
            s.execute(insert(members.Account), [
                {"tenant_id": self.tenant_id, "id": a, "parent_id": None, "name": "Bulk",
                 "member_number": f"B{i}", "attributes": {}, "status": "active",
                 "created_at": now, "updated_at": now} for i, a in enumerate(ids)])
            s.execute(insert(members.Enrolment), [
                {"tenant_id": self.tenant_id, "id": f"enr_bulk{i:022d}",
                 "program_id": self.program_id, "account_id": a, "status": "active",
                 "tier": None, "application": {}, "created_at": now, "updated_at": now}
                for i, a in enumerate(ids)])
        return ids

    def ladder(self, definition: dict[str, Any]) -> str:
        with self.db.transaction() as s:
            return tiers.create_ladder(s, self.tenant_id, self.program_id, definition).id

    def credit(self, account_id: str, amount: int, when: datetime, metric: str = "spend",
               order_amount: int | None = None) -> list[tiers.Move]:
        with self.db.transaction() as s:
            return tiers.add_credit(s, self.tenant_id, self.program_id, account_id, metric,
                                    amount, when, order_amount=order_amount)

    def report(self, account_id: str, metric: str, value: int, when: datetime) -> list[tiers.Move]:
        with self.db.transaction() as s:
            return tiers.report_metric(s, self.tenant_id, self.program_id, account_id, metric,
                                       value, when)

    def recalc(self, when: datetime, period_end: bool = False) -> tiers.Recalculation:
        with self.db.transaction() as s:
            return tiers.recalculate(s, self.tenant_id, self.program_id, at=when,
                                     period_end=period_end)

    def level(self, account_id: str, ladder: str | None = None) -> str | None:
        with self.db.read() as s:
            states = tiers.status(s, self.tenant_id, self.program_id, account_id)
        state = next(x for x in states if ladder is None or x.ladder_code == ladder)
        return state.level

    def state(self, account_id: str, when: datetime) -> tiers.TierState:
        with self.db.read() as s:
            return tiers.status(s, self.tenant_id, self.program_id, account_id, when)[0]

    def enrolment_tier(self, account_id: str) -> str | None:
        with self.db.read() as s:
            return s.execute(select(members.Enrolment.tier).where(
                members.Enrolment.tenant_id == self.tenant_id,
                members.Enrolment.account_id == account_id)).scalar_one()

    def history(self, account_id: str) -> list[tuple[str | None, str | None, str]]:
        with self.db.read() as s:
            rows = tiers.history(s, self.tenant_id, self.program_id, account_id)
            return [(r.from_level, r.to_level, r.reason) for r in reversed(rows)]
