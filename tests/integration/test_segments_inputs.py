"""A segment refresh with no input changed since the last full one keeps every membership
without reading the members (``campaigns.inputs``, migration 0034's triggers) — and after any
change it reads them all again (SQLite and PostgreSQL): a purchase (running RFM inputs), a
tier placement, an enrolment closed or added, an account's attributes or region written by
the service or by raw SQL, a counter moved by an activity, a new segment, the next day for
the RFM scores, an account's own re-evaluation. On PostgreSQL, a change a concurrent
transaction commits after the refresh began is picked up by the next one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from allegiance import campaigns, members
from allegiance.campaigns import rfm, segments
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import Shop
from tests.integration.segments_support import attribute_shop, stored

NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
CONDITIONS = {
    "gold": 'member.tier == "gold"',
    "distributors": 'member.attributes.kind == "distributor"',
    "iberia": 'member.country == "ES"',
    "recent": "member.rfm.recency >= 4",
    "trained": "member.counters.mandatory_courses >= 1",
}


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with attribute_shop(db, NOW) as made:
        yield made


class Full:
    """Counts the refreshes that read the members (``_refresh_segments``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = segments._refresh_segments

        def counted(*args: Any, **kw: Any) -> None:
            self.count += 1
            original(*args, **kw)

        monkeypatch.setattr(segments, "_refresh_segments", counted)


def refresh(shop: Shop) -> dict[str, int]:
    with shop.db.transaction() as s:
        return campaigns.refresh_program(s, shop.tenant_id, shop.program_id)


def enrol(shop: Shop, region: str = "FR", kind: str = "retailer") -> str:
    acc = shop.account(region=region, attributes={"kind": kind})
    with shop.db.transaction() as s:
        members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
    return acc


def buy(shop: Shop, account: str, days_ago: int, ref: str) -> None:
    shop.event(external_id=ref, account_id=account, amount=1000,
               occurred_at=clock.now() - timedelta(days=days_ago))


def set_tier(shop: Shop, account: str, tier: str | None) -> None:
    with shop.db.transaction() as s:
        s.execute(update(members.Enrolment).where(
            members.Enrolment.tenant_id == shop.tenant_id,
            members.Enrolment.account_id == account).values(tier=tier))


def raw_attributes(shop: Shop, account: str, document: str) -> None:
    """Written around the service, as a migration or a bulk fix would."""
    with shop.db.transaction() as s:
        cast = "CAST(:a AS json)" if s.get_bind().dialect.name == "postgresql" else ":a"
        s.execute(text(f"UPDATE account SET attributes = {cast} WHERE tenant_id = :t "
                       "AND id = :id"), {"a": document, "t": shop.tenant_id, "id": account})


def setup(shop: Shop) -> list[str]:
    """Four members (one bought 200 days ago: the window's only buyer, in ``recent``),
    the segments, a full refresh."""
    accounts = [enrol(shop), enrol(shop, "ES"), enrol(shop, kind="distributor"), enrol(shop)]
    buy(shop, accounts[0], 200, "old")
    with shop.db.transaction() as s:
        for code, condition in CONDITIONS.items():
            campaigns.create_segment(s, shop.tenant_id, shop.program_id, code=code, name=code,
                                     condition=condition)
        rfm.set_model(s, shop.tenant_id, shop.program_id)
    refresh(shop)
    assert stored(shop) == {"gold": set(), "distributors": {accounts[2]},
                            "iberia": {accounts[1]}, "recent": {accounts[0]},
                            "trained": set()}
    return accounts


def test_a_refresh_with_nothing_changed_reads_no_member(shop: Shop,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = setup(shop)
    full = Full(monkeypatch)
    before = stored(shop)
    later = NOW + timedelta(hours=3)  # the same local day
    with clock.frozen(later):
        done = refresh(shop)
    assert full.count == 0 and done == {"segments": len(CONDITIONS), "entered": 0, "left": 0}
    assert stored(shop) == before
    with shop.db.read() as s:
        assert {g.refreshed_at for g in campaigns.list_segments(
            s, shop.tenant_id, shop.program_id)} == {later}
        model = rfm.get_model(s, shop.tenant_id, shop.program_id)
        assert model is not None and model.computed_at == later and model.scored == 1
        assert s.scalar(text("SELECT COUNT(*) FROM segment_input_change")) == 0
    assert accounts


CHANGES: dict[str, Callable[[Shop, list[str]], dict[str, set[int]]]] = {
    # each makes a change and returns the segments' members by account index
    "purchase": lambda shop, a: (buy(shop, a[3], 0, "today"), {"recent": {3}})[1],
    "tier": lambda shop, a: (set_tier(shop, a[1], "gold"), {"gold": {1}})[1],
    "closed": lambda shop, a: (set_tier(shop, a[2], None), _close(shop, a[2]),
                               {"distributors": set()})[-1],
    "attributes": lambda shop, a: (_kind(shop, a[0], "distributor"),
                                   {"distributors": {0, 2}})[1],
    "raw-attributes": lambda shop, a: (raw_attributes(shop, a[2], '{"kind": "retailer"}'),
                                       {"distributors": set()})[-1],
    "region": lambda shop, a: (_region(shop, a[3], "ES-MD"), {"iberia": {1, 3}})[1],
    "counter": lambda shop, a: (shop.event(
        external_id="c1", kind="activity", activity_type="course_completed", account_id=a[2],
        attributes={"mandatory": True}, occurred_at=clock.now()), {"trained": {2}})[1],
}


def _close(shop: Shop, account: str) -> None:
    with shop.db.transaction() as s:
        s.execute(update(members.Enrolment).where(
            members.Enrolment.tenant_id == shop.tenant_id,
            members.Enrolment.account_id == account).values(status="closed"))


def _kind(shop: Shop, account: str, kind: str) -> None:
    with shop.db.transaction() as s:
        members.update_account(s, shop.tenant_id, account, {"attributes": {"kind": kind}},
                               actor="test")


def _region(shop: Shop, account: str, region: str) -> None:
    with shop.db.transaction() as s:
        members.update_account(s, shop.tenant_id, account, {"region": region}, actor="test")


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_refresh_after_a_change_reads_every_member(shop: Shop, change: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = setup(shop)
    want = {code: set(found) for code, found in stored(shop).items()}
    moved = CHANGES[change](shop, accounts)
    for code, indices in moved.items():
        want[code] = {accounts[i] for i in indices}
    if change == "purchase":  # the window's two buyers: the old one now scores 3
        want["recent"] = {accounts[3]}
    full = Full(monkeypatch)
    refresh(shop)
    assert full.count == 1 and stored(shop) == want
    refresh(shop)  # and then nothing changed again
    assert full.count == 1 and stored(shop) == want


def test_new_segments_and_days_refresh_in_full(shop: Shop,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = setup(shop)
    full = Full(monkeypatch)
    with shop.db.transaction() as s:
        campaigns.create_segment(s, shop.tenant_id, shop.program_id, code="fr",
                                 name="fr", condition='member.country == "FR"')
    refresh(shop)
    assert full.count == 1 and stored(shop)["fr"] == {accounts[0], accounts[2], accounts[3]}
    with clock.frozen(NOW + timedelta(days=1)):  # the RFM window moved on
        refresh(shop)
        assert full.count == 2
        refresh(shop)
        assert full.count == 2


def test_an_accounts_own_reevaluation_makes_the_next_refresh_full(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = setup(shop)
    full = Full(monkeypatch)
    with shop.db.transaction() as s:  # memberships written outside a full refresh
        s.execute(text("DELETE FROM segment_member WHERE tenant_id = :t AND account_id = :a"),
                  {"t": shop.tenant_id, "a": accounts[1]})
        s.execute(text("UPDATE segment SET members = 0 WHERE tenant_id = :t AND code = 'iberia'"),
                  {"t": shop.tenant_id})
        assert campaigns.refresh_account(s, shop.tenant_id, shop.program_id, accounts[1]) \
            == (["iberia"], [])
    refresh(shop)
    assert full.count == 1 and stored(shop)["iberia"] == {accounts[1]}
    with shop.db.transaction() as s:  # the hook for writes no trigger sees
        campaigns.inputs_changed(s, shop.tenant_id)
    refresh(shop)
    assert full.count == 2


def test_a_change_committed_during_a_refresh_is_picked_up_next(
        pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: a tier placed by a transaction still open when the refresh reads (it does
    not see it) and committed before the refresh commits leaves its change row: the next
    refresh reads every member again and places the account."""
    with attribute_shop(pg_db, NOW) as shop:
        accounts = setup(shop)
        full = Full(monkeypatch)
        done: list[dict[str, int]] = []
        _region(shop, accounts[0], "ES")  # committed: the refresh below reads every member
        with shop.db.transaction() as s:
            s.execute(update(members.Enrolment).where(
                members.Enrolment.tenant_id == shop.tenant_id,
                members.Enrolment.account_id == accounts[3]).values(tier="gold"))
            s.flush()
            worker = threading.Thread(target=lambda: done.append(refresh(shop)))
            worker.start()
            worker.join(60)
            assert done == [{"segments": len(CONDITIONS), "entered": 1, "left": 0}]
        assert full.count == 1 and stored(shop)["gold"] == set()
        assert stored(shop)["iberia"] == {accounts[0], accounts[1]}
        refresh(shop)
        assert full.count == 2 and stored(shop)["gold"] == {accounts[3]}
        refresh(shop)
        assert full.count == 2
