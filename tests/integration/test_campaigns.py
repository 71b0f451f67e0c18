"""Segments refreshed set-based and read as member.segments by the rules; campaigns adding
time-boxed rules for segments with budgets through the ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from allegiance import campaigns, events, members
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.kit.models import OutboxMessage
from tests.integration.events_support import Shop, definition
from tests.support.invariants import assert_ledger_invariants

NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
Q4 = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        doc = definition()
        doc["member_attributes"] = {"kind": "str"}
        s = Shop(db, doc)
        yield s
    assert_ledger_invariants(db)


def enrolled(shop: Shop, **kw: Any) -> str:
    acc = shop.account(**kw)
    with shop.db.transaction() as s:
        members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
    return acc


def segment(shop: Shop, code: str, condition: str) -> str:
    with shop.db.transaction() as s:
        seg = campaigns.create_segment(s, shop.tenant_id, shop.program_id, code=code,
                                       name=code, condition=condition)
        campaigns.refresh_segment(s, shop.tenant_id, seg.id)
        return seg.id


def campaign(shop: Shop, code: str = "double", **kw: Any) -> str:
    kw.setdefault("rule", {"trigger": "purchase",
                           "effects": [{"type": "multiplier", "factor": "2"}]})
    with shop.db.transaction() as s:
        row = campaigns.create_campaign(s, shop.tenant_id, shop.program_id, code=code,
                                        name=code, starts_at=kw.pop("starts_at", Q4[0]),
                                        ends_at=kw.pop("ends_at", Q4[1]), **kw)
        campaigns.start(s, shop.tenant_id, row.id, actor="test")
        return row.id


def test_segments_refresh_and_announce(shop: Shop) -> None:
    es = enrolled(shop, region="ES", attributes={"kind": "retailer"})
    enrolled(shop, region="FR", attributes={"kind": "retailer"})
    enrolled(shop, region="ES-MD", attributes={"kind": "distributor"})
    seg = segment(shop, "es-retail", 'member.country == "ES" and member.attributes.kind == '
                                     '"retailer"')
    with shop.db.read() as s:
        assert [m.account_id for m in campaigns.members_of(s, shop.tenant_id, seg)] == [es]
        assert campaigns.get_segment(s, shop.tenant_id, seg).members == 1
        assert campaigns.segment_codes(s, shop.tenant_id, shop.program_id, es) == ["es-retail"]
    with shop.db.transaction() as s:
        members.update_account(s, shop.tenant_id, es, {"attributes": {"kind": "distributor"}},
                               actor="test")
        assert campaigns.refresh_segment(s, shop.tenant_id, seg) == (0, 1)
    with shop.db.read() as s:
        kinds = [m.event_type for m in s.scalars(select(OutboxMessage).order_by(
            OutboxMessage.id))]
    assert kinds.count("segment.entered") == 1 and kinds.count("segment.left") == 1


def test_segment_conditions_are_checked(shop: Shop) -> None:
    for bad in ("event.amount > 3", "member.nothing == 1", '"x" in member.segments', "1 +"):
        with pytest.raises(AllegianceError) as err, shop.db.transaction() as s:
            campaigns.create_segment(s, shop.tenant_id, shop.program_id, code="x", name="x",
                                     condition=bad)
        assert (err.value.code, err.value.field) == ("invalid_segment", "condition")


def test_double_points_for_a_segment_in_q4(shop: Shop) -> None:
    inside = enrolled(shop, region="ES")
    outside = enrolled(shop, region="FR")
    segment(shop, "spain", 'member.country == "ES"')
    campaign(shop, segments=["spain"])
    for n, acc in enumerate((inside, outside)):
        shop.event(external_id=f"p{n}", account_id=acc, amount=10_000, occurred_at=NOW)
    assert shop.wallet(inside).available == 200 and shop.wallet(outside).available == 100
    shop.event(external_id="before", account_id=inside, amount=10_000,
               occurred_at=datetime(2026, 9, 30, tzinfo=UTC))
    assert shop.wallet(inside).available == 300


def test_bonus_campaign_budget_and_stop(shop: Shop) -> None:
    accounts = [enrolled(shop) for _ in range(3)]
    cid = campaign(shop, "welcome", budget=250, rule={
        "trigger": "purchase", "condition": "event.amount >= 5000",
        "effects": [{"type": "fixed", "unit": "points", "points": 100}]})
    for n, acc in enumerate(accounts):
        shop.event(external_id=f"b{n}", account_id=acc, amount=5000, occurred_at=NOW)
    # 50 base points each; the bonus budget of 250 pays 100, 100, then only 50
    assert [shop.wallet(a).available for a in accounts] == [150, 150, 100]
    with shop.db.transaction() as s:
        preview = campaigns.preview(s, shop.tenant_id, cid)
        assert preview.members == 3 and preview.rule["budget"] == 250
        campaigns.stop(s, shop.tenant_id, cid, actor="test")
    shop.event(external_id="after", account_id=accounts[0], amount=5000, occurred_at=NOW)
    assert shop.wallet(accounts[0]).available == 200
    with pytest.raises(AllegianceError) as err, shop.db.transaction() as s:
        campaigns.start(s, shop.tenant_id, cid, actor="test")
    assert err.value.code == "invalid_transition"


def test_campaigns_are_checked(shop: Shop) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"segments": ["nope"]}, "segments"),
        ({"rule": {"trigger": "purchase",
                   "effects": [{"type": "multiplier", "factor": "2", "applies_to": ["zz"]}]}},
         "rule.effects"),
        ({"budget": 10}, "budget"),
        ({"rule": {"trigger": "purchase", "condition": "event.nope > 1",
                   "effects": [{"type": "fixed", "unit": "points", "points": 1}]}},
         "rule.condition"),
    ]
    for kw, field in cases:
        kw.setdefault("rule", {"trigger": "purchase",
                               "effects": [{"type": "multiplier", "factor": "2"}]})
        with pytest.raises(AllegianceError) as err, shop.db.transaction() as s:
            campaigns.create_campaign(s, shop.tenant_id, shop.program_id, code="c", name="c",
                                      starts_at=Q4[0], ends_at=Q4[1], **kw)
        assert (err.value.code, err.value.field) == ("invalid_campaign", field)


def test_an_event_that_changes_a_counter_moves_the_account_into_a_segment(shop: Shop) -> None:
    acc = enrolled(shop)
    seg = segment(shop, "trained", "member.counters.mandatory_courses >= 1")
    with shop.db.read() as s:
        assert campaigns.segment_codes(s, shop.tenant_id, shop.program_id, acc) == []
    shop.event(external_id="c1", kind="activity", activity_type="course_completed",
               account_id=acc, attributes={"mandatory": True}, occurred_at=NOW)
    with shop.db.read() as s:
        assert campaigns.segment_codes(s, shop.tenant_id, shop.program_id, acc) == ["trained"]
        assert campaigns.get_segment(s, shop.tenant_id, seg).members == 1
    with shop.db.transaction() as s:  # the set-based refresh agrees
        assert campaigns.refresh_segment(s, shop.tenant_id, seg) == (0, 0)


def test_dry_run_includes_campaigns(shop: Shop) -> None:
    acc = enrolled(shop, region="ES")
    segment(shop, "spain", 'member.country == "ES"')
    campaign(shop, segments=["spain"])
    with shop.db.read() as s:
        run = events.dry_run(s, shop.tenant_id, shop.program_id, events.EventData(
            external_id="dry", account_id=acc, amount=10_000, occurred_at=NOW))
    assert sum(a.amount for a in run.awards if a.unit == "points") == 200
    assert any(t.rule == "campaign:double" and t.matched for t in run.traces)


def test_an_event_after_the_campaign_ends_earns_no_campaign_award(shop: Shop) -> None:
    """``ends_at`` is exclusive: an event at or after it earns the program's rules only."""
    acc = enrolled(shop)
    ends = datetime(2026, 10, 3, tzinfo=UTC)
    campaign(shop, starts_at=Q4[0], ends_at=ends)
    shop.event(external_id="in", account_id=acc, amount=10_000,
               occurred_at=ends - timedelta(seconds=1))
    assert shop.wallet(acc).available == 200
    shop.event(external_id="at-end", account_id=acc, amount=10_000, occurred_at=ends)
    shop.event(external_id="after", account_id=acc, amount=10_000,
               occurred_at=datetime(2026, 10, 4, 9, tzinfo=UTC))
    assert shop.wallet(acc).available == 200 + 100 + 100


def test_leaving_a_segment_fires_a_segment_left_rule(db: Database) -> None:
    with clock.frozen(NOW):
        doc = definition({"code": "come-back", "trigger": "activity:segment_left",
                          "condition": 'event.attributes.segment == "retail"',
                          "effects": [{"type": "fixed", "unit": "points", "points": 300}]},
                         replace=True)
        doc["member_attributes"] = {"kind": "str"}
        doc["activity_types"]["segment_left"] = {"attributes": {"segment": "str"}}
        shop = Shop(db, doc)
        leaver = enrolled(shop, attributes={"kind": "retailer"})
        stayer = enrolled(shop, attributes={"kind": "retailer"})
        retail = segment(shop, "retail", 'member.attributes.kind == "retailer"')
        assert shop.wallet(leaver).posted == 0  # entering pays nothing
        with shop.db.transaction() as s:
            members.update_account(s, shop.tenant_id, leaver,
                                   {"attributes": {"kind": "distributor"}}, actor="test")
            campaigns.refresh_segment(s, shop.tenant_id, retail)  # (it left on the change)
        with shop.db.read() as s:
            assert campaigns.segment_codes(s, shop.tenant_id, shop.program_id, leaver) == []
            assert campaigns.segment_codes(s, shop.tenant_id, shop.program_id, stayer) == [
                "retail"]
        assert shop.wallet(leaver).posted == 300
        assert shop.wallet(stayer).posted == 0
        with shop.db.read() as s:
            left = sorted(e.attributes["segment"] for e in s.scalars(select(events.Event).where(
                events.Event.account_id == leaver, events.Event.activity_type == "segment_left")))
        assert left == ["retail"]
    assert_ledger_invariants(db)


def test_leaving_two_segments_at_once_fires_both_and_counts_each_once(db: Database) -> None:
    """One change takes an account out of two segments: each leave is an activity of its own
    (the first one's earning path must not swallow the second) and each count falls by one."""
    with clock.frozen(NOW):
        doc = definition({"code": "come-back", "trigger": "activity:segment_left",
                          "effects": [{"type": "fixed", "unit": "points", "points": 300}]},
                         replace=True)
        doc["member_attributes"] = {"kind": "str"}
        doc["activity_types"]["segment_left"] = {"attributes": {"segment": "str"}}
        shop = Shop(db, doc)
        leaver = enrolled(shop, attributes={"kind": "retailer"})
        enrolled(shop, attributes={"kind": "retailer"})  # stays in both
        ids = [segment(shop, "retail", 'member.attributes.kind == "retailer"'),
               segment(shop, "trade", 'member.attributes.kind != "distributor"')]
        with shop.db.transaction() as s:
            members.update_account(s, shop.tenant_id, leaver,
                                   {"attributes": {"kind": "distributor"}}, actor="test")
            entered, left = campaigns.refresh_account(s, shop.tenant_id, shop.program_id, leaver)
        assert (entered, sorted(left)) == ([], ["retail", "trade"])
        with shop.db.read() as s:
            left_events = sorted(e.attributes["segment"] for e in s.scalars(
                select(events.Event).where(events.Event.account_id == leaver,
                                           events.Event.activity_type == "segment_left")))
            counts = [campaigns.get_segment(s, shop.tenant_id, i).members for i in ids]
            announced = sorted(m.payload["segment"] for m in s.scalars(select(OutboxMessage).where(
                OutboxMessage.event_type == "segment.left")))
        assert left_events == ["retail", "trade"]
        assert shop.wallet(leaver).posted == 600
        assert counts == [1, 1]
        assert announced == ["retail", "trade"]
    assert_ledger_invariants(db)
