"""The running totals the earning path keeps (board totals per account and period kind, RFM
inputs per buyer) always equal a recomputation from the daily tallies — through purchases on
any day, partial and full returns and RFM refreshes that slide the window — and the RFM scores
and leaderboards read from them equal those computed from the tallies (Hypothesis, bounded
examples; SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from allegiance import campaigns, engagement
from allegiance.campaigns import rfm
from allegiance.engagement import domain, running
from allegiance.engagement.models import BoardTotal, RfmInput, RfmWindow
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import Shop, definition

START = datetime(2026, 1, 10, 15, tzinfo=UTC)
WINDOW = 30
SEQ = itertools.count(1)

buy = st.tuples(st.just("buy"), st.integers(0, 2), st.integers(-40, 3),
                st.integers(1, 50_000))
give_back = st.tuples(st.just("return"), st.integers(0, 50), st.booleans(),
                      st.integers(1, 40_000))
later = st.tuples(st.just("refresh"), st.integers(0, 45), st.just(0), st.just(0))
steps = st.lists(st.one_of(buy, buy, give_back, later), min_size=1, max_size=12)


def tallies(shop: Shop) -> list[Any]:
    with shop.db.read() as s:
        return list(s.execute(text(
            "SELECT account_id, day, points, sales, purchases, activities, challenges, claims "
            "FROM engagement_tally WHERE tenant_id = :t AND program_id = :p"),
            {"t": shop.tenant_id, "p": shop.program_id}))


def expected_boards(rows: list[Any]) -> dict[tuple[str, str], tuple[int, ...]]:
    out: dict[tuple[str, str], tuple[int, ...]] = {}
    for kind in running.BOARD_KINDS:
        latest: dict[str, int] = {}
        for row in rows:
            index = domain.period_of_day(kind, row.day)
            latest[row.account_id] = max(latest.get(row.account_id, index), index)
        for account, index in latest.items():
            mine = [r for r in rows if r.account_id == account
                    and domain.period_of_day(kind, r.day) == index]
            out[(kind, account)] = (index, *(sum(getattr(r, m) for r in mine) for m in
                                             running.BOARD_METRICS))
    return out


def expected_inputs(rows: list[Any], first: int) -> dict[str, tuple[int, int, int]]:
    out: dict[str, tuple[int, int, int]] = {}
    for row in rows:
        if row.day >= first and row.purchases > 0:
            last, n, spend = out.get(row.account_id, (row.day, 0, 0))
            out[row.account_id] = (max(last, row.day), n + row.purchases, spend + row.sales)
    return out


def check(shop: Shop) -> None:
    rows = tallies(shop)
    with shop.db.read() as s:
        boards = {(b.kind, b.account_id): (b.period_index, *(getattr(b, m) for m in
                                                               running.BOARD_METRICS))
                  for b in s.scalars(select(BoardTotal).where(
                      BoardTotal.tenant_id == shop.tenant_id))}
        first = s.scalar(select(RfmWindow.first_day).where(
            RfmWindow.tenant_id == shop.tenant_id))
        inputs = {r.account_id: (r.last_day, r.purchases, r.spend) for r in s.scalars(
            select(RfmInput).where(RfmInput.tenant_id == shop.tenant_id))}
    assert boards == expected_boards(rows)
    if first is None:
        assert inputs == {}
    else:
        assert inputs == expected_inputs(rows, first)


def check_scores(shop: Shop, at: datetime) -> None:
    """After a refresh: the stored scores are those of the tallies of the window."""
    last = at.astimezone(UTC).date().toordinal()  # the test program's zone is UTC
    buyers = expected_inputs([r for r in tallies(shop) if r.day <= last], last - WINDOW + 1)
    frame = pl.DataFrame(
        [(a, *v) for a, v in sorted(buyers.items())], orient="row",
        schema={"account_id": pl.Utf8, "last_day": pl.Int64, "purchases": pl.Int64,
                "spend": pl.Int64})
    want = {r["account_id"]: (r["recency"], r["frequency"], r["monetary"])
            for r in rfm.score_frame(frame).iter_rows(named=True)}
    with shop.db.read() as s:
        model = rfm.get_model(s, shop.tenant_id, shop.program_id)
        assert model is not None
        # the ranking of the running inputs (what the refresh handed its segments) …
        got = {r["account_id"]: (r["recency"], r["frequency"], r["monetary"]) for r in
               rfm.current_scores(s, shop.tenant_id, shop.program_id, model)
               .iter_rows(named=True)}
        # … and each account's scores against the breakpoints kept (none stored) are those
        # of the tallies
        one = {a: rfm.score_of(s, shop.tenant_id, shop.program_id, a)
               for a in {r.account_id for r in tallies(shop)}}
        kept = dict(model.distribution)
    assert got == want
    assert {a: (r.recency, r.frequency, r.monetary) for a, r in one.items()
            if r is not None} == want
    assert rfm.distribution_of(rfm.score_frame(frame)) == {
        d: {int(k): v for k, v in n.items()} for d, n in kept.items()}


def check_board(shop: Shop, at: datetime) -> None:
    """The current month's and year's boards (from the board totals) equal the tallies'."""
    rows = tallies(shop)
    with shop.db.read() as s:
        for period in ("month", "year", "all"):
            board = engagement.leaderboard(s, shop.tenant_id, shop.program_id,
                                           metric="sales", period=period, at=at, limit=50)
            index = domain.period_index(period, at, "UTC")
            sums: dict[str, int] = {}
            for r in rows:
                if domain.period_of_day(period, r.day) == index:
                    sums[r.account_id] = sums.get(r.account_id, 0) + r.sales
            want = sorted(((a, v) for a, v in sums.items() if v > 0),
                          key=lambda item: (-item[1], item[0]))
            assert [(e.account_id, e.score) for e in board.entries] == want


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=steps)
def test_running_totals_equal_a_recount_from_the_tallies(
        db: Database, plan: list[tuple[str, int, Any, int]]) -> None:
    now = START
    with clock.frozen(now) as frozen:
        shop = Shop(db, definition(time_zone="UTC"))
        with db.transaction() as s:
            rfm.set_model(s, shop.tenant_id, shop.program_id, WINDOW)
        accounts = [shop.account() for _ in range(3)]
        bought: list[tuple[str, int]] = []
        for kind, a, b, c in plan:
            if kind == "buy":
                at = now + timedelta(days=b, hours=a)
                done = shop.event(external_id=f"p{next(SEQ)}", account_id=accounts[a],
                                  occurred_at=at, amount=c)
                bought.append((done.event.id, c))
            elif kind == "return" and bought:
                event_id, amount = bought[a % len(bought)]
                if b or c >= amount:  # in full
                    shop.ret(external_id=f"r{next(SEQ)}", original_event_id=event_id,
                             occurred_at=now)
                    bought.remove((event_id, amount))
                else:
                    shop.ret(external_id=f"r{next(SEQ)}", original_event_id=event_id,
                             amount=c, occurred_at=now)
                    bought[bought.index((event_id, amount))] = (event_id, amount - c)
            elif kind == "refresh":
                now += timedelta(days=a)
                frozen.set(now)
                with db.transaction() as s:
                    campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
                check_scores(shop, now)
            check(shop)
        check_board(shop, now)
