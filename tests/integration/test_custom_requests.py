"""Account managers and custom requests (Utinet): an item outside the catalogue, priced by the
account's manager, accepted (price held) and fulfilled (posted) or cancelled (given back);
every change audited and announced (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, members, operators
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from allegiance.kit.models import OutboxMessage
from allegiance.memberships import managers
from tests.conftest import World

NOW = datetime(2026, 5, 4, 9, tzinfo=UTC)


def _setup(w: World) -> tuple[str, str, str]:
    with w.db.transaction() as s:
        account = members.create_account(s, w.tenant_id, name="Big Corp").id
        mia, tom = (operators.create_operator(
            s, w.tenant_id, email=f"{n}@utinet.example", name=n, role="support",
            password="a long enough password 42", actor="t").id for n in ("mia", "tom"))
        managers.assign_manager(s, w.tenant_id, account, mia, actor="admin")
    return account, mia, tom


def _fails(w: World, fn: Callable[[Session], object]) -> str:
    """The error code of ``fn`` run in a transaction (rolled back)."""
    with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
        fn(s)
    return err.value.code


def test_request_quote_accept_fulfil(world: World) -> None:
    w = world
    with clock.frozen(NOW):
        account, mia, tom = _setup(w)
        w.earn(w.wallet(account), 1000)
        with w.db.transaction() as s:
            req = managers.create_request(s, w.tenant_id, w.program_id, account,
                                          description="  A rack-mount UPS  ", quantity=2,
                                          actor="member")
            rid = req.id
            assert (req.status, req.manager_id, req.description) == ("requested", mia,
                                                                     "A rack-mount UPS")
        assert _fails(w, lambda s: managers.quote(s, w.tenant_id, rid, operator_id=tom,
                                                  unit_id=w.unit_id, price=600,
                                                  actor="tom")) == "not_the_manager"
        assert _fails(w, lambda s: managers.accept(s, w.tenant_id, rid,
                                                   actor="m")) == "invalid_transition"
        with w.db.transaction() as s:
            managers.quote(s, w.tenant_id, rid, operator_id=mia, unit_id=w.unit_id, price=900,
                           actor="mia")
        with w.db.transaction() as s:  # a better price: quoted again
            row = managers.quote(s, w.tenant_id, rid, operator_id=mia, unit_id=w.unit_id,
                                 price=600, note="two units, delivered", valid_days=7,
                                 actor="mia")
            assert row.quote_expires_at == NOW + timedelta(days=7)
        with w.db.transaction() as s:
            row = managers.accept(s, w.tenant_id, rid, actor="member")
            assert row.status == "accepted" and row.hold_id is not None
        balance = w.balance(w.wallet(account))
        assert (balance.posted, balance.available) == (1000, 400)
        assert _fails(w, lambda s: managers.fulfil(s, w.tenant_id, rid, operator_id=tom,
                                                   actor="tom")) == "not_the_manager"
        with w.db.transaction() as s:
            row = managers.fulfil(s, w.tenant_id, rid, operator_id=mia, actor="mia")
            assert row.status == "fulfilled" and row.entry_id is not None
        balance = w.balance(w.wallet(account))
        assert (balance.posted, balance.available) == (400, 400)
        assert _fails(w, lambda s: managers.cancel(s, w.tenant_id, rid,
                                                   actor="m")) == "invalid_transition"
        with w.db.read() as s:
            actions = [r.action for r in s.scalars(select(audit.AuditRecord).where(
                audit.AuditRecord.object_id == rid).order_by(audit.AuditRecord.seq))]
            types = [m.event_type for m in s.scalars(select(OutboxMessage).where(
                OutboxMessage.event_type.like("custom_request.%")))]
    assert actions == ["custom_request.requested", "custom_request.quoted",
                       "custom_request.quoted", "custom_request.accepted",
                       "custom_request.fulfilled"]
    assert sorted(types) == sorted(["custom_request.requested", "custom_request.quoted",
                                    "custom_request.quoted", "custom_request.accepted",
                                    "custom_request.fulfilled"])


def test_cancel_gives_the_held_price_back_and_declines_and_expiry(world: World) -> None:
    w = world
    with clock.frozen(NOW) as c:
        account, mia, _ = _setup(w)
        w.earn(w.wallet(account), 500)

        def request(price: int, days: int | None = None) -> str:
            with w.db.transaction() as s:
                rid = managers.create_request(s, w.tenant_id, w.program_id, account,
                                              description="Cloud asset accounting",
                                              actor="m").id
                managers.quote(s, w.tenant_id, rid, operator_id=mia, unit_id=w.unit_id,
                               price=price, valid_days=days, actor="mia")
                return rid

        first = request(300)
        with w.db.transaction() as s:
            managers.accept(s, w.tenant_id, first, actor="m")
        assert w.balance(w.wallet(account)).available == 200
        second = request(300)
        # not enough left: the write fails and changes nothing
        assert _fails(w, lambda s: managers.accept(s, w.tenant_id, second,
                                                   actor="m")) == "insufficient_funds"
        with w.db.read() as s:
            assert managers.get_request(s, w.tenant_id, second).status == "quoted"
        with w.db.transaction() as s:
            managers.cancel(s, w.tenant_id, first, reason="changed our mind", actor="m")
            managers.decline(s, w.tenant_id, second, reason="too dear", actor="m")
        assert w.balance(w.wallet(account)).available == 500
        third = request(100, days=3)
        c.set(NOW + timedelta(days=3))
        assert _fails(w, lambda s: managers.accept(s, w.tenant_id, third,
                                                   actor="m")) == "quote_expired"
        with w.db.read() as s:
            rows = managers.list_requests(s, w.tenant_id, w.program_id, account_id=account)
            assert sorted(r.status for r in rows) == ["cancelled", "declined", "quoted"]
        assert w.balance(w.wallet(account)).posted == 500


def test_a_request_needs_a_manager_and_an_active_operator(world: World) -> None:
    w = world
    with w.db.transaction() as s:
        account = members.create_account(s, w.tenant_id, name="Small shop").id
        op = operators.create_operator(s, w.tenant_id, email="old@utinet.example",
                                       name="Old", role="support",
                                       password="a long enough password 42", actor="t").id
        operators.update_operator(s, w.tenant_id, op, status="disabled", actor="t")
    assert _fails(w, lambda s: managers.create_request(
        s, w.tenant_id, w.program_id, account, description="x",
        actor="m")) == "no_account_manager"
    assert _fails(w, lambda s: managers.assign_manager(
        s, w.tenant_id, account, op, actor="a")) == "invalid_custom_request"
    assert _fails(w, lambda s: managers.assign_manager(
        s, w.tenant_id, account, "opr_nope", actor="a")) == "operator_not_found"
    with w.db.read() as s:
        assert managers.manager_of(s, w.tenant_id, account) is None
