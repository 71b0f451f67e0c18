"""Choose-your-reward menus: one pick per month in the program's time zone, redeemed through
the catalogue and the ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from allegiance import engagement, members, rewards, tenants
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from tests.conftest import World

NOW = datetime(2026, 7, 31, 23, 30, tzinfo=UTC)  # already 1 August in Madrid


@pytest.fixture
def w(world: World) -> Iterator[World]:
    with clock.frozen(NOW) as c:
        with world.db.transaction() as s:
            tenants.update_program(s, world.tenant_id, world.program_id,
                                   {"time_zone": "Europe/Madrid"})
        world.clock = c  # type: ignore[attr-defined]
        yield world


def test_one_pick_a_month(w: World) -> None:
    with w.db.transaction() as s:
        acc = members.create_account(s, w.tenant_id, name="Member").id
        ids = [rewards.create_reward(s, w.tenant_id, w.program_id, code=f"r{i}",
                                     name=f"Reward {i}", kind="experience", unit_id=w.unit_id,
                                     cost=10).id for i in range(6)]
        other = rewards.create_reward(s, w.tenant_id, w.program_id, code="x", name="X",
                                      kind="experience", unit_id=w.unit_id, cost=10).id
        menu = engagement.create_menu(s, w.tenant_id, w.program_id, code="up", name="Up",
                                      reward_ids=ids).id
    w.earn(w.wallet(acc), 100)
    with w.db.transaction() as s:
        picked = engagement.pick(s, w.tenant_id, menu, acc, ids[2], actor="t")
        assert rewards.get_redemption(s, w.tenant_id, picked.redemption_id).points == 10
    for reward_id, code in ((ids[3], "already_picked"), (other, "invalid_menu")):
        with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
            engagement.pick(s, w.tenant_id, menu, acc, reward_id, actor="t")
        assert err.value.code == code
    with w.db.read() as s:
        state = engagement.state_of(s, w.tenant_id, menu, acc)
        assert (state.period, state.picks_left) == ("2026-08", 0)
        assert state.resets_at == datetime(2026, 8, 31, 22, tzinfo=UTC)
    w.clock.set(datetime(2026, 8, 31, 22, 0, tzinfo=UTC))  # type: ignore[attr-defined]
    with w.db.transaction() as s:
        engagement.pick(s, w.tenant_id, menu, acc, ids[3], actor="t")
    assert w.balance(w.wallet(acc)).available == 80
