"""Events against a real database (SQLite and PostgreSQL): purchases earn by rule (unknown SKUs
by the rules that still apply), typed activities and counters, third-party reports matched by
member number, replays earn once, the unmatched queue, pending earnings released by the job,
user and split recipients, limits and budgets, dry-run, and malformed input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from allegiance import events, ledger, tenants, tiers
from allegiance.events import repository as events_repo
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.events_support import NOW, Shop, definition
from tests.integration.events_support import points_by_rule as _points
from tests.support.invariants import assert_ledger_invariants


@pytest.fixture(autouse=True)
def _frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(NOW) as c:
        yield c


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    s = Shop(db)
    yield s
    assert_ledger_invariants(db)


def test_purchase_earns_by_rule_and_unknown_sku_earns_by_rules_that_apply(shop: Shop) -> None:
    acc = shop.account()
    out = shop.event(external_id="INV-1", account_id=acc, lines=[
        {"sku": "SKU-1", "quantity": 2, "unit_price": 1000},   # genuine: $20 + 2 × 5
        {"sku": "UNKNOWN", "quantity": 1, "amount": 550},      # not genuine: $5.50
    ])
    assert out.created and out.event.status == "processed"
    assert out.event.amount == 2550 and out.event.quantity == 3
    assert [line.amount for line in out.lines] == [2000, 550]
    assert _points(out) == {"base": 25, "genuine": 10}
    genuine = [a for a in out.awards if a.rule_code == "genuine"]
    assert [a.line_no for a in genuine] == [1]
    assert shop.wallet(acc).available == 35
    assert out.balances[0].available == 35 and out.balances[0].owner_id == acc
    # Points earned are a qualifying tier credit.
    auto = [a for a in out.awards if a.type == "tier_credit"]
    assert auto and auto[0].data["metric"] == "points_earned" and auto[0].amount == 35
    # Only the unknown SKU: the base rule still applies.
    only_unknown = shop.event(external_id="INV-2", account_id=acc,
                              lines=[{"sku": "NEW-SKU", "amount": 1000}])
    assert _points(only_unknown) == {"base": 10}
    assert shop.count("journal_entry") >= 2


def test_activity_with_typed_attributes_and_counter_rule(shop: Shop) -> None:
    acc = shop.account()

    def course(n: int, mandatory: bool) -> events.Outcome:
        return shop.event(external_id=f"C-{n}", kind="activity", activity_type="course_completed",
                          account_id=acc, attributes={"course_id": f"c{n}",
                                                      "mandatory": mandatory, "score": 0.9})

    assert _points(course(1, True)) == {"course": 50}
    assert _points(course(2, False)) == {"course": 50}
    assert _points(course(3, True)) == {"course": 50, "two-mandatory": 100}
    assert _points(course(4, True)) == {"course": 50}  # lifetime: once
    assert shop.wallet(acc).available == 300
    with pytest.raises(AllegianceError) as bad:
        shop.event(external_id="C-bad", kind="activity", activity_type="course_completed",
                   account_id=acc, attributes={"score": "high"})
    assert bad.value.status == 422 and bad.value.field == "attributes.score"
    with pytest.raises(AllegianceError) as unknown:
        shop.event(external_id="C-bad2", kind="activity", activity_type="course_completed",
                   account_id=acc, attributes={"colour": "red"})
    assert unknown.value.field == "attributes.colour"
    with pytest.raises(AllegianceError) as kind:
        shop.event(external_id="C-bad3", kind="activity", activity_type="webinar",
                   account_id=acc)
    assert kind.value.field == "activity_type"
    # No rule for the newsletter: stored, processed, earns nothing.
    quiet = shop.event(external_id="N-1", kind="activity", activity_type="newsletter_opt_in",
                       account_id=acc)
    assert quiet.event.status == "processed" and quiet.awards == []


def _distinct_shop(db: Database) -> Shop:
    doc = definition()
    doc["counters"]["mandatory_courses"]["distinct"] = "event.attributes.course_id"
    return Shop(db, doc)


def _course(shop: Shop, acc: str, ref: str, course_id: str) -> events.EventData:
    return events.EventData(external_id=ref, kind="activity", activity_type="course_completed",
                            account_id=acc, occurred_at=NOW,
                            attributes={"course_id": course_id, "mandatory": True})


def _counted(shop: Shop, acc: str) -> int:
    with shop.db.read() as s:
        return events_repo.counters_of(s, shop.tenant_id, shop.program_id,
                                       acc).get("mandatory_courses", 0)


def test_distinct_counter_counts_a_repeated_course_once(db: Database) -> None:
    shop = _distinct_shop(db)
    acc = shop.account()

    def send(ref: str, course_id: str, account: str = acc) -> dict[str, int]:
        with shop.db.transaction() as s:
            return _points(events.ingest(s, shop.tenant_id, shop.program_id,
                                         _course(shop, account, ref, course_id), actor="t"))

    def dry(ref: str, course_id: str) -> set[str]:
        with shop.db.read() as s:
            result = events.dry_run(s, shop.tenant_id, shop.program_id,
                                    _course(shop, acc, ref, course_id))
        return {a.rule for a in result.awards}

    assert send("C-1", "M1") == {"course": 50} and _counted(shop, acc) == 1
    # the same course completed again: still one course, no set bonus (it paid 100 before)
    assert dry("C-2", "M1") == {"course"}
    assert send("C-2", "M1") == {"course": 50} and _counted(shop, acc) == 1
    assert dry("C-3", "M2") == {"course", "two-mandatory"}
    assert send("C-3", "M2") == {"course": 50, "two-mandatory": 100}
    assert _counted(shop, acc) == 2 and shop.count("member_counter_key") == 2
    # another member's M1 is their own first course
    other = shop.account(name="Other")
    assert send("O-1", "M1", other) == {"course": 50} and _counted(shop, other) == 1
    assert shop.wallet(acc).available == 250
    assert_ledger_invariants(db)


def test_distinct_counter_under_concurrency(db: Database) -> None:
    """Six concurrent completions, three of course A and three of course B: the counter ends
    at 2 (each course once, both courses counted) and the set bonus is paid once."""
    shop = _distinct_shop(db)
    acc = shop.account()
    shop.event(external_id="warm-up", account_id=acc, amount=100)  # enrolled, wallet exists
    barrier = threading.Barrier(6)
    errors: list[Exception] = []

    def send(ref: str, course_id: str) -> None:
        barrier.wait()
        try:
            with shop.db.transaction() as s:
                events.ingest(s, shop.tenant_id, shop.program_id,
                              _course(shop, acc, ref, course_id), actor="t")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(f"K-{n}", "AB"[n % 2])) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _counted(shop, acc) == 2 and shop.count("member_counter_key") == 2
    assert shop.wallet(acc).available == 1 + 6 * 50 + 100
    assert_ledger_invariants(db)


def test_third_party_report_matched_by_member_number(shop: Shop) -> None:
    reseller = shop.account(name="Distributor")
    grower = shop.account(name="Farm", member_number="NU-100")
    out = shop.event(external_id="DIST-9", member_number="NU-100", reported_by="third_party",
                     reporter_account_id=reseller, lines=[{"sku": "SKU-2", "amount": 10000}])
    assert out.event.account_id == grower
    assert out.event.source == f"reseller:{reseller}"
    assert out.event.reporter_account_id == reseller
    assert shop.wallet(grower).available == 105
    assert shop.wallet(reseller).available == 0
    # The same invoice id from another source is another event.
    other = shop.event(external_id="DIST-9", source="erp", member_number="NU-100",
                       lines=[{"sku": "X", "amount": 100}])
    assert other.created


def test_match_by_external_id_and_by_user(shop: Shop) -> None:
    acc = shop.account(external_ids=[("erp", "C-7")])
    out = shop.event(external_id="E-1", account_external_id=("erp", "C-7"), amount=500)
    assert out.event.account_id == acc and _points(out) == {"base": 5}
    user = shop.user(acc)
    by_user = shop.event(external_id="E-2", user_id=user, amount=300)
    assert by_user.event.account_id == acc and by_user.event.user_id == user


def test_replay_earns_once(shop: Shop) -> None:
    acc = shop.account()
    first = shop.event(external_id="INV-R", account_id=acc, amount=10000)
    entries = shop.count("journal_entry")
    for _ in range(3):
        again = shop.event(external_id="INV-R", account_id=acc, amount=99999)
        assert not again.created and again.event.id == first.event.id
        assert [a.amount for a in again.awards] == [a.amount for a in first.awards]
    assert shop.wallet(acc).available == 100
    assert shop.count("journal_entry") == entries
    assert shop.count("event") == 1


def test_unmatched_then_matched(shop: Shop) -> None:
    out = shop.event(external_id="U-1", member_number="NOBODY",
                     lines=[{"sku": "SKU-1", "amount": 4000}])
    assert out.event.status == "unmatched" and out.event.account_id is None
    assert "NOBODY" in (out.event.reason or "") and out.awards == []
    assert shop.count("event") == 1 and shop.count("journal_entry") == 0
    acc = shop.account()
    with shop.db.transaction() as s:
        matched = events.match(s, shop.tenant_id, out.event.id, acc, actor="admin")
    assert matched.event.status == "processed" and matched.event.account_id == acc
    assert _points(matched) == {"base": 40, "genuine": 5}
    assert shop.wallet(acc).available == 45
    with pytest.raises(AllegianceError) as twice, shop.db.transaction() as s:
        events.match(s, shop.tenant_id, out.event.id, acc, actor="admin")
    assert twice.value.status == 409


def test_pending_days_hold_released_by_job(db: Database, _frozen: clock.FrozenClock) -> None:
    shop = Shop(db, definition({
        "code": "window", "trigger": "purchase", "pending_days": 30,
        "effects": [{"type": "fixed", "unit": "points", "points": 200}]}))
    acc = shop.account()
    out = shop.event(external_id="P-1", account_id=acc, amount=1000)
    held = [a for a in out.awards if a.rule_code == "window"]
    assert held[0].hold_id is not None and held[0].entry_id is None
    bal = shop.wallet(acc)
    assert bal.available == 10 and bal.pending_in == 200
    _frozen.advance(timedelta(days=29))
    with db.transaction() as s:
        assert ledger.release_due_holds(s) == 0
    _frozen.advance(timedelta(days=1, seconds=1))
    with db.transaction() as s:
        assert ledger.release_due_holds(s) == 1
    bal = shop.wallet(acc)
    assert bal.available == 210 and bal.pending_in == 0
    assert_ledger_invariants(db)


def test_user_recipient_and_split(db: Database) -> None:
    shop = Shop(db, definition(
        {"code": "seller", "trigger": "purchase", "recipient": "user",
         "effects": [{"type": "fixed", "unit": "points", "points": 30}]},
        {"code": "shared", "trigger": "purchase", "recipient": "split",
         "split": {"account": 70, "user": 30},
         "effects": [{"type": "fixed", "unit": "points", "points": 101}]},
        replace=True))
    acc = shop.account()
    seller = shop.user(acc)
    out = shop.event(external_id="S-1", account_id=acc, user_id=seller, amount=100)
    assert shop.wallet(seller, "user").available == 30 + 30  # 30% of 101 rounded down
    assert shop.wallet(acc).available == 71  # the remainder
    owners = sorted((a.rule_code, a.owner_type, a.amount) for a in out.awards if a.unit_code)
    assert owners == [("seller", "user", 30), ("shared", "account", 71), ("shared", "user", 30)]
    # No user on the event: the account earns everything.
    alone = shop.event(external_id="S-2", account_id=acc, amount=100)
    assert {a.owner_type for a in alone.awards if a.unit_code} == {"account"}
    assert all("no user" in a.data["note"] for a in alone.awards if a.unit_code)
    assert shop.wallet(acc).available == 71 + 30 + 101
    assert_ledger_invariants(db)


def test_member_limit_and_budget(db: Database) -> None:
    shop = Shop(db, definition(
        {"code": "daily", "trigger": "purchase",
         "effects": [{"type": "fixed", "unit": "points", "points": 10}],
         "limits": [{"per": "member", "period": "day", "times": 2}]},
        {"code": "promo", "trigger": "purchase", "budget": 25,
         "effects": [{"type": "fixed", "unit": "points", "points": 10}]},
        replace=True))
    a, b = shop.account(), shop.account()
    got = [_points(shop.event(external_id=f"L-{i}", account_id=a, amount=1)) for i in range(3)]
    assert [g.get("daily", 0) for g in got] == [10, 10, 0]
    assert [g.get("promo", 0) for g in got] == [10, 10, 5]
    more = _points(shop.event(external_id="L-9", account_id=b, amount=1))
    assert more == {"daily": 10}
    # The next day the cap resets.
    nxt = _points(shop.event(external_id="L-10", account_id=a, amount=1,
                             occurred_at=NOW + timedelta(days=1)))
    assert nxt == {"daily": 10}
    assert shop.wallet(a).available == 10 + 10 + 20 + 5 + 10
    assert_ledger_invariants(db)


def test_dry_run_writes_nothing_and_explains(shop: Shop) -> None:
    acc = shop.account()
    tables = ("event", "event_line", "event_award", "journal_entry", "posting", "rule_usage",
              "member_counter", "ledger_account", "enrolment", "outbox_message")
    before = {t: shop.count(t) for t in tables}
    with shop.db.read() as s:
        result = events.dry_run(s, shop.tenant_id, shop.program_id, events.EventData(
            external_id="D-1", account_id=acc, occurred_at=NOW,
            lines=(events.LineIn("SKU-1", None, None, None, (), 1, 1000, None),)))
    assert {a.rule: a.amount for a in result.awards} == {"base": 10, "genuine": 5}
    traces = {t.rule: t for t in result.traces}
    assert traces["genuine"].matched and "1 of 1 lines" in traces["genuine"].reason
    assert not traces["course"].matched and "trigger" in traces["course"].reason
    assert {t: shop.count(t) for t in tables} == before


def test_malformed_event_is_refused_and_nothing_written(shop: Shop) -> None:
    acc = shop.account()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"external_id": "", "account_id": acc}, "external_id"),
        ({"external_id": "M", "account_id": acc, "amount": -5}, "amount"),
        ({"external_id": "M", "account_id": acc, "lines": [{"sku": "A", "quantity": 0}]},
         "lines[0].quantity"),
        ({"external_id": "M", "account_id": acc, "lines": [{"sku": "A", "unit_price": -1}]},
         "lines[0].unit_price"),
        ({"external_id": "M"}, "account_id"),
        ({"external_id": "M", "account_id": acc, "user_id": "usr_missing"}, "user_id"),
        ({"external_id": "M", "account_id": acc, "reported_by": "third_party"},
         "reporter_account_id"),
        ({"external_id": "M", "account_id": acc, "kind": "refund"}, "kind"),
    ]
    for kw, field in cases:
        with pytest.raises(AllegianceError) as err:
            shop.event(**kw)
        assert err.value.status == 422 and err.value.field == field, (kw, err.value)
    assert shop.count("event") == 0 and shop.count("journal_entry") == 0


def test_not_enrolled_and_no_definition(db: Database) -> None:
    shop = Shop(db, definition(enrolment_mode="invitation"))
    acc = shop.account()
    with pytest.raises(AllegianceError) as err:
        shop.event(external_id="X-1", account_id=acc, amount=100)
    assert err.value.status == 422 and err.value.code == "not_enrolled"
    assert shop.count("event") == 0
    with db.transaction() as s:
        other = tenants.create_program(s, shop.tenant_id, code="bare", name="Bare",
                                       base_currency="USD")
    with pytest.raises(AllegianceError) as none, db.transaction() as s:
        events.ingest(s, shop.tenant_id, other.id,
                      events.EventData(external_id="X", account_id=acc, amount=1), actor="t")
    assert none.value.code == "program_has_no_definition"
    assert_ledger_invariants(db)


def test_tier_credit_effect(db: Database) -> None:
    shop = Shop(db, definition(
        {"code": "spend", "trigger": "purchase",
         "effects": [{"type": "tier_credit", "metric": "spend"}]}))
    acc = shop.account()
    out = shop.event(external_id="T-1", account_id=acc, amount=12345)
    credits = {a.data["metric"]: a.amount for a in out.awards if a.type == "tier_credit"}
    assert credits == {"spend": 12345, "points_earned": 123}
    with db.read() as s:
        assert tiers.status(s, shop.tenant_id, shop.program_id, acc) == []
    assert_ledger_invariants(db)


def test_concurrent_replays_earn_once(shop: Shop) -> None:
    acc = shop.account()
    with shop.db.transaction() as s:  # enrolled and wallet created up front
        events.ingest(s, shop.tenant_id, shop.program_id,
                      events.EventData(external_id="warm-up", account_id=acc, amount=100,
                                       occurred_at=NOW), actor="t")
    barrier = threading.Barrier(10)
    results: list[object] = []

    def send() -> None:
        barrier.wait()
        try:
            with shop.db.transaction() as s:
                out = events.ingest(s, shop.tenant_id, shop.program_id, events.EventData(
                    external_id="SAME", account_id=acc, amount=5000, occurred_at=NOW),
                    actor="t")
                results.append((out.created, out.event.id))
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, tuple) for r in results), results
    assert sum(1 for r in results if isinstance(r, tuple) and r[0]) == 1
    assert len({r[1] for r in results if isinstance(r, tuple)}) == 1
    assert shop.wallet(acc).available == 1 + 50
