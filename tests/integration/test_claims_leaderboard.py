"""The leaderboards' ``claims`` metric: approved partner sales claims, counted (not their
amount) on the local day of the invoice, in the running board totals and the daily tallies
alike; submitted, duplicate and rejected claims do not count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from allegiance import claims, engagement
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.money_support import NOW, Money
from tests.integration.test_claims import decide, submit


@pytest.fixture
def m(db: Database) -> Iterator[Money]:
    with clock.frozen(NOW):
        yield Money(db)


def board(m: Money, metric: str, period: str, **kw: object) -> list[tuple[str, int, int]]:
    with m.db.read() as s:
        got = engagement.leaderboard(s, m.tenant_id, m.program_id, metric=metric,
                                     period=period, **kw)  # type: ignore[arg-type]
    return [(e.account_id, e.score, e.rank) for e in got.entries]


def test_approved_claims_are_counted_on_the_claims_board(m: Money) -> None:
    first, second, third = m.account(), m.account(), m.account()
    for n in (1, 2):
        decide(m, claims.approve, submit(m, first, number=f"INV-{n}").id)
    decide(m, claims.approve, submit(m, second, number="INV-3",
                                     lines=[{"sku": "SKU-1", "quantity": 9,
                                             "unit_price": 90000}]).id)
    decide(m, claims.reject, submit(m, third, number="INV-4").id, reason="no proof")
    submit(m, third, number="INV-5")  # still submitted
    assert board(m, "claims", "month") == [(first, 2, 1), (second, 1, 2)]
    assert board(m, "claims", "all") == [(first, 2, 1), (second, 1, 2)]
    assert board(m, "claims", "year") == [(first, 2, 1), (second, 1, 2)]
    # the amount is the sales metric's (the second partner's one big claim leads there)
    assert [a for a, _, _ in board(m, "sales", "month")] == [second, first]


def test_a_claim_counts_on_its_invoice_day(m: Money) -> None:
    partner = m.account()
    invoiced = NOW - timedelta(days=20)  # December: last month, last year
    decide(m, claims.approve, submit(m, partner, number="INV-1", invoice_date=invoiced).id)
    decide(m, claims.approve, submit(m, partner, number="INV-2").id)  # January
    decide(m, claims.approve, submit(m, partner, number="INV-3").id)
    assert board(m, "claims", "month") == [(partner, 2, 1)]
    # the older month is ranked from the daily tallies (the board totals moved on)
    assert board(m, "claims", "month", at=invoiced) == [(partner, 1, 1)]
    assert board(m, "claims", "year", at=invoiced) == [(partner, 1, 1)]
    assert board(m, "claims", "all") == [(partner, 3, 1)]
