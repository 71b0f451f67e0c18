"""A small program history for the analytics tests: members, earns, redemptions, expiry,
holds and events at known times, so every figure can be computed by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from allegiance import ledger, members
from allegiance.analytics.common import member_events, program_of
from allegiance.events import Event, EventLine
from allegiance.kit import clock
from allegiance.kit.ids import new_id
from allegiance.kit.money import currency_exponent
from tests.conftest import World, build_world


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, 0, tzinfo=UTC)


@dataclass
class History:
    world: World
    clock: clock.FrozenClock
    accounts: dict[str, str] = field(default_factory=dict)
    wallets: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Any:
        return self.world.db

    def member(self, name: str, *, tier: str | None = None, segment: str | None = None,
               region: str | None = None) -> str:
        w = self.world
        with w.db.transaction() as s:
            account = members.create_account(
                s, w.tenant_id, name=name, region=region,
                attributes={"segment": segment} if segment else {})
            enrolment = members.enrol(s, w.tenant_id, w.program_id, account.id, actor="test")
            enrolment.tier = tier
            self.accounts[name] = account.id
        self.wallets[name] = w.wallet(self.accounts[name])
        return self.accounts[name]

    def move_to(self, moment: datetime) -> None:
        self.clock.set(moment)

    def earn(self, name: str, amount: int) -> None:
        self.world.earn(self.wallets[name], amount)

    def redeem(self, name: str, amount: int) -> str:
        w = self.world
        with w.db.transaction() as s:
            return ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
                program_id=w.program_id, kind="redeem",
                lines=(ledger.Line(self.wallets[name], w.unit_id, ledger.Side.DEBIT, amount),
                       ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, amount)),
            )).entry_id

    def reverse(self, entry_id: str) -> None:
        w = self.world
        with w.db.transaction() as s:
            ledger.reverse_entry(s, w.tenant_id, entry_id, actor="test")

    def expire(self) -> int:
        with self.db.transaction() as s:
            return ledger.expire_due_lots(s).points

    def hold(self, debit: str, credit: str, amount: int, kind: str) -> str:
        w = self.world
        with w.db.transaction() as s:
            hold, _ = ledger.create_hold(s, w.tenant_id, ledger.HoldRequest(
                program_id=w.program_id, debit_account_id=debit, credit_account_id=credit,
                unit_id=w.unit_id, amount=amount, kind=kind))
            return hold.id

    def event(self, name: str, when: datetime, *, kind: str = "purchase", amount: int = 0,
              activity_type: str | None = None, attributes: dict[str, Any] | None = None,
              lines: list[tuple[str, int]] | None = None) -> str:
        """Store a processed event row directly (the analytics read events, not rules)."""
        w = self.world
        event_id = new_id("evt")
        with w.db.transaction() as s:
            s.add(Event(
                tenant_id=w.tenant_id, id=event_id, program_id=w.program_id, kind=kind,
                activity_type=activity_type, source="test", external_id=event_id,
                reported_by="operator", reporter_account_id=None,
                account_id=self.accounts[name], match_key={}, user_id=None, occurred_at=when,
                currency="USD" if kind == "purchase" else None, amount=amount, quantity=0,
                returned_amount=0, channel=None, attributes=attributes or {},
                status="processed", reason=None, original_event_id=None, version=None,
                created_at=when, processed_at=when))
            s.flush()
            for number, (category, line_amount) in enumerate(lines or [], start=1):
                s.add(EventLine(tenant_id=w.tenant_id, event_id=event_id, line_no=number,
                                sku=None, name=None, category=category, brand=None, labels=[],
                                quantity=1, unit_price=None, amount=line_amount,
                                returned_quantity=0, returned_amount=0))
        return event_id


def history(db: Any, frozen: clock.FrozenClock, *, expiry_months: int | None = 2) -> History:
    frozen.set(at(2026, 1, 15))
    expiry = ({"kind": "after_months", "months": expiry_months} if expiry_months
              else {"kind": "never"})
    return History(build_world(db, expiry=expiry), frozen)


def standard(h: History) -> History:
    """Jan 15: A (gold) earns 100, B earns 50. Feb 15: A earns 40 and redeems 30.
    Mar 20: lots of Jan 15 expire (A 70, B 50); A reserves 10 for a redemption, B has 25
    pending earnings."""
    h.member("A", tier="gold")
    h.member("B")
    h.earn("A", 100)
    h.earn("B", 50)
    h.move_to(at(2026, 2, 15))
    h.earn("A", 40)
    h.redeem("A", 30)
    h.move_to(at(2026, 3, 20))
    assert h.expire() == 120
    w = h.world
    h.hold(h.wallets["A"], w.redeemed_id, 10, "redemption")
    h.hold(w.issued_id, h.wallets["B"], 25, "earn")
    return h



def post(h: History, name: str, amount: int, *, earn: bool, days_back: int = 0,
         wallet: str | None = None) -> str:
    """One earning (issued -> wallet) or redemption (wallet -> redeemed) of member ``name``
    (or of ``wallet``), ``days_back`` days before now; its entry id."""
    w = h.world
    target, other = wallet or h.wallets[name], (w.issued_id if earn else w.redeemed_id)
    side, opposite = ((ledger.Side.CREDIT, ledger.Side.DEBIT) if earn
                      else (ledger.Side.DEBIT, ledger.Side.CREDIT))
    with w.db.transaction() as s:
        return ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="earn" if earn else "redeem",
            effective_at=clock.now() - timedelta(days=days_back),
            lines=(ledger.Line(target, w.unit_id, side, amount),
                   ledger.Line(other, w.unit_id, opposite, amount)),
        )).entry_id


def reference_purchases(session: Session, tenant_id: str, program_id: str, *,
                        start: datetime | None, end: datetime) -> pl.DataFrame:
    """(member, day in the program's time zone, amount in major units) of the purchases, in
    Polars with ``zoneinfo``'s zones: the reference ``clv_report.rfm_of`` is compared with."""
    program = program_of(session, tenant_id, program_id)
    buys = member_events(session, tenant_id, program_id, kinds=("purchase",), start=start,
                         end=end)
    exponent = buys.select(
        pl.col("currency").fill_null(program.base_currency)
        .map_elements(currency_exponent, return_dtype=pl.Int64)
    ).to_series() if buys.height else pl.Series([], dtype=pl.Int64)
    return buys.select(
        "member",
        pl.col("at").dt.convert_time_zone(program.time_zone or "UTC").dt.date().alias("day"),
        (pl.col("amount").cast(pl.Float64) / (10.0 ** exponent.cast(pl.Float64))).alias("amount"),
    )


def check_aging(h: History) -> None:
    """The stored aging equals its recomputation from the postings, and the liability "now"
    read from it equals the liability computed from the postings."""
    from allegiance.analytics.liability import aged_now, outstanding_rows

    w = h.world
    with h.db.read() as s:
        stored = ledger.stored_aging(s, w.tenant_id)
        assert stored == ledger.recompute_aging(s, w.tenant_id)
        aged = aged_now(s, w.tenant_id, w.program_id)
        # The postings' path at a moment after every entry (it takes entries strictly before).
        scanned = outstanding_rows(s, w.tenant_id, w.program_id,
                                   clock.now() + timedelta(seconds=1))
    assert sorted(aged, key=repr) == sorted(scanned, key=repr)
