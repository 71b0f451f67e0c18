"""A GDPR erasure takes the member out of every segment in its own transaction (SQLite and
PostgreSQL): the members pages, the CSV export and the member counts exclude it at once, it
earns nothing for leaving (no ``segment_left`` activity through the earning path, only the
``segment.left`` webhook), and no later refresh — of the whole program, of one segment or of
the account alone (an event of its own is refused) — puts it back, neither into a segment
read from a field erasure keeps (the region) nor into an RFM segment (its purchases stay in
the tallies the scores are ranked from)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from allegiance import campaigns, members, privacy
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.models import OutboxMessage
from tests.integration.events_support import Shop, definition
from tests.integration.segments_support import stored
from tests.support.invariants import assert_ledger_invariants

NOW = datetime(2026, 9, 30, 12, tzinfo=UTC)
LEAVING_PAYS = 500


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        doc = definition(
            {"code": "farewell", "trigger": "activity:segment_left",
             "effects": [{"type": "fixed", "unit": "points", "points": LEAVING_PAYS}]},
            replace=True)
        doc["activity_types"]["segment_left"] = {"attributes": {"segment": "str"}}
        yield Shop(db, doc)
    assert_ledger_invariants(db)


def _left_messages(shop: Shop, account_id: str) -> list[str]:
    with shop.db.read() as s:
        return sorted(m.payload["segment"] for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == shop.tenant_id,
            OutboxMessage.event_type == "segment.left"))
            if m.payload.get("account_id") == account_id)


def test_erasure_leaves_every_segment_at_once_and_for_good(shop: Shop) -> None:
    with clock.frozen(NOW):
        accounts = []
        for n in range(4):
            acc = shop.account(region="ES")
            with shop.db.transaction() as s:
                members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
            shop.event(external_id=f"p{n}", account_id=acc, amount=1000 * (n + 1),
                       occurred_at=NOW - timedelta(days=3))
            accounts.append(acc)
        with shop.db.transaction() as s:
            for code, condition in (("spain", 'member.country == "ES"'),
                                    ("buyers", "member.rfm.frequency >= 1")):
                campaigns.create_segment(s, shop.tenant_id, shop.program_id, code=code,
                                         name=code, condition=condition)
            campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
        everyone = set(accounts)
        assert stored(shop) == {"spain": everyone, "buyers": everyone}
        gone, kept = accounts[1], everyone - {accounts[1]}
        before = shop.wallet(gone).posted

        with shop.db.transaction() as s:
            report = privacy.erase_member(s, shop.tenant_id, gone, actor="test", reason="gdpr")
        assert report.segments == 2
        # at once: pages, export and counts (stored() checks each count against its rows)
        assert stored(shop) == {"spain": kept, "buyers": kept}
        # leaving on erasure earns nothing; the webhook says which segments it left
        assert shop.wallet(gone).posted == before
        assert _left_messages(shop, gone) == ["buyers", "spain"]

        # the whole program refreshed: its region stays and its purchases still rank it
        with shop.db.transaction() as s:
            again = campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
            for segment in campaigns.list_segments(s, shop.tenant_id, shop.program_id):
                assert campaigns.refresh_segment(s, shop.tenant_id, segment.id) == (0, 0)
        assert (again["entered"], again["left"]) == (0, 0)
        assert stored(shop) == {"spain": kept, "buyers": kept}
        # an event naming the erased account is refused (it earns nothing, so nothing
        # re-evaluates it); re-evaluating it alone does not put it back either
        with pytest.raises(members.AccountErased):
            shop.event(external_id="after", account_id=gone, amount=5000)
        with shop.db.transaction() as s:
            assert campaigns.refresh_account(s, shop.tenant_id, shop.program_id,
                                             gone) == ([], [])
            assert campaigns.segment_codes(s, shop.tenant_id, shop.program_id, gone) == []
        with shop.db.transaction() as s:
            again = campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
        assert (again["entered"], again["left"]) == (0, 0)
        assert stored(shop) == {"spain": kept, "buyers": kept}
        assert _left_messages(shop, gone) == ["buyers", "spain"]  # left once, announced once


def test_a_membership_left_over_from_before_leaves_without_earning(shop: Shop) -> None:
    """An account erased before erasure left its segments (an older release) still holds
    memberships: the next refresh takes it out, announces it, and records no activity."""
    with clock.frozen(NOW):
        acc = shop.account(region="ES")
        with shop.db.transaction() as s:
            members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
            campaigns.create_segment(s, shop.tenant_id, shop.program_id, code="spain",
                                     name="spain", condition='member.country == "ES"')
            campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
        with shop.db.transaction() as s:  # erased as an older release did: memberships kept
            s.execute(members.Account.__table__.update().where(
                members.Account.__table__.c.id == acc).values(status="erased"))
        assert stored(shop) == {"spain": {acc}}
        with shop.db.transaction() as s:
            done = campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
        assert (done["entered"], done["left"]) == (0, 1)
        assert stored(shop) == {"spain": set()}
        assert shop.wallet(acc).posted == 0
        assert _left_messages(shop, acc) == ["spain"]
