"""Redeeming from an employee's own wallet (pay_from="user"): TechAccess pays both the company
and its employees; each spends its own points, refunds go back to the wallet that paid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from allegiance import members, rewards
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from tests.conftest import World
from tests.integration.test_rewards import NOW


@pytest.fixture
def w(world: World) -> Iterator[World]:
    with clock.frozen(NOW):
        yield world


def test_employee_redeems_from_own_wallet_and_gets_refunds_there(w: World) -> None:
    with w.db.transaction() as s:
        company = members.create_account(s, w.tenant_id, name="Globex").id
        other = members.create_account(s, w.tenant_id, name="Other").id
        rep = members.add_user(s, w.tenant_id, company, name="Marco", role="rep",
                               email=None).id
        outsider = members.add_user(s, w.tenant_id, other, name="Eve", role="rep",
                                    email=None).id
        reward_id = rewards.create_reward(s, w.tenant_id, w.program_id, code="f1", name="F1",
                                          kind="experience", unit_id=w.unit_id, cost=300,
                                          requires_approval=True).id
    w.earn(w.wallet(company), 1_000)
    w.earn(w.wallet(rep, "user"), 500)
    with w.db.transaction() as s:
        row = rewards.redeem(s, w.tenant_id, w.program_id, reward_id, company, user_id=rep,
                             pay_from="user")
        redemption_id = row.id
    assert w.balance(w.wallet(rep, "user")).available == 200
    assert w.balance(w.wallet(company)).available == 1_000
    with w.db.transaction() as s:
        rewards.reject(s, w.tenant_id, redemption_id, actor="ops", reason="sold out")
    assert w.balance(w.wallet(rep, "user")).available == 500
    for kwargs in ({"pay_from": "user"}, {"pay_from": "user", "user_id": outsider},
                   {"pay_from": "team"}):
        with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
            rewards.redeem(s, w.tenant_id, w.program_id, reward_id, company, **kwargs)
        assert err.value.code == "invalid_reward"
    with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
        rewards.redeem(s, w.tenant_id, w.program_id, reward_id, company, user_id=rep,
                       pay_from="user", quantity=2)
    assert err.value.code == "insufficient_funds"
