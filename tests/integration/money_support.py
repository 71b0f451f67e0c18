"""A program with a points unit and a money unit (USD cents), and short-hands shared by the
money tests: claims, co-marketing funds, referrals, rebates, discounts and payouts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from allegiance import ledger, tenants
from allegiance.kit.db import Database
from tests.integration.events_support import DEFINITION, Shop

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

MONEY_UNIT = {"code": "usd", "name": "Dollars", "kind": "money", "currency": "USD",
              "value_in_base": "0.01"}


def money_definition(*rules: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(DEFINITION)
    doc["units"].append(dict(MONEY_UNIT))
    doc["rules"].extend(copy.deepcopy(list(rules)))
    return doc


class Money(Shop):
    """A Shop whose program also has the money unit ``usd``."""

    def __init__(self, db: Database, *rules: dict[str, Any]) -> None:
        super().__init__(db, money_definition(*rules))
        with db.read() as s:
            self.usd = tenants.unit_by_code(s, self.tenant_id, self.program_id, "usd").id

    def money(self, owner_id: str, owner_type: str = "account") -> ledger.Balance:
        with self.db.transaction() as s:
            w = ledger.wallet(s, self.tenant_id, self.program_id, self.usd, owner_type,
                              owner_id)
            return ledger.balance_of(w)

    def credit_money(self, account_id: str, amount: int) -> None:
        with self.db.transaction() as s:
            w = ledger.wallet(s, self.tenant_id, self.program_id, self.usd, "account",
                              account_id)
            source = ledger.program_account(s, self.tenant_id, self.program_id, self.usd,
                                            "issued")
            ledger.post_entry(s, self.tenant_id, ledger.EntryRequest(
                program_id=self.program_id, kind="earn",
                lines=(ledger.Line(source.id, self.usd, ledger.Side.DEBIT, amount),
                       ledger.Line(w.id, self.usd, ledger.Side.CREDIT, amount))))
