"""Super tickets (Verizon Up): first come while a small stock lasts, or a lottery drawn after
the entries close with per-member limits and balances respected; bonus rewards without a bill
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from allegiance import engagement, members, rewards
from allegiance.engagement import domain, tickets
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from tests.conftest import World

NOW = datetime(2026, 6, 1, 15, tzinfo=UTC)


def _fails(w: World, fn: Callable[[Session], object]) -> str:
    with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
        fn(s)
    return err.value.code


def _accounts(w: World, n: int, balance: int = 100) -> list[str]:
    with w.db.transaction() as s:
        ids = [members.create_account(s, w.tenant_id, name=f"Member {i}").id for i in range(n)]
    for account in ids:
        if balance:
            w.earn(w.wallet(account), balance)
    return ids


def _ticket(w: World, mode: str, stock: int, winners: int | None = None) -> tuple[str, str]:
    with w.db.transaction() as s:
        reward = rewards.create_reward(s, w.tenant_id, w.program_id, code=f"tix-{mode}",
                                       name="Two seats, Hollywood Bowl", kind="experience",
                                       unit_id=w.unit_id, cost=10, stock=stock,
                                       limit_per_member=1)
        ticket = tickets.create_super_ticket(
            s, w.tenant_id, w.program_id, code=mode, name="Super Ticket", reward_id=reward.id,
            mode=mode, opens_at=NOW, closes_at=NOW + timedelta(days=2), winners=winners)
        return ticket.id, reward.id


def test_first_come_while_stock_lasts(world: World) -> None:
    w = world
    with clock.frozen(NOW - timedelta(hours=1)) as c:
        ann, bob, cy = _accounts(w, 3)
        ticket, reward = _ticket(w, "first_come", stock=2)
        assert _fails(w, lambda s: tickets.enter(s, w.tenant_id, ticket, ann,
                                                 actor="t")) == "entries_closed"
        c.set(NOW)
        for account in (ann, bob):
            with w.db.transaction() as s:
                entry = tickets.enter(s, w.tenant_id, ticket, account, actor="t")
                assert entry.status == "won" and entry.redemption_id is not None
        assert _fails(w, lambda s: tickets.enter(s, w.tenant_id, ticket, ann,
                                                 actor="t")) == "already_entered"
        assert _fails(w, lambda s: tickets.enter(s, w.tenant_id, ticket, cy,
                                                 actor="t")) == "out_of_stock"
        with w.db.read() as s:
            assert rewards.get_reward(s, w.tenant_id, reward).stock == 0
            assert len(tickets.entries(s, w.tenant_id, ticket)) == 2  # cy left no entry
    assert w.balance(w.wallet(ann)).available == 90


def test_lottery_draws_winners_in_a_checkable_order(world: World) -> None:
    w = world
    with clock.frozen(NOW) as c:
        entrants = _accounts(w, 5)
        broke = _accounts(w, 1, balance=0)[0]
        ticket, reward = _ticket(w, "lottery", stock=2)
        for account in [*entrants, broke]:
            with w.db.transaction() as s:
                assert tickets.enter(s, w.tenant_id, ticket, account,
                                     actor="t").status == "entered"
        assert w.balance(w.wallet(entrants[0])).available == 100  # entering costs nothing
        assert _fails(w, lambda s: tickets.draw(s, w.tenant_id, ticket,
                                                actor="t")) == "invalid_transition"
        c.set(NOW + timedelta(days=2))
        assert _fails(w, lambda s: tickets.enter(s, w.tenant_id, ticket, entrants[0],
                                                 actor="t")) == "entries_closed"
        with w.db.transaction() as s:
            drawn = tickets.draw(s, w.tenant_id, ticket, actor="t")
        with w.db.read() as s:
            row = tickets.get_super_ticket(s, w.tenant_id, ticket)
            assert (row.status, rewards.get_reward(s, w.tenant_id, reward).stock) == ("drawn", 0)
            seed = row.seed
        assert seed is not None
        order = [e.account_id for e in drawn]
        assert order == domain.draw_order([*entrants, broke], seed)
        assert [e.position for e in drawn] == list(range(1, 7))
        statuses = {e.account_id: e.status for e in drawn}
        assert sorted(statuses.values()).count("won") == 2
        # the winners are the first two drawn that can pay; the broke entrant is skipped if
        # drawn before the places ran out, else it simply lost
        payers = [a for a in order if a != broke][:2]
        assert {a for a, st in statuses.items() if st == "won"} == set(payers)
        last_place = order.index(payers[1])
        assert statuses[broke] == ("skipped" if order.index(broke) < last_place else "lost")
        assert all(st == "lost" for a, st in statuses.items() if order.index(a) > last_place)
        for account in entrants:
            expected = 90 if account in payers else 100
            assert w.balance(w.wallet(account)).available == expected
        assert _fails(w, lambda s: tickets.draw(s, w.tenant_id, ticket,
                                                actor="t")) == "invalid_transition"


def test_draw_order_is_a_reproducible_permutation() -> None:
    ids = [f"acc_{i:02d}" for i in range(30)]
    first = domain.draw_order(ids, "seed-1")
    assert sorted(first) == sorted(ids)
    assert domain.draw_order(list(reversed(ids)), "seed-1") == first
    assert domain.draw_order(ids, "seed-2") != first


def test_bonus_menu_needs_no_credit(world: World) -> None:
    w = world
    with clock.frozen(NOW):
        (member,) = _accounts(w, 1, balance=0)
        with w.db.transaction() as s:
            gift = rewards.create_reward(s, w.tenant_id, w.program_id, code="music",
                                         name="6 months of music", kind="service",
                                         unit_id=w.unit_id, cost=1).id
            paid = engagement.create_menu(s, w.tenant_id, w.program_id, code="monthly",
                                          name="One per bill", reward_ids=[gift]).id
            bonus = engagement.create_menu(s, w.tenant_id, w.program_id, code="bonus",
                                           name="Bonus", reward_ids=[gift], bonus=True).id
        assert _fails(w, lambda s: engagement.pick(s, w.tenant_id, paid, member, gift,
                                                   actor="t")) == "insufficient_funds"
        with w.db.transaction() as s:
            picked = engagement.pick(s, w.tenant_id, bonus, member, gift, actor="t")
            assert rewards.get_redemption(s, w.tenant_id,
                                          picked.redemption_id).status == "approved"
        assert _fails(w, lambda s: engagement.pick(s, w.tenant_id, bonus, member, gift,
                                                   actor="t")) == "already_picked"
    balance = w.balance(w.wallet(member))
    assert (balance.posted, balance.available) == (0, 0)
