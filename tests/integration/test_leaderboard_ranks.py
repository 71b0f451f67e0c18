"""Leaderboards ranked in the database: the top rows' ranks, the total and where an account
outside the top stands agree with ranking every score in Python (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from allegiance import engagement
from allegiance.engagement import domain
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import Shop, definition

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
SEQ = itertools.count(1)


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        yield Shop(db, definition())


@pytest.mark.parametrize("ranking", ["competition", "dense"])
def test_top_and_me_match_a_full_ranking(shop: Shop, ranking: str) -> None:
    spend = [500, 500, 300, 300, 300, 100, 0]
    accounts = [shop.account(name=f"A{i}") for i in range(len(spend))]
    for acc, amount in zip(accounts, spend, strict=True):
        if amount:
            shop.event(external_id=f"p{next(SEQ)}", account_id=acc, amount=amount * 100,
                       occurred_at=NOW)
    with shop.db.read() as s:
        every = domain.rank(engagement.leaderboards.scores(
            s, shop.tenant_id, shop.program_id, "sales", "month", NOW, "UTC"), ranking)
        for acc in accounts:
            board = engagement.leaderboard(s, shop.tenant_id, shop.program_id, metric="sales",
                                           period="month", ranking=ranking, limit=3,
                                           account_id=acc)
            assert [(e.account_id, e.score, e.rank) for e in board.entries] == every[:3]
            assert board.total == 6
            expected = next((r for r in every if r[0] == acc), None)
            got = None if board.me is None else (board.me.account_id, board.me.score,
                                                 board.me.rank)
            assert got == expected
