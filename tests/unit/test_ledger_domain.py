from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allegiance.kit.expiry import ExpiryPolicy, add_months, lot_expiry
from allegiance.ledger.domain import (
    Counters,
    EntryProblem,
    Line,
    OpenLot,
    Side,
    balance,
    check_lines,
    consume_lots,
    split_for_shortfall,
)


def L(acc: str, side: Side, amount: int, unit: str = "u") -> Line:
    return Line(acc, unit, side, amount)


def test_balanced_entry_passes() -> None:
    check_lines([L("a", Side.DEBIT, 10), L("b", Side.CREDIT, 10)])


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([L("a", Side.DEBIT, 10)], "postings"),
        ([L("a", Side.DEBIT, 10), L("b", Side.CREDIT, 9)], "postings"),
        ([L("a", Side.DEBIT, 0), L("b", Side.CREDIT, 0)], "postings[0].amount"),
        ([L("a", Side.DEBIT, -5), L("b", Side.CREDIT, -5)], "postings[0].amount"),
        ([L("a", Side.DEBIT, 10, "pts"), L("b", Side.CREDIT, 10, "usd")], "postings"),
        ([Line("a", "u", Side.DEBIT, 1.5), Line("b", "u", Side.CREDIT, 1.5)],  # type: ignore[arg-type]
         "postings[0].amount"),
        ([L("a", Side.DEBIT, 2**62), L("b", Side.CREDIT, 2**62)], "postings[0].amount"),
    ],
)
def test_bad_entries_name_the_field(lines: list[Line], field: str) -> None:
    with pytest.raises(EntryProblem) as info:
        check_lines(lines)
    assert info.value.field == field


def test_balance_by_normal_side() -> None:
    c = Counters(debits_posted=30, credits_posted=100, debits_pending=20, credits_pending=5)
    b = balance("credit", c)
    assert (b.posted, b.pending_in, b.pending_out, b.available) == (70, 5, 20, 50)
    d = balance("debit", Counters(debits_posted=100, credits_posted=30, credits_pending=10))
    assert (d.posted, d.available) == (70, 60)


def test_lots_consumed_soonest_expiry_first_then_oldest() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    lots = [
        OpenLot("never", 50, t, None),
        OpenLot("late", 30, t, datetime(2027, 6, 1, tzinfo=UTC)),
        OpenLot("soon", 20, datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ]
    assert consume_lots(lots, 60) == [("soon", 20), ("late", 30), ("never", 10)]
    assert consume_lots(lots, 500) == [("soon", 20), ("late", 30), ("never", 50)]


@given(st.lists(st.integers(1, 1000), max_size=20), st.integers(1, 30000))
def test_lot_consumption_never_takes_more_than_asked_or_held(amounts: list[int], ask: int) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    lots = [OpenLot(f"l{i}", a, t, None) for i, a in enumerate(amounts)]
    taken = consume_lots(lots, ask)
    assert sum(x for _, x in taken) == min(ask, sum(amounts))
    held = {lot.lot_id: lot.remaining for lot in lots}
    assert all(0 < x <= held[i] for i, x in taken)


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 15, tzinfo=UTC), 3) == datetime(2027, 2, 15, tzinfo=UTC)


def test_end_of_period_expiry_uses_program_time_zone() -> None:
    # 23:30 UTC on 31 March is already 1 April in Sydney: the quarter is Q2 there.
    earned = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    policy = ExpiryPolicy.from_dict({"kind": "end_of_period", "period": "quarter"})
    sydney = lot_expiry(policy, earned, "Australia/Sydney")
    utc = lot_expiry(policy, earned, "UTC")
    assert sydney is not None and utc is not None
    assert sydney.isoformat() == "2026-07-01T00:00:00+10:00"
    assert utc == datetime(2026, 4, 1, tzinfo=UTC)
    year_after = ExpiryPolicy.from_dict({"kind": "end_of_period", "period": "year",
                                         "periods_after": 1})
    assert lot_expiry(year_after, earned, "UTC") == datetime(2028, 1, 1, tzinfo=UTC)


def test_expiry_policies_validate() -> None:
    assert lot_expiry(ExpiryPolicy.from_dict({"kind": "after_months", "months": 12}),
                      datetime(2026, 5, 3, tzinfo=UTC), "UTC") == datetime(2027, 5, 3, tzinfo=UTC)
    assert lot_expiry(ExpiryPolicy(), datetime(2026, 5, 3, tzinfo=UTC), "UTC") is None
    for bad in ({"kind": "sometimes"}, {"kind": "after_months"}, {"kind": "end_of_period",
                                                                  "period": "week"}):
        with pytest.raises(ValueError):
            ExpiryPolicy.from_dict(bad)


def test_shortfall_split() -> None:
    assert split_for_shortfall(100, 30, 0) == (30, 70)
    assert split_for_shortfall(100, 30, -50) == (80, 20)
    assert split_for_shortfall(100, -10, 0) == (0, 100)
    assert split_for_shortfall(10, 30, 0) == (10, 0)
