"""An erased member never earns again (SQLite and PostgreSQL). Its erasure closes its
enrolments (reason ``erased``, audited, no leavers' survey); afterwards every earning entry
refuses it with ``409 account_erased`` naming the field that named it, and writes nothing:
events (per event, matched from the unmatched queue, and the rows of a bulk import, where
the good rows still apply), re-enrolment (enrol, invitation, automatic), partner claims,
referral codes and sign-ups (and its code pays it no commission), survey answers and
member-event check-ins; a tier recalculation places it on no free level. A return of a
purchase made before the erasure still reverses what that purchase earned."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, select

from allegiance import (
    audit,
    claims,
    engagement,
    events,
    imports,
    members,
    privacy,
    referrals,
    tenants,
    tiers,
)
from allegiance.engagement import leavers
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.money_support import NOW, Money
from tests.integration.test_imports_property import bulk_definition
from tests.support.invariants import assert_ledger_invariants

BUY = [{"sku": "SKU-1", "quantity": 2, "unit_price": 1500}]  # 30 base + 10 genuine
EARNED = 40


@pytest.fixture
def m(db: Database) -> Iterator[Money]:
    with clock.frozen(NOW):
        yield Money(db)
    assert_ledger_invariants(db)


def erase(m: Money, account_id: str) -> privacy.ErasureReport:
    with m.db.transaction() as s:
        return privacy.erase_member(s, m.tenant_id, account_id, actor="dpo", reason="DSR-7")


def refused(call: Callable[[], Any], field: str) -> None:
    with pytest.raises(AllegianceError) as err:
        call()
    assert (err.value.code, err.value.field) == ("account_erased", field), err.value.message


def counts(m: Money) -> dict[str, int]:
    tables = {"event": events.Event, "enrolment": members.Enrolment,
              "referral": referrals.Referral, "claim": claims.SalesClaim,
              "response": engagement.SurveyResponse}
    with m.db.read() as s:
        return {name: int(s.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in tables.items()}


def in_session(m: Money, fn: Callable[..., Any], *args: Any, **kw: Any) -> Callable[[], Any]:
    def call() -> Any:
        with m.db.transaction() as s:
            return fn(s, m.tenant_id, *args, **kw)
    return call


def test_erasure_closes_every_enrolment_audited_and_sends_no_leavers_survey(m: Money) -> None:
    gone, left, invited = m.account(), m.account(), m.account()
    m.event(external_id="g1", account_id=gone, lines=BUY)
    m.event(external_id="l1", account_id=left, lines=BUY)
    with m.db.transaction() as s:
        survey = engagement.create_survey(s, m.tenant_id, m.program_id, code="bye",
                                          name="Why did you go?", audience="leavers",
                                          questions=[{"code": "nps", "text": "?",
                                                      "kind": "nps"}])
        members.invite(s, m.tenant_id, m.program_id, email="x@example.com",
                       account_id=invited, invited_by="ops")
    with clock.frozen(NOW + timedelta(minutes=1)), m.db.transaction() as s:
        (mine,) = members.list_enrolments(s, m.tenant_id, account_id=left).items
        members.change_enrolment_status(s, m.tenant_id, mine.id, "closed", actor="ops",
                                        reason="moved away")
    with clock.frozen(NOW + timedelta(minutes=2)):
        assert erase(m, gone).enrolments == 1
        assert erase(m, invited).enrolments == 1
    with m.db.transaction() as s:
        for account_id in (gone, invited):
            (row,) = members.list_enrolments(s, m.tenant_id, account_id=account_id).items
            assert row.status == "closed"
            last = members.enrolment_history(s, m.tenant_id, row.id)[-1]
            assert (last.to_status, last.reason, last.actor) == ("closed", "erased", "dpo")
            trail = audit.history(s, m.tenant_id, "enrolment", row.id)
            assert [(r.before, r.after) for r in trail
                    if r.action == "enrolment.status_changed"] == [
                ({"status": last.from_status}, {"status": "closed", "reason": "erased"})]
        # the leaver is sent the survey; the erased member (a member that left) is not
        assert leavers.send(s, m.tenant_id, survey.id) == 1
        sent = [i.account_id for i in leavers.invitations(s, m.tenant_id, survey.id)]
    assert sent == [left]
    assert m.wallet(gone).posted == EARNED  # the ledger stays as it was


def test_events_naming_an_erased_member_are_refused_and_its_returns_still_work(
        m: Money) -> None:
    gone = m.account(member_number="M-GONE")
    user = m.user(gone)
    m.event(external_id="before", account_id=gone, lines=BUY)
    assert m.wallet(gone).posted == EARNED
    erase(m, gone)
    before = counts(m)
    for key, field in (({"account_id": gone}, "account_id"),
                       ({"member_number": "M-GONE"}, "member_number"),
                       ({"user_id": user}, "user_id")):
        refused(lambda key=key, n=field: m.event(external_id=f"after-{n}", lines=BUY, **key),
                field)
    refused(lambda: m.event(external_id="act", account_id=gone, kind="activity",
                            activity_type="newsletter_opt_in"), "account_id")
    assert counts(m) == before and m.wallet(gone).posted == EARNED
    # an event naming a member that matches nobody waits unmatched; it cannot be matched to
    # the erased member
    waiting = m.event(external_id="orphan", member_number="M-NOBODY", lines=BUY)
    assert waiting.event.status == "unmatched"
    refused(in_session(m, events.match, waiting.event.id, gone, actor="ops"), "account_id")
    # finance reverses what the purchase made before the erasure earned
    back = m.ret(external_id="r1", original_external_id="before",
                 lines=[{"line_no": 1, "quantity": 1}])
    assert back.event.status == "processed"
    assert m.wallet(gone).posted == EARNED - 15 - 5


def test_an_erased_member_joins_no_program_again(m: Money) -> None:
    gone = m.account()
    m.event(external_id="g1", account_id=gone, lines=BUY)
    with m.db.transaction() as s:
        _, token = members.invite(s, m.tenant_id, m.program_id, email="a@example.com",
                                  invited_by="ops")
    erase(m, gone)
    refused(in_session(m, members.enrol, m.program_id, gone, actor="ops"), "account_id")
    refused(in_session(m, members.invite, m.program_id, email="b@example.com",
                       account_id=gone, invited_by="ops"), "account_id")
    refused(in_session(m, members.accept_invitation, token, gone, "ops"), "account_id")
    with m.db.transaction() as s:  # a program that enrols on the first event
        other = tenants.create_program(s, m.tenant_id, code="auto", name="Auto",
                                       base_currency="USD", enrolment_mode="automatic").id
    refused(in_session(m, members.ensure_enrolled, other, gone, "ops"), "account_id")
    with m.db.read() as s:
        assert members.list_enrolments(s, m.tenant_id, program_id=other).items == []


def test_a_bulk_import_reports_the_erased_member_s_rows_and_applies_the_others(
        db: Database, tmp_path: Path) -> None:
    with clock.frozen(NOW):
        shop = Money(db)
        shop.apply(bulk_definition())
        accounts = {n: shop.account(name=n, member_number=n) for n in ("M1", "M2", "M3")}
        shop.event(external_id="seed", source="import", member_number="M2", lines=BUY)
        before = shop.wallet(accounts["M2"]).posted
        erase(shop, accounts["M2"])
        rows = [[f"P{n}", (NOW + timedelta(hours=n)).isoformat(), member, "web", "SKU-1", "1",
                 "1000"] for n, member in enumerate(["M1", "M2", "M3", "M1", "M2"])]
        path = tmp_path / "p.parquet"
        pl.DataFrame(rows, schema=dict.fromkeys(
            ["external_id", "occurred_at", "member_number", "channel", "sku", "line_quantity",
             "unit_price"], pl.String), orient="row").write_parquet(path)
        errors = tmp_path / "errors.csv"
        report = imports.run(db, shop.tenant_id, "main", "purchases", path, batch=50,
                             errors_path=errors)
    assert (report.created, report.rejected_events) == (3, 2)
    assert report.paths.bulk == 3  # the good rows still take the bulk path
    with errors.open(newline="") as f:
        reported = list(csv.DictReader(f))
    assert [(r["row"], r["column"], r["value"]) for r in reported] == [
        ("2", "member_number", "M2"), ("5", "member_number", "M2")]
    assert all("erased" in r["reason"] for r in reported)
    assert shop.wallet(accounts["M2"]).posted == before
    assert shop.wallet(accounts["M1"]).posted > 0 and shop.wallet(accounts["M3"]).posted > 0
    assert_ledger_invariants(db)


def _claim(m: Money, account_id: str, number: str) -> Callable[[], claims.SalesClaim]:
    return in_session(m, claims.submit, m.program_id, account_id=account_id,
                      invoice_number=number, invoice_date=NOW - timedelta(days=2),
                      seller="Acme", lines=BUY, proof_ref="s3://proof.pdf", actor="partner")


def test_an_erased_member_claims_nothing(m: Money) -> None:
    gone = m.account()
    pending = _claim(m, gone, "INV-1")()
    erase(m, gone)
    refused(_claim(m, gone, "INV-2"), "account_id")
    # a claim submitted before the erasure is refused on approval, and can be rejected
    refused(in_session(m, claims.approve, pending.id, actor="ops"), "account_id")
    with m.db.transaction() as s:
        assert claims.get_claim(s, m.tenant_id, pending.id).status == "submitted"
        claims.reject(s, m.tenant_id, pending.id, actor="ops", reason="member erased")
    assert m.wallet(gone).posted == 0


def test_an_erased_member_s_code_pays_it_nothing(m: Money) -> None:
    with m.db.transaction() as s:
        plan = referrals.create_plan(s, m.tenant_id, m.program_id, code="aff", name="Aff",
                                     commission_unit_id=m.usd, commission_rates={"*": "10"},
                                     lock_days=0)
    affiliate, early, late = m.account(), m.account(), m.account()
    with m.db.transaction() as s:
        code = referrals.issue_code(s, m.tenant_id, plan.id, affiliate, actor="t").code
        referrals.signup(s, m.tenant_id, m.program_id, code=code, account_id=early, actor="t")
    bought = m.event(external_id="o1", account_id=early,
                     lines=[{"category": "course", "amount": 10_000}])
    erase(m, affiliate)
    with m.db.transaction() as s:
        assert referrals.attribute(s, m.tenant_id, bought.event.id) == []
    assert m.money(affiliate).posted + m.money(affiliate).pending_in == 0
    before = counts(m)
    refused(in_session(m, referrals.signup, m.program_id, code=code, account_id=late,
                       actor="t"), "code")
    refused(in_session(m, referrals.issue_code, plan.id, affiliate, actor="t"), "account_id")
    assert counts(m) == before


def test_an_erased_member_signs_up_nowhere_answers_nothing_and_attends_for_nothing(
        m: Money) -> None:
    with m.db.transaction() as s:
        plan = referrals.create_plan(s, m.tenant_id, m.program_id, code="mgm", name="MGM",
                                     bounty_unit_id=m.unit_id, bounty=500, referee_reward=200,
                                     lock_days=0)
        survey = engagement.create_survey(s, m.tenant_id, m.program_id, code="csat",
                                          name="CSAT", reward_unit_id=m.unit_id,
                                          reward_points=50,
                                          questions=[{"code": "nps", "text": "?",
                                                      "kind": "nps"}])
        gala = engagement.create_event(s, m.tenant_id, m.program_id, code="gala",
                                       name="Gala", starts_at=NOW + timedelta(days=1),
                                       ends_at=NOW + timedelta(days=1, hours=4),
                                       attendance_unit_id=m.unit_id, attendance_points=300)
    referrer, gone = m.account(), m.account()
    m.event(external_id="g1", account_id=gone, lines=BUY)
    with m.db.transaction() as s:
        code = referrals.issue_code(s, m.tenant_id, plan.id, referrer, actor="t").code
        engagement.register(s, m.tenant_id, gala.id, gone)
    erase(m, gone)
    before = counts(m)
    refused(in_session(m, referrals.signup, m.program_id, code=code, account_id=gone,
                       actor="t"), "account_id")
    refused(in_session(m, engagement.submit, survey.id, gone, {"nps": 10}, actor="t"),
            "account_id")
    refused(in_session(m, engagement.check_in, gala.id, gone, actor="ops"), "account_id")
    assert counts(m) == before
    # an invitation list leaves it out, names it, and writes nothing for it
    with m.db.transaction() as s:
        outcome = engagement.invite(s, m.tenant_id, gala.id, [gone])
    assert (outcome.invited, outcome.not_invited) == (
        0, (engagement.NotInvitedAccount(gone, "account_erased"),))
    assert counts(m) == before
    assert m.wallet(gone).posted == EARNED and m.wallet(referrer).posted == 0


def test_a_recalculation_places_no_erased_member_on_a_free_level(m: Money) -> None:
    """A ladder whose lowest level is free places every enrolled member on it; the erased
    member's enrolment is closed, so it is placed nowhere."""
    gone, kept = m.account(), m.account()
    for account_id in (gone, kept):
        with m.db.transaction() as s:
            members.enrol(s, m.tenant_id, m.program_id, account_id, actor="ops")
    erase(m, gone)
    with m.db.transaction() as s:
        tiers.create_ladder(s, m.tenant_id, m.program_id, {
            "code": "club", "name": "Club", "metric": "spend", "primary": True,
            "period": {"kind": "calendar_year"},
            "levels": [{"code": "member", "name": "Member", "threshold": 0},
                       {"code": "silver", "name": "Silver", "threshold": 100_000}]})
        tiers.recalculate(s, m.tenant_id, m.program_id)
    with m.db.read() as s:
        placed = {a: [t.level for t in tiers.status(s, m.tenant_id, m.program_id, a)]
                  for a in (gone, kept)}
    assert placed == {gone: [None], kept: ["member"]}
