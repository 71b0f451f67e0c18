"""RFM scores by quintile over the daily tallies, as segment fields; scoring one account
between refreshes; returns lowering spend; entering a segment as an activity rules trigger on
(SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from allegiance import campaigns, members
from allegiance.campaigns import domain, rfm
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import Shop, definition
from tests.support.invariants import assert_ledger_invariants

NOW = datetime(2026, 9, 30, 12, tzinfo=UTC)
SEQ = itertools.count(1)


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        doc = definition(
            {"code": "welcome-champion", "trigger": "activity:segment_entered",
             "condition": 'event.attributes.segment == "champions"',
             "effects": [{"type": "fixed", "unit": "points", "points": 1000}]},
            replace=True)
        doc["activity_types"]["segment_entered"] = {"attributes": {"segment": "str"}}
        s = Shop(db, doc)
        yield s
    assert_ledger_invariants(db)


def buy(shop: Shop, account: str, days_ago: int, amount: int) -> str:
    return shop.event(external_id=f"p{next(SEQ)}", account_id=account, amount=amount,
                      occurred_at=NOW - timedelta(days=days_ago)).event.id


def scores(shop: Shop) -> dict[str, tuple[int, int, int]]:
    """Every scored account's (recency, frequency, monetary) — none is stored: each is its
    window's purchases against the last refresh's breakpoints."""
    with shop.db.read() as s:
        found = {a: rfm.score_of(s, shop.tenant_id, shop.program_id, a) for a in s.scalars(
            select(members.Account.id).where(members.Account.tenant_id == shop.tenant_id))}
    return {a: (r.recency, r.frequency, r.monetary) for a, r in found.items() if r is not None}


def test_quintiles_by_rank() -> None:
    # ten buyers: two per score; ties share the lower rank's score
    assert [domain.quintile(r, 10) for r in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # the highest value always scores 5, also among few buyers; all tied share one score
    assert [domain.quintile(r, 3) for r in (1, 2, 3)] == [2, 4, 5]
    assert domain.quintile(1, 1) == 5
    assert domain.score(7, [3, 5, None, 9]) == 3
    assert domain.score(1, [3, 5, 7, 9]) == 1 and domain.score(9, [3, 5, 7, 9]) == 5


def test_rfm_segment_refresh_on_change_and_trigger(shop: Shop) -> None:
    accounts = []
    for n in range(10):
        acc = shop.account()
        with shop.db.transaction() as s:
            members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
        accounts.append(acc)
        # account n: n + 1 purchases, the last n days ago, 100 × (n + 1) each
        for k in range(n + 1):
            buy(shop, acc, days_ago=10 - n + 30 * k, amount=100 * (n + 1))
    old = shop.account()
    buy(shop, old, days_ago=400, amount=10**6)  # outside the 365-day window
    with shop.db.transaction() as s:
        campaigns.create_segment(s, shop.tenant_id, shop.program_id, code="champions",
                                 name="Champions",
                                 condition="member.rfm.recency >= 4 and "
                                           "member.rfm.frequency >= 4")
        done = campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
        model = rfm.get_model(s, shop.tenant_id, shop.program_id)
        assert model is not None and model.scored == 10
    got = scores(shop)
    assert old not in got
    # purchases 1..10 and spend grow with n: two accounts per score
    assert [got[a] for a in accounts] == [(q, q, q) for q in (1, 1, 2, 2, 3, 3, 4, 4, 5, 5)]
    assert done["entered"] == 4
    with shop.db.read() as s:
        seg = s.scalars(select(campaigns.Segment)).one()
        inside = [m.account_id for m in campaigns.members_of(s, shop.tenant_id, seg.id)]
    assert sorted(inside) == sorted(accounts[6:])
    # entering the segment was an activity: the rule on it paid each champion
    assert [shop.wallet(a).posted for a in accounts[5:7]] == [0, 1000]
    # on change: account 5 (3, 3, 3) buys today: recency 5, frequency 7 purchases reaches
    # the breakpoint of 4; it enters the segment at once and the rule pays it
    buy(shop, accounts[5], days_ago=0, amount=100)
    assert scores(shop)[accounts[5]][:2] == (5, 4)
    assert shop.wallet(accounts[5]).posted == 1000
    # a new buyer is scored alone against the breakpoints: bought today (5), once (1)
    newcomer = accounts[0]
    buy(shop, newcomer, days_ago=0, amount=50)
    assert scores(shop)[newcomer][:2] == (5, 1)


def test_returns_lower_monetary_and_frequency(shop: Shop) -> None:
    acc, other = shop.account(), shop.account()
    first = buy(shop, acc, days_ago=3, amount=5000)
    buy(shop, other, days_ago=3, amount=3000)
    with shop.db.transaction() as s:
        rfm.refresh(s, shop.tenant_id, shop.program_id)
    assert scores(shop)[acc][2] > scores(shop)[other][2]
    shop.ret(external_id="r1", original_event_id=first, amount=4000)
    with shop.db.read() as s:
        row = rfm.score_of(s, shop.tenant_id, shop.program_id, acc)
        assert row is not None and (row.spend, row.purchases) == (1000, 1)
    shop.ret(external_id="r2", original_event_id=first)
    with shop.db.read() as s:
        assert rfm.score_of(s, shop.tenant_id, shop.program_id, acc) is None  # nothing left


def test_the_segments_job_holds_the_window_lock_for_the_slide_only(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event reads the RFM window row shared; the job commits the window's slide on
    its own, so while it refreshes scores and segments (seconds on a big program) another
    transaction can still take that shared lock — events are not held up."""
    from sqlalchemy import text

    from allegiance.campaigns import jobs, segments
    from allegiance.kit import tenancy

    acc = shop.account()
    with shop.db.transaction() as s:
        members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
    buy(shop, acc, days_ago=3, amount=500)
    with shop.db.transaction() as s:
        rfm.refresh(s, shop.tenant_id, shop.program_id)
    probes: list[int] = []
    original = segments.refresh_program

    def probing(session: object, tenant_id: str, program_id: str) -> dict[str, int]:
        done = original(session, tenant_id, program_id)  # type: ignore[arg-type]
        if shop.db.engine.dialect.name == "postgresql":
            with shop.db.engine.connect() as other:  # the refresh is not committed yet
                tenancy.set_transaction_tenant(other, tenant_id)
                probes.append(int(other.execute(text(
                    "SELECT first_day FROM engagement_rfm_window WHERE tenant_id = :t AND "
                    "program_id = :p FOR SHARE NOWAIT"),
                    {"t": tenant_id, "p": program_id}).scalar_one()))
                other.rollback()
        else:
            probes.append(0)
        return done

    monkeypatch.setattr(segments, "refresh_program", probing)
    with clock.frozen(NOW + timedelta(days=40)):  # the window slides by 40 days
        totals = jobs.run(shop.db)
    assert totals["programs"] == 1 and len(probes) == 1
    with shop.db.read() as s:
        model = rfm.get_model(s, shop.tenant_id, shop.program_id)
        assert model is not None and model.breakpoints["first_day"] == (
            (NOW + timedelta(days=40)).date().toordinal() - model.window_days + 1)
