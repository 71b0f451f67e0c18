"""Paid memberships and perks against the database (SQLite and PostgreSQL): trial, first fee,
renewal, grace, lapse, cancellation, the status job, and perks by plan or tier."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from allegiance import members, memberships, tiers
from allegiance.jobs import registry
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from allegiance.kit.models import OutboxMessage
from tests.conftest import World

NOW = datetime(2026, 1, 31, 10, tzinfo=UTC)


@pytest.fixture
def w(world: World) -> Iterator[World]:
    with clock.frozen(NOW) as c:
        world.clock = c  # type: ignore[attr-defined]
        yield world


def plan(w: World, code: str = "pro", **kw: object) -> None:
    with w.db.transaction() as s:
        memberships.create_plan(s, w.tenant_id, w.program_id, code=code, name=code,
                                fee=kw.pop("fee", 4900), billing=kw.pop("billing", "monthly"),
                                **kw)  # type: ignore[arg-type]


def account(w: World) -> str:
    with w.db.transaction() as s:
        return members.create_account(s, w.tenant_id, name="Shop").id


def sub_state(w: World, sub_id: str) -> tuple[str, datetime | None]:
    with w.db.read() as s:
        sub = memberships.get_subscription(s, w.tenant_id, sub_id)
        state = memberships.state(s, sub)
        return state.status, sub.paid_until


def perk(w: World, acc: str, code: str) -> memberships.PerkAnswer:
    with w.db.read() as s:
        return memberships.perks_of(s, w.tenant_id, w.program_id, acc, code)[0].answer


def test_trial_then_first_fee_then_renewal_from_the_paid_date(w: World) -> None:
    plan(w, trial_days=14, grace_days=5)
    acc = account(w)
    with w.db.transaction() as s:
        memberships.create_perk(s, w.tenant_id, w.program_id, code="support", name="24/7",
                                plans=["pro"], tiers=[])
        sub = memberships.subscribe(s, w.tenant_id, w.program_id, acc, "pro", actor="t").id
        assert memberships.charges_of(s, w.tenant_id, sub) == []
    assert sub_state(w, sub) == ("trial", None)
    assert perk(w, acc, "support").allowed
    w.clock.advance(timedelta(days=10))  # type: ignore[attr-defined]
    with w.db.transaction() as s:
        first = memberships.record_payment(s, w.tenant_id, sub, external_ref="pay-1", actor="t")
        again = memberships.record_payment(s, w.tenant_id, sub, external_ref="pay-1", actor="t")
    assert first.id == again.id and first.amount == 4900
    # the first paid month starts when the trial ends (14 Feb)
    assert sub_state(w, sub) == ("active", datetime(2026, 3, 14, 10, tzinfo=UTC))
    w.clock.set(datetime(2026, 3, 16, tzinfo=UTC))  # type: ignore[attr-defined]
    assert sub_state(w, sub)[0] == "grace" and perk(w, acc, "support").allowed
    with w.db.transaction() as s:
        memberships.record_payment(s, w.tenant_id, sub, external_ref="pay-2", actor="t")
    assert sub_state(w, sub) == ("active", datetime(2026, 4, 14, 10, tzinfo=UTC))


def test_renewals_keep_the_day_of_month(w: World) -> None:
    plan(w)
    acc = account(w)
    with w.db.transaction() as s:
        sub = memberships.subscribe(s, w.tenant_id, w.program_id, acc, "pro", actor="t").id
    ends = [sub_state(w, sub)[1]]
    for n in range(3):
        with w.db.transaction() as s:
            memberships.record_payment(s, w.tenant_id, sub, external_ref=f"r{n}", actor="t")
        ends.append(sub_state(w, sub)[1])
    assert [e.date().isoformat() for e in ends if e] == [
        "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]


def test_no_trial_charges_at_once_then_grace_then_lapse_and_the_job_writes_it(w: World) -> None:
    plan(w, grace_days=3)
    acc = account(w)
    with w.db.transaction() as s:
        memberships.create_perk(s, w.tenant_id, w.program_id, code="leads", name="Leads",
                                plans=["pro"], tiers=[])
        sub = memberships.subscribe(s, w.tenant_id, w.program_id, acc, "pro", actor="t").id
        assert [c.amount for c in memberships.charges_of(s, w.tenant_id, sub)] == [4900]
    assert sub_state(w, sub) == ("active", datetime(2026, 2, 28, 10, tzinfo=UTC))
    answer = perk(w, acc, "leads")
    assert answer.allowed and answer.until == datetime(2026, 3, 3, 10, tzinfo=UTC)
    w.clock.set(datetime(2026, 3, 2, tzinfo=UTC))  # type: ignore[attr-defined]
    assert sub_state(w, sub)[0] == "grace"
    w.clock.set(datetime(2026, 3, 4, tzinfo=UTC))  # type: ignore[attr-defined]
    assert sub_state(w, sub)[0] == "lapsed"
    assert not perk(w, acc, "leads").allowed
    with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
        memberships.record_payment(s, w.tenant_id, sub, external_ref="late", actor="t")
    assert err.value.code == "not_renewable"
    summary = registry.get("memberships").run(w.db, 10, lambda *_: None)
    assert summary["subscriptions_changed"] == 1
    with w.db.read() as s:
        assert memberships.get_subscription(s, w.tenant_id, sub).status == "lapsed"
        kinds = [m.event_type for m in s.scalars(select(OutboxMessage))]
    assert "membership.charged" in kinds and "membership.status_changed" in kinds
    with w.db.transaction() as s:  # a lapsed member may subscribe again
        memberships.subscribe(s, w.tenant_id, w.program_id, acc, "pro", actor="t")


def test_one_live_subscription_and_cancellation_at_period_end(w: World) -> None:
    plan(w, "gold", billing="yearly", fee=100_000)
    plan(w, "silver")
    acc = account(w)
    with w.db.transaction() as s:
        sub = memberships.subscribe(s, w.tenant_id, w.program_id, acc, "gold", actor="t").id
    with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
        memberships.subscribe(s, w.tenant_id, w.program_id, acc, "silver", actor="t")
    assert err.value.code == "already_subscribed"
    with w.db.transaction() as s:
        row = memberships.cancel(s, w.tenant_id, sub, at_period_end=True, actor="t")
        assert row.cancel_at == datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert sub_state(w, sub)[0] == "active"
    w.clock.set(datetime(2027, 2, 1, tzinfo=UTC))  # type: ignore[attr-defined]
    assert sub_state(w, sub)[0] == "cancelled"
    with w.db.transaction() as s:
        memberships.subscribe(s, w.tenant_id, w.program_id, acc, "silver", actor="t")


def test_one_time_fee_is_paid_for_good(w: World) -> None:
    plan(w, "life", billing="one_time", fee=25_000)
    acc = account(w)
    with w.db.transaction() as s:
        sub = memberships.subscribe(s, w.tenant_id, w.program_id, acc, "life", actor="t").id
    w.clock.set(datetime(2040, 1, 1, tzinfo=UTC))  # type: ignore[attr-defined]
    assert sub_state(w, sub) == ("active", None)
    with pytest.raises(AllegianceError), w.db.transaction() as s:
        memberships.record_payment(s, w.tenant_id, sub, external_ref="x", actor="t")


def test_perk_by_tier_level(w: World) -> None:
    acc = account(w)
    with w.db.transaction() as s:
        members.ensure_enrolled(s, w.tenant_id, w.program_id, acc, "t")  # perks need it
        tiers.create_ladder(s, w.tenant_id, w.program_id, {
            "code": "status", "name": "Status", "metric": "points_earned",
            "period": {"kind": "calendar_year"},
            "levels": [{"code": "partner", "name": "Partner", "threshold": 100}]})
        memberships.create_perk(s, w.tenant_id, w.program_id, code="early", name="Early access",
                                plans=[], tiers=["partner"])
    assert not perk(w, acc, "early").allowed
    assert perk(w, acc, "early").reason == "needs tier level partner"
    with w.db.transaction() as s:
        tiers.add_credit(s, w.tenant_id, w.program_id, acc, "points_earned", 150, NOW)
    answer = perk(w, acc, "early")
    assert answer.allowed and answer.reason == "tier level partner"
    with pytest.raises(AllegianceError) as err, w.db.read() as s:
        memberships.perks_of(s, w.tenant_id, w.program_id, acc, "nope")
    assert err.value.code == "perk_not_found"
