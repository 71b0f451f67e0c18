"""The API's redemption path (``redeem_values(post_last=True)``): the stock taken, the
row, its event and the posting are left to the end of the unit of work (``kit.placement.last_write``)
and go out there with the idempotency record and the audit chain (one PostgreSQL pipeline).
Its refusals come from the end of the unit of work and leave nothing written; a unit of work
that does not collect last writes gets them at once. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from allegiance import ledger
from allegiance.kit import clock
from allegiance.kit.db import RETRYABLE
from allegiance.kit.errors import AllegianceError
from allegiance.kit.placement import (
    collect_last_writes,
    finish_last_writes,
    last_write,
    read_with_begin,
)
from allegiance.kit.rows import RowByKey
from allegiance.ledger import Lot
from allegiance.rewards.models import Redemption, Reward
from allegiance.rewards.service import redeem_values
from allegiance.tenants import Unit
from tests.conftest import World
from tests.integration.test_rewards import account, balance, reward
from tests.support.invariants import assert_ledger_invariants

NOW = datetime(2026, 5, 17, 12, tzinfo=UTC)


@pytest.fixture
def w(world: World) -> Iterator[World]:
    with clock.frozen(NOW):
        yield world


def _redeem_deferred(w: World, reward_id: str, account_id: str,
                     before_end: Any = None, after_end: Any = None) -> dict[str, Any]:
    """One unit of work as ``kit.web.Ctx`` runs it: collect, redeem, (``before_end``), send
    the last writes and check them, (``after_end``), commit."""
    with w.db.transaction() as s:
        collect_last_writes(s)
        row = redeem_values(s, w.tenant_id, w.program_id, reward_id, account_id,
                                    post_last=True)
        # nothing of the redemption is written before the end of the unit of work
        assert s.scalar(select(func.count()).select_from(Redemption)) == 0
        if before_end is not None:
            before_end(s)
        finish_last_writes(s)
        if after_end is not None:
            after_end()
    return row


def _count(w: World) -> int:
    with w.db.read(w.tenant_id) as s:
        return int(s.scalar(select(func.count()).select_from(Redemption)) or 0)


def _stock(w: World, reward_id: str) -> int | None:
    with w.db.read(w.tenant_id) as s:
        return s.scalar(select(Reward.stock).where(Reward.id == reward_id))


def test_the_deferred_redemption_is_written_and_posted_at_the_end(w: World) -> None:
    acc = account(w, balance=500)
    rid = reward(w, cost=100, stock=3)
    row = _redeem_deferred(w, rid, acc)
    assert row["status"] == "approved" and row["entry_id"]
    with w.db.read(w.tenant_id) as s:
        stored = s.get(Redemption, (w.tenant_id, row["id"]))
        assert stored is not None and stored.entry_id == row["entry_id"]
        entry = ledger.get_entry(s, w.tenant_id, row["entry_id"])
        assert entry.source_id == row["id"]
    assert balance(w, acc).available == 400
    assert _stock(w, rid) == 2
    assert_ledger_invariants(w.db)


def test_overdrawn_at_the_end_leaves_nothing_written(w: World) -> None:
    acc = account(w, balance=50)
    rid = reward(w, cost=100, stock=3)
    with pytest.raises(AllegianceError) as caught:
        _redeem_deferred(w, rid, acc)
    assert caught.value.code == "insufficient_funds"
    assert _count(w) == 0 and _stock(w, rid) == 3
    assert balance(w, acc).available == 50
    assert_ledger_invariants(w.db)


def test_stock_gone_between_the_lookup_and_the_end_is_refused(w: World) -> None:
    """The stock read by the lookup only refuses early; the conditional update sent at the
    end decides (here another write took the last one in between)."""
    acc = account(w, balance=500)
    rid = reward(w, cost=100, stock=1)

    def take_the_last(s: Any) -> None:
        s.execute(update(Reward).where(Reward.id == rid).values(stock=0))

    with pytest.raises(AllegianceError) as caught:
        _redeem_deferred(w, rid, acc, take_the_last)
    assert caught.value.code == "out_of_stock"
    assert _count(w) == 0 and _stock(w, rid) == 1  # the whole unit rolled back
    assert balance(w, acc).available == 500
    with pytest.raises(AllegianceError) as early:  # stock 0 read: refused at once
        with w.db.transaction() as s:
            s.execute(update(Reward).where(Reward.id == rid).values(stock=0))
        _redeem_deferred(w, rid, acc)
    assert early.value.code == "out_of_stock"
    assert_ledger_invariants(w.db)


def test_a_final_redemption_commits_in_the_pipeline_on_postgres(w: World) -> None:
    """The unit's unit never expires, so every refusal is raised in the database and
    PostgreSQL's COMMIT goes out with the writes: another connection sees the redemption
    before the unit of work's own end. SQLite commits at the end as before."""
    acc = account(w, balance=500)
    rid = reward(w, cost=100, stock=3)
    seen: list[int] = []
    row = _redeem_deferred(w, rid, acc, after_end=lambda: seen.append(_count(w)))
    assert seen == [1 if _postgres(w) else 0]
    with w.db.read(w.tenant_id) as s:
        assert s.get(Redemption, (w.tenant_id, row["id"])) is not None
    assert balance(w, acc).available == 400 and _stock(w, rid) == 2
    assert_ledger_invariants(w.db)


def test_a_unit_that_expires_commits_after_its_lots_are_written(w: World) -> None:
    """A wallet of an expiring unit keeps lots, written once the posting's answer is read:
    that redemption is not final, COMMIT comes at the end, and the lot is consumed."""
    with w.db.transaction() as s:
        s.execute(update(Unit).where(Unit.tenant_id == w.tenant_id, Unit.id == w.unit_id)
                  .values(expiry_policy={"kind": "after_months", "months": 24}))
    acc = account(w, balance=500)
    rid = reward(w, cost=100, stock=3)
    seen: list[int] = []
    _redeem_deferred(w, rid, acc, after_end=lambda: seen.append(_count(w)))
    assert seen == [0]
    with w.db.read(w.tenant_id) as s:
        assert list(s.scalars(select(Lot.remaining))) == [400]
    assert balance(w, acc).available == 400
    assert_ledger_invariants(w.db)


def test_a_final_posting_that_would_keep_lots_is_run_again(w: World) -> None:
    """``ledger_post_final`` chosen on a unit policy that changed since it was read (the unit
    expires now): the database refuses with a serialization failure, nothing is written, and
    ``kit.db.retrying`` runs the unit of work again."""
    if not _postgres(w):
        pytest.skip("the final posting is PostgreSQL's")
    with w.db.transaction() as s:
        s.execute(update(Unit).where(Unit.tenant_id == w.tenant_id, Unit.id == w.unit_id)
                  .values(expiry_policy={"kind": "after_months", "months": 24}))
    acc = account(w, balance=500)
    with pytest.raises(OperationalError) as caught, w.db.transaction(w.tenant_id) as s:
        wallet = ledger.wallet(s, w.tenant_id, w.program_id, w.unit_id, "account", acc)
        ledger.post_entry_final(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="redeem",
            lines=(ledger.Line(wallet.id, w.unit_id, ledger.Side.DEBIT, 100),
                   ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, 100))))()
    assert getattr(caught.value.orig, "sqlstate", None) in RETRYABLE
    assert balance(w, acc).available == 500
    assert_ledger_invariants(w.db)


def test_final_ledger_refusals_are_the_ledgers_errors(w: World) -> None:
    """Every refusal of a final posting comes out of the end of the unit of work as the
    error ``ledger.post_entry`` raises, with nothing written: overdrawn, a missing account,
    a repeated entry key."""
    acc = account(w, balance=50)
    with w.db.transaction(w.tenant_id) as s:
        wallet = ledger.wallet(s, w.tenant_id, w.program_id, w.unit_id, "account", acc).id
    def post(lines: tuple[ledger.Line, ...], key: str | None = None) -> None:
        request = ledger.EntryRequest(program_id=w.program_id, kind="redeem", lines=lines,
                                      entry_key=key)
        with w.db.transaction(w.tenant_id) as s:
            collect_last_writes(s)
            last_write(s, lambda: _checked(ledger.post_entry_final(s, w.tenant_id, request)),
                       refused=lambda reason, detail: ledger.refusal(request, reason, detail))
            finish_last_writes(s)

    def pay(amount: int, account_id: str = wallet) -> tuple[ledger.Line, ...]:
        return (ledger.Line(account_id, w.unit_id, ledger.Side.DEBIT, amount),
                ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, amount))

    codes = []
    for lines, key in ((pay(80), None), (pay(10, "lac_missing"), None)):
        with pytest.raises(AllegianceError) as caught:
            post(lines, key)
        codes.append((caught.value.code, caught.value.field))
    post(pay(10), "once")
    with pytest.raises(AllegianceError) as again:
        post(pay(10), "once")
    codes.append((again.value.code, again.value.field))
    assert codes == [("insufficient_funds", "postings"),
                     ("ledger_account_not_found", "postings[0].account_id"),
                     ("conflict", "entry_key")]
    assert balance(w, acc).available == 40
    assert_ledger_invariants(w.db)


def _checked(posted: Any) -> Any:
    """The check of a last write: read the posting's answer."""
    def check() -> None:
        posted()
    return check


def _postgres(w: World) -> bool:
    return w.db.engine.dialect.name == "postgresql"


def test_without_a_collector_the_writes_happen_at_once(w: World) -> None:
    acc = account(w, balance=500)
    rid = reward(w, cost=100)
    with w.db.transaction() as s:
        row = redeem_values(s, w.tenant_id, w.program_id, rid, acc, post_last=True)
        assert s.get(Redemption, (w.tenant_id, row["id"])) is not None
    assert balance(w, acc).available == 400


def test_read_with_begin_reads_in_a_fresh_and_in_a_begun_transaction(w: World) -> None:
    by_id = RowByKey(Reward.__table__, ("code", "stock"), ("tenant_id", "id"))  # type: ignore[arg-type]
    rid = reward(w, code="cap", stock=7)
    with w.db.transaction(w.tenant_id) as s:
        dialect = s.get_bind().dialect
        first = read_with_begin(s, lambda conn: by_id.read(conn, dialect, w.tenant_id, rid))
        again = read_with_begin(s, lambda conn: by_id.read(conn, dialect, w.tenant_id, rid))
        missing = read_with_begin(s, lambda conn: by_id.read(conn, dialect, w.tenant_id, "x"))
    assert (first.code, first.stock) == ("cap", 7) and again == first and missing is None


def test_a_service_redemption_from_points_that_expire_consumes_their_lots(w: World) -> None:
    """``rewards.redeem`` outside the API (no collector): the posting and the lots it
    consumes are written at once, the lots after the pipelined posting's answer."""
    with w.db.transaction() as s:
        s.execute(update(Unit).where(Unit.tenant_id == w.tenant_id, Unit.id == w.unit_id)
                  .values(expiry_policy={"kind": "after_months", "months": 24}))
    acc = account(w, balance=500)
    rid = reward(w, cost=100)
    with w.db.transaction() as s:
        redeem_values(s, w.tenant_id, w.program_id, rid, acc)
    with w.db.read(w.tenant_id) as s:
        assert list(s.scalars(select(Lot.remaining))) == [400]
    assert_ledger_invariants(w.db)
