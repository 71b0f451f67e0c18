"""``points.expiring``: the expiry-notices job announces each wallet's expiring points once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from allegiance.jobs import registry
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.models import OutboxMessage
from allegiance.kit.settings import get_settings
from tests.conftest import build_world
from tests.support.invariants import assert_ledger_invariants

START = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def _notices(db: Database, tenant_id: str) -> list[dict[str, object]]:
    with db.read() as s:
        return [m.payload for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant_id,
            OutboxMessage.event_type == "points.expiring").order_by(OutboxMessage.id))]


def test_each_wallet_and_expiry_date_is_announced_once(db: Database) -> None:
    with clock.frozen(START) as frozen:
        w = build_world(db, expiry={"kind": "after_months", "months": 2})
        alice, bob = w.wallet("acc_alice"), w.wallet("acc_bob")
        w.earn(alice, 300)
        w.earn(alice, 200)  # same instant: the same lot expiry, one notice for both
        frozen.advance(timedelta(days=20))
        w.earn(bob, 50)
        # 45 days later only the first two lots (expiring at START + 2 months) are within 30 days.
        frozen.advance(timedelta(days=25))
        assert get_settings().expiry_notice_days == 30
        first = registry.get("expiry-notices").run(db, 1, lambda _s, _n: None)
        again = registry.get("expiry-notices").run(db, 1, lambda _s, _n: None)
        notices = _notices(db, w.tenant_id)
        assert first == {"notices_sent": 1} and again == {"notices_sent": 0}
        assert [(n["wallet_id"], n["amount"]) for n in notices] == [(alice, 500)]
        assert notices[0]["expires_at"] == datetime(2026, 3, 10, 9, 0, tzinfo=UTC).isoformat()
        assert notices[0]["days_left"] == 14 and notices[0]["owner_id"] == "acc_alice"
        # 20 days on, bob's lot comes within the period (batches of one: the cursor walks on).
        frozen.advance(timedelta(days=20))
        assert registry.get("expiry-notices").run(db, 1, lambda _s, _n: None) == {
            "notices_sent": 1}
        assert sorted((n["wallet_id"], n["amount"]) for n in _notices(db, w.tenant_id)) == sorted(
            [(alice, 500), (bob, 50)])
        # Expired lots are past their date: no notice for them any more.
        frozen.advance(timedelta(days=60))
        assert registry.get("expiry-notices").run(db, 100, lambda _s, _n: None) == {
            "notices_sent": 0}
    assert_ledger_invariants(db)
