"""Perks need an active enrolment, and closing an enrolment ends the program's paid plans at
once with an audit record (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from allegiance import audit, members, memberships
from allegiance.kit import clock
from tests.conftest import World
from tests.integration.test_memberships import NOW, account, perk, plan, sub_state


@pytest.fixture
def w(world: World) -> Iterator[World]:
    with clock.frozen(NOW):
        yield world


def _setup(w: World) -> tuple[str, str, str]:
    plan(w)
    acc = account(w)
    with w.db.transaction() as s:
        memberships.create_perk(s, w.tenant_id, w.program_id, code="support", name="24/7",
                                plans=["pro"], tiers=[])
        sub = memberships.subscribe(s, w.tenant_id, w.program_id, acc, "pro", actor="t").id
        enrolment = members.list_enrolments(s, w.tenant_id, program_id=w.program_id,
                                            account_id=acc).items[0].id
    return acc, sub, enrolment


def _move(w: World, enrolment: str, to: str) -> None:
    with w.db.transaction() as s:
        members.change_enrolment_status(s, w.tenant_id, enrolment, to, actor="ops",
                                        reason="left")


def test_a_suspended_member_has_no_perks_until_reactivated(w: World) -> None:
    acc, sub, enrolment = _setup(w)
    assert perk(w, acc, "support").allowed
    _move(w, enrolment, "suspended")
    answer = perk(w, acc, "support")
    assert (answer.allowed, answer.reason, answer.until) == (False, "enrolment not active",
                                                             None)
    assert sub_state(w, sub)[0] == "active"  # a suspension does not end the plan
    _move(w, enrolment, "active")
    assert perk(w, acc, "support").reason == "plan pro"


def test_closing_the_enrolment_cancels_the_plan_at_once(w: World) -> None:
    acc, sub, enrolment = _setup(w)
    with w.db.transaction() as s:  # even one already cancelled at its period's end
        memberships.cancel(s, w.tenant_id, sub, at_period_end=True, actor="member")
    assert sub_state(w, sub)[0] == "active"
    _move(w, enrolment, "closed")
    assert sub_state(w, sub)[0] == "cancelled"
    with w.db.read() as s:
        row = memberships.get_subscription(s, w.tenant_id, sub)
        assert row.cancel_at == NOW and row.status == "cancelled"
        records = [(r.after.get("reason"), r.actor) for r in reversed(
            audit.history(s, w.tenant_id, "account", acc)) if r.action == "membership.cancel"]
    assert records == [(None, "member"), ("enrolment closed", "ops")]
    answer = perk(w, acc, "support")
    assert (answer.allowed, answer.reason) == (False, "enrolment not active")
    # still cancelled later: nothing brings the plan back
    with clock.frozen(NOW + timedelta(days=45)), w.db.read() as s:
        assert memberships.state(s, memberships.get_subscription(s, w.tenant_id, sub)
                                 ).status == "cancelled"


def test_an_account_never_enrolled_has_no_perks(w: World) -> None:
    plan(w)
    acc = account(w)
    with w.db.transaction() as s:
        memberships.create_perk(s, w.tenant_id, w.program_id, code="support", name="24/7",
                                plans=["pro"], tiers=[])
    assert perk(w, acc, "support").reason == "enrolment not active"
