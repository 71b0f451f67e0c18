"""Member events: invitations, capacity that concurrent registrations never exceed,
check-in with points through the ledger and challenge progress, sponsors (SQLite and
PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from allegiance import engagement, members, privacy
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from allegiance.kit.models import OutboxMessage
from tests.conftest import World

NOW = datetime(2026, 6, 10, 18, tzinfo=UTC)


@pytest.fixture
def w(world: World) -> Iterator[World]:
    with clock.frozen(NOW):
        yield world


def accounts(w: World, n: int) -> list[str]:
    with w.db.transaction() as s:
        return [members.create_account(s, w.tenant_id, name=f"M{i}").id for i in range(n)]


def event(w: World, **kw: object) -> str:
    with w.db.transaction() as s:
        return engagement.create_event(
            s, w.tenant_id, w.program_id, code=str(kw.pop("code", "awards")), name="Awards",
            starts_at=datetime(2026, 6, 20, 18, tzinfo=UTC),
            ends_at=datetime(2026, 6, 20, 23, tzinfo=UTC), **kw).id  # type: ignore[arg-type]


def refused(w: World, fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
        fn(s, w.tenant_id, *args, **kw)  # type: ignore[operator]
    return err.value.code


def test_invitation_capacity_check_in_and_sponsors(w: World) -> None:
    a, b, c = accounts(w, 3)
    eid = event(w, capacity=2, invitation_only=True, attendance_unit_id=w.unit_id,
                attendance_points=250)
    with w.db.transaction() as s:
        engagement.create_challenge(s, w.tenant_id, w.program_id, code="go", name="Go",
                                    trigger="activity:event_attended", target=1,
                                    effects=[{"type": "points", "unit": "points",
                                              "amount": 50}], actor="t")
        assert engagement.invite(s, w.tenant_id, eid, [a, b, c, a]).invited == 3
    with w.db.transaction() as s:
        engagement.register(s, w.tenant_id, eid, a)
        engagement.register(s, w.tenant_id, eid, a)  # twice: the same seat
        engagement.register(s, w.tenant_id, eid, b)
    assert refused(w, engagement.register, eid, c) == "event_full"
    stranger = accounts(w, 1)[0]
    assert refused(w, engagement.register, eid, stranger) == "not_invited"
    with w.db.transaction() as s:
        engagement.cancel_registration(s, w.tenant_id, eid, b)
        engagement.register(s, w.tenant_id, eid, c)
    assert refused(w, engagement.check_in, eid, b, actor="t") == "invalid_transition"
    with w.db.transaction() as s:
        first = engagement.check_in(s, w.tenant_id, eid, a, actor="t")
        again = engagement.check_in(s, w.tenant_id, eid, a, actor="t")
        assert first.entry_id == again.entry_id and first.status == "attended"
        engagement.add_sponsor(s, w.tenant_id, eid, name="Print Co", contribution=500_000)
    assert w.balance(w.wallet(a)).available == 250 + 50
    with w.db.read() as s:
        summary = engagement.member_events.summary(s, w.tenant_id, eid)
        assert (summary.invited, summary.registered, summary.attended, summary.seats_left) == (
            3, 1, 1, 0)
        assert [(x.name, x.contribution, x.currency) for x in summary.sponsors] == [
            ("Print Co", 500_000, "USD")]
        board = engagement.leaderboard(s, w.tenant_id, w.program_id, metric="points_earned",
                                       period="month")
        assert [(e.account_id, e.score) for e in board.entries] == [(a, 300)]


def test_an_invitation_list_leaves_erased_accounts_out_and_names_them(w: World) -> None:
    a, b, gone, registered_gone = accounts(w, 4)
    eid = event(w, invitation_only=False)
    with w.db.transaction() as s:
        engagement.register(s, w.tenant_id, eid, registered_gone)
    for account_id in (gone, registered_gone):
        with w.db.transaction() as s:
            privacy.erase_member(s, w.tenant_id, account_id, actor="t", reason="gdpr")
    with w.db.transaction() as s:
        outcome = engagement.invite(s, w.tenant_id, eid, [b, gone, a, registered_gone, gone])
    assert outcome == engagement.InviteOutcome(2, tuple(sorted(
        (engagement.NotInvitedAccount(x, "account_erased") for x in (gone, registered_gone)),
        key=lambda n: n.account_id)))
    with w.db.read() as s:
        rows = {r.account_id: (r.status, r.invited) for r in s.scalars(
            select(engagement.Attendee).where(engagement.Attendee.tenant_id == w.tenant_id,
                                              engagement.Attendee.member_event_id == eid))}
        invited = sorted(m.payload["account_id"] for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == w.tenant_id,
            OutboxMessage.event_type == "member_event.invited")))
    # nothing written for the erased ones: no row for one, the other's registration as it was
    assert rows == {a: ("invited", True), b: ("invited", True),
                    registered_gone: ("registered", False)}
    assert invited == sorted([a, b])
    # an unknown account still refuses the whole list, nothing written
    c = accounts(w, 1)[0]
    assert refused(w, engagement.invite, eid, [c, "acc_unknown"]) == "account_not_found"
    with w.db.read() as s:
        assert s.get(engagement.Attendee, (w.tenant_id, eid, c)) is None


def test_concurrent_registrations_never_exceed_capacity(w: World) -> None:
    people = accounts(w, 6)
    eid = event(w, capacity=3)
    outcomes: list[str] = []
    lock = threading.Lock()

    def take(account_id: str) -> None:
        try:
            with w.db.transaction() as s:
                engagement.register(s, w.tenant_id, eid, account_id)
            result = "ok"
        except AllegianceError as exc:
            result = exc.code
        except Exception as exc:  # SQLite: "database is locked" under contention
            result = type(exc).__name__
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=take, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with w.db.read() as s:
        taken = engagement.member_events.seats_taken(s, w.tenant_id, eid)
    assert taken == outcomes.count("ok") <= 3
    assert len(outcomes) == 6
